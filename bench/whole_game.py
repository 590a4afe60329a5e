"""The whole game on one server process: how many players it holds at 30 Hz with tick lateness p99 under 5 ms.

Starts `arena serve` alone on core 0 (no server-side bots, 8-player ffa matches, long matches), then for each
player count connects that many real players from this process on core 1: each does the real handshake
(guest token, hello, queue, join) and then plays like Colyseus' benchmark bots: it sends an input ten times a
second by default (random walk, aim and fire; the server simulates, shoots and scores for real) and reads every delta,
counting frames without decoding them (bench/compare.py's `FrameCounter`, so the generator stays cheap).
Over a window it reads the server's CPU time (/proc) and its tick timing (/healthz, last 10 s). One player in
`PROBE_EVERY` also keeps what it receives and when it sent each input: after the window, its deltas tell when each
input was applied (the `ack` the server adds to the player), which gives what a player feels and tick lateness
does not show: the time from sending an input to receiving the state it changed.

Usage: .venv/bin/python bench/whole_game.py [--players 200,400,600,800,1000] [--seconds 10] [--profile DIR]
Prints a line per count, the largest count that held (ticks/s >= 29.5 and lateness p99 < 5 ms), and last one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import queue
import random
import selectors
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial

import msgpack
import trio
from compare import READ_BYTES, FrameCounter, open_counter
from fanout import (
    arena_server,
    cpu_seconds,
    idle_spins,
    print_profile_summary,
    py_spy_path,
    rss_bytes,
    spins_of,
    start_profile,
)
from fanout import (
    ramp as ramp_clients,
)

from bots.client import guest_token, http_request
from bots.report import quantiles
from server.codec import decode_server, encode
from server.messages import PROTOCOL_VERSION, Hello, Input, Join, Queue, Reserved

SERVER_CORE, LOAD_CORE = 0, 1
IDLE_BASELINE_SECONDS = 3.0
"""How long the idle probe spins alone on the server's core, to know what an idle core gives it."""
RAMP_BATCH = 50
TARGET_TICK_RATE = 30
HELD_MIN_TICK_RATE = 29.5
HELD_MAX_LATENESS_P99_MS = 5.0
PROBE_EVERY = 20
"""One player in this many keeps its inputs' send times and the messages it receives, decoded after the window."""
PROBE_PAYLOAD_BYTES = 1 << 20
ACK_MARGIN_SECONDS = 1.0
"""Inputs sent in the window's last second are not counted: their acknowledgements may come after it."""


class Player:
    """A connected player: its frame counter, and the inputs it sends from the generator's thread."""

    def __init__(
        self, counter: FrameCounter, rng: random.Random, inputs_per_second: float, *, probe: bool = False
    ) -> None:
        self.counter = counter
        self.rng = rng
        self.seq = 0
        self.probe = probe
        self.sent: list[tuple[int, int]] = []
        """A probe's (seq, time.monotonic_ns() as it was sent) of every input."""
        self.input_interval = 1 / inputs_per_second
        self.next_input_at = time.monotonic() + rng.random() * self.input_interval

    def send_input(self) -> None:
        self.seq += 1
        rng = self.rng
        # view 0: these players decode no state, so every shot is judged the full 0.25 s back (lag compensation's
        # most work per shot)
        message = Input(seq=self.seq, mx=rng.choice((-1, 0, 1)), my=rng.choice((-1, 0, 1)), aim=rng.uniform(-3, 3),
                        fire=rng.random() < 0.5, view=0)  # fmt: skip
        assert self.counter.sock is not None
        if self.probe:
            self.sent.append((self.seq, time.monotonic_ns()))
        self.counter.sock.sendall(bytes(self.counter.framing.send_data(encode(message), fin=True)))
        self.next_input_at += self.input_interval


