// Keeping the client's picture of the match in step with the server's (docs/protocol.md):
//
// - World: the authoritative state, rebuilt from a full `snapshot` or from the held state plus a `delta`.
// - ServerClock: which server tick "is arriving now", learnt from when states arrive.
// - StateBuffer: recent states by tick, so other players can be drawn between two of them (interpolation),
//   a little in the past (the render delay), where the states on both sides are already here.
// - LocalPrediction: the local player moves at once with its own input and the same movement rules as the
//   server; every state from the server is the truth for the inputs it acknowledges (`ack`), and the inputs
//   it has not seen yet are replayed on top of it (reconciliation).

import { applyMove } from "./movement.js";

/**
 * A held state: `tick`, and `entities`: kind -> (id -> fields). States are never modified once made (a
 * delta copies what it changes), so the interpolation buffer can keep them as they are.
 */
export function worldFromSnapshot(snapshot) {
  const entities = new Map();
  for (const [kind, byId] of Object.entries(snapshot.entities ?? {})) {
    const map = new Map();
    for (const [id, fields] of Object.entries(byId)) map.set(Number(id), { ...fields });
    entities.set(kind, map);
  }
  return { tick: snapshot.tick, entities };
}

/**
 * The state a delta turns `world` into, or null when the delta does not apply to it (its `base` is not the
 * tick we hold): then we missed something, and the server will send a full snapshot.
 */
export function applyDelta(world, delta) {
  if (!world || delta.base !== world.tick) return null;
  const entities = new Map();
  for (const [kind, byId] of world.entities) entities.set(kind, new Map(byId));
  const kindMap = (kind) => {
    if (!entities.has(kind)) entities.set(kind, new Map());
    return entities.get(kind);
  };
  // 1. remove, 2. add (set the whole entity), 3. change (merge fields).
  for (const [kind, ids] of Object.entries(delta.remove ?? {})) {
    for (const id of ids) entities.get(kind)?.delete(Number(id));
  }
  for (const [kind, byId] of Object.entries(delta.add ?? {})) {
    const map = kindMap(kind);
    for (const [id, fields] of Object.entries(byId)) map.set(Number(id), { ...fields });
  }
  for (const [kind, byId] of Object.entries(delta.change ?? {})) {
    const map = kindMap(kind);
    for (const [id, fields] of Object.entries(byId)) map.set(Number(id), { ...map.get(Number(id)), ...fields });
  }
  return { tick: delta.tick, entities };
}

export function playersOf(world) {
  return world?.entities.get("players") ?? new Map();
}

export function projectilesOf(world) {
  return world?.entities.get("projectiles") ?? new Map();
}

/** The match entity (id 0): {start, end, over}, or null. */
export function matchOf(world) {
  return world?.entities.get("match")?.get(0) ?? null;
}

// How the clock estimate follows arrivals: a state can arrive late (a slow tick, a busy network) but never
// early, so the estimate follows early arrivals quickly and late ones slowly (a lasting change of latency).
const EARLY_ARRIVAL_GAIN = 0.3;
const LATE_ARRIVAL_GAIN = 0.02;
const CLOCK_RESYNC_MS = 1000;

/**
 * Maps local time (performance.now(), ms) to server ticks. `offsetMs` is the local time at which the state
 * of tick 0 would have arrived, so tick n's state arrives around offsetMs + n * tickMs.
 */
export class ServerClock {
  offsetMs = null;

  constructor(tickRate) {
    this.tickMs = 1000 / tickRate;
  }

  get ready() {
    return this.offsetMs !== null;
  }

  reset() {
    this.offsetMs = null;
  }

  /** Learn from the state of `tick` arriving at local time `arrivedMs`. */
  observe(tick, arrivedMs) {
    const sample = arrivedMs - tick * this.tickMs;
    if (this.offsetMs === null || Math.abs(sample - this.offsetMs) > CLOCK_RESYNC_MS) {
      this.offsetMs = sample;
      return;
    }
    const gain = sample < this.offsetMs ? EARLY_ARRIVAL_GAIN : LATE_ARRIVAL_GAIN;
    this.offsetMs += (sample - this.offsetMs) * gain;
  }

  /** The (fractional) tick whose state is arriving at local time `nowMs`. */
  tickAt(nowMs) {
    return (nowMs - this.offsetMs) / this.tickMs;
  }

  /** The local time at which the state of `tick` arrives. */
  timeOfTick(tick) {
    return this.offsetMs + tick * this.tickMs;
  }
}

const BUFFER_CAPACITY = 90; // 3 s at 30 ticks per second: far more than any render delay needs

/** Recent states, oldest first, for interpolation. */
export class StateBuffer {
  states = [];

  clear() {
    this.states = [];
  }

