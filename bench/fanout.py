"""Fan-out cost of Arena's server: CPU per client-message and tick lateness with many players in real matches.

Starts `arena serve` pinned to core 0, then opens CLIENTS connections from this process pinned to core 1. Each
client does the real handshake (guest token, hello, queue, join) with bots.client and then only drains its
socket, so the load generator costs little. Over a measuring window it reads the server's CPU time from
/proc and its tick timing from /healthz, and prints server CPU per client-message (one delta to one client).

Usage: .venv/bin/python bench/fanout.py [--clients 200,400,800] [--seconds 10] [--profile DIR]
Prints a line per client count and, last, one JSON object with all figures. With --profile, py-spy samples
the server over each measuring window: DIR/arena-<clients>.txt holds the collapsed stacks (for any flame graph
tool) and the functions taking the most time are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sized
from contextlib import contextmanager

import trio

from bots.client import connect, http_request

TICK_RATE = 30


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of process `pid` ("self" for this one), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


IDLE_PROBE = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
deadline = time.monotonic() + float(sys.argv[2])
spins = 0
while time.monotonic() < deadline:
    for _ in range(10_000):
        pass
    spins += 1
print(spins)
"""


def idle_spins(core: int, seconds: float) -> subprocess.Popen[str]:
    """A spinner on `core` that runs only when nothing else wants the core (SCHED_IDLE), for `seconds`; it prints
    how many rounds it spun. Against the rounds it spins on an idle core, that says how much of the core the
    others really used: unlike a process's CPU time, which a virtual machine's tick-based accounting overcharges
    for a process that sleeps and wakes often (measured here: an idle `epoll_wait` of 10 ms billed 79 us)."""
    command = [sys.executable, "-c", IDLE_PROBE, str(core), str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def spins_of(probe: subprocess.Popen[str]) -> int:
    output, _ = probe.communicate()
    return int(output)


async def ramp(count: int, join: Callable[[int], Awaitable[None]], joined: Sized, *, batch: int, progress: str) -> None:
    """Start `join(index)` for each of `count` clients, `batch` at a time a quarter second apart, printing
    `progress` with how many have joined (`len(joined)`) after each batch; returns once all have tried."""
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(join, index)
            if index % batch == batch - 1:
                await trio.sleep(0.25)
                print(f"  {progress.format(joined=len(joined), count=count)}", file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid`, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def _health(url: str) -> dict:
    _, body = await http_request(url, "GET", "/healthz")
    return json.loads(body)


async def _hold_clients(url: str, count: int, ready: trio.Event, stop: trio.Event, failures: list[str]) -> None:
    joined = 0

    async def one(index: int) -> None:
        nonlocal joined
        try:
            async with connect(url, name=f"fan{index}", message_queue_size=256, timeout=30) as client:
                await client.join("ffa", timeout=30)
                joined += 1
                if joined == count:
                    ready.set()
                while not stop.is_set():
                    await client.ws.get_message()  # drain: received, not decoded
        except Exception as error:
            failures.append(repr(error)[:120])
            if joined + len(failures) >= count:
                ready.set()

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
            if index % 50 == 49:
                await trio.sleep(0.2)  # ramp
        await stop.wait()
        nursery.cancel_scope.cancel()


class ServerDidNotStart(RuntimeError):
    """`arena serve` exited before it said it was listening."""


LOAD_FROM_ONE_HOST = ("--max-connections-per-ip", "0", "--guest-tokens-per-minute", "100000")
"""Every benchmark client comes from 127.0.0.1: the per-address limits meant for the open internet are off."""


@contextmanager
def arena_server(
    port: int, *options: str, core: int = 0, load_from_one_host: bool = True
) -> Iterator[subprocess.Popen[bytes]]:
    """`arena serve --port PORT OPTIONS` pinned to `core`, once it listens; stopped on leaving. With
    `load_from_one_host` the per-address limits are off (`LOAD_FROM_ONE_HOST`).

    Raises:
        ServerDidNotStart: if it exits first (a port in use, say).
    """
    command = ["taskset", "-c", str(core), sys.executable, "-m", "server", "--port", str(port)]
    command += [*LOAD_FROM_ONE_HOST, *options] if load_from_one_host else options
    server = subprocess.Popen([*command, "--log-level", "warning"], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        while b"open http://" not in server.stdout.readline():
            if server.poll() is not None:
                raise ServerDidNotStart(f"the server did not start ({' '.join(command)}): is port {port} free?")
        yield server
    finally:
        server.terminate()
        server.wait(timeout=15)
        if server.stdout is not None:
            server.stdout.close()


def py_spy_path() -> str:
    """The py-spy beside this Python, or on PATH; exits with what to do when there is none."""
    beside_python = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.path.exists(beside_python):
        return beside_python
    on_path = shutil.which("py-spy")
    if on_path is None:
        sys.exit("--profile needs py-spy, which is not installed: run `.venv/bin/pip install -e '.[bench]'`")
    return on_path


def start_profile(pid: int, seconds: float, output: str) -> subprocess.Popen[bytes]:
    command = [py_spy_path(), "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", "250"]
    command += ["--format", "raw", "--output", output, "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _function_of(frame: str) -> str:
    """'name (path/file.py:line)' -> 'name (file.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})"


def print_profile_summary(path: str, top: int = 25) -> None:
    """Print the functions with the most samples, on the stack (total) and at its top (self)."""
    total: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    with open(path) as collapsed:
        for line in collapsed:
            stack, _, count_text = line.rstrip().rpartition(" ")
            count = int(count_text)
            samples += count
            frames = [_function_of(frame) for frame in stack.split(";")]
            for frame in set(frames):
                total[frame] = total.get(frame, 0) + count
            own[frames[-1]] = own.get(frames[-1], 0) + count
    print(f"profile {path}: {samples} samples; functions by share of samples (total / self):")
    for frame, count in sorted(own.items(), key=lambda item: -item[1])[:top]:
        print(f"  {100 * total[frame] / samples:5.1f}% {100 * count / samples:5.1f}%  {frame}")


async def _measure(url: str, pid: int, clients: int, seconds: float, profile: str | None) -> dict:
    ready, stop, failures = trio.Event(), trio.Event(), []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold_clients, url, clients, ready, stop, failures)
        with trio.fail_after(120):
            await ready.wait()
        await trio.sleep(2)  # settle
        before = await _health(url)
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        profiler = start_profile(pid, seconds, profile) if profile else None
        await trio.sleep(seconds)
        if profiler is not None:
            await trio.to_thread.run_sync(profiler.wait)
        cpu_after, elapsed = cpu_seconds(pid), time.monotonic() - started
        after = await _health(url)
        rss = rss_bytes(pid)
        stop.set()
    ticks = after["tick"]["ticks"] - before["tick"]["ticks"]
    players = after["players"]
    client_messages = ticks * players / max(1, after["matches"])  # every player of a match gets each tick's delta
    return {
        "clients": clients,
        "failures": len(failures),
        "players": players,
        "matches": after["matches"],
        "achieved_tick_rate_per_match": round(ticks / max(1, after["matches"]) / elapsed, 2),
        "server_cpu_percent": round(100 * (cpu_after - cpu_before) / elapsed, 1),
        "server_cpu_us_per_client_message": round(1e6 * (cpu_after - cpu_before) / max(1, client_messages), 2),
        "tick_lateness_ms_p50": after["tick"]["lateness_ms_p50"],
        "tick_lateness_ms_p99": after["tick"]["lateness_ms_p99"],
        "server_rss_mb": round(rss / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="100,200,400", help="comma-separated client counts (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per count (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--profile", metavar="DIR", help="sample the server with py-spy and write the stacks here")
    args = parser.parse_args()
    if args.profile:
        py_spy_path()  # before any server starts: say what is missing now, not after a ramp
    counts = [int(c) for c in args.clients.split(",")]
    if any(not 1 <= c <= 5000 for c in counts):
        print("bench: client counts must be from 1 to 5000", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {1})
    results = []
    for count in counts:
        profile = os.path.join(args.profile, f"arena-{count}.txt") if args.profile else None
        if profile:
            os.makedirs(args.profile, exist_ok=True)
        options = ("--queue-wait", "0.2", "--no-bots", "--match-seconds", "600")
        with arena_server(args.port, *options) as server:
            figures = trio.run(_measure, f"ws://127.0.0.1:{args.port}/ws", server.pid, count, args.seconds, profile)
        results.append(figures)
        if profile:
            print_profile_summary(profile)
        print(
            f"{count:5d} clients: {figures['players']} players in {figures['matches']} matches, "
            f"{figures['achieved_tick_rate_per_match']} ticks/s, server CPU {figures['server_cpu_percent']}% "
            f"= {figures['server_cpu_us_per_client_message']} us per client-message, tick lateness p50 "
            f"{figures['tick_lateness_ms_p50']} ms p99 {figures['tick_lateness_ms_p99']} ms, "
            f"RSS {figures['server_rss_mb']} MB, {figures['failures']} failed",
            flush=True,
        )
    print(json.dumps({"bench": "fanout", "stack": "arena", "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
