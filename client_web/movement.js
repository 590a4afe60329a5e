// How a player moves in one tick: a line-for-line mirror of `_apply_input` and `_slide` in
// game/simulation.py, so that the client's prediction lands exactly where the server will.
// Players collide with the arena's edge and the walls as squares of side 2 * radius.

const DIAGONAL = 1 / Math.sqrt(2);

/**
 * Where a player at `position` ends up after one tick of holding the move direction (mx, my).
 * @param {{x: number, y: number}} position
 * @param {number} mx -1, 0 or 1
 * @param {number} my -1, 0 or 1
 * @param {object} rules the welcome's rules, with `tick_rate` added
 * @returns {{x: number, y: number}}
 */
export function applyMove(position, mx, my, rules) {
  let speed = rules.player_speed / rules.tick_rate;
  if (mx && my) speed *= DIAGONAL;
  let { x, y } = position;
  if (mx) x = slideX(x, y, mx * speed, rules);
  if (my) y = slideY(x, y, my * speed, rules);
  return { x, y };
}

function clamp(value, low, high) {
  return Math.min(Math.max(value, low), high);
}

/** Move along x, stopping flush against the arena's edge or the first wall in the way. */
function slideX(x, y, delta, rules) {
  const r = rules.player_radius;
  let target = clamp(x + delta, r, rules.width - r);
  for (const [wx, wy, ww, wh] of rules.walls) {
    if (!(wy - r < y && y < wy + wh + r)) continue;
    if (delta > 0 && x <= wx - r && wx - r < target) target = wx - r;
    else if (delta < 0 && target < wx + ww + r && wx + ww + r <= x) target = wx + ww + r;
  }
  return target;
}

/** Move along y, stopping flush against the arena's edge or the first wall in the way. */
function slideY(x, y, delta, rules) {
  const r = rules.player_radius;
  let target = clamp(y + delta, r, rules.height - r);
  for (const [wx, wy, ww, wh] of rules.walls) {
    if (!(wx - r < x && x < wx + ww + r)) continue;
    if (delta > 0 && y <= wy - r && wy - r < target) target = wy - r;
    else if (delta < 0 && target < wy + wh + r && wy + wh + r <= y) target = wy + wh + r;
  }
  return target;
}

/**
 * Where a projectile is at (fractional) tick `tick`, from its launch fields; null before launch or
 * once it has expired, left the arena or entered a wall.
 */
export function projectilePosition(projectile, tick, rules) {
  const age = tick - projectile.tick;
  if (age < 0 || age > rules.projectile_life_ticks) return null;
  const distance = (age * rules.projectile_speed) / rules.tick_rate;
  const angle = projectile.aim / 1000;
  const x = projectile.x + Math.cos(angle) * distance;
  const y = projectile.y + Math.sin(angle) * distance;
  return isBlocked(x, y, rules, rules.projectile_radius) ? null : { x, y };
}

function isBlocked(x, y, rules, margin) {
  if (!(x >= 0 && x <= rules.width && y >= 0 && y <= rules.height)) return true;
  return rules.walls.some(
    ([wx, wy, ww, wh]) => wx - margin < x && x < wx + ww + margin && wy - margin < y && y < wy + wh + margin,
  );
}
