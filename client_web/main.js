// Arena's browser client: wires the connection, the state sync, the controls, the canvas and the HUD, and
// exposes `window.arena`, the hook the browser tests read.
//
// Netcode in short: the local player is predicted (moved at once by a fixed client tick, then reconciled
// with every server state through `ack`); other players are drawn RENDER_DELAY_MS in the past, interpolated
// between buffered states; projectiles are computed from their launch fields at the time they are drawn.

import { Hud } from "./hud.js";
import { Controls } from "./input.js";
import { projectilePosition } from "./movement.js";
import { Connection, DEFAULT_MODE } from "./net.js";
import { playerColor, Renderer } from "./render.js";
import { sceneBetween } from "./scene.js";
import { Sounds } from "./sound.js";
import {
  applyDelta,
  InputTiming,
  interpolatePlayers,
  LocalPrediction,
  matchOf,
  nextClientTickTime,
  playersOf,
  projectilesOf,
  ServerClock,
  StateBuffer,
  worldFromSnapshot,
} from "./sync.js";

const NAME_STORAGE_KEY = "arena.name";
const MAX_NAME_LENGTH = 24;
const DEFAULT_TICK_RATE = 30;
const FLASH_MS = 180;
const BURST_MS = 650;

/** After the local player dies: the last seconds before, replayed around the killer, this much faster. */
const KILLCAM_SECONDS = 2.5;
const KILLCAM_SPEED = 1.25;
const KILLCAM_SETTING_KEY = "arena.killcam";

/** How far in the past other players are drawn; `?renderDelayMs=150` in the page's address changes it. */
const RENDER_DELAY_MS = numberParameter("renderDelayMs", { low: 0, high: 1000, fallback: 100 });
/** How long a prediction correction takes to fade out. */
const CORRECTION_SMOOTHING_MS = 100;

function numberParameter(name, { low, high, fallback }) {
  const raw = new URLSearchParams(window.location.search).get(name);
  const value = raw === null ? Number.NaN : Number(raw);
  return Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : fallback;
}

/** The display name to send, or an error message: 1 to 24 printable characters of any script, not only spaces. */
export function checkName(raw) {
  const name = String(raw ?? "").trim();
  const length = [...name.normalize("NFC")].length; // code points in NFC, as the server counts them
  if (length === 0) return { error: "Enter a name." };
  if (length > MAX_NAME_LENGTH) return { error: `At most ${MAX_NAME_LENGTH} characters.` };
  // joiners (U+200C, U+200D) belong to Persian, Indic scripts and emoji; other invisible characters are refused
  if (/[[\p{C}\p{Z}]--[ \u200C\u200D]]/v.test(name)) return { error: "Only printable characters, please." };
  return { name };
}

class Game {
  rules = null;
  world = null; // the latest authoritative state
  playerId = null;
  matchId = null;
  inMatch = false; // seated, and holding a state of the match
  recovering = false; // the connection dropped; true until we are back where we were
  matchEnd = null; // the `match_end` event of the current match
  lastSent = null; // the last input sent: {mx, my, fire, aimMrad}
  aim = 0; // the local player's aim, radians
  lastTickDue = 0;
  flashes = new Map(); // player id -> local time the hit flash starts
  bursts = []; // death effects: {x, y, color, seed, startMs}
  killcam = null; // while showing one: {worlds, killer, killerName, startMs}
  killcamEnabled = localStorage.getItem(KILLCAM_SETTING_KEY) !== "off";
  killcamsShown = 0;
  scoresExpanded = false; // Tab held: the live scoreboard shows everyone
  cues = {}; // how many of each cue were played (the tests read it)
  spectating = null; // while watching a match: {match, delay}
  lastShotTick = -Infinity; // the tick of our last shot as predicted here (for its sound)

