// The connection to the server (docs/protocol.md): a guest token from POST /auth/guest, then one WebSocket of
// binary msgpack frames: welcome -> hello (with the token) -> authenticated -> queue -> reserved -> join ->
// joined, or resume (with the seat's resume token) after a dropped connection.
//
// A spectator sends `spectate` instead of queueing (`watch`), and watches again after a reconnect.
//
// It reconnects by itself after a close it did not ask for, for as long as the page is open, with exponential
// backoff and full jitter (a random delay from 0 up to 100 ms * 2^attempt, capped at 5 s, as Colyseus' client
// caps it), so that many clients cut off together do not all come back in the same instant; and at once when
// the tab becomes visible again or the browser goes back online. The same token is used again, so the server
// knows the player and keeps its seat for `resume_window` seconds; if the seat is gone (a restarted server), it
// queues for a new match and says so (`seatLost`).
//
// In a fleet, the match may be hosted by another server than the one the page came from: `reserved` then names
// that server's URL, and the connection moves there (a new socket, the same token) to join, and reconnects there
// to resume; `moved` (the server drains and another adopted the match) sends it to the new server to resume.
// If that server cannot be reached for MATCH_SERVER_ATTEMPTS tries, the seat is given up and the connection
// goes back to the page's own server to queue again.

import { decode, encode } from "@msgpack/msgpack";

export const PROTOCOL_VERSION = 3;
export const DEFAULT_MODE = "ffa";

const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 5000;
const CONNECT_TIMEOUT_MS = 5000;
/** While a match is running the server sends a state every tick; this much silence means the link is dead. */
const SILENCE_TIMEOUT_MS = 5000;
/** Failed tries to reach the server hosting our match before going back to the page's own server. */
const MATCH_SERVER_ATTEMPTS = 4;
/** A guest token this close to its expiry is replaced before connecting. */
const TOKEN_MARGIN_MS = 60_000;

/**
 * Close codes after which reconnecting would not help: the client misbehaved (1002, 1003, 1007, 1008, 1009),
 * speaks another protocol version (4001), the same player connected again elsewhere (4002), or an operator kicked
 * the player (4003).
 */
const FINAL_CLOSE_CODES = new Set([1002, 1003, 1007, 1008, 1009, 4001, 4002, 4003]);

/** The WebSocket endpoint of the server this page came from (never hard-coded). */
export function socketUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

/** The delay before reconnect attempt `attempt` (1, 2, ...): full jitter over an exponential ceiling. */
export function backoffDelayMs(attempt) {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
}

/** A refusal that retrying will not change (a bad name, guest tokens switched off). */
class RefusedError extends Error {}

/** A development guest token for `name`: {token, player, name, expiresAt}. */
async function fetchGuestToken(name) {
  const response = await fetch("/auth/guest", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 400 || response.status === 403) {
    throw new RefusedError(body.error ?? `the server refused a guest token (HTTP ${response.status})`);
  }
  if (!response.ok || typeof body.token !== "string") throw new Error(`POST /auth/guest: HTTP ${response.status}`);
  return { ...body, expiresAt: Date.now() + body.expires_in * 1000 };
}

/**
 * One logical connection to the server, which may span several sockets.
 *
 * `state` is "idle" (never opened), "connecting", "open" (authenticated), "reconnecting" (waiting for or trying
 * attempt `attempt`) or "disconnected" (gave up, or the server refused us: see `closeReason`). `seat` is where
 * the player stands: null, "queued" (see `queueStatus`), "joining", "resuming", "seated" or "watching" (a
 * spectator of the match `watching`).
 * Callbacks: `onMessage(message)` for every message, `onChange()` when state or seat change.
 */
export class Connection {
  state = "idle";
  seat = null;
  queueStatus = null;
  attempt = 0;
  seatLost = false; // the seat we held is gone: we are queueing for a new match
  reconnects = 0;
  closeReason = "";
  /** Whether the player wants to play: then every new socket takes (or takes back) a seat once authenticated. */
  wantsMatch = false;
  mode = DEFAULT_MODE;
  modes = [];
  /** The match this connection spectates (or asked to), else null. */
  watching = null;
  /** Set while a match is running, so that a silent link is noticed (see SILENCE_TIMEOUT_MS). */
  expectTraffic = false;

