"""The whole game on `arena serve --workers N`: how many players N workers hold at 30 Hz with tick lateness p99
under 5 ms, side by side for N = 1 and N = 2 (issue 11's target: 2 workers hold at least 1.8 times as many as 1).

As bench/whole_game.py (8-player ffa, inputs 10 Hz, real handshakes, no server-side bots, the same players and
the same verdict), but the players connect to the workers in turn and follow `reserved` to the worker that hosts
their match. With 1 worker the group runs on core 0 and this load generator on core 1; with 2 workers the group
may use both cores and the generator runs beside it (this machine has two: the generator's own CPU is printed,
and is what 2 workers have to share their cores with). Figures per worker come from each worker's /healthz
(tick timing) and /proc (CPU), Redis's CPU from /proc too.

Usage: .venv/bin/python bench/workers.py [--workers 1,2] [--players 400,600,800,1000] [--seconds 10]
Prints a line per (workers, players), the largest count held per worker count and their ratio, and last one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from functools import partial
from urllib.parse import urlsplit

import trio
from compare import FrameCounter, open_counter
from fanout import arena_server, cpu_seconds
from whole_game import TARGET_TICK_RATE, Player, held, play_all, ramp

from bots.client import guest_token, http_request
from server.codec import decode_server, encode
from server.messages import PROTOCOL_VERSION, Hello, Join, Queue, Reserved


async def health(port: int) -> dict:
    _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/healthz")
    return json.loads(body)


async def wait_for_fleet(port: int, workers: int) -> None:
    with trio.fail_after(30):
        for worker_port in range(port, port + workers):
            while True:
                try:
                    if (await health(worker_port)).get("fleet", {}).get("servers") == workers:
                        break
                except OSError:
                    pass
                await trio.sleep(0.1)


async def join_player(port: int, index: int) -> FrameCounter:
    """Queue on `port`; join on the worker the reservation names."""
    token = await guest_token(f"ws://127.0.0.1:{port}/ws", f"player{index}")
    counter = await open_counter(port, "/ws", keep_payloads=False)
    hello = encode(Hello(protocol=PROTOCOL_VERSION, token=token, name=f"player{index}"))
    await counter.send(hello)
    await counter.send(encode(Queue(mode="ffa")))
    with trio.fail_after(60):
        while not isinstance(reserved := decode_server(await counter.receive_message()), Reserved):
            pass
    if reserved.url is not None:
        host_port = urlsplit(reserved.url).port
        assert host_port is not None
        await counter.stream.aclose()  # the queueing connection: the player plays on the host's
        counter = await open_counter(host_port, "/ws", keep_payloads=False)
        await counter.send(hello)
    await counter.send(encode(Join(reservation=reserved.reservation)))
    return counter


def worker_pids(group_pid: int) -> tuple[list[int], list[int]]:
    """The group's server processes and its redis-server, from its children."""
    children = subprocess.run(["pgrep", "-P", str(group_pid)], capture_output=True, text=True, check=False)
    servers, redis = [], []
    for pid in (int(line) for line in children.stdout.split()):
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            (redis if b"redis-server" in cmdline.read() else servers).append(pid)
    return servers, redis