  constructor() {
    const canvas = document.getElementById("arena-canvas");
    this.hud = new Hud(document);
    this.renderer = new Renderer(canvas, document.getElementById("arena-box"));
    this.controls = new Controls(
      canvas,
      (x, y) => this.renderer.arenaPoint(x, y),
      (origin) => this.#aimAtNearestEnemy(origin),
    );
    this.sounds = new Sounds({ onChange: () => this.hud.setMuted(this.sounds.muted) });
    this.hud.setMuted(this.sounds.muted);
    this.buffer = new StateBuffer();
    this.clock = new ServerClock(DEFAULT_TICK_RATE);
    this.inputTiming = new InputTiming(DEFAULT_TICK_RATE);
    this.prediction = null;
    this.net = new Connection({
      onMessage: (message) => this.#received(message),
      onChange: () => this.#connectionChanged(),
    });
    this.#bindScreens();
    this.#scheduleClientTick();
    requestAnimationFrame(() => this.#frame());
  }

  // ----- screens -----

  #bindScreens() {
    const { nameInput } = this.hud.elements;
    nameInput.value = localStorage.getItem(NAME_STORAGE_KEY) ?? "";
    document.getElementById("start-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start(nameInput.value, this.hud.selectedMode);
    });
    document.getElementById("play-again-button").addEventListener("click", () => this.playAgain());
    document.getElementById("menu-button").addEventListener("click", () => this.toMenu());
    document.getElementById("leave-button").addEventListener("click", () => this.toMenu());
    document.getElementById("retry-button").addEventListener("click", () => {
      this.hud.hideConnectionLost();
      this.net.retry();
    });
    this.hud.showStart();
  }

  /** Play as `rawName`: what typing it and pressing Play does. Returns whether the name was accepted. */
  start(rawName, mode = DEFAULT_MODE) {
    const { name, error } = checkName(rawName);
    this.hud.elements.nameInput.value = name ?? String(rawName ?? "");
    this.hud.setNameError(error ?? "");
    if (error) return false;
    localStorage.setItem(NAME_STORAGE_KEY, name);
    document.activeElement?.blur();
    this.hud.hideStart();
    this.hud.hideScoreboard();
    this.#stopWatching();
    this.controls.enabled = true;
    this.net.open(name); // a new name needs a new token and socket; the same name keeps the connection
    this.net.findMatch(mode); // at once if connected, else once authenticated
    this.#connectionChanged();
    return true;
  }

  playAgain() {
    this.hud.hideScoreboard();
    this.#leaveMatchState();
    this.#stopWatching();
    this.controls.enabled = true;
    this.net.findMatch();
    this.#connectionChanged();
  }

  toMenu() {
    this.net.leave();
    this.#leaveMatchState();
    this.#stopWatching();
    this.hud.hideScoreboard();
    this.controls.enabled = false;
    this.hud.showStart();
    this.#connectionChanged();
  }

  /** Watch match `id` (delayed, as its spectators see it), connected under the name typed, or "Spectator". */
  watch(id) {
    const { name } = checkName(this.hud.elements.nameInput.value);
    document.activeElement?.blur();
    this.hud.hideStart();
    this.hud.hideScoreboard();
    this.#leaveMatchState();
    this.controls.enabled = false;
    this.net.open(name ?? "Spectator");
    this.net.watch(id);
    this.#connectionChanged();
  }

  #stopWatching() {
    this.spectating = null;
    document.body.classList.remove("spectating");
  }

  // ----- connection and messages -----

  #welcomed(welcome) {
    this.rules = { ...welcome.rules, tick_rate: welcome.tick_rate };
    this.renderer.setRules(this.rules);
    this.clock = new ServerClock(welcome.tick_rate);
    this.inputTiming.resetConnection(welcome.tick_rate);
    if (this.prediction) this.prediction.setRules(this.rules);
    else this.prediction = new LocalPrediction(this.rules, { smoothingMs: CORRECTION_SMOOTHING_MS });
  }

  #connectionChanged() {
    const state = this.net.state;
    if (state === "reconnecting" || state === "disconnected") {
      // The socket is gone: the state we hold stops here (the server holds our seat for a while).
      if (this.inMatch || this.net.wantsMatch) this.recovering = state === "reconnecting";
      if (this.inMatch) this.#leaveMatchState();
    }
    if (state === "open" && !this.net.wantsMatch) this.recovering = false; // nothing to get back to
    if (state === "disconnected") {
      this.recovering = false;
      this.hud.showConnectionLost(
        this.net.closeReason === "connection lost"
          ? "The connection to the server was lost and could not be restored."
          : `The server closed the connection: ${this.net.closeReason}.`,
      );
    } else {
      this.hud.hideConnectionLost();
    }
    this.#updateStatus();
  }

  #received(message) {
    const now = performance.now();
    switch (message.t) {
      case "welcome":
        this.#welcomed(message);
        break;
      case "joined":
        this.#joined(message);
        break;
      case "left":
        this.#left(message);
        break;
      case "refused":
        this.#refused(message);
        break;
      case "rated":
        this.hud.showRating(message);
        break;
      case "spectating":
        this.#leaveMatchState({ keepFeed: this.spectating?.match === message.match });
        this.spectating = { match: message.match, delay: message.delay };
        document.body.classList.add("spectating");
        break;
      case "snapshot":
        if (this.playerId !== null || this.spectating) this.#hold(worldFromSnapshot(message), message.events, now, { full: true });
        break;
      case "delta": {
        const next = applyDelta(this.world, message);
        if (next) this.#hold(next, message.events, now, { full: false });
        break;
      }
      default:
        break; // the connection handles the handshake and matchmaking; unknown types are ignored
    }
    this.#updateStatus();
  }

  #joined({ match, player, resumed }) {
    this.#leaveMatchState({ keepFeed: resumed });
    this.matchId = match;
    this.playerId = player;
    this.controls.enabled = true;
    this.hud.hideScoreboard();
    this.hud.hideStart();
  }

  #left({ reason }) {
    if (reason === "joined_another") return; // `joined` follows
    this.#leaveMatchState();
    const watched = this.spectating !== null;
    this.#stopWatching();
    if (this.net.wantsMatch) return; // we asked for another match already
    if (reason === "left") return; // we asked: the start screen is up already
    if (reason === "match_over" && (this.hud.scoreboardVisible || this.matchEnd)) {
      this.#showScoreboard();
      return;
    }
    this.controls.enabled = false;
    const what = watched ? "The match you watched" : "The match";
    this.hud.showStart(reason === "match_closed" ? `${what} was closed.` : `${what} is over.`);
  }

  #refused({ request, reason }) {
    if (request === "spectate") {
      this.#stopWatching();
      this.hud.showStart(`Could not watch that match: ${reason}`);
      return;
    }
    if (request !== "queue") return; // a refused join or resume: the connection queues again by itself
    this.controls.enabled = false;
    this.hud.showStart(`Could not look for a match: ${reason}`);
  }

  /** Forget the match: no seat, no state. */
  #leaveMatchState({ keepFeed = false } = {}) {
    this.inMatch = false;
    this.playerId = null;
    this.matchId = null;
    this.world = null;
    this.buffer.clear();
    this.clock.reset();
    this.prediction?.reset();
    this.lastSent = null;
    this.flashes.clear();
    this.bursts = [];
    this.net.expectTraffic = false;
    if (!keepFeed) this.hud.clearKillFeed();
  }

  /** Take a new authoritative state: buffer it, learn the clock from it, reconcile the prediction. */
  #hold(world, events, now, { full }) {
    if (full) this.buffer.clear(); // a snapshot replaces everything held
    this.world = world;
    this.buffer.push(world);
    this.clock.observe(world.tick, now);
    const me = playersOf(world).get(this.playerId);
    if (me) {
      this.inputTiming.notePing(me.ping);
      this.prediction.reconcile(me, now);
    }
    if (!this.inMatch) {
      this.inMatch = true;
      this.recovering = false;
      this.matchEnd = null;
      // The server holds no input for a new player: standing still, aiming where the state says.
      this.lastSent = { mx: 0, my: 0, fire: false, aimMrad: me?.aim ?? 0 };
      this.aim = (me?.aim ?? 0) / 1000;
    }
    this.net.expectTraffic = !matchOf(world)?.over;
    for (const event of events ?? []) this.#handleEvent(event, world, now);
  }

  #handleEvent(event, world, now) {
    const players = playersOf(world);
    // Effects on other players are delayed like the players themselves, so they happen where they are drawn.
    const effectStart = (id) => now + (id === this.playerId ? 0 : RENDER_DELAY_MS);
    switch (event.e) {
      case "hit":
        this.flashes.set(event.target, effectStart(event.target));
        if (event.target === this.playerId) {
          this.#cue("damage-cue", now);
          this.sounds.play("hurt");
        }
        if (event.shooter === this.playerId && event.target !== this.playerId) {
          const target = players.get(event.target);
          if (target) this.#cue("hit-marker", now, this.renderer.canvasPoint(target.x, target.y));
          this.sounds.play("hit");
        }
        break;
      case "death": {
        const victim = players.get(event.victim);
        const killer = players.get(event.killer);
        const named = (player, id) => ({ id, name: player?.name ?? `player ${id}` });
        this.hud.addKill(named(killer, event.killer), named(victim, event.victim), {
          mine: event.killer === this.playerId || event.victim === this.playerId,
        });
        if (this.playerId !== null && event.victim === this.playerId) this.sounds.play("death");
        else if (this.playerId !== null && event.killer === this.playerId) this.sounds.play("kill");
        if (victim) {
          const startMs = effectStart(event.victim);
          this.bursts.push({ x: victim.x, y: victim.y, color: playerColor(event.victim, 65), seed: now % 7, startMs });
        }
        if (event.victim === this.playerId && event.killer !== this.playerId && this.killcamEnabled) {
          const ticks = Math.round(KILLCAM_SECONDS * this.rules.tick_rate);
          const worlds = this.buffer.states.slice(-ticks);
          if (worlds.length > 1) {
            const killerName = killer?.name ?? `player ${event.killer}`;
            this.killcam = { worlds, killer: event.killer, killerName, startMs: now };
            this.killcamsShown += 1;
          }
        }
        break;
      }
      case "notice": {
        const texts = { join: "joined", leave: "left", takeover: "left: a bot plays on for them" };
        if (texts[event.what]) this.hud.addNotice({ id: event.player, name: event.name }, texts[event.what]);
        break;
      }
      case "match_end":
        if (this.playerId !== null) this.sounds.play(event.winner === this.playerId ? "win" : "end");
        this.matchEnd = event;
        this.net.expectTraffic = false;
        this.controls.enabled = false; // keys belong to the scoreboard's buttons now
        this.#showScoreboard();
        break;
      default:
        break; // respawn needs nothing here; unknown event kinds are ignored
    }
  }

  #showScoreboard() {
    this.hud.showScoreboard(this.matchEnd, this.playerId);
  }

  // ----- the client tick: inputs and prediction -----

  #scheduleClientTick() {
    const now = performance.now();
    const lastDue = this.lastTickDue || now - this.clock.tickMs;
    const due = nextClientTickTime(now, lastDue, this.clock, this.inputTiming.leadMs);
    setTimeout(() => {
      this.lastTickDue = due;
      this.#clientTick(performance.now());
      this.#scheduleClientTick();
    }, Math.max(0, due - now));
  }

  /**
   * Sample the controls; send an input when it changed, or every tick while moving, firing or turning, and
   * apply the same move to the prediction at once. Each sent input is one tick of movement, as on the server.
   */
  #clientTick(now) {
    if (!this.inMatch || !this.prediction?.ready || !this.net.ready || matchOf(this.world)?.over) return;
    const { mx, my } = this.controls.enabled ? this.controls.moveDirection() : { mx: 0, my: 0 };
    const fire = this.controls.enabled && this.controls.takeFire();
    this.aim = this.controls.aimFrom(this.prediction.position, this.aim);
    const aimMrad = Math.round(this.aim * 1000);
    const last = this.lastSent;
    const changed = !last || last.mx !== mx || last.my !== my || last.fire !== fire || last.aimMrad !== aimMrad;
    if (!changed && !mx && !my && !fire) {
      this.prediction.idle(now);
      return;
    }
    const seq = this.net.nextSeq();
    // the tick other players are drawn at: shots are judged against them as they were then (lag compensation)
    const view = Math.max(0, Math.round(this.#renderTicks(now).past));
    if (!this.net.send({ t: "input", seq, mx, my, aim: this.aim, fire, view })) return;
    this.lastSent = { mx, my, fire, aimMrad };
    this.#shotSound(fire);
    this.prediction.step(seq, mx, my, now);
  }

  /** The sound of our own shot, at once: when the trigger is held, we are alive and the gun is ready here. */
  #shotSound(fire) {
    const me = this.#localServerPlayer();
    if (!fire || !me || me.hp <= 0) return;
    const tick = this.#renderTicks(performance.now()).present;
    if (tick - this.lastShotTick < this.rules.fire_interval_ticks) return;
    this.lastShotTick = tick;
    this.sounds.play("shot");
  }

  /** The aim from `origin` at the nearest living enemy as drawn now (touch screens fire there), or null. */
  #aimAtNearestEnemy(origin) {
    if (!this.world) return null;
    let best = null;
    for (const [, player] of this.#otherPlayersAt(this.#renderTicks(performance.now()).past)) {
      if (player.hp <= 0) continue;
      const distance = Math.hypot(player.x - origin.x, player.y - origin.y);
      if (!best || distance < best.distance) best = { distance, x: player.x, y: player.y };
    }
    return best ? Math.atan2(best.y - origin.y, best.x - origin.x) : null;
  }

  // ----- what is shown -----

  #localServerPlayer() {
    return this.playerId === null ? null : (playersOf(this.world).get(this.playerId) ?? null);
  }

  /** The tick at which others are drawn (RENDER_DELAY_MS in the past) and the present tick. */
  #renderTicks(now) {
    if (!this.world || !this.clock.ready) return { past: this.world?.tick ?? 0, present: this.world?.tick ?? 0 };
    const present = Math.min(this.clock.tickAt(now), this.world.tick + 1);
    return { past: this.clock.tickAt(now) - RENDER_DELAY_MS / this.clock.tickMs, present };
  }

  /** The other players as drawn at tick `past`: [id, fields] interpolated between the states around it. */
  #otherPlayersAt(past) {
    return [...interpolatePlayers(this.buffer.around(past), this.rules)].filter(([id]) => id !== this.playerId);
  }

  /** Every player as drawn now: the local one predicted, the others interpolated in the past. */
  renderedPlayers(now = performance.now()) {
    if (!this.world) return [];
    const { past, present } = this.#renderTicks(now);
    const tickRate = this.rules.tick_rate;
    const shown = [];
    const add = (id, fields, x, y, aim, tick) => {
      const dead = fields.hp <= 0;
      const flashStart = this.flashes.get(id);
      const flash = flashStart === undefined || now < flashStart ? 0 : Math.max(0, 1 - (now - flashStart) / FLASH_MS);
      shown.push({
        id,
        name: fields.name,
        x,
        y,
        aim,
        hp: fields.hp,
        maxHp: this.rules.max_hp,
        kills: fields.kills,
        deaths: fields.deaths,
        ping: fields.ping,
        dead,
        respawnIn: dead && fields.respawn ? Math.max(0, (fields.respawn - tick) / tickRate) : null,
        local: id === this.playerId,
        away: fields.status === "reconnecting",
        bot: fields.status === "bot",
        flash,
      });
    };
    for (const [id, fields] of this.#otherPlayersAt(past)) add(id, fields, fields.x, fields.y, fields.aim / 1000, past);
    const me = this.#localServerPlayer();
    if (me) {
      const position = me.hp > 0 ? (this.prediction.renderedPosition(now) ?? me) : me;
      const aim = me.hp > 0 ? this.controls.aimFrom(position, this.aim) : me.aim / 1000;
      add(this.playerId, me, position.x, position.y, aim, present);
    }
    return shown;
  }

  /** Projectiles where they are now: ours at the present tick, the others' at the tick others are drawn at. */
  #renderedProjectiles(now) {
    if (!this.world) return [];
    const { past, present } = this.#renderTicks(now);
    const shown = [];
    for (const projectile of projectilesOf(this.world).values()) {
      if (projectile.owner !== this.playerId) continue;
      const position = projectilePosition(projectile, present, this.rules);
      if (position) shown.push({ ...position, owner: projectile.owner, own: true });
    }
    const then = this.buffer.around(past)?.from;
    for (const projectile of projectilesOf(then).values()) {
      if (projectile.owner === this.playerId) continue;
      const position = projectilePosition(projectile, past, this.rules);
      if (position) shown.push({ ...position, owner: projectile.owner, own: false });
    }
    return shown;
  }

  #renderedBursts(now) {
    this.bursts = this.bursts.filter((burst) => now - burst.startMs < BURST_MS);
    return this.bursts
      .filter((burst) => now >= burst.startMs)
      .map((burst) => ({ ...burst, progress: (now - burst.startMs) / BURST_MS }));
  }

  /** Play a short cue: the red edge when we are hit, the marker on a player we hit (at `point`). */
  #cue(id, now, point = null) {
    const element = document.getElementById(id);
    if (!element) return;
    if (point) {
      const box = element.parentElement.getBoundingClientRect();
      element.style.left = `${point.x - box.left}px`;
      element.style.top = `${point.y - box.top}px`;
    }
    element.classList.remove("show");
    void element.offsetWidth; // restart the animation
    element.classList.add("show");
    this.cues[id] = (this.cues[id] ?? 0) + 1;
  }

  /** Skip the kill-cam (any key, click or tap does). */
  skipKillcam() {
    this.killcam = null;
  }

  /** The kill-cam's picture now, or null when it is over: the killer's last seconds, the killer highlighted. */
  #killcamScene(now) {
    const cam = this.killcam;
    const position = ((now - cam.startMs) / 1000) * this.rules.tick_rate * KILLCAM_SPEED;
    const index = Math.floor(position);
    if (index >= cam.worlds.length - 1 || !this.inMatch) {
      this.killcam = null;
      return null;
    }
    const from = cam.worlds[index];
    const to = cam.worlds[index + 1];
    return sceneBetween(from, to, position - index, this.rules, {
      highlight: cam.killer,
      label: (id, name) => (id === cam.killer ? `${name} (killer)` : name),
    });
  }

  #frame() {
    const now = performance.now();
    const killcam = this.killcam && this.rules ? this.#killcamScene(now) : null;
    if (killcam) {
      this.renderer.draw(killcam);
    } else if (this.rules) {
      this.renderer.draw({
        players: this.renderedPlayers(now),
        projectiles: this.#renderedProjectiles(now),
        bursts: this.#renderedBursts(now),
      });
    }
    this.#updateHud(now);
    requestAnimationFrame(() => this.#frame());
  }

  /** The connection state the tests read: idle, connecting, in_match, spectating, reconnecting or disconnected. */
  get connection() {
    const state = this.net.state;
    if (state === "disconnected") return "disconnected";
    if (state === "reconnecting" || this.recovering) return "reconnecting";
    if (state === "connecting") return "connecting";
    if (state === "idle") return "idle";
    if (this.inMatch) return this.spectating ? "spectating" : "in_match";
    return this.net.wantsMatch || this.net.watching ? "connecting" : "idle";
  }

  #updateStatus() {
    const connection = this.connection;
    if (document.body.dataset.connection !== connection) document.body.dataset.connection = connection;
    const match = matchOf(this.world);
    let text;
    let kind;
    switch (connection) {
      case "in_match":
        if (match?.over) [text, kind] = ["Match over", "wait"];
        else if (match && !match.start) [text, kind] = ["Waiting for players", "wait"];
        else [text, kind] = ["In match", "good"];
        break;
      case "spectating":
        [text, kind] = [match?.over ? "Match over" : "Spectating", "good"];
        break;
      case "reconnecting":
        [text, kind] = [`Reconnecting (attempt ${Math.max(1, this.net.attempt)})`, "bad"];
        break;
      case "connecting":
        [text, kind] = [this.#seekingText(), "wait"];
        break;
      case "disconnected":
        [text, kind] = ["Disconnected", "bad"];
        break;
      default:
        [text, kind] = [this.net.ready ? "Connected" : "Not connected", "idle"];
    }
    this.hud.setStatus(text, kind);
    if (connection === "spectating" || this.net.watching) this.hud.showLeave(true, "Stop watching");
    else this.hud.showLeave(connection === "in_match" && !match?.over, "Leave");
  }

  #updateHud(now) {
    this.#updateStatus();
    const me = this.#localServerPlayer();
    const match = matchOf(this.world);
    this.hud.setScore(me ? me.kills : null, me ? me.deaths : null);
    this.hud.setPing(me ? me.ping : null);
    const running = match && match.start && match.end && !match.over;
    this.hud.setTimeLeft(running ? (match.end - this.world.tick) / this.rules.tick_rate : null);
    this.hud.setNotice(this.#noticeText(me, match, now));
    const players = this.inMatch ? [...playersOf(this.world)].map(([id, p]) => ({ id, ...p })) : [];
    this.hud.setLiveScores(players, this.playerId, this.scoresExpanded && this.inMatch);
  }

  /** Where the search for a seat stands, in a few words. */
  #seekingText() {
    const { seat, queueStatus } = this.net;
    if (seat === "queued") {
      return queueStatus ? `In queue (${queueStatus.position} of ${queueStatus.waiting})` : "In queue";
    }
    if (seat === "joining") return this.net.watching ? "Opening the match" : "Joining match";
    if (seat === "resuming") return "Taking back your seat";
    return "Connecting";
  }

  #noticeText(me, match, now) {
    if (this.connection === "reconnecting") {
      if (this.net.state !== "open") return `Connection lost — reconnecting (attempt ${Math.max(1, this.net.attempt)})…`;
      if (this.net.seat === "resuming") return "Reconnected — taking back your seat…";
      if (this.net.seatLost) return "The server restarted — finding you a new match…";
      return "Reconnected — finding you a match…";
    }
    if (this.spectating && this.inMatch) {
      const names = [...playersOf(this.world).values()].filter((p) => p.status !== "bot").map((p) => p.name);
      const delay = this.spectating.delay ? ` — ${this.spectating.delay} s behind the players` : "";
      return `Watching ${names.join(", ") || "bots"}${delay}`;
    }
    if (this.spectating) return `Waiting for the match's first ${this.spectating.delay} s to pass…`;
    if (!this.inMatch) {
      if (this.connection !== "connecting") return null;
      const wait = this.net.queueStatus?.wait;
      if (this.net.seat === "queued") return `Looking for a match…${wait ? ` about ${Math.ceil(wait)} s` : ""}`;
      return `${this.#seekingText()}…`;
    }
    if (this.killcam) {
      return `Kill-cam: ${this.killcam.killerName} got you — press any key or click to skip`;
    }
    if (me && me.hp <= 0 && me.respawn && !match?.over) {
      const seconds = Math.max(0, (me.respawn - this.#renderTicks(now).present) / this.rules.tick_rate);
      return `You were eliminated — respawning in ${seconds.toFixed(1)} s`;
    }
    if (match && !match.start) return "Waiting for another player to join…";
    return null;
  }

  // ----- window.arena -----

  serverPlayers() {
    return [...playersOf(this.world)].map(([id, p]) => ({
      id,
      name: p.name,
      x: p.x,
      y: p.y,
      hp: p.hp,
      kills: p.kills,
      deaths: p.deaths,
      ping: p.ping,
    }));
  }
}

