"""A deploy's cost to players: the pause a player sees when its match moves to another server, and the Redis
round trips the fleet spends per match formed.

Starts a redis-server of its own and two `arena serve --redis` servers (no server-side bots), connects PLAYERS
protocol clients (bots/client.py) to the first in 8-player ffa matches, which the fleet spreads over both by load,
lets them play (inputs 10 Hz) for a few seconds, then sends SIGTERM to the server that hosts the most matches.
Every player of its matches is told `moved`, connects to the other server and resumes there. Per player: the
pause from the last state it got from the old server to the first state from the new one (what a player sees
freeze), and its part: from `moved` to `joined` on the new server. The servers' /healthz give the Redis round
trips by purpose; they are divided by the matches formed.

Usage: .venv/bin/python bench/migration.py [--players 160] [--port 8800]
Prints the figures and last one JSON object with them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from bots.client import ArenaClient, connect, http_request
from game import Delta, Snapshot
from server.messages import Moved
from server.workers import PrivateRedis

SERVER_OPTIONS = ("--queue-wait", "0.5", "--no-bots", "--match-seconds", "3600", "--kill-limit", "1000000",
                  "--no-replays", "--max-connections-per-ip", "0", "--guest-tokens-per-minute", "100000",
                  "--max-tick-load", "1", "--log-level", "warning")  # fmt: skip


def start_server(port: int, redis_url: str, data_dir: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server", "--port", str(port), "--redis", redis_url, "--data-dir", data_dir]
    server = subprocess.Popen([*command, *SERVER_OPTIONS], stdout=subprocess.PIPE)
    assert server.stdout is not None
    while b"open http://" not in server.stdout.readline():
        if server.poll() is not None:
            raise SystemExit(f"migration: the server on port {port} did not start: is the port free?")
    return server


async def health(port: int) -> dict:
    _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/healthz")
    return json.loads(body)


def quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else None


async def play(client: ArenaClient, moved_at: dict, pauses: dict, rng: random.Random, stop: trio.Event) -> None:
    """Play until `stop`; when the match moves, follow it and note the pause."""
    last_state_at = trio.current_time()
    next_input = trio.current_time()
    while not stop.is_set():
        message = None
        with trio.move_on_at(next_input):
            message = await client.receive()
            if isinstance(message, Snapshot | Delta):
                last_state_at = trio.current_time()
        if isinstance(message, Moved):  # follow it (not under the input timer's deadline)
            moved = trio.current_time()
            await client.follow_move(timeout=10)  # returns once the first snapshot is in
            moved_at[client] = trio.current_time() - moved
            pauses[client] = trio.current_time() - last_state_at
            last_state_at = trio.current_time()
        if trio.current_time() >= next_input:
            next_input += 0.1
            await client.send_input(mx=rng.choice((-1, 0, 1)), my=rng.choice((-1, 0, 1)), aim=rng.uniform(-3, 3))


async def run(players: int, port: int, redis_url: str, data_dir: str) -> dict:
    servers = {p: start_server(p, redis_url, os.path.join(data_dir, str(p))) for p in (port, port + 1)}
    try:
        with trio.fail_after(15):
            while not all([(await health(p)).get("fleet", {}).get("servers") == 2 for p in servers]):
                await trio.sleep(0.1)
        moved_at: dict = {}
        pauses: dict = {}
        stop = trio.Event()
        clients: list[ArenaClient] = []
        async with trio.open_nursery() as nursery:

            async def player(index: int) -> None:
                async with connect(f"ws://127.0.0.1:{port}/ws", name=f"p{index}", timeout=30) as client:
                    await client.join("ffa", timeout=30)
                    clients.append(client)
                    await play(client, moved_at, pauses, random.Random(index), stop)

            for index in range(players):
                nursery.start_soon(player, index)
                if index % 40 == 39:
                    await trio.sleep(0.5)
                    print(f"  {len(clients)}/{players} playing", file=sys.stderr, flush=True)
            with trio.fail_after(60):
                while len(clients) < players:
                    await trio.sleep(0.1)
            await trio.sleep(3)
            before = {p: await health(p) for p in servers}
            drained = max(servers, key=lambda p: before[p]["matches"])
            print(f"draining the server on port {drained} ({before[drained]['matches']} matches)", file=sys.stderr)
            drain_started = time.monotonic()
            servers[drained].send_signal(signal.SIGTERM)
            moving = before[drained]["players"]
            with trio.move_on_after(20):
                while len(moved_at) < moving:
                    await trio.sleep(0.05)
            drain_seconds = time.monotonic() - drain_started
            await trio.sleep(1)
            after = await health(port + 1 if drained == port else port)
            stop.set()
            nursery.cancel_scope.cancel()
        formed = sum(b["counters"].get("matches_formed", 0) for b in before.values())
        trips: dict[str, int] = {}
        for figures in before.values():
            for purpose, count in figures["matchmaking"].get("redis_round_trips", {}).items():
                trips[purpose] = trips.get(purpose, 0) + count
        per_round = ("read", "lease")  # every server's every round (10 a second), matches formed or not
        per_match = {
            purpose: round(count / max(1, formed), 2) for purpose, count in trips.items() if purpose not in per_round
        }
        per_match["total"] = round(
            sum(c for p, c in trips.items() if p not in per_round and p != "formed") / max(1, formed), 2
        )
        return {
            "players": players,
            "matches_formed": formed,
            "matches_on_the_drained_server": before[drained]["matches"],
            "players_moved": len(moved_at),
            "players_to_move": moving,
            "matches_moved_in": after["counters"].get("matches_moved", 0),
            "pause_ms": {
                "p50": quantile(list(pauses.values()), 0.5),
                "p99": quantile(list(pauses.values()), 0.99),
                "max": quantile(list(pauses.values()), 1.0),
            },
            "moved_to_joined_ms": {
                "p50": quantile(list(moved_at.values()), 0.5),
                "p99": quantile(list(moved_at.values()), 0.99),
            },
            "drain_seconds": round(drain_seconds, 2),
            "redis_round_trips_per_match_formed": per_match,
        }
    finally:
        for server in servers.values():
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=30)
            if server.stdout:
                server.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=160, help="players (default %(default)s)")
    parser.add_argument("--port", type=int, default=8800, help="first server's port; the second's is +1")
    args = parser.parse_args()
    if not 8 <= args.players <= 2000:
        print("migration: --players must be 8..2000", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as directory:
        redis = PrivateRedis(Path(directory))
        redis.start()
        try:
            figures = trio.run(run, args.players, args.port, redis.url, directory)
        finally:
            redis.stop()
    pause = figures["pause_ms"]
    print(
        f"{figures['players_moved']}/{figures['players_to_move']} players moved with "
        f"{figures['matches_on_the_drained_server']} matches; pause a player saw: p50 {pause['p50']} ms, "
        f"p99 {pause['p99']} ms, max {pause['max']} ms (moved -> joined p50 {figures['moved_to_joined_ms']['p50']} "
        f"ms); drain took {figures['drain_seconds']} s"
    )
    print(
        f"Redis round trips per match formed: {figures['redis_round_trips_per_match_formed']} (besides 2 per server "
        "per matchmaking round, 10 rounds a second: the fleet's tickets read, the lease)"
    )
    print(json.dumps({"bench": "migration", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
