"""Attacks from one address, each beside a bystander playing from another: every attacker gets a clear close
code or HTTP status, the bystander keeps at least 90% of the tick rate, and nothing is lost."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import jwt
import msgpack
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bots.client import ArenaClient, connect, guest_token
from game import Delta, Snapshot
from server.app import ArenaServer
from server.auth import AuthConfig
from server.messages import PROTOCOL_VERSION, ListMatches, Matches
from tests.conftest import make_token, ws_url
from tests.server.rawws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    RawWebSocket,
    frame,
    http_exchange,
    open_raw_websocket,
    upgrade_request,
)

TICK_RATE = 30
MEASURE_SECONDS = 3.0
BYSTANDER_ADDRESS = "127.0.0.2"
ATTACKER_ADDRESS = "127.0.0.3"


def hello(index: int = 0) -> bytes:
    """A hello frame of attacker number `index` (each its own player)."""
    token = make_token(f"attacker{index}")
    return frame(
        OP_BINARY, msgpack.packb({"t": "hello", "protocol": PROTOCOL_VERSION, "name": "attacker", "token": token})
    )


async def _count_updates(client: ArenaClient, counts: list[int]) -> None:
    while True:
        if isinstance(await client.receive(), Delta | Snapshot):
            counts[0] += 1


async def beside_a_bystander(server: ArenaServer, attack: Callable[[], Awaitable[None]]) -> float:
    """Run `attack` while a player from another address plays; returns the player's updates per second."""
    async with connect(ws_url(server), name="bystander", source_address=BYSTANDER_ADDRESS) as bystander:
        await bystander.join()
        counts = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_count_updates, bystander, counts)
            await trio.sleep(0.5)
            counts[0] = 0
            started = trio.current_time()
            await attack()
            await trio.sleep_until(started + MEASURE_SECONDS)  # long enough to see a tick rate
            rate = counts[0] / max(trio.current_time() - started, 1e-9)
            nursery.cancel_scope.cancel()
    print(f"bystander: {rate:.1f} updates/s during the attack")
    return rate


async def _flood(ws: RawWebSocket, data: bytes, *, first: bytes = b"", seconds: float = 3.0) -> None:
    """Send `first`, then `data` over and over until the server cuts the connection (or `seconds` pass)."""
    with trio.move_on_after(seconds):
        try:
            await ws.send(first)
            while True:
                await ws.send(data * 50)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _close_code(ws: RawWebSocket) -> tuple[int | None, str]:
    with trio.move_on_after(5):
        while True:
            received = await ws.receive_frame()
            if received is None:
                return None, "connection ended without a Close frame"
            if received.opcode == OP_CLOSE:
                return received.close_code, received.close_reason
    return None, "no Close frame within 5 s"


async def _open_attackers(server: ArenaServer, count: int, *, authenticate: bool) -> list[RawWebSocket]:
    sockets = []
    for index in range(count):
        ws, _ = await open_raw_websocket(server.port, source=ATTACKER_ADDRESS)
        if authenticate:
            await ws.send(hello(index))
        sockets.append(ws)
    return sockets


FRAGMENT_START = frame(OP_BINARY, b"", fin=False)
FLOODS = {
    "pings before hello": (b"", frame(OP_PING, b"p"), False, "too many pings"),
    "pings after hello": (b"", frame(OP_PING, b"p"), True, "too many pings"),
    "pongs after hello": (b"", frame(OP_PONG, b"p"), True, "too many frames"),
    "fragments before hello": (FRAGMENT_START, frame(OP_CONTINUATION, b"x", fin=False), False, "before hello"),
    "empty fragments after hello": (FRAGMENT_START, frame(OP_CONTINUATION, b"", fin=False), True, "too many frames"),
}


@pytest.mark.parametrize(("first", "data", "authenticate", "reason"), FLOODS.values(), ids=FLOODS.keys())
async def test_a_frame_flood_from_32_sockets_is_closed_with_1008(server, first, data, authenticate, reason):
    codes: list[tuple[int | None, str]] = []

    async def attack() -> None:
        attackers = await _open_attackers(server, 32, authenticate=authenticate)

        async def one(ws: RawWebSocket) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(_flood, ws, data, first=first))
                codes.append(await _close_code(ws))
                nursery.cancel_scope.cancel()
            await ws.aclose()

        async with trio.open_nursery() as nursery:
            for ws in attackers:
                nursery.start_soon(one, ws)

    rate = await beside_a_bystander(server, attack)
    assert len(codes) == 32
    assert all(code == 1008 and reason in text for code, text in codes), codes[:3]
    assert rate >= 0.9 * TICK_RATE