function publicPlayer(player) {
  const { id, name, x, y, hp, kills, deaths, ping } = player;
  return { id, name, x, y, hp, kills, deaths, ping };
}

const game = new Game();

// The leaderboard on the start screen (GET /leaderboard; absent when the server keeps no ratings).
async function showLeaderboard() {
  const list = document.querySelector("#leaderboard-rows");
  const response = await fetch("/leaderboard").catch(() => null);
  if (!list || !response?.ok) {
    document.querySelector("#leaderboard")?.remove();
    return;
  }
  const { leaderboard } = await response.json();
  list.replaceChildren(
    ...leaderboard.slice(0, 10).map((entry) => {
      const item = document.createElement("li");
      item.textContent = `${entry.name} — ${entry.rating.toFixed(1)} (${entry.matches} matches)`;
      return item;
    }),
  );
}
showLeaderboard();

// Running matches on the start screen, each with a button to watch it (GET /matches, every few seconds while
// the start screen is up).
const MATCH_LIST_INTERVAL_MS = 3000;
async function showRunningMatches() {
  const list = document.querySelector("#match-rows");
  if (!list || !game.hud.startVisible) return;
  const response = await fetch("/matches").catch(() => null);
  const body = response?.ok ? await response.json().catch(() => null) : null;
  // matches on other servers of a fleet (`local: false`) cannot be watched from this one yet
  const matches = (body?.matches ?? []).filter((match) => match.state !== "over" && match.local !== false);
  const key = JSON.stringify(matches.map((m) => [m.id, m.mode, m.players, m.bots, m.state, Math.ceil(m.time_left / 10)]));
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  document.querySelector("#watch-empty").hidden = matches.length > 0;
  list.replaceChildren(
    ...matches.map((match) => {
      const item = document.createElement("li");
      const what = document.createElement("span");
      const people = `${match.players} player${match.players === 1 ? "" : "s"}${match.bots ? ` + ${match.bots} bots` : ""}`;
      const when = match.state === "waiting" ? "waiting" : `${Math.ceil(match.time_left / 60)} min left`;
      what.textContent = `${match.mode === "duel" ? "Duel" : "Free for all"} · ${people} · ${when}`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small secondary";
      button.textContent = "Watch";
      button.dataset.match = match.id;
      button.addEventListener("click", () => game.watch(match.id));
      item.append(what, button);
      return item;
    }),
  );
}
showRunningMatches();
setInterval(showRunningMatches, MATCH_LIST_INTERVAL_MS);

