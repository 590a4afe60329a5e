"""The admin API behind the monitor: refused without an admin token configured or presented; end a match, kick a
player, drain the server, each end to end over real sockets."""

from __future__ import annotations

import json

import trio

from bots.client import connect
from server.messages import Left
from tests.conftest import ws_url
from tests.server.rawws import http_exchange, http_get

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
BEARER = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"


async def post(port: int, path: str, *, authorization: str = BEARER) -> tuple[int, dict]:
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n{authorization}\r\n"
    response = await http_exchange(port, request.encode())
    return response.status, json.loads(response.body) if response.body.startswith(b"{") else {}


async def test_without_an_admin_token_the_monitor_and_the_api_are_off(server):
    for path in ("/monitor", "/admin/state"):
        response = await http_get(server.port, path, extra=BEARER)
        assert response.status == 404
        assert b"--admin-token-file" in response.body


async def test_the_api_wants_the_token(server_factory):
    server = await server_factory(admin_token=ADMIN_TOKEN)
    assert (await http_get(server.port, "/monitor")).status == 200  # the page itself holds nothing secret
    assert (await http_get(server.port, "/admin/state")).status == 401
    assert (await http_get(server.port, "/admin/state", extra="Authorization: Bearer wrong\r\n")).status == 401
    assert (await post(server.port, "/admin/drain", authorization="")) == (401, {})
    state = (await http_get(server.port, "/admin/state", extra=BEARER)).json()
    assert state["server"]["status"] == "ok" and state["matches"] == []


async def test_kick_and_end_match_end_to_end(server_factory):
    server = await server_factory(admin_token=ADMIN_TOKEN)
    url = ws_url(server)
    async with connect(url, name="alice") as alice, connect(url, name="bob") as bob:
        await alice.join()
        await bob.join()
        with trio.fail_after(3):
            while True:
                state = (await http_get(server.port, "/admin/state", extra=BEARER)).json()
                seats = state["matches"][0]["seats"] if state["matches"] else []
                if len(seats) == 2 and all(seat["ping_ms"] is not None for seat in seats):
                    break
                await trio.sleep(0.1)
        assert {seat["name"] for seat in seats} == {"alice", "bob"}
        bob_subject = bob.authenticated.player
        assert await post(server.port, f"/admin/players/{bob_subject}/kick") == (200, {"kicked": bob_subject})
        left = await bob.receive_until(lambda m: m if isinstance(m, Left) else None, timeout=3)
        assert left.reason == "kicked"
        with trio.fail_after(3):
            while "4003" not in server.health()["close_codes"]:
                await trio.sleep(0.05)
        match_id = alice.match
        assert await post(server.port, f"/admin/matches/{match_id}/end") == (200, {"ended": match_id})
        left = await alice.receive_until(lambda m: m if isinstance(m, Left) else None, timeout=3)
        assert left.reason == "match_closed"
        status, body = await post(server.port, "/admin/matches/nope/end")
        assert status == 404 and "nope" in body["error"]


async def test_drain_from_the_api(server_factory):
    server = await server_factory(admin_token=ADMIN_TOKEN)
    async with connect(ws_url(server), name="dave") as dave:
        assert await post(server.port, "/admin/drain") == (202, {"draining": True, "timeout_seconds": 5.0})
        closed = await dave.receive_until_closed(timeout=3)
        assert closed.code == 1001
        assert server.draining


async def test_the_monitor_plots_each_seconds_tick_lateness_while_a_match_runs(server_factory):
    server = await server_factory(admin_token=ADMIN_TOKEN)
    async with connect(ws_url(server), name="carol") as carol:
        await carol.join()
        with trio.fail_after(5):
            while True:
                history = (await http_get(server.port, "/admin/state", extra=BEARER)).json()["history"]
                ticking = [point for point in history if point["lateness_ms_p50"] is not None]
                if ticking:
                    break
                await trio.sleep(0.2)
    point = ticking[-1]
    assert all(isinstance(point[key], float) for key in ("lateness_ms_p50", "lateness_ms_p99", "lateness_ms_max"))
    assert 0 <= point["lateness_ms_p50"] <= point["lateness_ms_p99"] <= point["lateness_ms_max"]