  push(world) {
    const last = this.states.at(-1);
    if (last && world.tick <= last.tick) this.clear(); // ticks went back: another match
    this.states.push(world);
    if (this.states.length > BUFFER_CAPACITY) this.states.shift();
  }

  /**
   * The two states around (fractional) `tick`, and how far `tick` lies from the first to the second. Before
   * the oldest state it holds the oldest; past the newest it holds the newest (no extrapolation).
   */
  around(tick) {
    const states = this.states;
    if (states.length === 0) return null;
    if (tick <= states[0].tick) return { from: states[0], to: null, alpha: 0 };
    for (let i = states.length - 1; i >= 0; i -= 1) {
      if (states[i].tick <= tick) {
        const to = states[i + 1] ?? null;
        const alpha = to ? (tick - states[i].tick) / (to.tick - states[i].tick) : 0;
        return { from: states[i], to, alpha };
      }
    }
    return { from: states[0], to: null, alpha: 0 };
  }
}

function lerp(a, b, t) {
  return a + (b - a) * t;
}

/** Interpolate between two aims in milliradians the short way round. */
function lerpAimMrad(a, b, t) {
  let diff = b - a;
  const turn = 2000 * Math.PI;
  if (diff > turn / 2) diff -= turn;
  if (diff < -turn / 2) diff += turn;
  return a + diff * t;
}

/**
 * Every player as seen between two buffered states. Position and aim are interpolated; the other fields
 * come from the earlier state. A player who jumped (respawned) is held where they were until the next state.
 */
export function interpolatePlayers(sample, rules) {
  const players = new Map();
  if (!sample) return players;
  const { from, to, alpha } = sample;
  const later = to ? playersOf(to) : null;
  const maxStep = ((rules.player_speed / rules.tick_rate) * (to ? to.tick - from.tick : 0)) * 1.5 + 2;
  for (const [id, a] of playersOf(from)) {
    const b = later?.get(id);
    const jumped = b && (Math.hypot(b.x - a.x, b.y - a.y) > maxStep || (a.hp === 0) !== (b.hp === 0));
    if (!b || jumped || alpha <= 0) {
      players.set(id, a);
      continue;
    }
    players.set(id, { ...a, x: lerp(a.x, b.x, alpha), y: lerp(a.y, b.y, alpha), aim: lerpAimMrad(a.aim, b.aim, alpha) });
  }
  return players;
}

// The server sends positions rounded to whole units, so a replay from them can differ from our unrounded
// prediction by up to sqrt(2) / 2 without either being wrong.
const ROUNDING_SLACK = 0.75;
const COUNTED_CORRECTION = 1;
const SNAP_DISTANCE = 150;
const DOUBTED_STEPS = 1.5;
const MAX_PENDING_INPUTS = 256;

/** The local player's predicted position, reconciled with every authoritative state. */
export class LocalPrediction {
  corrections = 0;
  maxCorrection = 0;
  #doubted = false; // the last state disagreed with the prediction by about a step, and was not believed yet

  constructor(rules, { smoothingMs = 100 } = {}) {
    this.smoothingMs = smoothingMs;
    this.setRules(rules);
  }

  /** New rules (a new connection's welcome): start over, keeping the statistics. */
  setRules(rules) {
    this.rules = rules;
    this.tickMs = 1000 / rules.tick_rate;
    this.reset();
  }

  /** Forget everything about the previous match (the statistics are kept). */
  reset() {
    this.position = null; // predicted position after the last client tick
    this.previous = null; // ... and before it: drawing goes from one to the other during a tick
    this.steppedAt = 0;
    this.alive = false;
    this.pending = []; // inputs sent but not yet acknowledged: {seq, mx, my}
    this.correction = { dx: 0, dy: 0, at: 0 };
  }

  get ready() {
    return this.position !== null;
  }

  /** One client tick in which input `seq` (just sent) moves (mx, my), as the server will apply it. */
  step(seq, mx, my, nowMs) {
    if (!this.position) return;
    this.previous = this.position;
    this.steppedAt = nowMs;
    this.pending.push({ seq, mx, my });
    if (this.pending.length > MAX_PENDING_INPUTS) this.pending.shift();
    if (this.alive) this.position = applyMove(this.position, mx, my, this.rules);
  }

  /** One client tick without a new input: the server holds a standing-still input, and so do we. */
  idle(nowMs) {
    if (!this.position) return;
    this.previous = this.position;
    this.steppedAt = nowMs;
  }

