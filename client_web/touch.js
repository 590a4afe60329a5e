// Touch controls for phones and tablets: a stick that moves the player (left) and a fire pad (right). A tap on
// the fire pad fires at the nearest enemy; a drag from it aims that way and fires while the finger is down.
// Each control follows its own finger (pointer capture), so both work at once and a finger that slides off a
// control still drives it. They are shown once the page sees a touch screen: a coarse pointer, or a first touch.

/** A finger this close to the stick's centre (a fraction of its radius) does not move the player. */
const STICK_DEAD_ZONE = 0.3;
/** sin(22.5°): beyond this share of the push an axis counts, so the stick gives eight directions. */
const AXIS_SHARE = 0.38;
/** A drag on the fire pad shorter than this (a fraction of its radius) is a tap: fire at the nearest enemy. */
const AIM_DRAG = 0.3;

/** A finger's offset from a control's centre, as a fraction of the control's radius (clamped to 1). */
function offsetIn(element, event) {
  const rect = element.getBoundingClientRect();
  const radius = rect.width / 2;
  let dx = (event.clientX - (rect.left + radius)) / radius;
  let dy = (event.clientY - (rect.top + rect.height / 2)) / radius;
  const length = Math.hypot(dx, dy);
  if (length > 1) [dx, dy] = [dx / length, dy / length];
  return { dx, dy, length: Math.min(1, length), radius };
}

/** Follow one finger on `element`: `onMove(offset)` while down (offset null when lifted). */
function trackFinger(element, onMove) {
  let finger = null;
  element.addEventListener("pointerdown", (event) => {
    if (finger !== null) return;
    event.preventDefault();
    finger = event.pointerId;
    element.setPointerCapture(event.pointerId);
    onMove(offsetIn(element, event));
  });
  element.addEventListener("pointermove", (event) => {
    if (event.pointerId === finger) onMove(offsetIn(element, event));
  });
  const lift = (event) => {
    if (event.pointerId !== finger) return;
    finger = null;
    onMove(null);
  };
  element.addEventListener("pointerup", lift);
  element.addEventListener("pointercancel", lift);
  element.addEventListener("lostpointercapture", lift);
}

function showKnob(element, offset) {
  const reach = offset ? offset.radius * 0.55 : 0;
  element.style.setProperty("--dx", `${offset ? offset.dx * reach : 0}px`);
  element.style.setProperty("--dy", `${offset ? offset.dy * reach : 0}px`);
}

export class TouchControls {
  /** Whether the touch controls are shown (a touch screen was seen). */
  active = false;
  #move = { mx: 0, my: 0, angle: null };
  #fireHeld = false;
  #fireLatched = false;
  #fireAim = null; // radians while the fire pad is dragged far enough
  #elements;

  constructor(doc = document) {
    const stick = doc.getElementById("touch-stick");
    const fire = doc.getElementById("touch-fire");
    this.#elements = [stick, fire].filter(Boolean);
    if (this.#elements.length < 2) return;
    trackFinger(stick, (offset) => this.#stickMoved(stick, offset));
    trackFinger(fire, (offset) => this.#firePadMoved(fire, offset));
    if (window.matchMedia("(pointer: coarse)").matches) this.activate();
    window.addEventListener("pointerdown", (event) => event.pointerType === "touch" && this.activate(), {
      capture: true,
    });
  }

  activate() {
    if (this.active) return;
    this.active = true;
    document.body.classList.add("touch");
    for (const element of this.#elements) element.hidden = false;
  }

  releaseAll() {
    this.#move = { mx: 0, my: 0, angle: null };
    this.#fireHeld = false;
    this.#fireLatched = false;
    this.#fireAim = null;
  }

  /** The stick's direction: each axis -1, 0 or 1; `angle` in radians while pushed, else null. */
  get move() {
    return this.#move;
  }

  /** Whether to fire in this tick: the pad is held, or was tapped since the last sample. */
  takeFire() {
    const fire = this.#fireHeld || this.#fireLatched;
    this.#fireLatched = false;
    return fire;
  }

  /** The aim from dragging the fire pad, in radians, or null (a tap: aim at the nearest enemy). */
  get fireAim() {
    return this.#fireAim;
  }

  get firing() {
    return this.#fireHeld;
  }

  #stickMoved(element, offset) {
    showKnob(element, offset);
    if (!offset || offset.length < STICK_DEAD_ZONE) {
      this.#move = { mx: 0, my: 0, angle: null };
      return;
    }
    const share = (value) => (Math.abs(value) / offset.length >= AXIS_SHARE ? Math.sign(value) : 0);
    this.#move = { mx: share(offset.dx), my: share(offset.dy), angle: Math.atan2(offset.dy, offset.dx) };
  }

  #firePadMoved(element, offset) {
    showKnob(element, offset);
    element.classList.toggle("held", Boolean(offset));
    if (offset && !this.#fireHeld) this.#fireLatched = true;
    this.#fireHeld = Boolean(offset);
    this.#fireAim = offset && offset.length >= AIM_DRAG ? Math.atan2(offset.dy, offset.dx) : null;
  }
}
