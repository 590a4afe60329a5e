"""The development option that holds back the server's sends, to try the netcode at a real round trip."""

from __future__ import annotations

import trio

from bots.client import connect
from tests.conftest import ws_url


async def test_simulated_latency_delays_every_frame_and_shows_in_ping(server_factory):
    server = await server_factory(simulated_latency=0.1, ping_interval=0.2)
    async with connect(ws_url(server), name="far away") as client:
        await client.join()
        await trio.sleep(0.5)  # let a keepalive round trip complete
        sent_at = trio.current_time()
        seq = await client.send_input(mx=1)
        await client.receive_until(lambda m: True if client.me()["ack"] == seq else None, timeout=3)
        input_to_ack = trio.current_time() - sent_at
        assert 0.1 <= input_to_ack < 1.0
        assert client.me()["ping"] >= 100
