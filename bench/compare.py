"""Fan-out side by side: Arena, a Python `websockets` broadcast server and a Node `ws` one, under the same load.

Each server runs alone on core 0 (taskset); this process, the load generator, runs on core 1. For every stack
and client count it starts a fresh server, connects the clients, lets them settle, then measures over a window:

- achieved rate: messages each client received per second (the servers send 30 per second);
- server CPU per client-message: the server's user+system CPU time over the window (/proc/PID/stat) divided by
  the messages all clients received in it;
- tick lateness p50/p99: how late each broadcast tick started against its fixed schedule, as the server itself
  reports it (Arena: /healthz; the peers: a "stats" request on /control), over the last 10 s;
- RSS per connection: (server RSS with the clients connected - RSS before) / clients;
- delivery latency p99 (peers only: their payload carries the send time, CLOCK_MONOTONIC; Arena's deltas do not)
  and broadcast spread p99 (every stack: how much later a client got a message than the first client that got
  it, over every (clients/50)th client, so the sample spans each server's whole fan-out order).

Arena's load is its real fan-out: one match (a player and server-side bots, so there is a delta every tick)
watched by CLIENTS spectators, who get the same delta as the players (live: `--spectator-delay 0`). The peers
broadcast a 154-byte frame.
The clients only count frames: they parse frame headers themselves (server frames are unmasked) and answer
pings, so one core can take ~100k messages per second; if the generator itself runs out of CPU, the line
says so (generator CPU %), and then achieved rates below 30 are the generator's limit, not the server's.

Usage: .venv/bin/python bench/compare.py [--clients 500,1000,2000,3500] [--seconds 10] [--stacks arena,websockets,node]
Prints progress, a line per stack and count, and last one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import msgpack
import trio
from fanout import (
    LOAD_FROM_ONE_HOST,
    cpu_seconds,
    print_profile_summary,
    py_spy_path,
    ramp,
    rss_bytes,
    start_profile,
)
from wsproto.frame_protocol import FrameProtocol

from bots.client import connect, guest_token, http_request, http_url
from server.codec import encode
from server.messages import PROTOCOL_VERSION, Hello, Spectate

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
SERVER_CORE, LOAD_CORE = 0, 1
SPREAD_SAMPLE_CLIENTS = 50
RAMP_BATCH = 100
READ_BYTES = 262144
"""The most one read of a client's socket takes (a backlog of frames after a stall, say)."""
OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING = 0x1, 0x2, 0x8, 0x9


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class FrameCounter:
    """One client connection that counts the frames it receives and answers pings, without decoding messages.

    Set up with trio (`send`), then handed to `drain_all`, which reads every counter's socket from one thread:
    a trio task per connection costs the generator more CPU than the servers spend per message.

    Args:
        stream: the TCP connection, upgraded already.
        leftover: bytes received after the handshake's response.
        keep_payloads: keep (receive time, first `sample_bytes` bytes of the payload) of every message, for
            latency.
    """

    def __init__(
        self, stream: trio.SocketStream, leftover: bytes, *, keep_payloads: bool, sample_bytes: int = 64
    ) -> None:
        self.stream = stream
        self.sock: socket.socket | None = None
        self.buffer = bytearray(leftover)
        self.messages = 0
        self.keep_payloads = keep_payloads
        self.sample_bytes = sample_bytes
        self.samples: list[tuple[int, bytes]] = []
        self.framing = FrameProtocol(client=True, extensions=[])

    async def send(self, payload: bytes) -> None:
        await self.stream.send_all(bytes(self.framing.send_data(payload, fin=True)))

    def detach(self) -> None:
        """Take the socket away from trio, for `drain_all`."""
        self.sock = socket.socket(fileno=self.stream.socket.detach())
        self.sock.setblocking(False)

    def read(self, into: bytearray) -> None:
        """Read what the socket holds and count it. `into`: a buffer the caller lends for every socket it reads
        (recv() would make a new one each time, and the kernel maps, faults in and unmaps 256 KiB for it: a
        quarter of the generator's CPU at 1,000 players).

        Raises:
            BlockingIOError: if there was nothing to read after all.
            ConnectionError: if the server closed the connection.
        """
        assert self.sock is not None
        count = self.sock.recv_into(into)
        if not count:
            raise ConnectionError("the server closed the connection")
        self.feed(memoryview(into)[:count])

    def feed(self, data: bytes | memoryview) -> None:
        """Count the whole frames in what was received; answer pings; keep the rest for later."""
        buffer = self.buffer
        if not buffer:  # the common case: exactly one whole binary frame
            frame = next_frame(data, 0)
            if frame is not None and frame[0] == OPCODE_BINARY and frame[2] == len(data):
                self.messages += 1
                if self.keep_payloads:
                    self.samples.append((time.monotonic_ns(), bytes(data[frame[1] : frame[1] + self.sample_bytes])))
                return
        buffer += data
        start, now = 0, time.monotonic_ns()
        while (frame := next_frame(buffer, start)) is not None:
            opcode, payload_start, end = frame
            if opcode in (OPCODE_BINARY, OPCODE_TEXT):
                self.messages += 1
                if self.keep_payloads:
                    self.samples.append(
                        (now, bytes(buffer[payload_start : min(end, payload_start + self.sample_bytes)]))
                    )
            elif opcode == OPCODE_PING and self.sock is not None:
                self.sock.sendall(bytes(self.framing.pong(bytes(buffer[payload_start:end]))))
            elif opcode == OPCODE_CLOSE:
                raise ConnectionError(f"the server closed the connection: {bytes(buffer[payload_start:end])!r}")
            start = end
        del buffer[:start]

    async def receive_message(self) -> bytes:
        """While still on trio: the next data message's payload (pings are answered; counts nothing)."""
        while True:
            frame = next_frame(self.buffer, 0)
            if frame is None:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.buffer += data
                continue
            opcode, payload_start, end = frame
            payload = bytes(self.buffer[payload_start:end])
            del self.buffer[:end]
            if opcode == OPCODE_PING:
                await self.stream.send_all(bytes(self.framing.pong(payload)))
            elif opcode == OPCODE_CLOSE:
                raise ConnectionError(f"the server closed the connection: {payload!r}")
            elif opcode in (OPCODE_BINARY, OPCODE_TEXT):
                return payload


