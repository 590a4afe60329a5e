// The replay viewer: lists GET /replays, downloads a match's ticks as the server re-simulated them
// (GET /replays/{id}/view: the same snapshots and deltas live clients get) and plays them with the live
// game's renderer: play/pause, speed 0.25-4x, scrub, follow any player.
import { decode } from "@msgpack/msgpack";
import { Renderer } from "./render.js";
import { sceneBetween } from "./scene.js";
import { applyDelta, matchOf, playersOf, worldFromSnapshot } from "./sync.js";

const $ = (selector) => document.querySelector(selector);

class ReplayViewer {
  worlds = []; // one state per tick, in order
  rules = null;
  position = 0; // fractional index into worlds
  speed = 1;
  playing = true;
  followed = null;
  #lastFrameMs = null;

  constructor() {
    this.renderer = new Renderer($("#replay-canvas"), $("#replay-stage"));
    requestAnimationFrame((now) => this.#frame(now));
  }

  load(replay) {
    this.rules = replay.rules;
    this.renderer.setRules(replay.rules);
    const worlds = [];
    for (const message of replay.frames) {
      const world = message.t === "snapshot" ? worldFromSnapshot(message) : applyDelta(worlds.at(-1), message);
      if (!world) throw new Error(`the replay's tick ${message.tick} does not follow the one before`);
      worlds.push(world);
    }
    this.worlds = worlds;
    this.position = 0;
    this.playing = true;
    $("#scrub").max = String(Math.max(0, worlds.length - 1));
    const follow = $("#follow");
    follow.replaceChildren(new Option("nobody", ""));
    const names = new Map();
    for (const world of worlds) for (const [id, fields] of playersOf(world)) names.set(id, fields.name);
    for (const [id, name] of [...names].sort((a, b) => a[0] - b[0])) follow.append(new Option(name, String(id)));
    this.#updateControls();
  }

  get tick() {
    return this.worlds[Math.floor(this.position)]?.tick ?? 0;
  }

  seek(index) {
    this.position = Math.max(0, Math.min(this.worlds.length - 1, index));
    this.#updateControls();
  }

  #frame(now) {
    const elapsed = this.#lastFrameMs === null ? 0 : now - this.#lastFrameMs;
    this.#lastFrameMs = now;
    if (this.worlds.length) {
      if (this.playing) {
        const ticks = (elapsed / 1000) * this.rules.tick_rate * this.speed;
        this.position = Math.min(this.worlds.length - 1, this.position + ticks);
        if (this.position >= this.worlds.length - 1) this.playing = false;
        this.#updateControls();
      }
      this.renderer.draw(this.#scene());
    }
    requestAnimationFrame((next) => this.#frame(next));
  }

  #scene() {
    const index = Math.floor(this.position);
    const to = this.worlds[index + 1] ?? null;
    return sceneBetween(this.worlds[index], to, to ? this.position - index : 0, this.rules, {
      highlight: this.followed,
    });
  }

  #updateControls() {
    const index = Math.floor(this.position);
    $("#scrub").value = String(index);
    $("#play").textContent = this.playing ? "Pause" : "Play";
    const seconds = (n) => `${Math.floor(n / this.rules.tick_rate / 60)}:${String(Math.floor((n / this.rules.tick_rate) % 60)).padStart(2, "0")}`;
    $("#clock").textContent = `${seconds(index)} / ${seconds(this.worlds.length - 1)}`;
    const world = this.worlds[index];
    const score = [...playersOf(world).values()].sort((a, b) => b.kills - a.kills || a.deaths - b.deaths);
    const over = matchOf(world)?.over ? " (match over)" : "";
    $("#score").textContent = score.map((p) => `${p.name} ${p.kills}/${p.deaths}`).join(" · ") + over;
  }
}

const viewer = new ReplayViewer();

async function openReplay(id) {
  $("#replay-status").textContent = `Loading ${id}…`;
  const response = await fetch(`/replays/${encodeURIComponent(id)}/view`);
  if (!response.ok) {
    $("#replay-status").textContent = `Cannot play ${id}: ${(await response.text()).trim()} (HTTP ${response.status})`;
    return;
  }
  const replay = decode(new Uint8Array(await response.arrayBuffer()));
  $("#viewer").hidden = false;
  viewer.load(replay);
  window.replayViewer.loaded = id;
  $("#replay-status").textContent = `Match ${replay.match} (${replay.mode}): ${replay.frames.length} ticks`;
}

async function listReplays() {
  const response = await fetch("/replays");
  if (!response.ok) {
    $("#replay-status").textContent = `${(await response.text()).trim()} (HTTP ${response.status})`;
    return;
  }
  const { replays } = await response.json();
  const rows = replays.map((replay) => {
    const row = document.createElement("tr");
    row.dataset.replay = replay.id;
    for (const text of [replay.started, replay.match, `${(replay.bytes / 1024).toFixed(1)} KiB`]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const cell = document.createElement("td");
    const watch = document.createElement("button");
    watch.textContent = "Watch";
    watch.addEventListener("click", () => openReplay(replay.id));
    cell.append(watch);
    row.append(cell);
    return row;
  });
  $("#replay-list tbody").replaceChildren(...rows);
  $("#replay-status").textContent = replays.length ? `${replays.length} recorded matches` : "No recorded match yet.";
}

$("#play").addEventListener("click", () => {
  if (!viewer.playing && viewer.position >= viewer.worlds.length - 1) viewer.seek(0);
  viewer.playing = !viewer.playing;
});
$("#speed").addEventListener("change", (event) => {
  viewer.speed = Number(event.target.value);
});
$("#scrub").addEventListener("input", (event) => viewer.seek(Number(event.target.value)));
$("#follow").addEventListener("change", (event) => {
  viewer.followed = event.target.value === "" ? null : Number(event.target.value);
});

/** The hook the browser tests read. */
window.replayViewer = {
  loaded: null,
  get tick() {
    return viewer.tick;
  },
  get ticks() {
    return viewer.worlds.length;
  },
  get playing() {
    return viewer.playing;
  },
  get speed() {
    return viewer.speed;
  },
  get followed() {
    return viewer.followed;
  },
};

listReplays();