  /**
   * Take the server's word for where the player was after input `server.ack`, replay the inputs sent since,
   * and move the prediction there if it differs by more than the server's rounding. The drawn position does
   * not jump: the difference is drawn as an offset that fades out over `smoothingMs`.
   */
  reconcile(server, nowMs) {
    const wasAlive = this.alive;
    this.alive = server.hp > 0;
    this.pending = this.pending.filter((input) => input.seq > server.ack);
    let replayed = { x: server.x, y: server.y };
    if (this.alive) {
      for (const input of this.pending) replayed = applyMove(replayed, input.mx, input.my, this.rules);
    }
    // First state, death and respawn are not mispredictions: the server placed the player.
    if (!this.position || !this.alive || !wasAlive) {
      this.#snapTo(replayed);
      return;
    }
    const dx = replayed.x - this.position.x;
    const dy = replayed.y - this.position.y;
    const error = Math.hypot(dx, dy);
    if (error <= ROUNDING_SLACK) {
      this.#doubted = false;
      return;
    }
    // An input that reached the server right at a tick is applied twice or not at all, and the next one
    // usually makes up for it: an error of about one step is believed only when the next state confirms it.
    if (!this.#doubted && error <= this.#stepLength() * DOUBTED_STEPS) {
      this.#doubted = true;
      return;
    }
    this.#doubted = false;
    if (error > COUNTED_CORRECTION) {
      this.corrections += 1;
      this.maxCorrection = Math.max(this.maxCorrection, error);
    }
    if (error > SNAP_DISTANCE) {
      this.#snapTo(replayed);
      return;
    }
    const left = this.#correctionOffset(nowMs);
    this.correction = { dx: left.dx - dx, dy: left.dy - dy, at: nowMs };
    this.position = replayed;
    this.previous = { x: this.previous.x + dx, y: this.previous.y + dy };
  }

  /** Where to draw the local player at `nowMs`: between the last two client ticks, plus the fading correction. */
  renderedPosition(nowMs) {
    if (!this.position) return null;
    const t = Math.min(1, Math.max(0, (nowMs - this.steppedAt) / this.tickMs));
    const offset = this.#correctionOffset(nowMs);
    return {
      x: lerp(this.previous.x, this.position.x, t) + offset.dx,
      y: lerp(this.previous.y, this.position.y, t) + offset.dy,
    };
  }

  #stepLength() {
    return this.rules.player_speed / this.rules.tick_rate;
  }

  #snapTo(position) {
    this.#doubted = false;
    this.position = position;
    this.previous = position;
    this.correction = { dx: 0, dy: 0, at: 0 };
  }

  #correctionOffset(nowMs) {
    const left = Math.max(0, 1 - (nowMs - this.correction.at) / this.smoothingMs);
    return { dx: this.correction.dx * left, dy: this.correction.dy * left };
  }
}

// Inputs are timed to reach the server half-way between two of its ticks. The server applies the latest
// input at each tick, so an input arriving right at a tick could land in the same tick as the next one (a move
// lost) or miss its tick (the previous input applied twice), and the prediction, which applies each input
// once, would be off by a step. (LocalPrediction doubts an error of one step until the next state confirms it.)
const MIN_TICK_GAP = 0.9;

const PING_SAMPLES = 6; // the server measures every 5 s: the last half minute

/**
 * How long before the state of tick n is due to arrive an input must be sent to reach the server half a tick
 * before tick n: the round trip plus half a tick. The round trip is the smallest of the last few `ping`
 * values the server reported (a busy moment only ever makes a measurement longer); 0 means not measured yet.
 */
export class InputTiming {
  #pings = [];

  constructor(tickRate) {
    this.tickMs = 1000 / tickRate;
  }

  /** A new connection: the round trip is measured anew. */
  resetConnection(tickRate) {
    this.tickMs = 1000 / tickRate;
    this.#pings = [];
  }

  /** The `ping` field of our player in a state (the same value until the server measures again). */
  notePing(pingMs) {
    if (!(Number.isFinite(pingMs) && pingMs > 0) || this.#pings.at(-1) === pingMs) return;
    this.#pings.push(pingMs);
    if (this.#pings.length > PING_SAMPLES) this.#pings.shift();
  }

  get leadMs() {
    return (this.#pings.length ? Math.min(...this.#pings) : 0) + this.tickMs / 2;
  }
}

/**
 * When the client's next tick (input sample, prediction step) is due, given when the last one was due. Once
 * the server clock is known, client ticks sit on the grid offset + n * tickMs - leadMs (see InputTiming).
 * The grid point nearest to one tick after the last is taken, but never sooner than MIN_TICK_GAP of a tick
 * after it, so that when the grid moves earlier the rate stays near the tick rate.
 */
export function nextClientTickTime(nowMs, lastDueMs, clock, leadMs) {
  const tickMs = clock.tickMs;
  let due = lastDueMs + tickMs;
  if (clock.ready) {
    const phase = clock.offsetMs - leadMs;
    const onGrid = phase + Math.round((due - phase) / tickMs) * tickMs;
    due = Math.max(onGrid, lastDueMs + tickMs * MIN_TICK_GAP);
  }
  if (due < nowMs - tickMs) due = nowMs; // far behind (a busy or hidden page): no burst of catch-up ticks
  return due;
}