def next_frame(buffer: bytes | bytearray | memoryview, start: int) -> tuple[int, int, int] | None:
    """(opcode, where the payload starts, where the frame ends) of the unmasked frame at `start`, if whole."""
    if len(buffer) - start < 2:
        return None
    opcode, length = buffer[start] & 0x0F, buffer[start + 1] & 0x7F
    header = 2
    if length == 126:
        if len(buffer) - start < 4:
            return None
        length, header = struct.unpack_from("!H", buffer, start + 2)[0], 4
    elif length == 127:
        if len(buffer) - start < 10:
            return None
        length, header = struct.unpack_from("!Q", buffer, start + 2)[0], 10
    end = start + header + length
    if end > len(buffer):
        return None
    return opcode, start + header, end


def drain_all(arrivals: queue.SimpleQueue[FrameCounter], stop: threading.Event, failures: list[str]) -> None:
    """Read every counter's socket until `stop` is set; counters arriving on `arrivals` join in."""
    selector = selectors.EpollSelector()
    into = bytearray(READ_BYTES)
    while not stop.is_set():
        while not arrivals.empty():
            counter = arrivals.get()
            assert counter.sock is not None
            selector.register(counter.sock, selectors.EVENT_READ, counter)
        for key, _ in selector.select(timeout=0.05):
            counter = key.data
            try:
                counter.read(into)
            except BlockingIOError:
                continue
            except (OSError, ConnectionError) as error:
                failures.append(f"{type(error).__name__}: {error}"[:160])
                selector.unregister(counter.sock)
    selector.close()


