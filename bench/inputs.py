"""The receive side: server CPU per client input message.

Starts `arena serve` alone on core 0; from this process on core 1, SENDERS connections say hello and then send
inputs at RATE per second each (outside a match, so the server validates and rate-limits every input and the
match costs nothing), and the server's CPU time over a window is divided by the inputs sent in it. Idle
connections cost a little too (keepalive); `--rate 0` measures that alone.

Usage: .venv/bin/python bench/inputs.py [--senders 200] [--rate 30] [--seconds 6] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
from functools import partial

import trio
from compare import open_counter
from fanout import arena_server, cpu_seconds, print_profile_summary, py_spy_path, start_profile
from whole_game import Player, play_all

from bots.client import guest_token
from server.codec import encode
from server.messages import PROTOCOL_VERSION, Hello

PORT = 8790


async def measure(pid: int, senders: int, rate: float, seconds: float, profile: str | None) -> dict:
    arrivals: queue.SimpleQueue[Player] = queue.SimpleQueue()
    stop, failures, players = threading.Event(), [], []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, play_all, arrivals, stop, failures))
        for index in range(senders):
            token = await guest_token(f"ws://127.0.0.1:{PORT}/ws", f"sender{index}")
            counter = await open_counter(PORT, "/ws", keep_payloads=False)
            await counter.send(encode(Hello(protocol=PROTOCOL_VERSION, token=token, name=f"sender{index}")))
            counter.detach()
            player = Player(counter, random.Random(index), rate or 1e-9)
            players.append(player)
            arrivals.put(player)
        await trio.sleep(3)
        sent_before, cpu_before, started = sum(p.seq for p in players), cpu_seconds(pid), time.monotonic()
        profiler = start_profile(pid, seconds, profile) if profile else None
        await trio.sleep(seconds)
        if profiler is not None:
            await trio.to_thread.run_sync(profiler.wait)
        sent, cpu = sum(p.seq for p in players) - sent_before, cpu_seconds(pid) - cpu_before
        elapsed = time.monotonic() - started
        stop.set()
        nursery.cancel_scope.cancel()
    for player in players:
        if player.counter.sock is not None:
            player.counter.sock.close()
    return {
        "senders": senders,
        "inputs_per_second": round(sent / elapsed),
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "server_cpu_us_per_input": round(1e6 * cpu / sent, 1) if sent else None,
        "failures": len(failures),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--rate", type=float, default=30.0, help="inputs per second per sender (max 100)")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--profile", metavar="DIR", help="sample the server with py-spy and print where time goes")
    args = parser.parse_args()
    if args.profile:
        py_spy_path()  # before any server starts: say what is missing now, not after a ramp
    if not 1 <= args.senders <= 5000 or not 0 <= args.rate <= 100 or not 1 <= args.seconds <= 120:
        print("inputs: --senders 1..5000, --rate 0..100 (the server allows 120 messages/s), --seconds 1..120")
        return 2
    os.sched_setaffinity(0, {1})
    profile = None
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        profile = os.path.join(args.profile, f"inputs-{args.senders}x{args.rate:g}.txt")
    with arena_server(PORT, "--max-tick-load", "1") as server:  # every sender plays, whatever the load
        figures = trio.run(measure, server.pid, args.senders, args.rate, args.seconds, profile)
    print(
        f"{figures['senders']} senders, {figures['inputs_per_second']} inputs/s: server CPU "
        f"{figures['server_cpu_percent']}% = {figures['server_cpu_us_per_input']} us per input "
        f"({figures['failures']} failed)"
    )
    if profile:
        print_profile_summary(profile)
    print(json.dumps({"bench": "inputs", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