async def test_connections_past_the_per_address_cap_get_429_and_others_are_unaffected(server_factory):
    server = await server_factory(max_connections_per_ip=8)
    held: list[trio.SocketStream] = []
    statuses: list[int] = []

    async def attack() -> None:
        for _ in range(8):  # plain TCP connections that never send a byte count too
            held.append(await trio.open_tcp_stream("127.0.0.1", server.port, local_address=ATTACKER_ADDRESS))
        await trio.sleep(0.1)
        for _ in range(5):
            response = await http_exchange(
                server.port, upgrade_request(server.port, key=b"dGhlIHNhbXBsZSBub25jZQ=="), source=ATTACKER_ADDRESS
            )
            statuses.append(response.status)
            assert b"too many connections from your address (the limit is 8)" in response.body
            assert response.headers.get("retry-after")
        assert server.health()["busiest_addresses"][0] == {"address": ATTACKER_ADDRESS, "connections": 8}

    rate = await beside_a_bystander(server, attack)
    assert statuses == [429] * 5
    for stream in held:
        await stream.aclose()
    assert rate >= 0.9 * TICK_RATE
    with trio.fail_after(3):
        while server.connections.by_address.get(ATTACKER_ADDRESS):
            await trio.sleep(0.02)
    ws, _ = await open_raw_websocket(server.port, source=ATTACKER_ADDRESS)  # freed: welcome again
    await ws.aclose()


async def test_past_max_connections_new_ones_get_503_and_healthz_still_answers(server_factory):
    server = await server_factory(max_connections=4, max_connections_per_ip=0)
    held = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(4)]
    await trio.sleep(0.1)
    refused = await http_exchange(server.port, upgrade_request(server.port, key=b"dGhlIHNhbXBsZSBub25jZQ=="))
    assert refused.status == 503
    assert b"the server is full (4 connections)" in refused.body
    health = await http_exchange(
        server.port, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    )
    assert health.status == 200
    assert health.json()["tcp_connections"] == 4
    for stream in held:
        await stream.aclose()


async def test_guest_tokens_past_the_per_address_rate_get_429_with_retry_after(server_factory):
    server = await server_factory(guest_tokens_per_minute=5)
    body = json.dumps({"name": "minter"}).encode()
    request = (
        f"POST /auth/guest HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    statuses: list[int] = []

    async def attack() -> None:
        for _ in range(5):
            statuses.append((await http_exchange(server.port, request, source=ATTACKER_ADDRESS)).status)

    assert await beside_a_bystander(server, attack) >= 0.9 * TICK_RATE
    refused = await http_exchange(server.port, request, source=ATTACKER_ADDRESS)
    assert statuses == [200] * 5
    assert refused.status == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 12
    assert "the limit is 5 a minute" in refused.json()["error"]
    assert await guest_token(f"http://127.0.0.1:{server.port}", "someone", source_address=BYSTANDER_ADDRESS)


async def test_replies_a_client_leaves_unread_are_delivered_or_it_is_closed_with_1008(server_factory, caplog):
    caplog.set_level(logging.INFO)
    server = await server_factory(outbox_capacity=8, send_buffer_bytes=4096, max_frames_per_second=100_000)
    async with connect(
        ws_url(server), name="reader", source_address=ATTACKER_ADDRESS, receive_buffer_bytes=4096, message_queue_size=1
    ) as client:
        # replies the client will read: the backlog never holds more than it may
        for _ in range(6):
            await client.send(ListMatches())
        replies = 0
        with trio.fail_after(5):
            while replies < 6:
                if isinstance(await client.receive(), Matches):
                    replies += 1
    ws, _ = await open_raw_websocket(server.port, source=ATTACKER_ADDRESS)
    await ws.send(hello())
    ask = frame(OP_BINARY, msgpack.packb({"t": "list_matches"}))
    with trio.move_on_after(5):  # never read: the replies pile up until the server gives up on this client
        try:
            while server.health()["close_codes"].get("1008") is None:
                await ws.send(ask * 20)
                await trio.sleep(0.05)
        except trio.BrokenResourceError:
            pass
    await ws.aclose()
    with trio.fail_after(5):
        while server.health()["close_codes"].get("1008") != 1:
            await trio.sleep(0.05)
    assert any("1008 too slow: 8 replies waiting unread" in record.getMessage() for record in caplog.records)


@pytest.fixture
def rsa_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_an_rs256_token_of_over_256_bytes_logs_in_through_hello(server_factory, rsa_key):
    private, public = rsa_key
    server = await server_factory(auth=AuthConfig(algorithm="RS256", verification_key=public, guest_tokens=False))
    now = int(time.time())
    claims = {
        "sub": "ドラゴン",
        "name": "José María Núñez",
        "iss": "arena",
        "aud": "arena",
        "iat": now,
        "exp": now + 600,
    }
    token = jwt.encode(claims, private, algorithm="RS256")
    assert len(token) > 400
    async with connect(ws_url(server), name="ドラゴンスレイヤー", token=token) as client:
        assert client.authenticated is not None
        assert client.authenticated.player == "ドラゴン"
        assert client.authenticated.name == "ドラゴンスレイヤー"
