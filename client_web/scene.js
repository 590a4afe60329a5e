// A picture of recorded states for the renderer: players interpolated between two states and projectiles where
// they are at the (fractional) tick between them. The kill-cam and the replay viewer draw from it; live play
// builds its own, with prediction for the local player.
import { projectilePosition } from "./movement.js";
import { interpolatePlayers, projectilesOf } from "./sync.js";

/**
 * @param {object} from the earlier state; @param {object|null} to the later one
 * @param {number} alpha how far between them (0 to 1)
 * @param {object} rules the match's rules (welcome.rules)
 * @param {{highlight?: number|null, label?: (id: number, name: string) => string}} options the player drawn
 *   as the one to watch, and how names are shown
 */
export function sceneBetween(from, to, alpha, rules, { highlight = null, label = (id, name) => name } = {}) {
  const tick = from.tick + (to ? alpha * (to.tick - from.tick) : 0);
  const players = [];
  for (const [id, fields] of interpolatePlayers({ from, to, alpha }, rules)) {
    const dead = fields.hp <= 0;
    players.push({
      id,
      name: label(id, fields.name),
      x: fields.x,
      y: fields.y,
      aim: fields.aim / 1000,
      hp: fields.hp,
      maxHp: rules.max_hp,
      dead,
      respawnIn: dead && fields.respawn ? Math.max(0, (fields.respawn - tick) / rules.tick_rate) : null,
      local: id === highlight,
      away: fields.status === "reconnecting",
      bot: fields.status === "bot",
      flash: 0,
    });
  }
  const projectiles = [];
  for (const projectile of projectilesOf(from).values()) {
    const position = projectilePosition(projectile, tick, rules);
    if (position) projectiles.push({ ...position, owner: projectile.owner, own: projectile.owner === highlight });
  }
  return { players, projectiles, bursts: [] };
}
