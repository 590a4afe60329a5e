// The player's controls: WASD or the arrow keys to move, the mouse to aim, a mouse button or Space to fire.
// Sampled once per client tick; a click shorter than a tick still fires (the press is latched until sampled).

const MOVE_KEYS = {
  KeyW: [0, -1],
  ArrowUp: [0, -1],
  KeyS: [0, 1],
  ArrowDown: [0, 1],
  KeyA: [-1, 0],
  ArrowLeft: [-1, 0],
  KeyD: [1, 0],
  ArrowRight: [1, 0],
};
const FIRE_KEYS = new Set(["Space"]);

/** The key's physical code, so WASD stays where it is on any keyboard layout. */
function keyCode(event) {
  if (event.code) return event.code;
  return event.key === " " ? "Space" : event.key; // synthetic events may lack a code
}

export class Controls {
  #held = new Set();
  #mouseDown = false;
  #fireLatched = false;
  #pointer = null; // the mouse position in arena units, once it has moved over the arena
  #enabled = false;

  /**
   * @param {HTMLCanvasElement} canvas where aiming and clicking happen
   * @param {(clientX: number, clientY: number) => {x: number, y: number}} toArena page -> arena coordinates
   */
  constructor(canvas, toArena) {
    this.toArena = toArena;
    window.addEventListener("keydown", (event) => this.#keyDown(event));
    window.addEventListener("keyup", (event) => this.#keyUp(event));
    window.addEventListener("blur", () => this.releaseAll());
    document.addEventListener("visibilitychange", () => document.hidden && this.releaseAll());
    window.addEventListener("mousemove", (event) => this.#aimAt(event));
    canvas.addEventListener("mousedown", (event) => this.#mouseDownOnArena(event));
    window.addEventListener("mouseup", (event) => event.button === 0 && (this.#mouseDown = false));
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  /** Controls act only while the arena is on screen (not while typing a name). */
  set enabled(value) {
    this.#enabled = value;
    if (!value) this.releaseAll();
  }

  get enabled() {
    return this.#enabled;
  }

  releaseAll() {
    this.#held.clear();
    this.#mouseDown = false;
    this.#fireLatched = false;
  }

  /** The move direction held now, each axis -1, 0 or 1 (opposite keys cancel). */
  moveDirection() {
    let mx = 0;
    let my = 0;
    for (const code of this.#held) {
      const move = MOVE_KEYS[code];
      if (move) {
        mx += move[0];
        my += move[1];
      }
    }
    return { mx: Math.sign(mx), my: Math.sign(my) };
  }

  /** Whether to fire in this tick: the trigger is held, or was pressed since the last sample. */
  takeFire() {
    const fire = this.#fireLatched || this.#mouseDown || [...FIRE_KEYS].some((code) => this.#held.has(code));
    this.#fireLatched = false;
    return fire;
  }

  /** Aim from `origin` (arena units) to the mouse, in radians within [-pi, pi]; `fallback` before any mouse move. */
  aimFrom(origin, fallback) {
    if (!this.#pointer || !origin) return fallback;
    return Math.atan2(this.#pointer.y - origin.y, this.#pointer.x - origin.x);
  }

  #keyDown(event) {
    if (!this.#enabled || event.ctrlKey || event.metaKey || event.altKey) return;
    const code = keyCode(event);
    if (!(code in MOVE_KEYS) && !FIRE_KEYS.has(code)) return;
    event.preventDefault(); // no page scrolling with arrows or Space
    if (FIRE_KEYS.has(code) && !this.#held.has(code)) this.#fireLatched = true;
    this.#held.add(code);
  }

  #keyUp(event) {
    this.#held.delete(keyCode(event));
  }

  #aimAt(event) {
    this.#pointer = this.toArena(event.clientX, event.clientY);
  }

  #mouseDownOnArena(event) {
    if (!this.#enabled || event.button !== 0) return;
    event.preventDefault();
    this.#aimAt(event);
    this.#mouseDown = true;
    this.#fireLatched = true;
  }
}
