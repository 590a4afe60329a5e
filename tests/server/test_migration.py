"""A deploy loses no match: a server that drains hands each running match to another server of the fleet (a
checkpoint through a real redis-server), whose players are told `moved` and resume there with their tokens,
keeping their player ids, positions and scores; the match goes on from the tick it stopped at."""

from __future__ import annotations

import trio

from bots.client import ArenaClient, connect
from server.app import ArenaServer
from server.messages import Moved, Spectate, Spectating
from tests.conftest import join_together, start_server, ws_url
from tests.server.test_fleet_matchmaking import _wait_for_fleet


async def _players(client: ArenaClient) -> dict[int, dict]:
    assert client.view is not None
    return {pid: dict(player) for pid, player in client.view.entities["players"].items()}


async def test_a_draining_server_hands_its_match_over_and_its_players_resume_on_the_adopter(nursery, redis_server):
    servers = [await start_server(nursery, redis_url=redis_server.url) for _ in range(2)]
    await _wait_for_fleet(*servers)
    async with (
        connect(ws_url(servers[0]), name="alice") as alice,
        connect(ws_url(servers[1]), name="bob") as bob,
        connect(ws_url(servers[0]), name="watcher") as watcher,
    ):
        await join_together(alice, bob)
        host: ArenaServer = next(server for server in servers if ws_url(server) == alice.url)
        await watcher.move_to(alice.url)
        await watcher.send(Spectate(match=alice.match))
        await watcher.receive_until(lambda m: m if isinstance(m, Spectating) else None)
        adopter = next(server for server in servers if server is not host)
        match_id = alice.match
        ids = {alice: alice.player, bob: bob.player}
        await alice.send_input(mx=1, fire=True)
        with trio.fail_after(5):
            while alice.view is None or alice.view.tick < 45:
                await alice.receive()

        last_seen: dict[ArenaClient, tuple[float, int, dict[int, dict]]] = {}
        for client in (alice, bob):
            with trio.fail_after(5):
                while client.view is None:
                    await client.receive()
            last_seen[client] = (trio.current_time(), client.view.tick, await _players(client))
        host.shutdown()
        for client in (alice, bob):
            with trio.fail_after(5):
                while client.moved is None:
                    message = await client.receive()
                    if client.view is not None and not isinstance(message, Moved):
                        last_seen[client] = (trio.current_time(), client.view.tick, await _players(client))
            assert client.moved == Moved(match=match_id, url=ws_url(adopter))
        for client in (alice, bob):
            joined = await client.follow_move()
            assert joined.resumed and joined.match == match_id and joined.player == ids[client]
            assert client.url == ws_url(adopter)
            seen_at, tick_before, players_before = last_seen[client]
            pause = trio.current_time() - seen_at
            assert client.view is not None and client.view.tick > tick_before  # it went on, from where it was
            players_now = await _players(client)
            # the last state sent before `moved` is the one handed over; since then the players' seats were held
            # for them (no input: alice, who was running, stands still), so each is exactly where it was
            for pid, before in players_before.items():
                now = players_now[pid]
                assert (now["x"], now["y"], now["kills"], now["deaths"]) == (
                    before["x"], before["y"], before["kills"], before["deaths"]
                ), (pid, before, now)  # fmt: skip
            assert pause < 2.0, pause
        match = adopter.directory.matches[match_id]
        assert sorted(seat.player_id for seat in match.humans) == sorted(ids.values())
        # the spectator was sent along too, and watches on there
        with trio.fail_after(5):
            while watcher.moved is None:
                await watcher.receive()
        assert watcher.moved == Moved(match=match_id, url=ws_url(adopter))
        await watcher.move_to(watcher.moved.url)
        await watcher.send(Spectate(match=match_id))
        watching = await watcher.receive_until(lambda m: m if isinstance(m, Spectating) else None)
        assert watching.match == match_id and watcher.url == ws_url(adopter)
        await alice.send_input(mx=-1)  # and it plays on there
        x_before = (await _players(alice))[ids[alice]]["x"]
        with trio.fail_after(5):
            while (await _players(alice))[ids[alice]]["x"] > x_before - 20:
                await alice.receive()


async def test_with_no_other_server_to_take_it_a_draining_servers_match_stays_and_players_are_let_go(
    nursery, redis_server
):
    alone = await start_server(nursery, redis_url=redis_server.url, drain_timeout=2.0)
    await _wait_for_fleet(alone)
    async with connect(ws_url(alone), name="carol") as carol:
        await carol.join("ffa")
        alone.shutdown()
        reason = await carol.receive_until_closed(timeout=5)
        assert reason.code == 1001 and carol.moved is None
