"""What reading the server's tick timings costs the event loop: /healthz's summary of the 10 s window, and the
monitor's point of the last second (both run between two ticks, so every match waits for them).

Fills a `TickStatistics` as a server of --matches matches at 30 Hz would in 10 s (every tick's lateness and
duration), then times `summary()` and the monitor's once-a-second percentiles. Prints milliseconds (best of
--repeat: this machine is shared).

Usage: .venv/bin/python bench/tick_statistics.py [--matches 75,125,250] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import trio

from server.match import TIMING_WINDOW_SECONDS, TickStatistics, percentiles_ms

TICK_RATE = 30


async def measure(matches: int, repeat: int) -> dict[str, float]:
    statistics = TickStatistics()
    rng = random.Random(7)
    now = trio.current_time()
    ticks = int(matches * TICK_RATE * TIMING_WINDOW_SECONDS)
    for index in range(ticks):
        started = now - TIMING_WINDOW_SECONDS + index / (matches * TICK_RATE)
        statistics.record(started, rng.random() * 0.002, rng.random() * 0.0003)
    summary = monitor = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        statistics.summary()
        summary = min(summary, time.perf_counter() - began)
        began = time.perf_counter()
        percentiles_ms(statistics.lateness_since(now - 1.0), (0.5, 0.99, 1.0))
        monitor = min(monitor, time.perf_counter() - began)
    return {
        "matches": matches,
        "ticks": ticks,
        "summary_ms": round(summary * 1e3, 3),
        "monitor_ms": round(monitor * 1e3, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matches", default="75,125,250", help="comma-separated (default 75,125,250)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    counts = [int(count) for count in args.matches.split(",")]
    if not all(1 <= count <= 2000 for count in counts) or not 1 <= args.repeat <= 50:
        parser.error("--matches each 1..2000, --repeat 1..50")
    results = []
    for count in counts:
        result = await measure(count, args.repeat)
        results.append(result)
        print(
            f"{count} matches ({result['ticks']} ticks in the window): /healthz's summary {result['summary_ms']} ms, "
            f"the monitor's point {result['monitor_ms']} ms",
            flush=True,
        )
    print(json.dumps({"bench": "tick_statistics", "results": results}))


if __name__ == "__main__":
    trio.run(main)