async def measure(port: int, group_pid: int, workers: int, players: int, seconds: float) -> dict:
    await wait_for_fleet(port, workers)
    servers, redis = worker_pids(group_pid)
    arrivals: queue.SimpleQueue[Player] = queue.SimpleQueue()
    stop = threading.Event()
    failures: list[str] = []
    joined: list[Player] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, play_all, arrivals, stop, failures))

        async def join(index: int) -> None:
            try:
                counter = await join_player(port + index % workers, index)
            except (OSError, ConnectionError, trio.BrokenResourceError, trio.TooSlowError) as error:
                failures.append(f"{type(error).__name__}: {error}"[:160])
                return
            counter.detach()
            player = Player(counter, random.Random(index), 10.0)
            joined.append(player)
            arrivals.put(player)

        await ramp(players, join, joined)
        await trio.sleep(max(5.0, 11.0 - seconds))
        before = [await health(port + k) for k in range(workers)]
        cpu_before = [cpu_seconds(pid) for pid in servers + redis]
        generator_before, started = cpu_seconds("self"), time.monotonic()
        await trio.sleep(seconds)
        cpu = [cpu_seconds(pid) - was for pid, was in zip(servers + redis, cpu_before, strict=True)]
        generator_cpu = cpu_seconds("self") - generator_before
        elapsed = time.monotonic() - started
        after = [await health(port + k) for k in range(workers)]
        stop.set()
        nursery.cancel_scope.cancel()
    for player in joined:
        if player.counter.sock is not None:
            player.counter.sock.close()
    matches = sum(figures["matches"] for figures in after)
    ticks = sum(a["tick"]["ticks"] - b["tick"]["ticks"] for a, b in zip(after, before, strict=True))
    playing = sum(figures["players"] for figures in after)
    server_cpu = sum(cpu[: len(servers)])
    return {
        "workers": workers,
        "players": players,
        "playing": playing,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "matches": matches,
        "players_per_worker": [figures["players"] for figures in after],
        "ticks_per_second_per_match": round(ticks / max(1, matches) / elapsed, 2),
        "tick_lateness_ms_p99": max(figures["tick"]["lateness_ms_p99"] for figures in after),
        "server_cpu_percent": round(100 * server_cpu / elapsed, 1),
        "server_cpu_us_per_player_tick": round(1e6 * server_cpu / max(1, ticks / max(1, matches) * playing), 2),
        "redis_cpu_percent": round(100 * sum(cpu[len(servers) :]) / elapsed, 1),
        "generator_cpu_percent": round(100 * generator_cpu / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default %(default)s)")
    parser.add_argument("--players", default="400,600,800,1000", help="comma-separated (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window (default %(default)s)")
    parser.add_argument("--port", type=int, default=8790, help="first worker's port (default %(default)s)")
    args = parser.parse_args()
    try:
        worker_counts = [int(count) for count in args.workers.split(",")]
        counts = [int(count) for count in args.players.split(",")]
    except ValueError:
        print("workers: --workers and --players take numbers separated by commas, e.g. 1,2", file=sys.stderr)
        return 2
    if any(not 1 <= n <= 2 for n in worker_counts) or any(not 8 <= count <= 5000 for count in counts):
        print("workers: --workers 1 or 2 (this machine has 2 cores), --players 8..5000", file=sys.stderr)
        return 2
    results = []
    for workers in worker_counts:
        # 1 worker: the group on core 0, the generator on core 1; 2 workers: the group on both, the generator too
        group_cores, generator_cores = ("0", {1}) if workers == 1 else ("0,1", {0, 1})
        os.sched_setaffinity(0, generator_cores)
        for count in counts:
            print(f"{workers} worker(s), {count} players...", file=sys.stderr, flush=True)
            options = ("--workers", str(workers), "--queue-wait", "0.5", "--no-bots", "--match-seconds", "3600",
                       "--kill-limit", "1000000", "--max-tick-load", "1", "--no-replays")  # fmt: skip
            with arena_server(args.port, *options, core=group_cores) as group:  # type: ignore[arg-type]
                figures = trio.run(measure, args.port, group.pid, workers, count, args.seconds)
            results.append(figures)
            print(
                f"{workers} worker(s), {count:5d} players in {figures['matches']} matches "
                f"({figures['failures']} failed, per worker {figures['players_per_worker']}): "
                f"{figures['ticks_per_second_per_match']} ticks/s, lateness p99 {figures['tick_lateness_ms_p99']} "
                f"ms, servers' CPU {figures['server_cpu_percent']}% = {figures['server_cpu_us_per_player_tick']} us "
                f"per player-tick, Redis {figures['redis_cpu_percent']}%, generator {figures['generator_cpu_percent']}%"
                f" -> {'held' if held(figures) else 'NOT held'}",
                flush=True,
            )
    largest = {
        workers: max((f["players"] for f in results if f["workers"] == workers and held(f)), default=None)
        for workers in worker_counts
    }
    print(f"largest player count held at {TARGET_TICK_RATE} Hz with tick lateness p99 < 5 ms: {largest}")
    if largest.get(1) and largest.get(2):
        print(f"2 workers / 1 worker: {largest[2] / largest[1]:.2f}")
    print(json.dumps({"bench": "workers", "largest_held": largest, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