def play_all(
    arrivals: queue.SimpleQueue[Player], stop: threading.Event, failures: list[str], *, own_clocks: bool = False
) -> None:
    """Read every player's socket and send each player's inputs, until `stop` is set.

    By default an input due goes out when this loop next wakes, which is when the server's next deltas arrive.
    With `own_clocks`, each player's inputs go out at its own times, as clients with their own frame clocks send
    them: they reach the server spread over time, not right after the deltas it sends (the loop waits no longer
    than the next one due). One thread does it all: a second one for the inputs cost the generator more CPU than
    the inputs (the two handed the GIL back and forth on one core), and it could not keep up with 1,000 players.
    """
    selector = selectors.EpollSelector()
    into = bytearray(READ_BYTES)
    players: list[Player] = []
    due: list[tuple[float, int, Player]] = []
    """With `own_clocks`: (when its next input is due, arrival order, player), a heap."""
    while not stop.is_set():
        while not arrivals.empty():
            player = arrivals.get()
            players.append(player)
            selector.register(player.counter.sock, selectors.EVENT_READ, player)
            if own_clocks:
                heapq.heappush(due, (player.next_input_at, len(players), player))
        timeout = min(0.01, max(0.0, due[0][0] - time.monotonic())) if due else 0.01
        for key, _ in selector.select(timeout=timeout):
            player = key.data
            try:
                player.counter.read(into)
            except BlockingIOError:
                continue
            except (OSError, ConnectionError) as error:
                failures.append(f"{type(error).__name__}: {error}"[:160])
                selector.unregister(player.counter.sock)
                players.remove(player)
        now = time.monotonic()
        if own_clocks:
            while due and due[0][0] <= now:
                _, order, player = heapq.heappop(due)
                try:
                    player.send_input()
                except OSError as error:
                    failures.append(f"{type(error).__name__}: {error}"[:160])
                    continue
                heapq.heappush(due, (player.next_input_at, order, player))
            continue
        for player in players:
            if player.next_input_at <= now:
                try:
                    player.send_input()
                except OSError as error:
                    failures.append(f"{type(error).__name__}: {error}"[:160])
                    player.next_input_at = float("inf")
    selector.close()


async def ramp(players: int, join: Callable[[int], Awaitable[None]], joined: list[Player]) -> None:
    """Start `join(index)` for every player, RAMP_BATCH at a time, saying how many play; returns once all tried."""
    await ramp_clients(players, join, joined, batch=RAMP_BATCH, progress="{joined}/{count} playing")


async def join_player(port: int, index: int, *, probe: bool = False) -> FrameCounter:
    url = f"ws://127.0.0.1:{port}/ws"
    token = await guest_token(url, f"player{index}")
    counter = await open_counter(port, "/ws", keep_payloads=probe, sample_bytes=PROBE_PAYLOAD_BYTES)
    await counter.send(encode(Hello(protocol=PROTOCOL_VERSION, token=token, name=f"player{index}")))
    await counter.send(encode(Queue(mode="ffa")))
    with trio.fail_after(60):
        while not isinstance(reserved := decode_server(await counter.receive_message()), Reserved):
            pass
    await counter.send(encode(Join(reservation=reserved.reservation)))
    return counter


