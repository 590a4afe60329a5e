// The HTML around the canvas: the HUD bar, kill feed, notices and the overlays (start screen, scoreboard,
// connection lost). Text is written only when it changes, so nothing reflows from frame to frame.

import { playerColor } from "./render.js";

const KILL_FEED_LENGTH = 5;
const KILL_FEED_MS = 7000;

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function show(element, visible) {
  if (element.hidden === visible) element.hidden = !visible;
}

/** "2:05" for 125 seconds. */
export function formatClock(seconds) {
  const whole = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

export class Hud {
  constructor(doc = document) {
    this.doc = doc;
    const byId = (id) => doc.getElementById(id);
    this.elements = {
      score: byId("hud-score"),
      time: byId("hud-time"),
      ping: byId("hud-ping"),
      status: byId("hud-status"),
      leave: byId("leave-button"),
      notice: byId("notice"),
      killFeed: byId("kill-feed"),
      startScreen: byId("start-screen"),
      startMessage: byId("start-message"),
      nameInput: byId("name-input"),
      nameError: byId("name-error"),
      scoreboard: byId("scoreboard"),
      scoreboardTitle: byId("scoreboard-title"),
      scoreboardReason: byId("scoreboard-reason"),
      scoreboardRows: byId("scoreboard-rows"),
      playAgain: byId("play-again-button"),
      connectionLost: byId("connection-lost"),
      connectionLostReason: byId("connection-lost-reason"),
    };
  }

  setScore(kills, deaths) {
    setText(this.elements.score, kills === null ? "" : `Kills ${kills} · Deaths ${deaths}`);
  }

  /** Seconds left in the match, or null when there is no running clock. */
  setTimeLeft(seconds) {
    setText(this.elements.time, seconds === null ? "–:––" : formatClock(seconds));
    this.elements.time.classList.toggle("urgent", seconds !== null && seconds <= 10);
  }

  setPing(ms) {
    setText(this.elements.ping, ms === null ? "" : `${ms} ms`);
  }

  /** The connection state as a word or two; `kind` picks its colour. */
  setStatus(text, kind) {
    setText(this.elements.status, text);
    if (this.elements.status.dataset.kind !== kind) this.elements.status.dataset.kind = kind;
  }

  showLeave(visible, label = "Leave") {
    show(this.elements.leave, visible);
    setText(this.elements.leave, label);
  }

  /** The sound button: a speaker, with waves while sound is on, crossed out while muted. */
  setMuted(muted) {
    const button = this.doc.getElementById("mute-button");
    if (!button) return;
    const speaker = "M3 9h4l5-4v14l-5-4H3z";
    const mark = muted ? "M16 9l6 6M22 9l-6 6" : "M16 8.5a5 5 0 0 1 0 7M18.5 6a8.5 8.5 0 0 1 0 12";
    button.innerHTML = `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path d="${speaker}" fill="currentColor"/><path d="${mark}" stroke="currentColor" stroke-width="2" fill="none" stroke-linecap="round"/></svg>`;
    button.classList.toggle("muted", muted);
    button.title = muted ? "Sound is off: turn it on (M)" : "Sound is on: mute (M)";
    button.setAttribute("aria-pressed", String(muted));
    button.setAttribute("aria-label", muted ? "Unmute" : "Mute");
  }

  /** The line above the arena (respawn countdown, waiting, reconnecting), or null for none; its place stays. */
  setNotice(text) {
    setText(this.elements.notice, text ?? "");
  }

  addKill(killer, victim, { mine }) {
    const item = document.createElement("li");
    if (mine) item.classList.add("mine");
    const name = (player) => {
      const span = document.createElement("span");
      span.className = "name";
      span.textContent = player.name;
      span.style.color = playerColor(player.id, 70);
      return span;
    };
    const verb = document.createElement("span");
    verb.className = "verb";
    verb.textContent = "eliminated";
    item.append(name(killer), verb, name(victim));
    const feed = this.elements.killFeed;
    feed.prepend(item);
    while (feed.children.length > KILL_FEED_LENGTH) feed.lastElementChild.remove();
    setTimeout(() => item.remove(), KILL_FEED_MS);
  }

  /** A line in the kill feed about who came, went, or whose seat a bot took over. */
  addNotice(player, text) {
    const item = document.createElement("li");
    item.classList.add("notice");
    const span = document.createElement("span");
    span.className = "name";
    span.textContent = player.name;
    span.style.color = playerColor(player.id, 70);
    const verb = document.createElement("span");
    verb.className = "verb";
    verb.textContent = text;
    item.append(span, verb);
    const feed = this.elements.killFeed;
    feed.prepend(item);
    while (feed.children.length > KILL_FEED_LENGTH) feed.lastElementChild.remove();
    setTimeout(() => item.remove(), KILL_FEED_MS);
  }

  /**
   * The live scoreboard: compact in a corner (the best five), every player with ping and status while
   * `expanded` (Tab held). Redrawn only when what it shows changes.
   */
  setLiveScores(players, localId, expanded) {
    const aside = this.doc.getElementById("live-scores");
    if (!aside) return;
    const ranked = [...players].sort((a, b) => b.kills - a.kills || a.deaths - b.deaths || a.id - b.id);
    const shown = expanded ? ranked : ranked.slice(0, 5);
    const key = JSON.stringify([expanded, localId, shown.map((p) => [p.id, p.name, p.kills, p.deaths, expanded ? p.ping : 0, p.status])]);
    if (aside.dataset.key === key) return;
    aside.dataset.key = key;
    aside.hidden = players.length === 0;
    aside.classList.toggle("expanded", expanded);
    aside.firstElementChild.replaceChildren(
      ...shown.map((player) => {
        const item = document.createElement("li");
        if (player.id === localId) item.classList.add("me");
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = player.status === "bot" ? `${player.name} (bot)` : player.name;
        name.style.color = playerColor(player.id, 72);
        const score = document.createElement("span");
        score.className = "score";
        score.textContent = expanded ? `${player.kills} / ${player.deaths} · ${player.ping} ms` : `${player.kills}/${player.deaths}`;
        item.append(name, score);
        return item;
      }),
    );
  }

  clearKillFeed() {
    this.elements.killFeed.replaceChildren();
  }

  showStart(message = "") {
    show(this.elements.startScreen, true);
    setText(this.elements.startMessage, message);
    show(this.elements.startMessage, Boolean(message));
    this.elements.nameInput.focus();
  }

  hideStart() {
    show(this.elements.startScreen, false);
  }

  get startVisible() {
    return !this.elements.startScreen.hidden;
  }

  /** The game mode picked on the start screen. */
  get selectedMode() {
    return document.querySelector('input[name="mode"]:checked')?.value ?? "ffa";
  }

  setNameError(text) {
    setText(this.elements.nameError, text);
    show(this.elements.nameError, Boolean(text));
  }

  /** The end-of-match table from a `match_end` event. */
  showScoreboard(matchEnd, localId) {
    const { scoreboardTitle, scoreboardReason, scoreboardRows, scoreboard } = this.elements;
    const winner = matchEnd.scoreboard.find((line) => line.player === matchEnd.winner);
    let title = "Draw";
    if (winner && winner.player === localId) title = "You win!";
    else if (winner) title = `${winner.name} wins`;
    setText(scoreboardTitle, title);
    setText(scoreboardReason, matchEnd.reason === "kill_limit" ? "Kill limit reached" : "Time is up");
    scoreboardRows.replaceChildren(
      ...matchEnd.scoreboard.map((line, index) => {
        const row = document.createElement("tr");
        if (line.player === localId) row.classList.add("me");
        if (line.player === matchEnd.winner) row.classList.add("winner");
        for (const value of [index + 1, line.name, line.kills, line.deaths]) {
          const cell = document.createElement("td");
          cell.textContent = String(value);
          row.append(cell);
        }
        row.children[1].style.color = playerColor(line.player, 72);
        return row;
      }),
    );
    show(scoreboard, true);
    this.elements.playAgain.focus();
  }

  hideScoreboard() {
    show(this.elements.scoreboard, false);
  }

  /** The player's rating after the match (a `rated` message), under the scoreboard. */
  showRating({ rating, change, matches }) {
    const element = document.querySelector("#scoreboard-rating");
    if (!element) return;
    const sign = change >= 0 ? "+" : "−";
    element.textContent = `Your rating: ${rating.toFixed(1)} (${sign}${Math.abs(change).toFixed(1)}) after ${matches} rated matches`;
    element.hidden = false;
  }

  get scoreboardVisible() {
    return !this.elements.scoreboard.hidden;
  }

  showConnectionLost(reason) {
    setText(this.elements.connectionLostReason, reason);
    show(this.elements.connectionLost, true);
  }

  hideConnectionLost() {
    show(this.elements.connectionLost, false);
  }
}
