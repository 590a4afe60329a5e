"""A closed session lets go of everything at once: after 10,000 sessions have come and gone, nothing of them is
still referenced (no session object, no timer, no counted connection, no identity)."""

from __future__ import annotations

import gc

import msgpack
import trio

from server.messages import PROTOCOL_VERSION
from server.session import Session
from tests.conftest import make_token
from tests.server.rawws import OP_BINARY, close_frame, frame, open_raw_websocket

SESSIONS = 10_000
AT_ONCE = 50


async def test_ten_thousand_sessions_leave_nothing_behind(server_factory):
    server = await server_factory(max_connections_per_ip=0)
    opened = 0

    async def churn(first: int, count: int) -> None:
        nonlocal opened
        for index in range(first, first + count):
            token = make_token(f"churner{index}")
            hello = msgpack.packb({"t": "hello", "protocol": PROTOCOL_VERSION, "name": "churner", "token": token})
            ws, _ = await open_raw_websocket(server.port)
            await ws.send(frame(OP_BINARY, hello))
            await ws.receive_data_frame()  # welcome
            await ws.receive_data_frame()  # authenticated
            await ws.send(close_frame(1000))
            await ws.receive_close()
            await ws.aclose()
            opened += 1

    with trio.fail_after(240):
        async with trio.open_nursery() as nursery:
            for task in range(AT_ONCE):
                nursery.start_soon(churn, task * (SESSIONS // AT_ONCE), SESSIONS // AT_ONCE)
        while server.sessions or server.connections.total:
            await trio.sleep(0.05)
    assert opened == SESSIONS
    assert server.health()["close_codes"] == {"1000": SESSIONS}
    gc.collect()
    assert [obj for obj in gc.get_objects() if isinstance(obj, Session)] == []
    assert len(server._timers) == 0
    assert server._timers._heap == []
    assert server.sessions_by_subject == {}
    assert server.connections.by_address == {}
