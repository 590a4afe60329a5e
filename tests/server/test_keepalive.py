"""The server pings every client, shows each player's round-trip time, and drops clients that stop answering."""

from __future__ import annotations

import trio

from bots.client import ArenaClient, connect
from tests.conftest import ws_url


async def _receive_for(client: ArenaClient, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while True:
            await client.receive()


async def test_round_trip_time_is_measured_and_shown_to_every_player(server_factory):
    server = await server_factory(ping_interval=0.2)
    url = ws_url(server)
    async with connect(url, name="laggy", message_queue_size=1) as laggy, connect(url, name="other") as other:
        await laggy.join()
        await other.join()
        await _receive_for(other, 0.5)
        assert other.view.entities["players"][laggy.player]["ping"] < 100
        # laggy stops reading: its WebSocket stops reading the socket, so its pongs are late by about 0.5 s
        await trio.sleep(0.5)
        await _receive_for(laggy, 0.3)
        pings_seen = set()
        with trio.move_on_after(1.0):
            while True:
                await other.receive()
                pings_seen.add(other.view.entities["players"][laggy.player]["ping"])
        assert max(pings_seen) >= 250, pings_seen
        # once it reads again, its round trip is short again
        await _receive_for(laggy, 0.6)
        assert other.view.entities["players"][laggy.player]["ping"] < 100


async def test_a_client_that_stops_answering_pings_is_closed_with_1011(server_factory):
    server = await server_factory(ping_interval=0.2, pong_timeout=0.5)
    async with connect(ws_url(server), name="mute", message_queue_size=1) as mute:
        await mute.join()
        await trio.sleep(1.5)  # not reading: no pongs
        closed = await mute.receive_until_closed()
    assert closed.code == 1011
    assert "keepalive" in closed.reason
    with trio.fail_after(3):
        while server.health()["close_codes"] != {"1011": 1}:
            await trio.sleep(0.05)