// Sound: audio starts with the first key, click or tap; the HUD's button or M mutes it.
for (const type of ["keydown", "pointerdown"]) {
  window.addEventListener(type, () => game.sounds.unlock(), { capture: true });
}
document.querySelector("#mute-button")?.addEventListener("click", (event) => {
  game.sounds.setMuted(!game.sounds.muted);
  event.currentTarget.blur(); // Space fires, it must not press the button again
});
window.addEventListener("keydown", (event) => {
  if (event.code !== "KeyM" || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target instanceof HTMLInputElement) return; // typing a name
  game.sounds.setMuted(!game.sounds.muted);
});

// Tab held shows every player's score (in a match, Tab does not move the focus).
window.addEventListener("keydown", (event) => {
  if (event.key === "Tab" && game.inMatch) {
    event.preventDefault();
    game.scoresExpanded = true;
  }
});
window.addEventListener("keyup", (event) => {
  if (event.key === "Tab") game.scoresExpanded = false;
});
window.addEventListener("blur", () => {
  game.scoresExpanded = false;
});

// Coming back to the tab, or the browser coming back online, retries a lost connection at once.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") game.net.retryNow();
});
window.addEventListener("online", () => game.net.retryNow());

// Any key, click or tap skips a kill-cam; a checkbox on the start screen turns kill-cams off (remembered).
for (const type of ["keydown", "pointerdown"]) {
  window.addEventListener(type, () => game.killcam && game.skipKillcam(), { capture: true });
}
const killcamBox = document.querySelector("#killcam-input");
if (killcamBox) {
  killcamBox.checked = game.killcamEnabled;
  killcamBox.addEventListener("change", () => {
    game.killcamEnabled = killcamBox.checked;
    localStorage.setItem(KILLCAM_SETTING_KEY, killcamBox.checked ? "on" : "off");
  });
}

