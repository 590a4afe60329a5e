"""One queue for a fleet of servers on a real redis-server: players connected to different servers meet in one
match, on the server the fleet placed it on, which they reach through the URL in `reserved`; a server whose ticks
use its budget hosts no new match, and its players play on another."""

from __future__ import annotations

import json

import trio

from bots.client import connect, http_request
from server.app import ArenaServer
from tests.conftest import join_together, make_token, start_server, ws_url


async def _wait_for_fleet(*servers: ArenaServer) -> None:
    """Until every server sees all of them through Redis."""
    with trio.fail_after(5):
        while not all(
            server.fleet is not None and server.fleet.view.connected and len(server.fleet.view.servers) == len(servers)
            for server in servers
        ):
            await trio.sleep(0.05)


async def test_two_players_on_two_servers_meet_in_one_duel_on_the_server_that_hosts_it(nursery, redis_server):
    first = await start_server(nursery, redis_url=redis_server.url)
    second = await start_server(nursery, redis_url=redis_server.url)
    await _wait_for_fleet(first, second)
    async with connect(ws_url(first), name="alice") as alice, connect(ws_url(second), name="bob") as bob:
        joined = dict(zip((alice, bob), await join_together(alice, bob), strict=True))
        assert joined[alice].match == joined[bob].match
        assert alice.url == bob.url  # one of them moved to the other's server: the host
        host = first if alice.url == ws_url(first) else second
        match = host.directory.matches[joined[alice].match]
        assert sorted(seat.subject for seat in match.humans) == sorted(
            [alice.authenticated.player, bob.authenticated.player]
        )
        assert match.bot_count == 0
        with trio.fail_after(3):  # both play: each sees the other in the match's state
            while len((alice.view.entities if alice.view else {}).get("players", {})) < 2:
                await alice.receive()
            while len((bob.view.entities if bob.view else {}).get("players", {})) < 2:
                await bob.receive()
    for server in (first, second):
        health = json.loads((await http_request(f"http://127.0.0.1:{server.port}", "GET", "/healthz"))[1])
        assert health["matchmaking"]["status"] == "ok", health["matchmaking"]
    assert sum(server.matchmaking.health()["leading"] for server in (first, second)) == 1  # one forms matches


async def test_a_server_without_room_hosts_no_new_match_and_its_players_play_on_another(nursery, redis_server):
    full = await start_server(nursery, redis_url=redis_server.url, max_tick_load=1e-9)
    async with connect(ws_url(full), name="first") as first:
        await first.join("ffa")  # the only server of the fleet: hosted there, and then it has no room
        assert first.url == ws_url(full)
        with trio.fail_after(3):
            while full.directory.has_room_for_a_match():
                await trio.sleep(0.05)
        roomy = await start_server(nursery, redis_url=redis_server.url)
        await _wait_for_fleet(full, roomy)
        async with connect(ws_url(full), name="second") as second, connect(ws_url(full), name="third") as third:
            await join_together(second, third)
            assert second.url == third.url == ws_url(roomy)
            assert second.match == third.match and second.match in roomy.directory.matches


async def test_the_newest_connection_of_a_player_wins_across_the_fleet(nursery, redis_server):
    first = await start_server(nursery, redis_url=redis_server.url)
    second = await start_server(nursery, redis_url=redis_server.url)
    await _wait_for_fleet(first, second)
    token = make_token("twice", name="twice")
    async with (
        connect(ws_url(first), name="twice", token=token) as older,
        connect(ws_url(second), name="twice", token=token) as newer,  # connects after the older one
    ):
        reason = await older.receive_until_closed(timeout=3)
        assert reason.code == 4002 and "another server" in reason.reason
        assert newer.authenticated is not None
        await newer.join("ffa")  # and the newer one plays


async def test_a_resume_on_another_server_of_the_fleet_is_sent_to_the_seat(nursery, redis_server):
    first = await start_server(nursery, redis_url=redis_server.url)
    second = await start_server(nursery, redis_url=redis_server.url)
    await _wait_for_fleet(first, second)
    token = make_token("roamer", name="roamer")
    async with connect(ws_url(first), name="roamer", token=token) as roamer:
        joined = await roamer.join("ffa")
        host_url, resume_token = roamer.url, roamer.resume_token
        await trio.sleep(0.3)  # the host records the seat in Redis at its next round (every 0.1 s)
        await roamer.drop_connection()
    elsewhere = next(ws_url(s) for s in (first, second) if ws_url(s) != host_url)
    async with connect(elsewhere, name="roamer", token=token) as back:
        resumed = await back.resume(resume_token)  # told `moved`, it goes to the host and resumes there
        assert back.url == host_url
        assert resumed.resumed and resumed.match == joined.match and resumed.player == joined.player


async def test_drop_in_players_queueing_one_after_another_share_one_match_before_it_is_listed(nursery, redis_server):
    first = await start_server(nursery, redis_url=redis_server.url)
    second = await start_server(nursery, redis_url=redis_server.url)
    await _wait_for_fleet(first, second)
    async with (
        connect(ws_url(first), name="early") as early,
        connect(ws_url(second), name="late") as late,
        connect(ws_url(first), name="later") as later,
    ):
        matches = []
        for client in (early, late, later):  # each one a round or two after the other: faster than a heartbeat
            matches.append((await client.join("ffa")).match)
            await trio.sleep(0.15)
        assert matches[0] == matches[1] == matches[2]
