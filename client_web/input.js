// The player's controls: WASD or the arrow keys to move, the mouse to aim, a mouse button or Space to fire; on a
// touch screen also the stick and fire pad of touch.js, and a tap on the arena fires at that point.
// Sampled once per client tick; a click or tap shorter than a tick still fires (latched until sampled).

import { TouchControls } from "./touch.js";

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
/** A tap on the arena aims at that point for this long (then the stick's direction aims again). */
const TAP_AIM_MS = 400;

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
  #tap = null; // the last tap on the arena: {x, y, at}
  #touchFired = false; // the last sample fired from the fire pad or a tap
  #enabled = false;

  /**
   * @param {HTMLCanvasElement} canvas where aiming and clicking happen
   * @param {(clientX: number, clientY: number) => {x: number, y: number}} toArena page -> arena coordinates
   * @param {(origin: {x: number, y: number}) => number | null} autoAim the aim at the nearest enemy, if any
   */
  constructor(canvas, toArena, autoAim = () => null) {
    this.toArena = toArena;
    this.autoAim = autoAim;
    this.touch = new TouchControls();
    window.addEventListener("keydown", (event) => this.#keyDown(event));
    window.addEventListener("keyup", (event) => this.#keyUp(event));
    window.addEventListener("blur", () => this.releaseAll());
    document.addEventListener("visibilitychange", () => document.hidden && this.releaseAll());
    window.addEventListener("pointermove", (event) => event.pointerType !== "touch" && this.#aimAt(event));
    canvas.addEventListener("pointerdown", (event) => this.#pressOnArena(event));
    window.addEventListener("pointerup", (event) => event.button === 0 && (this.#mouseDown = false));
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
    this.touch.releaseAll();
  }

  /** The move direction held now (keys and the touch stick), each axis -1, 0 or 1 (opposites cancel). */
  moveDirection() {
    let mx = this.touch.move.mx;
    let my = this.touch.move.my;
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
    const touchFire = this.touch.takeFire();
    const fire =
      touchFire || this.#fireLatched || this.#mouseDown || [...FIRE_KEYS].some((code) => this.#held.has(code));
    this.#touchFired = touchFire;
    this.#fireLatched = false;
    return fire;
  }

  /**
   * The aim from `origin` (arena units), in radians within [-pi, pi]. With a mouse: at the mouse (`fallback`
   * before any mouse move). On a touch screen: where the fire pad is dragged, else at a fresh tap on the arena,
   * else at the nearest enemy when the fire pad fires, else where the stick points, else `fallback`.
   */
  aimFrom(origin, fallback) {
    if (!origin) return fallback;
    const touch = this.touch;
    if (touch.active) {
      if (touch.fireAim !== null) return touch.fireAim;
      if (this.#tap && performance.now() - this.#tap.at < TAP_AIM_MS) {
        return Math.atan2(this.#tap.y - origin.y, this.#tap.x - origin.x);
      }
      if (this.#touchFired || touch.firing) {
        const aim = this.autoAim(origin);
        if (aim !== null) return aim;
      }
      if (touch.move.angle !== null) return touch.move.angle;
    }
    if (!this.#pointer) return fallback;
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

  #pressOnArena(event) {
    if (!this.#enabled || event.button !== 0) return;
    event.preventDefault();
    if (event.pointerType === "touch") {
      this.#tap = { ...this.toArena(event.clientX, event.clientY), at: performance.now() };
      this.#fireLatched = true;
      return;
    }
    this.#aimAt(event);
    this.#mouseDown = true;
    this.#fireLatched = true;
  }
}