/** The hook the browser tests use; read-only getters, plus `start(name)` and `dropConnection()`. */
window.arena = Object.freeze({
  get connection() {
    return game.connection;
  },
  get reconnects() {
    return game.net.reconnects;
  },
  get playerId() {
    return game.playerId;
  },
  get matchId() {
    return game.matchId;
  },
  /** The WebSocket URL of the server the page is connected to (in a fleet, the one hosting its match). */
  get serverUrl() {
    return game.net.serverUrl;
  },
  get tick() {
    return game.world?.tick ?? null;
  },
  players: () => game.renderedPlayers().map(publicPlayer),
  serverPlayers: () => game.serverPlayers(),
  canvasPoint: (x, y) => game.renderer.canvasPoint(x, y),
  get prediction() {
    const stats = game.prediction ?? { corrections: 0, maxCorrection: 0 };
    return { corrections: stats.corrections, maxCorrection: stats.maxCorrection };
  },
  get renderDelayMs() {
    return RENDER_DELAY_MS;
  },
  get killcam() {
    return game.killcam ? { killer: game.killcam.killer, ticks: game.killcam.worlds.length } : null;
  },
  get killcamsShown() {
    return game.killcamsShown;
  },
  get cues() {
    return { ...game.cues };
  },
  get sounds() {
    return { played: { ...game.sounds.played }, skipped: game.sounds.skipped, muted: game.sounds.muted, state: game.sounds.state };
  },
  /** Where the names were drawn in the last frame, in arena units, and the arena's size. */
  get labels() {
    const { width, height } = game.rules ?? {};
    return { width, height, labels: game.renderer.labels.map((label) => ({ ...label })) };
  },
  get touch() {
    return game.controls.touch.active;
  },
  get spectating() {
    return game.spectating ? { ...game.spectating } : null;
  },
  projectiles: () => [...projectilesOf(game.world).values()].map(({ owner }) => ({ owner })),
  start: (name) => game.start(name),
  watch: (id) => game.watch(id),
  dropConnection: () => game.net.dropConnection(),
});
