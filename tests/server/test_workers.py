"""`arena serve --workers 2`, end to end as an operator runs it: two server processes on consecutive ports and a
redis-server of their own, one fleet (players connected to either meet), and SIGTERM stops all of them."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import trio

from bots.client import connect, http_request
from tests.browser.conftest import ServerProcess, start_server_process
from tests.conftest import join_together


def free_consecutive_ports(count: int) -> int:
    """A port P such that P to P + count - 1 are all free now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports found")


async def health(port: int) -> dict:
    _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/healthz")
    return json.loads(body)


async def wait_for_workers(port: int, count: int) -> None:
    """Until each worker answers and sees the whole fleet."""
    with trio.fail_after(15):
        for worker_port in range(port, port + count):
            while True:
                try:
                    if (await health(worker_port)).get("fleet", {}).get("servers") == count:
                        break
                except OSError:
                    pass  # not listening yet
                await trio.sleep(0.1)


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def start_two_workers(data_dir) -> tuple[int, ServerProcess]:
    """`arena serve --workers 2` on two free consecutive ports (the first is returned), quick to form matches."""
    port = free_consecutive_ports(2)
    group = start_server_process(
        "--workers", "2", "--port", str(port), "--queue-wait", "0.3", "--no-bots", "--no-replays",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    return port, group


async def test_two_workers_are_one_fleet_and_sigterm_stops_them_and_their_redis(tmp_path):
    port, group = start_two_workers(tmp_path)
    try:
        await wait_for_workers(port, 2)
        children = children_of(group.process.pid)
        assert len(children) == 3, children  # two workers and redis-server
        async with (
            connect(f"ws://127.0.0.1:{port}/ws", name="alice") as alice,
            connect(f"ws://127.0.0.1:{port + 1}/ws", name="bob") as bob,
        ):
            await join_together(alice, bob)
            assert alice.match == bob.match and alice.url == bob.url
            for worker_port in (port, port + 1):
                with trio.fail_after(5):
                    while True:
                        _, body = await http_request(f"http://127.0.0.1:{worker_port}", "GET", "/matches")
                        listed = json.loads(body)["matches"]
                        if [match["id"] for match in listed] == [alice.match]:
                            break
                        await trio.sleep(0.2)
                assert listed[0]["url"] == alice.url and listed[0]["players"] == 2
        group.process.send_signal(signal.SIGTERM)
        assert group.process.wait(timeout=20) == 0
        assert not any(alive(child) for child in children), "a worker or redis-server outlived the group"
    finally:
        if group.process.poll() is None:
            group.process.kill()
            group.process.wait()
        if group.process.stdout:
            group.process.stdout.close()


async def test_sighup_restarts_the_workers_one_by_one_and_the_match_moves_and_goes_on(tmp_path):
    port, group = start_two_workers(tmp_path)
    try:
        await wait_for_workers(port, 2)
        workers_before = set(children_of(group.process.pid))
        async with (
            connect(f"ws://127.0.0.1:{port}/ws", name="alice") as alice,
            connect(f"ws://127.0.0.1:{port + 1}/ws", name="bob") as bob,
        ):
            await join_together(alice, bob)
            match_id, players = alice.match, {alice: alice.player, bob: bob.player}
            group.process.send_signal(signal.SIGHUP)
            moves = 0
            with trio.move_on_after(25):  # two drains and restarts, REJOIN_SECONDS after each
                while True:
                    for client in (alice, bob):
                        with trio.move_on_after(0.05):
                            await client.receive()
                        if client.moved is not None:
                            moves += client is alice
                            joined = await client.follow_move()
                            assert joined.match == match_id and joined.player == players[client]
                    restarted = set(children_of(group.process.pid)) - workers_before
                    if len(restarted) == 2 and moves:
                        break
            assert moves >= 1, "the match never moved"
            assert len(set(children_of(group.process.pid)) - workers_before) == 2, "not every worker was restarted"
            tick = alice.view.tick if alice.view else 0
            with trio.fail_after(10):  # still one match, still playing (after the last move, if its word still waited)
                while alice.view is None or alice.view.tick < tick + 10:
                    await alice.receive()
                    if alice.moved is not None:
                        joined = await alice.follow_move()
                        assert joined.match == match_id and joined.player == players[alice]
            assert alice.match == bob.match == match_id
    finally:
        group.process.terminate()
        group.process.wait(timeout=30)
        if group.process.stdout:
            group.process.stdout.close()


def test_workers_without_a_fixed_port_or_with_a_bad_count_are_refused_with_what_to_give():
    for options, says in (
        (["--workers", "2", "--port", "0"], "fixed --port"),
        (["--workers", "none"], "a number or 'auto'"),
        (["--workers", "0"], "from 1 to 256"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "server", *options], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 2, (options, done.stderr)
        assert says in done.stderr, (options, done.stderr)