async def measure(
    port: int,
    pid: int,
    players: int,
    inputs_per_second: float,
    seconds: float,
    profile: str | None,
    idle_rate: float,
    own_clocks: bool,
) -> dict:
    arrivals: queue.SimpleQueue[Player] = queue.SimpleQueue()
    stop = threading.Event()
    failures: list[str] = []
    joined: list[Player] = []
    baseline_rss = rss_bytes(pid)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(trio.to_thread.run_sync, partial(play_all, own_clocks=own_clocks), arrivals, stop, failures)
        )

        async def join(index: int) -> None:
            probe = index % PROBE_EVERY == 0
            try:
                counter = await join_player(port, index, probe=probe)
            except (OSError, ConnectionError, trio.BrokenResourceError, trio.TooSlowError) as error:
                failures.append(f"{type(error).__name__}: {error}"[:160])
                return
            counter.detach()
            player = Player(counter, random.Random(index), inputs_per_second, probe=probe)
            joined.append(player)
            arrivals.put(player)

        await ramp(players, join, joined)
        await trio.sleep(max(5.0, 11.0 - seconds))  # settle, so the 10 s timing window is all steady play
        rss = rss_bytes(pid)
        _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/healthz")
        before = json.loads(body)
        received_before = sum(player.counter.messages for player in joined)
        cpu_before, generator_before, started = cpu_seconds(pid), cpu_seconds("self"), time.monotonic()
        window_start_ns = time.monotonic_ns()
        profiler = start_profile(pid, seconds, profile) if profile else None
        probe = idle_spins(SERVER_CORE, seconds)
        await trio.sleep(seconds)
        window_end_ns = time.monotonic_ns()
        if profiler is not None:
            await trio.to_thread.run_sync(profiler.wait)
        cpu, generator_cpu = cpu_seconds(pid) - cpu_before, cpu_seconds("self") - generator_before
        elapsed = time.monotonic() - started
        core_busy = max(0.0, 1 - await trio.to_thread.run_sync(spins_of, probe) / (idle_rate * seconds))
        received = sum(player.counter.messages for player in joined) - received_before
        _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/healthz")
        after = json.loads(body)
        stop.set()
        nursery.cancel_scope.cancel()
    for player in joined:
        if player.counter.sock is not None:
            player.counter.sock.close()
    acks = [
        latency
        for player in joined
        if player.probe
        for latency in input_ack_ms(player, window_start_ns, window_end_ns - int(ACK_MARGIN_SECONDS * 1e9))
    ]
    ack = quantiles(acks, 0.5, 0.99)
    matches = max(1, after["matches"])
    ticks = after["tick"]["ticks"] - before["tick"]["ticks"]
    tick_seconds = after["uptime_seconds"] - before["uptime_seconds"]  # the server's own clock, between the reads
    return {
        "players": players,
        "inputs_per_second_per_player": inputs_per_second,
        "playing": after["players"],
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "matches": after["matches"],
        "ticks_per_second_per_match": round(ticks / matches / tick_seconds, 2),
        "skipped_ticks": after["tick"]["skipped"] - before["tick"]["skipped"],
        "tick_lateness_ms_p50": after["tick"]["lateness_ms_p50"],
        "tick_lateness_ms_p99": after["tick"]["lateness_ms_p99"],
        "tick_duration_ms_p99": after["tick"]["duration_ms_p99"],
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "server_cpu_us_per_player_tick": round(1e6 * cpu / max(1, ticks / matches * after["players"]), 2),
        "server_core_busy_percent": round(100 * core_busy, 1),
        "server_core_us_per_player_tick": round(
            1e6 * core_busy * elapsed / max(1, ticks / matches * after["players"]), 2
        ),
        "updates_per_second_per_player": round(received / max(1, len(joined)) / elapsed, 2),
        "server_rss_kib_per_player": round((rss - baseline_rss) / max(1, len(joined)) / 1024, 1),
        "generator_cpu_percent": round(100 * generator_cpu / elapsed, 1),
        "input_ack_ms_p50": ack["p50"],
        "input_ack_ms_p99": ack["p99"],
        "input_acks_measured": len(acks),
    }


def input_ack_ms(player: Player, first_ns: int, last_ns: int) -> list[float]:
    """For each input a probe sent from `first_ns` to `last_ns`: ms from sending it to receiving the first state
    whose `ack` for this player is that input's seq or later (a later one: the server kept only newer inputs)."""
    me = None
    acked_through = 0
    pending = deque((seq, sent) for seq, sent in player.sent if first_ns <= sent <= last_ns)
    latencies = []
    for received, payload in player.counter.samples:
        message = msgpack.unpackb(payload, strict_map_key=False)
        kind = message.get("t")
        if kind == "joined":
            me = message["player"]
        elif kind in ("snapshot", "delta") and me is not None:
            sections = (
                [message.get("entities", {})]
                if kind == "snapshot"
                else [message.get("change", {}), message.get("add", {})]
            )
            ack = next(
                (s["players"][me]["ack"] for s in sections if me in s.get("players", {}) and "ack" in s["players"][me]),
                None,
            )
            if ack is None or ack <= acked_through:
                continue
            acked_through = ack
            while pending and pending[0][0] <= ack:
                sent = pending.popleft()[1]
                if received >= sent:
                    latencies.append((received - sent) / 1e6)
    return latencies


