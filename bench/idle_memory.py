"""Idle connection memory: the server's RSS per connection that has said hello and does nothing else.

Starts `arena serve` alone on core 0, opens 20 connections to warm it up, then COUNT more (each with its guest
token and hello, then idle) from this process on core 1, and prints (RSS after - RSS before) / COUNT.

Usage: .venv/bin/python bench/idle_memory.py [--count 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import trio
from fanout import arena_server, rss_bytes

from bots.client import connect

WARM_UP = 20
PORT = 8791


async def measure(pid: int, count: int) -> dict:
    connected = 0

    async def hold(index: int) -> None:
        nonlocal connected
        async with connect(f"ws://127.0.0.1:{PORT}/ws", name=f"idle{index}", timeout=30):
            connected += 1
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for index in range(WARM_UP):
            nursery.start_soon(hold, index)
        with trio.fail_after(60):
            while connected < WARM_UP:
                await trio.sleep(0.05)
        await trio.sleep(1)
        before = rss_bytes(pid)
        for index in range(WARM_UP, WARM_UP + count):
            nursery.start_soon(hold, index)
            if index % 100 == 0:
                await trio.sleep(0.05)
                print(f"  {connected - WARM_UP}/{count} connected", file=sys.stderr, flush=True)
        with trio.fail_after(120):
            while connected < WARM_UP + count:
                await trio.sleep(0.1)
        await trio.sleep(2)
        after = rss_bytes(pid)
        nursery.cancel_scope.cancel()
    return {
        "connections": count,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / count / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="idle connections (default %(default)s)")
    args = parser.parse_args()
    if not 1 <= args.count <= 20_000:
        print("idle_memory: --count must be from 1 to 20000", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {1})
    with arena_server(PORT) as server:
        figures = trio.run(measure, server.pid, args.count)
    print(f"{figures['connections']} idle connections: {figures['kib_per_connection']} KiB of server RSS each")
    print(json.dumps({"bench": "idle_memory", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