async def open_counter(port: int, path: str, *, keep_payloads: bool, sample_bytes: int = 64) -> FrameCounter:
    """Open a WebSocket to 127.0.0.1:port with a plain HTTP/1.1 upgrade request."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await stream.send_all(request.encode())
    received = b""
    while b"\r\n\r\n" not in received:
        data = await stream.receive_some(4096)
        if not data:
            raise ConnectionError("the server closed the connection during the handshake")
        received += data
    head, _, leftover = received.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head.splitlines()[0]!r}")
    return FrameCounter(stream, leftover, keep_payloads=keep_payloads, sample_bytes=sample_bytes)


class Stack:
    """How to start one server and ask it for its tick lateness."""

    name: str

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    async def prepare(self, port: int, nursery: trio.Nursery) -> None:
        """Set up what the clients subscribe to (Arena: a running match)."""

    async def subscribe(self, port: int, index: int, *, keep_payloads: bool) -> FrameCounter:
        return await open_counter(port, "/", keep_payloads=keep_payloads)

    async def lateness(self, port: int) -> dict[str, float]:
        async with connect_control(port) as control:
            await control.send_message("stats")
            return json.loads(await control.get_message())

    def sent_at_ns(self, payload: bytes) -> int | None:
        return struct.unpack_from("!Q", payload)[0]

    def message_id(self, payload: bytes) -> int:
        return struct.unpack_from("!Q", payload, 8)[0]


def connect_control(port: int):
    import trio_websocket

    return trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/control")


class WebsocketsStack(Stack):
    name = "websockets"

    def command(self, port: int) -> list[str]:
        return [sys.executable, str(PEERS / "websockets_broadcast.py"), str(port)]


class NodeWsStack(Stack):
    name = "node-ws"

    def command(self, port: int) -> list[str]:
        return ["node", str(PEERS / "ws_broadcast.mjs"), str(port)]


class ArenaStack(Stack):
    name = "arena"

    def __init__(self) -> None:
        self.match_id: str | None = None

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "server",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--queue-wait",
            "0.2",
            "--match-seconds",
            "3600",
            "--kill-limit",
            "1000000",
            "--spectator-delay",
            "0",
            *LOAD_FROM_ONE_HOST,
        ]  # fmt: skip  (spectators live, as the peers broadcast: the default 10 s delay would send nothing at first)

    async def prepare(self, port: int, nursery: trio.Nursery) -> None:
        url = f"ws://127.0.0.1:{port}/ws"
        joined = trio.Event()

        async def play() -> None:
            async with connect(url, name="host", message_queue_size=64, timeout=30) as player:
                await player.join("ffa", timeout=30)
                self.match_id = player.match
                joined.set()
                while True:
                    await player.receive()

        nursery.start_soon(play)
        with trio.fail_after(30):
            await joined.wait()

    async def subscribe(self, port: int, index: int, *, keep_payloads: bool) -> FrameCounter:
        url = f"ws://127.0.0.1:{port}/ws"
        token = await guest_token(http_url(url), f"watcher{index}")
        counter = await open_counter(port, "/ws", keep_payloads=keep_payloads)
        await counter.send(encode(Hello(protocol=PROTOCOL_VERSION, token=token, name=f"watcher{index}")))
        assert self.match_id is not None
        await counter.send(encode(Spectate(match=self.match_id)))
        return counter

    async def lateness(self, port: int) -> dict[str, float]:
        _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/healthz")
        return json.loads(body)["tick"]

    def sent_at_ns(self, payload: bytes) -> int | None:
        return None

    def message_id(self, payload: bytes) -> int:
        """The tick of a snapshot or delta, read from the first bytes of its msgpack map."""
        try:
            unpacker = msgpack.Unpacker()
            unpacker.feed(payload)
            header_size = unpacker.read_map_header()
            for _ in range(header_size):
                key = unpacker.unpack()
                value = unpacker.unpack()
                if key == "tick":
                    return int(value)
        except Exception:
            pass
        return -1


async def measure(stack: Stack, port: int, pid: int, clients: int, seconds: float, profile: str | None) -> dict:
    baseline_rss = rss_bytes(pid)
    counters: list[FrameCounter] = []
    failures: list[str] = []
    arrivals: queue.SimpleQueue[FrameCounter] = queue.SimpleQueue()
    stop_draining = threading.Event()
    async with trio.open_nursery() as nursery:
        await stack.prepare(port, nursery)
        nursery.start_soon(partial(trio.to_thread.run_sync, drain_all, arrivals, stop_draining, failures))

        async def subscribe(index: int) -> None:
            try:
                sampled = index % max(1, clients // SPREAD_SAMPLE_CLIENTS) == 0  # spread over the whole fan-out
                counter = await stack.subscribe(port, index, keep_payloads=sampled)
            except (OSError, ConnectionError, trio.BrokenResourceError) as error:
                failures.append(f"{type(error).__name__}: {error}"[:160])
                return
            counter.detach()
            counters.append(counter)
            arrivals.put(counter)

        progress = f"{stack.name}: {{joined}}/{{count}} connected"
        await ramp(clients, subscribe, counters, batch=RAMP_BATCH, progress=progress)
        await trio.sleep(3)  # settle
        rss = rss_bytes(pid)
        for counter in counters:
            counter.samples.clear()
        received_before = sum(counter.messages for counter in counters)
        cpu_before, generator_before, started = cpu_seconds(pid), cpu_seconds("self"), time.monotonic()
        profiler = start_profile(pid, seconds, profile) if profile else None
        await trio.sleep(seconds)
        if profiler is not None:
            await trio.to_thread.run_sync(profiler.wait)
        received = sum(counter.messages for counter in counters) - received_before
        cpu, generator_cpu = cpu_seconds(pid) - cpu_before, cpu_seconds("self") - generator_before
        elapsed = time.monotonic() - started
        samples = [(received_at, payload) for counter in counters for received_at, payload in list(counter.samples)]
        timing = await stack.lateness(port)
        stop_draining.set()
        nursery.cancel_scope.cancel()
    for counter in counters:
        if counter.sock is not None:
            counter.sock.close()
    delivery: list[float] = []
    first_seen: dict[int, int] = {}
    for received_at, payload in samples:
        sent_at = stack.sent_at_ns(payload)
        if sent_at is not None:
            delivery.append((received_at - sent_at) / 1e6)
        message = stack.message_id(payload)
        first_seen[message] = min(first_seen.get(message, received_at), received_at)
    spread = [(received_at - first_seen[stack.message_id(payload)]) / 1e6 for received_at, payload in samples]
    connected = len(counters)
    return {
        "stack": stack.name,
        "clients": clients,
        "connected": connected,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "rate_per_client": round(received / max(1, connected) / elapsed, 2),
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "server_cpu_us_per_client_message": round(1e6 * cpu / max(1, received), 2),
        "tick_lateness_ms_p50": timing.get("lateness_ms_p50"),
        "tick_lateness_ms_p99": timing.get("lateness_ms_p99"),
        "rss_kib_per_connection": round((rss - baseline_rss) / max(1, connected) / 1024, 1),
        "delivery_latency_ms_p99": round(_percentile(delivery, 0.99), 2) if delivery else None,
        "broadcast_spread_ms_p99": round(_percentile(spread, 0.99), 2),
        "generator_cpu_percent": round(100 * generator_cpu / elapsed, 1),
    }


def run_stack(stack: Stack, port: int, clients: int, seconds: float, profile: str | None) -> dict:
    server = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), *stack.command(port)], stdout=subprocess.PIPE, cwd=HERE.parent
    )
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 30
        while True:
            line = server.stdout.readline()
            if b"listening on" in line or b"open http://" in line:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{stack.name} did not start: is it installed? ({' '.join(stack.command(port))})")
        time.sleep(0.5)
        return trio.run(measure, stack, port, server.pid, clients, seconds, profile)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="500,1000,2000,3500", help="comma-separated counts (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window (default %(default)s)")
    parser.add_argument("--stacks", default="arena,websockets,node", help="which stacks (default %(default)s)")
    parser.add_argument("--port", type=int, default=8770)
    parser.add_argument("--profile", metavar="DIR", help="sample each server with py-spy (Python stacks only)")
    args = parser.parse_args()
    if args.profile:
        py_spy_path()  # before any server starts: say what is missing now, not after a ramp
    stacks = {"arena": ArenaStack, "websockets": WebsocketsStack, "node": NodeWsStack}
    try:
        counts = [int(count) for count in args.clients.split(",")]
        chosen = [stacks[name.strip()] for name in args.stacks.split(",")]
    except (ValueError, KeyError) as error:
        print(
            f"compare: bad --clients or --stacks ({error}); e.g. --clients 500,1000 --stacks arena,node",
            file=sys.stderr,
        )
        return 2
    if any(not 1 <= count <= 10_000 for count in counts) or not 1 <= args.seconds <= 300:
        print("compare: counts must be 1..10000 and --seconds 1..300", file=sys.stderr)
        return 2
    if "node" in args.stacks and not (PEERS / "node_modules").exists():
        print("compare: installing the Node peer's dependencies (npm ci)", file=sys.stderr)
        subprocess.run(["npm", "ci", "--silent", "--prefix", str(PEERS)], check=True)
    os.sched_setaffinity(0, {LOAD_CORE})
    results = []
    for count in counts:
        for make_stack in chosen:
            stack = make_stack()
            print(f"{stack.name}: {count} clients...", file=sys.stderr, flush=True)
            profile = None
            if args.profile and stack.name == "arena":
                os.makedirs(args.profile, exist_ok=True)
                profile = os.path.join(args.profile, f"compare-{stack.name}-{count}.txt")
            figures = run_stack(stack, args.port, count, args.seconds, profile)
            results.append(figures)
            if profile:
                print_profile_summary(profile)
            print(
                f"{figures['stack']:>10} {count:5d} clients ({figures['failures']} failed): "
                f"{figures['rate_per_client']}/s each, server CPU {figures['server_cpu_percent']}% = "
                f"{figures['server_cpu_us_per_client_message']} us per client-message, tick lateness p50 "
                f"{figures['tick_lateness_ms_p50']} p99 {figures['tick_lateness_ms_p99']} ms, "
                f"{figures['rss_kib_per_connection']} KiB per connection, delivery p99 "
                f"{figures['delivery_latency_ms_p99']} ms, spread p99 {figures['broadcast_spread_ms_p99']} ms, "
                f"generator CPU {figures['generator_cpu_percent']}%",
                flush=True,
            )
    print(json.dumps({"bench": "compare", "cpu_count": os.cpu_count(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