def held(figures: dict) -> bool:
    return (
        figures["failures"] == 0
        and figures["ticks_per_second_per_match"] >= HELD_MIN_TICK_RATE
        and figures["tick_lateness_ms_p99"] < HELD_MAX_LATENESS_P99_MS
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", default="200,400,600,800,1000", help="comma-separated (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window (default %(default)s)")
    parser.add_argument("--inputs", type=float, default=10.0, help="inputs per second per player (default 10)")
    parser.add_argument(
        "--inputs-on-own-clocks",
        action="store_true",
        help="send each player's inputs at its own times (spread out, as real clients do), not when deltas arrive",
    )
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--profile", metavar="DIR", help="sample the server with py-spy and print where time goes")
    args = parser.parse_args()
    if args.profile:
        py_spy_path()  # before any server starts: say what is missing now, not after a ramp
    try:
        counts = [int(count) for count in args.players.split(",")]
    except ValueError:
        print("whole_game: --players takes counts separated by commas, e.g. 200,400", file=sys.stderr)
        return 2
    if any(not 8 <= count <= 5000 for count in counts) or not 1 <= args.seconds <= 120:
        print("whole_game: counts must be 8..5000 and --seconds 1..120", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {LOAD_CORE})
    print(f"the idle probe alone on core {SERVER_CORE} for {IDLE_BASELINE_SECONDS:g} s...", file=sys.stderr, flush=True)
    idle_rate = spins_of(idle_spins(SERVER_CORE, IDLE_BASELINE_SECONDS)) / IDLE_BASELINE_SECONDS
    results = []
    for count in counts:
        print(f"{count} players...", file=sys.stderr, flush=True)
        # --max-tick-load 1: the bench finds where the server stops holding 30 Hz, so admission must not stop it first
        options = ("--queue-wait", "0.5", "--no-bots", "--match-seconds", "3600", "--kill-limit", "1000000",
                   "--max-tick-load", "1")  # fmt: skip
        profile = None
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
            profile = os.path.join(args.profile, f"whole-game-{count}.txt")
        with arena_server(args.port, *options, "--tick-rate", str(TARGET_TICK_RATE), core=SERVER_CORE) as server:
            figures = trio.run(
                measure,
                args.port,
                server.pid,
                count,
                args.inputs,
                args.seconds,
                profile,
                idle_rate,
                args.inputs_on_own_clocks,
            )
        results.append(figures)
        print(
            f"{count:5d} players in {figures['matches']} matches ({figures['failures']} failed): "
            f"{figures['ticks_per_second_per_match']} ticks/s, lateness p50 {figures['tick_lateness_ms_p50']} "
            f"p99 {figures['tick_lateness_ms_p99']} ms, server CPU {figures['server_cpu_percent']}% = "
            f"{figures['server_cpu_us_per_player_tick']} us per player-tick (core busy "
            f"{figures['server_core_busy_percent']}% = {figures['server_core_us_per_player_tick']} us "
            "by the idle probe), "
            f"{figures['updates_per_second_per_player']} updates/s per player, generator CPU "
            f"{figures['generator_cpu_percent']}%, input to its ack p50 {figures['input_ack_ms_p50']} "
            f"p99 {figures['input_ack_ms_p99']} ms ({figures['input_acks_measured']} inputs) -> "
            f"{'held' if held(figures) else 'NOT held'}",
            flush=True,
        )
        if profile:
            print_profile_summary(profile)
    largest = max((figures["players"] for figures in results if held(figures)), default=None)
    print(f"largest player count held at {TARGET_TICK_RATE} Hz with tick lateness p99 < 5 ms: {largest}")
    print(json.dumps({"bench": "whole_game", "largest_held": largest, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
