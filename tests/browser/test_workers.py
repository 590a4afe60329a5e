"""A browser that knows one address plays in a match of another worker of `arena serve --workers 2`: the page,
from worker 0, is sent to worker 1 by `reserved`, plays there, and resumes there after a drop."""

from __future__ import annotations

import json
import signal
import threading
import time

import trio

from bots.client import connect, http_request
from server.messages import Leave, Left
from tests.browser.test_client import FAST_QUEUE, start_two_players, wait_for
from tests.conftest import join_together
from tests.server.test_workers import children_of, free_consecutive_ports, health, wait_for_workers


class BotPair:
    """Two protocol clients that queue for a duel through worker 0 and stay in their match until `leave()`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url: str | None = None
        self.joined = threading.Event()
        self._leave = threading.Event()
        self._thread = threading.Thread(target=lambda: trio.run(self._run), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws"
        async with connect(url, name="bot-a") as a, connect(url, name="bot-b") as b:
            await join_together(a, b)
            self.url = a.url
            self.joined.set()
            with trio.move_on_after(60):
                while not self._leave.is_set():
                    await trio.sleep(0.1)
            for client in (a, b):
                await client.send(Leave())
                await client.receive_until(lambda m: m if isinstance(m, Left) else None)

    def wait_joined(self) -> str:
        assert self.joined.wait(15), "the bots found no match"
        assert self.url is not None
        return self.url

    def leave(self) -> None:
        self._leave.set()
        self._thread.join(15)


def _admitting(port: int) -> bool:
    async def ask() -> bool:
        return bool((await health(port))["load"]["admitting_matches"])

    return trio.run(ask)


def _wait_until(condition, what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        time.sleep(0.1)


def test_a_page_from_worker_0_plays_on_worker_1_and_resumes_there(server_process, open_page, artifacts):
    port = free_consecutive_ports(2)
    # a worker with a match running has no room for another (a tiny tick budget): so the pages' match goes to
    # the worker without one, which this test makes worker 1
    server_process("--workers", "2", "--port", str(port), *FAST_QUEUE, "--max-tick-load", "1e-9", "--no-replays")
    trio.run(wait_for_workers, port, 2)
    pairs = [BotPair(port)]
    if pairs[0].wait_joined().endswith(f":{port + 1}/ws"):
        _wait_until(lambda: not _admitting(port + 1), "worker 1 is full")
        pairs.append(BotPair(port))
        assert pairs[1].wait_joined().endswith(f":{port}/ws")
        pairs[0].leave()  # its match closes: worker 1 has room again
    _wait_until(lambda: not _admitting(port), "worker 0 is full")
    _wait_until(lambda: _admitting(port + 1), "worker 1 has room")

    alice, bob = start_two_players(open_page, f"http://127.0.0.1:{port}")
    worker_1 = f"ws://127.0.0.1:{port + 1}/ws"
    for page in (alice.page, bob.page):
        assert page.evaluate("window.arena.serverUrl") == worker_1
    me = alice.page.evaluate("window.arena.playerId")
    alice.page.evaluate("window.arena.dropConnection()")
    wait_for(alice.page, "window.arena.reconnects >= 1 && window.arena.connection === 'in_match'")
    assert alice.page.evaluate("window.arena.playerId") == me
    assert alice.page.evaluate("window.arena.serverUrl") == worker_1
    alice.page.screenshot(path=str(artifacts / "workers-page-on-worker-1.png"))

    async def listed() -> list[dict]:
        _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/matches")
        return json.loads(body)["matches"]

    match_id = alice.page.evaluate("window.arena.matchId")
    _wait_until(lambda: any(match["id"] == match_id for match in trio.run(listed)), "worker 0 lists the match")
    assert [match["url"] for match in trio.run(listed) if match["id"] == match_id] == [worker_1]
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)
    for pair in pairs:
        pair.leave()


def test_a_deploy_moves_the_pages_match_and_they_play_on_with_their_scores(server_process, open_page, artifacts):
    port = free_consecutive_ports(2)
    group = server_process("--workers", "2", "--port", str(port), *FAST_QUEUE, "--no-replays")
    trio.run(wait_for_workers, port, 2)
    workers_before = set(children_of(group.process.pid))
    alice, bob = start_two_players(open_page, f"http://127.0.0.1:{port}")
    match_id = alice.page.evaluate("window.arena.matchId")
    ids = [page.page.evaluate("window.arena.playerId") for page in (alice, bob)]
    group.process.send_signal(signal.SIGHUP)  # `systemctl reload`: each worker drains and starts again in turn
    _wait_until(lambda: len(set(children_of(group.process.pid)) - workers_before) == 2, "both workers restarted", 40)
    for page, player_id in zip((alice, bob), ids, strict=True):
        wait_for(page.page, "window.arena.connection === 'in_match'", timeout=15)
        assert page.page.evaluate("window.arena.matchId") == match_id
        assert page.page.evaluate("window.arena.playerId") == player_id
        # the last worker to restart handed the match to worker 0, where it goes on
        assert page.page.evaluate("window.arena.serverUrl") == f"ws://127.0.0.1:{port}/ws"
    tick = alice.page.evaluate("window.arena.tick")
    wait_for(alice.page, f"window.arena.tick > {tick} + 30")
    alice.page.screenshot(path=str(artifacts / "workers-after-a-deploy.png"))
    assert not alice.errors and not bob.errors, (alice.errors, bob.errors)
