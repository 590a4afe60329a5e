// A fan-out peer for bench/compare.py: Node's `ws` broadcasting one frame to every client, as ws's README
// shows (client.send for every open client of the server).
//
// Every 1/RATE s on a fixed schedule it sends a PAYLOAD_BYTES binary payload whose first 16 bytes are the send
// time (process.hrtime.bigint(), CLOCK_MONOTONIC, the clock of Python's time.monotonic_ns) and the broadcast's
// sequence number. A connection to /control is not a receiver: a text message "stats" sent on it is answered
// with JSON: ticks, and the lateness of the broadcasts over the last 10 s (p50, p99, max, in ms).
//
// Usage: node bench/peers/ws_broadcast.mjs PORT
import { WebSocketServer, WebSocket } from 'ws';

const RATE = 30;
const PAYLOAD_BYTES = 154;
const WINDOW_MS = 10_000;

const port = Number(process.argv[2]);
const server = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
const receivers = new Set();
const lateness = []; // [when (ms), how late (ms)]
let ticks = 0;

function stats() {
  const since = performance.now() - WINDOW_MS;
  const recent = lateness.filter(([at]) => at >= since).map(([, late]) => late).sort((a, b) => a - b);
  const percentile = (fraction) =>
    recent.length ? Math.round(recent[Math.min(recent.length - 1, Math.floor(fraction * recent.length))] * 1000) / 1000 : 0;
  return JSON.stringify({
    ticks, lateness_ms_p50: percentile(0.5), lateness_ms_p99: percentile(0.99), lateness_ms_max: percentile(1),
    receivers: receivers.size,
  });
}

server.on('connection', (socket, request) => {
  if (request.url === '/control') {
    socket.on('message', (data) => { if (String(data) === 'stats') socket.send(stats()); });
    return;
  }
  receivers.add(socket);
  socket.on('close', () => receivers.delete(socket));
  socket.on('error', () => receivers.delete(socket));
});

const intervalMs = 1000 / RATE;
let due = performance.now();
function broadcast() {
  const now = performance.now();
  lateness.push([now, now - due]);
  while (lateness.length && lateness[0][0] < now - WINDOW_MS) lateness.shift();
  ticks += 1;
  const payload = Buffer.alloc(PAYLOAD_BYTES);
  payload.writeBigUInt64BE(process.hrtime.bigint(), 0);
  payload.writeBigUInt64BE(BigInt(ticks), 8);
  for (const client of receivers) {
    if (client.readyState === WebSocket.OPEN) client.send(payload, { binary: true });
  }
  due += intervalMs;
  setTimeout(broadcast, Math.max(0, due - performance.now()));
}
server.on('listening', () => {
  console.log(`listening on ${port}`);
  due = performance.now() + intervalMs;
  setTimeout(broadcast, intervalMs);
});
