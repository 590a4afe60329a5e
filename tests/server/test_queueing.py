"""Matchmaking over real sockets: queues form matches of the right sizes, bots fill in, reservations expire."""

from __future__ import annotations

import json

import pytest
import trio

from bots.client import ArenaClient, RefusedError, connect, http_request
from game import Snapshot
from server.matchmaker import Mode
from server.messages import (
    Cancel,
    Cancelled,
    Join,
    ListMatches,
    Matches,
    Queue,
    Queued,
    Refused,
    Reserved,
    Spectate,
    Spectating,
)
from tests.conftest import make_token, ws_url

DUEL = Mode(name="duel", min_players=2, max_players=2, fill_after_seconds=0.3, fill_with_bots=True)
FFA = Mode(name="ffa", min_players=2, max_players=8, fill_after_seconds=0.5, fill_with_bots=True)
LONELY = Mode(name="lonely", min_players=2, max_players=4, fill_after_seconds=0.3)


async def _players_joining(url: str, mode: str, count: int) -> list[tuple[str, int]]:
    """`count` players queue for `mode` at once; returns the (match, player) each got."""
    seats: list[tuple[str, int]] = []

    async def one(index: int) -> None:
        async with connect(url, name=f"p{index}") as client:
            joined = await client.join(mode)
            seats.append((joined.match, joined.player))
            await trio.sleep(0.5)  # stay until everyone is seated, so nobody's seat is released early

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return seats


def _match_sizes(seats: list[tuple[str, int]]) -> list[int]:
    sizes: dict[str, int] = {}
    for match, _ in seats:
        sizes[match] = sizes.get(match, 0) + 1
    return sorted(sizes.values())


async def test_two_players_in_duel_make_one_match_of_two_and_four_make_two(server_factory):
    server = await server_factory(modes=(DUEL, FFA))
    assert _match_sizes(await _players_joining(ws_url(server), "duel", 2)) == [2]
    assert _match_sizes(await _players_joining(ws_url(server), "duel", 4)) == [2, 2]
    assert server.health()["counters"].get("bots_added", 0) == 0


async def test_eight_players_in_ffa_make_one_match_and_a_ninth_starts_another_with_a_bot(server_factory):
    server = await server_factory(modes=(DUEL, FFA))
    assert _match_sizes(await _players_joining(ws_url(server), "ffa", 8)) == [8]
    assert _match_sizes(await _players_joining(ws_url(server), "ffa", 9)) == [1, 8]
    assert server.health()["counters"]["matches_formed"] == 3
    assert server.health()["counters"]["bots_added"] == 1


async def test_a_lone_duel_player_gets_a_bot_after_the_wait(server_factory):
    server = await server_factory(modes=(DUEL, FFA))
    async with connect(ws_url(server), name="alone") as client:
        started = trio.current_time()
        await client.join("duel")
        waited = trio.current_time() - started
        players = client.view.entities["players"]
        assert waited >= DUEL.fill_after_seconds
        assert sorted(p["status"] for p in players.values()) == ["bot", "playing"]
    assert server.health()["counters"]["bots_added"] == 1


async def test_without_bots_a_lone_player_keeps_waiting_and_can_cancel(server_factory):
    server = await server_factory(modes=(LONELY,))
    async with connect(ws_url(server), name="alone") as client:
        await client.send(Queue(mode="lonely"))
        statuses = []
        with trio.move_on_after(1.5):
            while True:
                message = await client.receive()
                assert not isinstance(message, Reserved)
                if isinstance(message, Queued):
                    statuses.append(message)
        assert len(statuses) >= 2 and statuses[0].position == 1 and statuses[0].waiting == 1
        assert server.health()["queued"] == 1
        await client.send(Cancel())
        await client.receive_until(lambda m: m if isinstance(m, Cancelled) else None)
        assert server.health()["queued"] == 0
        with trio.move_on_after(0.5):
            while True:
                assert not isinstance(await client.receive(), Reserved | Queued)


async def test_an_unknown_mode_is_refused(url):
    async with connect(url, name="lost") as client:
        with pytest.raises(RefusedError, match=r"unknown mode.*ffa"):
            await client.queue("battle-royale")


async def test_joining_needs_a_valid_reservation_of_ones_own(server_factory):
    server = await server_factory(modes=(DUEL, FFA), reservation_seconds=0.5)
    url = ws_url(server)
    async with connect(url, name="a", token=make_token("a")) as a, connect(url, name="b", token=make_token("b")) as b:
        await a.send(Join(reservation="made-up"))
        refused = await a.receive_until(lambda m: m if isinstance(m, Refused) else None)
        assert refused.request == "join" and "no such reservation" in refused.reason

        reservation = await a.queue("duel", timeout=3)
        await b.send(Join(reservation=reservation.reservation))
        refused = await b.receive_until(lambda m: m if isinstance(m, Refused) else None)
        assert "another player" in refused.reason

        await trio.sleep(0.8)  # let it expire
        await a.send(Join(reservation=reservation.reservation))
        refused = await a.receive_until(lambda m: m if isinstance(m, Refused) else None)
        assert "no such reservation" in refused.reason
    counters = server.health()["counters"]
    assert counters["reservations_expired"] == 1
    assert counters["joins_refused"] == 3


async def test_matches_are_listed_and_can_be_watched(server, url):
    async with connect(url, name="player") as player, connect(url, name="watcher") as watcher:
        joined = await player.join()
        status, body = await http_request(url, "GET", "/matches")
        listing = json.loads(body)["matches"]
        assert status == 200 and [m["id"] for m in listing] == [joined.match]
        assert listing[0]["mode"] == "ffa" and listing[0]["players"] == 1 and listing[0]["state"] == "waiting"

        await watcher.send(ListMatches())
        matches = await watcher.receive_until(lambda m: m if isinstance(m, Matches) else None)
        assert matches.matches[0]["id"] == joined.match

        await _watch(watcher, joined.match)
        await watcher.send_input(mx=1)  # a spectator's input does nothing
        await player.send_input(my=1)
        y = int(player.me()["y"])
        await watcher.receive_until(
            lambda m: (
                True
                if isinstance(m, Snapshot) or int(watcher.view.entities["players"][joined.player]["y"]) > y
                else None
            )
        )
        assert set(watcher.view.entities["players"]) == {joined.player}


async def _watch(client: ArenaClient, match: str) -> None:
    await client.send(Spectate(match=match))
    await client.receive_until(lambda m: m if isinstance(m, Spectating) else None)
    await client.receive_until(lambda m: m if isinstance(m, Snapshot) else None)
