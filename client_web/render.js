// Drawing the arena on a canvas that keeps the arena's aspect ratio and fits the space it is given.
// Everything is drawn in arena units; one transform maps them to device pixels.

const COLORS = {
  outside: "#0b0d12",
  floor: "#151922",
  grid: "#1b202b",
  border: "#2d3446",
  wall: "#2a3142",
  wallEdge: "#414b63",
  text: "#e8eaf0",
  muted: "#aab1c2",
  textShadow: "rgba(0, 0, 0, 0.75)",
  hpBack: "rgba(0, 0, 0, 0.55)",
  localRing: "#ffffff",
};
const GRID_STEP = 100;
const BURST_PARTICLES = 12;

/** A colour per player id, the same on every client. */
export function playerColor(id, lightness = 62) {
  const hue = (id * 137.508 + 190) % 360;
  return `hsl(${hue.toFixed(1)} 72% ${lightness}%)`;
}

export class Renderer {
  rules = null;
  /** Where the last frame put each name, in arena units: [{id, left, top, right, bottom}] (the tests read it). */
  labels = [];
  #scale = 1; // CSS pixels per arena unit

  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} box the element whose box the canvas fits into
   */
  constructor(canvas, box) {
    this.canvas = canvas;
    this.box = box;
    this.context = canvas.getContext("2d");
    new ResizeObserver(() => this.fit()).observe(box);
  }

  setRules(rules) {
    this.rules = rules;
    this.box.style.setProperty("--arena-aspect", `${rules.width} / ${rules.height}`);
    this.fit();
  }

  /** Size the canvas to the largest box of the arena's aspect ratio that fits the box. */
  fit() {
    const width = this.rules?.width ?? 1600;
    const height = this.rules?.height ?? 900;
    const box = this.box.getBoundingClientRect();
    const scale = Math.max(0.05, Math.min(box.width / width, box.height / height));
    const cssWidth = Math.floor(width * scale);
    const cssHeight = Math.floor(height * scale);
    const ratio = window.devicePixelRatio || 1;
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.canvas.width = Math.round(cssWidth * ratio);
    this.canvas.height = Math.round(cssHeight * ratio);
    this.#scale = cssWidth / width;
  }

  /** Page (CSS pixel, viewport) coordinates of an arena point. */
  canvasPoint(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    const width = this.rules?.width ?? 1600;
    const height = this.rules?.height ?? 900;
    return { x: rect.left + (x * rect.width) / width, y: rect.top + (y * rect.height) / height };
  }

  /** Arena coordinates of a page point (it may lie outside the arena). */
  arenaPoint(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const width = this.rules?.width ?? 1600;
    const height = this.rules?.height ?? 900;
    return { x: ((clientX - rect.left) * width) / rect.width, y: ((clientY - rect.top) * height) / rect.height };
  }

  /**
   * Draw one frame.
   * @param {{players: object[], projectiles: object[], bursts: object[]}} scene in arena units; see main.js
   */
  draw(scene) {
    const ctx = this.context;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = COLORS.outside;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.labels = [];
    if (!this.rules) return;
    const pixels = this.canvas.width / this.rules.width;
    ctx.setTransform(pixels, 0, 0, pixels, 0, 0);
    this.#drawFloor();
    this.#drawWalls();
    for (const projectile of scene.projectiles) this.#drawProjectile(projectile);
    for (const burst of scene.bursts) this.#drawBurst(burst);
    const ordered = [...scene.players].sort((a, b) => Number(b.dead) - Number(a.dead) || Number(a.local) - Number(b.local));
    for (const player of ordered) this.#drawPlayer(player);
  }

  /** A font size in arena units that stays readable (at least `minCss` CSS pixels) on small canvases. */
  #fontSize(units, minCss) {
    return Math.max(units, minCss / this.#scale);
  }

  #drawFloor() {
    const ctx = this.context;
    const { width, height } = this.rules;
    ctx.fillStyle = COLORS.floor;
    ctx.fillRect(0, 0, width, height);
    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let x = GRID_STEP; x < width; x += GRID_STEP) {
      ctx.moveTo(x, 0);
      ctx.lineTo(x, height);
    }
    for (let y = GRID_STEP; y < height; y += GRID_STEP) {
      ctx.moveTo(0, y);
      ctx.lineTo(width, y);
    }
    ctx.stroke();
    ctx.strokeStyle = COLORS.border;
    ctx.lineWidth = 6;
    ctx.strokeRect(3, 3, width - 6, height - 6);
  }

  #drawWalls() {
    const ctx = this.context;
    for (const [x, y, w, h] of this.rules.walls) {
      ctx.fillStyle = COLORS.wall;
      ctx.fillRect(x, y, w, h);
      ctx.strokeStyle = COLORS.wallEdge;
      ctx.lineWidth = 3;
      ctx.strokeRect(x + 1.5, y + 1.5, w - 3, h - 3);
    }
  }

  #drawProjectile({ x, y, owner, own }) {
    const ctx = this.context;
    const r = this.rules.projectile_radius;
    ctx.fillStyle = own ? "rgba(255, 236, 160, 0.35)" : playerColor(owner, 70).replace(")", " / 0.35)");
    ctx.beginPath();
    ctx.arc(x, y, r * 2.2, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = own ? "#fff3c4" : "#ffffff";
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
  }

  #drawBurst({ x, y, progress, color, seed }) {
    const ctx = this.context;
    const fade = 1 - progress;
    ctx.save();
    ctx.globalAlpha = fade;
    ctx.strokeStyle = color;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.arc(x, y, this.rules.player_radius * (1 + progress * 2), 0, Math.PI * 2);
    ctx.stroke();
    ctx.fillStyle = color;
    for (let i = 0; i < BURST_PARTICLES; i += 1) {
      const angle = seed + (i / BURST_PARTICLES) * Math.PI * 2;
      const distance = 10 + progress * (50 + ((i * 37) % 30));
      ctx.beginPath();
      ctx.arc(x + Math.cos(angle) * distance, y + Math.sin(angle) * distance, 4 * fade + 1, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.restore();
  }

  #drawPlayer(player) {
    const ctx = this.context;
    const r = this.rules.player_radius;
    const { x, y } = player;
    ctx.save();
    if (player.dead) ctx.globalAlpha = 0.28;
    else if (player.away) ctx.globalAlpha = 0.5;
    if (player.local && !player.dead) {
      ctx.fillStyle = "rgba(255, 255, 255, 0.08)";
      ctx.beginPath();
      ctx.arc(x, y, r + 14, 0, Math.PI * 2);
      ctx.fill();
    }
    // The barrel, in the aim direction.
    ctx.strokeStyle = playerColor(player.id, 40);
    ctx.lineWidth = 9;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + Math.cos(player.aim) * (r + 11), y + Math.sin(player.aim) * (r + 11));
    ctx.stroke();
    // The body.
    ctx.fillStyle = playerColor(player.id);
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
    ctx.lineWidth = player.local ? 4 : 2;
    ctx.strokeStyle = player.local ? COLORS.localRing : playerColor(player.id, 35);
    ctx.stroke();
    if (player.flash > 0) {
      ctx.fillStyle = `rgba(255, 255, 255, ${0.85 * player.flash})`;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.restore();
    this.#drawLabel(player);
  }

  /**
   * The name above the player (below when the player is at the top edge), moved sideways as far as needed to
   * stay inside the arena; the health bar between name and body.
   */
  #drawLabel(player) {
    const ctx = this.context;
    const r = this.rules.player_radius;
    const { width, height } = this.rules;
    const { x, y } = player;
    const size = this.#fontSize(15, 11);
    const margin = 3;
    ctx.save();
    ctx.globalAlpha = player.dead ? 0.6 : 1;
    ctx.font = `${player.local ? 700 : 600} ${size}px system-ui, -apple-system, "Segoe UI", sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    const label = player.away ? `${player.name} (reconnecting)` : player.name;
    const textWidth = Math.min(ctx.measureText(label).width, width - 2 * margin);
    const below = y - r - 13 - size < margin;
    const labelX = Math.min(width - margin - textWidth / 2, Math.max(margin + textWidth / 2, x));
    const labelBottom = Math.min(height - margin, below ? y + r + 13 + size : y - r - 13);
    this.labels.push({
      id: player.id,
      left: labelX - textWidth / 2,
      right: labelX + textWidth / 2,
      top: labelBottom - size,
      bottom: labelBottom,
    });
    ctx.fillStyle = COLORS.textShadow;
    ctx.fillText(label, labelX + 1, labelBottom + 1, textWidth);
    ctx.fillStyle = player.local ? "#ffffff" : player.bot ? COLORS.muted : COLORS.text;
    ctx.fillText(label, labelX, labelBottom, textWidth);
    if (player.dead) {
      if (player.respawnIn !== null) {
        ctx.textBaseline = "middle";
        ctx.font = `700 ${size}px system-ui, sans-serif`;
        ctx.fillText(player.respawnIn.toFixed(1), x, y);
      }
    } else {
      const barWidth = 2 * r + 8;
      const fraction = Math.max(0, Math.min(1, player.hp / player.maxHp));
      const barX = Math.min(width - barWidth, Math.max(0, x - barWidth / 2));
      const barY = below ? y + r + 5 : y - r - 10;
      ctx.fillStyle = COLORS.hpBack;
      ctx.fillRect(barX - 1, barY - 1, barWidth + 2, 7);
      ctx.fillStyle = `hsl(${Math.round(fraction * 120)} 75% 50%)`;
      ctx.fillRect(barX, barY, barWidth * fraction, 5);
    }
    ctx.restore();
  }
}