  #ws = null;
  #name = "";
  #guest = null; // the guest token: the same player across reconnects
  #freshToken = false; // whether #guest was fetched for the current socket
  #resumeToken = null; // from the last `joined`: takes the seat back after a drop
  #matchUrl = null; // the server hosting our match when it is not the page's own (from `reserved`)
  #pendingJoin = null; // a reservation to redeem once the socket to #matchUrl is authenticated
  #seq = 0;
  #generation = 0; // bumped whenever a connection attempt starts or is abandoned
  #authenticated = false;
  #retryTimer = 0;
  #connectTimer = 0;
  #lastFrameAt = 0;
  #callbacks;

  constructor({ onMessage = () => {}, onChange = () => {} } = {}) {
    this.#callbacks = { onMessage, onChange };
    setInterval(() => this.#checkSilence(), 1000);
  }

  get name() {
    return this.#name;
  }

  /** Whether messages can be sent now (the socket is open and the server knows who we are). */
  get ready() {
    return this.state === "open" && this.#authenticated;
  }

  /** Connect as `name`; a new name needs a new token and socket (hello is sent once per socket). */
  open(name) {
    if (this.#name === name && (this.state === "connecting" || this.state === "open")) return;
    if (this.#name !== name) {
      this.#guest = null;
      this.#resumeToken = null;
    }
    this.#name = name;
    this.#abandonSocket(1000, "reconnecting under another name");
    this.attempt = 0;
    this.#connect("connecting");
  }

  /** Try again from scratch after giving up. */
  retry() {
    this.attempt = 0;
    this.#abandonSocket(1000, "retrying");
    this.#connect("connecting");
  }

  /** Look for a match of `mode` now (if connected) and after every reconnect. */
  findMatch(mode = this.mode) {
    this.wantsMatch = true;
    this.watching = null;
    this.mode = mode;
    if (!this.ready) return;
    if (this.seat === "seated") this.send({ t: "leave" }); // a finished match still holds us until it closes
    this.#resumeToken = null;
    this.#queue();
  }

  /** Spectate match `id` now (if connected) and again after every reconnect, until `leave` or the match ends. */
  watch(id) {
    this.wantsMatch = false;
    this.watching = id;
    this.#resumeToken = null;
    if (this.ready) this.#spectate();
  }

  /** Leave the match, the queue or the match watched; the connection stays open. */
  leave() {
    this.wantsMatch = false;
    this.watching = null;
    this.#resumeToken = null;
    if (this.ready && this.seat === "queued") this.send({ t: "cancel" });
    else if (this.ready && this.seat) this.send({ t: "leave" });
    this.#setSeat(null);
  }

  /** The next input sequence number: they start from 1 on every socket. */
  nextSeq() {
    this.#seq += 1;
    return this.#seq;
  }

  /** Encode and send one message; false if there is no open socket to send it on. */
  send(message) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(encode(message));
    return true;
  }

  /** Test hook: close the socket as a network drop would, and reconnect as after any unexpected close. */
  dropConnection() {
    if (!this.#ws) return;
    this.#abandonSocket(4000, "connection dropped (test hook)");
    this.#reconnectLater();
  }

  // ----- connecting -----

  async #connect(state) {
    clearTimeout(this.#retryTimer);
    this.state = state;
    this.#authenticated = false;
    this.#seq = 0;
    this.#callbacks.onChange();
    const generation = ++this.#generation;
    let guest;
    try {
      guest = await this.#guestToken();
    } catch (error) {
      if (generation !== this.#generation) return; // superseded meanwhile
      if (error instanceof RefusedError) this.#giveUp(error.message);
      else this.#reconnectLater();
      return;
    }
    if (generation === this.#generation) this.#openSocket(guest);
  }

  async #guestToken() {
    this.#freshToken = !this.#guest || this.#guest.expiresAt - Date.now() < TOKEN_MARGIN_MS;
    if (this.#freshToken) {
      this.#guest = await fetchGuestToken(this.#name);
      this.#resumeToken = null; // a new token is a new player: the old seat is not ours any more
    }
    return this.#guest;
  }

  /** The server hosting the player's match (protocol 3), or the page's own server. */
  get serverUrl() {
    return this.#matchUrl ?? socketUrl();
  }

  #openSocket(guest) {
    const ws = new WebSocket(this.serverUrl);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => this.#receive(ws, guest, event);
    ws.onclose = (event) => this.#closed(ws, event);
    ws.onerror = () => {}; // a close event always follows; that is where we act
    this.#ws = ws;
    this.#connectTimer = setTimeout(() => {
      if (this.#ws === ws && !this.#authenticated) this.#dropAndReconnect();
    }, CONNECT_TIMEOUT_MS);
  }

  #receive(ws, guest, event) {
    if (ws !== this.#ws || !(event.data instanceof ArrayBuffer)) return;
    this.#lastFrameAt = performance.now();
    let message;
    try {
      message = decode(new Uint8Array(event.data));
    } catch (error) {
      console.warn("arena: ignoring a frame that is not msgpack", error);
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.t !== "string") return;
    this.#handle(message, guest);
    this.#callbacks.onMessage(message);
  }

  /** The session's side of each message: the handshake, matchmaking and the seat. */
  #handle(message, guest) {
    switch (message.t) {
      case "welcome":
        this.modes = (message.modes ?? []).map((mode) => mode.name);
        this.send({ t: "hello", protocol: PROTOCOL_VERSION, token: guest.token, name: this.#name });
        break;
      case "authenticated":
        this.#authenticated = true;
        clearTimeout(this.#connectTimer);
        if (this.attempt > 0) this.reconnects += 1;
        this.attempt = 0;
        this.state = "open";
        this.closeReason = "";
        // A newer connection of a seated player gets its seat at once (`joined` came before this).
        if (this.#pendingJoin) {
          this.send({ t: "join", reservation: this.#pendingJoin });
          this.#pendingJoin = null;
        } else if (this.wantsMatch && this.seat !== "seated") this.#takeSeat();
        else if (this.watching) this.#spectate();
        this.#callbacks.onChange();
        break;
      case "queued":
        this.queueStatus = { position: message.position, waiting: message.waiting, wait: message.estimated_wait };
        this.#setSeat("queued");
        break;
      case "reserved":
        this.#setSeat("joining");
        if (message.url && message.url !== this.serverUrl) {
          // the match is on another server of the fleet: join it there
          this.#matchUrl = message.url;
          this.#pendingJoin = message.reservation;
          this.#abandonSocket(1000, "moving to the server that hosts the match");
          this.#connect("connecting");
        } else {
          this.send({ t: "join", reservation: message.reservation });
        }
        break;
      case "moved":
        // the match goes on at another server of the fleet (this one is shutting down): take the seat back there
        this.#matchUrl = message.url;
        this.#pendingJoin = null;
        this.#abandonSocket(1000, "following the match to another server");
        if (!this.watching) this.seat = "resuming";
        this.#connect("connecting");
        break;
      case "spectating":
        this.watching = message.match;
        this.#setSeat("watching");
        break;
      case "joined":
        this.#resumeToken = message.resume;
        this.seatLost = false;
        this.#setSeat("seated");
        break;
      case "left":
        if (message.reason !== "joined_another") {
          this.#resumeToken = null;
          if (this.seat === "watching") this.watching = null;
          if (this.seat === "seated" || this.seat === "watching") this.#setSeat(null);
        }
        break;
      case "refused":
        this.#refused(message);
        break;
      default:
        break;
    }
  }

  /** After hello: take back the seat we held, if any, else queue. */
  #takeSeat() {
    if (this.#resumeToken) {
      this.send({ t: "resume", token: this.#resumeToken });
      this.#setSeat("resuming");
    } else {
      this.#queue();
    }
  }

  #spectate() {
    this.send({ t: "spectate", match: this.watching });
    this.#setSeat("joining");
  }

  #queue() {
    const mode = this.modes.length && !this.modes.includes(this.mode) ? this.modes[0] : this.mode;
    this.send({ t: "queue", mode });
    this.queueStatus = null;
    this.#setSeat("queued");
  }

  #refused({ request }) {
    if (request === "resume" || request === "join") {
      // The held seat is gone (a restarted server, a window that passed), or the reservation expired: look for
      // a new match.
      if (request === "resume") this.seatLost = true;
      this.#resumeToken = null;
      if (this.wantsMatch) this.#queue();
      else this.#setSeat(null);
    } else if (request === "queue") {
      this.wantsMatch = false;
      this.#setSeat(null);
    } else if (request === "spectate") {
      this.watching = null; // the match is gone
      this.#setSeat(null);
    }
  }

  #setSeat(seat) {
    if (this.seat === seat) return;
    this.seat = seat;
    if (seat !== "queued") this.queueStatus = null;
    this.#callbacks.onChange();
  }

  // ----- closing and reconnecting -----

  #closed(ws, event) {
    if (ws !== this.#ws) return; // a socket we already abandoned
    this.#ws = null;
    clearTimeout(this.#connectTimer);
    if (event.code === 1008 && /token expired|authentication failed/i.test(event.reason) && !this.#freshToken) {
      // Our token expired, or the server no longer knows it (restarted with another key): get a new one.
      // A new token is a new player, so the old seat cannot be taken back.
      this.#guest = null;
      this.#resumeToken = null;
    } else if (FINAL_CLOSE_CODES.has(event.code)) {
      this.#giveUp(`${event.reason || "the server closed the connection"} (close code ${event.code})`);
      return;
    }
    this.#reconnectLater();
  }

  #reconnectLater() {
    this.attempt += 1;
    if (this.#matchUrl && this.attempt >= MATCH_SERVER_ATTEMPTS) {
      // the server hosting our match is gone: back to the page's own server, for a new match
      this.#matchUrl = null;
      this.#pendingJoin = null;
      if (this.#resumeToken) this.seatLost = true;
      this.#resumeToken = null;
    }
    this.state = "reconnecting";
    this.seat = this.seat === "seated" || this.seat === "resuming" ? "resuming" : null; // a spectator: `watching`
    this.#retryTimer = setTimeout(() => this.#connect("reconnecting"), backoffDelayMs(this.attempt));
    this.#callbacks.onChange();
  }

  /** Try again now instead of waiting out the backoff (the tab became visible, the browser went online). */
  retryNow() {
    if (this.state !== "reconnecting" || this.#ws) return;
    clearTimeout(this.#retryTimer);
    this.#connect("reconnecting");
  }

  #giveUp(reason) {
    this.state = "disconnected";
    this.seat = null;
    this.closeReason = reason;
    console.warn(`arena: disconnected: ${reason}`);
    this.#callbacks.onChange();
  }

  #dropAndReconnect() {
    this.#abandonSocket(4000, "no answer");
    this.#reconnectLater();
  }

  /** Forget the current socket (its events are ignored from now on) and close it. */
  #abandonSocket(code, reason) {
    this.#generation += 1;
    const ws = this.#ws;
    this.#ws = null;
    this.#authenticated = false;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#retryTimer);
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    // Closing a socket that is still connecting makes Chromium log an error: close it once it opens.
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(code, reason);
    else if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
  }

  #checkSilence() {
    if (!this.expectTraffic || !this.ready) return;
    if (performance.now() - this.#lastFrameAt > SILENCE_TIMEOUT_MS) {
      console.warn("arena: no state from the server for 5 s; reconnecting");
      this.#dropAndReconnect();
    }
  }
}
