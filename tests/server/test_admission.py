"""Admission by load: a server whose matches' ticks take its budget starts no new match; queued players wait
until there is room, and /healthz says so."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from bots.client import connect
from server.messages import Leave, Reserved
from tests.conftest import ws_url


async def test_a_server_without_room_keeps_players_queued_until_a_match_ends(server_factory):
    server = await server_factory(max_tick_load=1e-9)  # any running match fills the budget
    url = ws_url(server)
    async with connect(url, name="first") as first, connect(url, name="second") as second:
        await first.join("duel")  # alone: a bot joins after the duel's wait
        with trio.fail_after(5):
            while server.health()["load"]["admitting_matches"]:
                await first.receive()
        assert server.health()["load"]["ticks"] > 0

        reserved = None
        with trio.move_on_after(2.5):  # past the duel's 1 s wait for a bot: a match would have formed by now
            reserved = await second.queue("duel", timeout=3)
        assert reserved is None, "a new match started on a server with no room for one"
        assert server.health()["queued"] == 1

        await first.send(Leave())
        with trio.fail_after(10):
            reserved = await second.receive_until(lambda m: m if isinstance(m, Reserved) else None, timeout=10)
        assert isinstance(reserved, Reserved)


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_a_tick_load_limit_outside_a_core_is_refused_with_what_to_give(value, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--no-replays", "--data-dir", str(tmp_path),
         "--max-tick-load", value],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--max-tick-load is a share of a core" in result.stderr and "Traceback" not in result.stderr
