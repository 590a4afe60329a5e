"""A fan-out peer for bench/compare.py: the Python `websockets` library broadcasting one frame to every client.

Every 1/RATE s on a fixed schedule it calls `websockets.broadcast(clients, payload)` with a PAYLOAD_BYTES
binary payload whose first 16 bytes are the send time (time.monotonic_ns, CLOCK_MONOTONIC) and the broadcast's
sequence number. A connection to /control is not a receiver: a text message "stats" sent on it is answered
with JSON: ticks, and the lateness of the broadcasts over the last 10 s (p50, p99, max, in ms).

Usage: python bench/peers/websockets_broadcast.py PORT
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from collections import deque

import websockets
from websockets.asyncio.server import ServerConnection, serve

RATE = 30
PAYLOAD_BYTES = 154
WINDOW_SECONDS = 10.0

receivers: set[ServerConnection] = set()
lateness: deque[tuple[float, float]] = deque(maxlen=100_000)
ticks = 0


def stats() -> str:
    since = time.monotonic() - WINDOW_SECONDS
    recent = sorted(late for at, late in lateness if at >= since)

    def percentile_ms(fraction: float) -> float:
        return round(recent[min(len(recent) - 1, int(fraction * len(recent)))] * 1000, 3) if recent else 0.0

    return json.dumps(
        {
            "ticks": ticks,
            "lateness_ms_p50": percentile_ms(0.5),
            "lateness_ms_p99": percentile_ms(0.99),
            "lateness_ms_max": percentile_ms(1.0),
            "receivers": len(receivers),
        }
    )


async def handle(connection: ServerConnection) -> None:
    if connection.request is not None and connection.request.path == "/control":
        async for message in connection:
            if message == "stats":
                await connection.send(stats())
        return
    receivers.add(connection)
    try:
        await connection.wait_closed()
    finally:
        receivers.discard(connection)


async def broadcast_forever() -> None:
    global ticks
    padding = bytes(PAYLOAD_BYTES - 16)
    interval = 1 / RATE
    due = time.monotonic()
    while True:
        due += interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = time.monotonic()
        lateness.append((now, now - due))
        ticks += 1
        websockets.broadcast(receivers, struct.pack("!QQ", time.monotonic_ns(), ticks) + padding)


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, compression=None, max_queue=1, ping_interval=None):
        print(f"listening on {port}", flush=True)
        await broadcast_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
