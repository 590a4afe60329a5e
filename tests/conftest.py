"""Fixtures shared by all tests: a real Arena server on 127.0.0.1, on a free port, in the test's nursery."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import attrs
import jwt
import pytest
import trio

from bots.client import ArenaClient
from server.app import ArenaServer
from server.auth import AuthConfig
from server.config import ServerConfig
from server.matchmaker import Mode
from server.messages import Joined
from tests.redis_server import RedisServer

TEST_SECRET = "arena-tests-only-secret-0123456789abcdef"
"""The HS256 key the test servers verify tokens with, so tests can sign (and forge) tokens themselves."""


def make_token(subject: str = "tester", *, name: str | None = None, key: str = TEST_SECRET, **claims: object) -> str:
    """A token as a login service would sign it for the test servers; `claims` override or add claims."""
    now = int(time.time())
    payload: dict[str, object] = {"sub": subject, "iss": "arena", "aud": "arena", "iat": now, "exp": now + 3600}
    if name is not None:
        payload["name"] = name
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="HS256")


DROP_IN = Mode(name="ffa", min_players=1, max_players=8, fill_after_seconds=0.0, backfill=True)
"""An ffa that seats a lone player at once and everyone after in the same match: joining is immediate."""
DUEL = Mode(name="duel", min_players=2, max_players=2, fill_after_seconds=1.0, fill_with_bots=True)

TEST_CONFIG = ServerConfig(
    port=0,
    hello_timeout=2.0,
    match_linger_seconds=1.0,
    spectator_delay=0.0,
    modes=(DROP_IN, DUEL),
    auth=AuthConfig(verification_key=TEST_SECRET),
)


async def start_server(nursery: trio.Nursery, **overrides: object) -> ArenaServer:
    """Start a server with the test defaults changed by `overrides`; it stops when the nursery does."""
    server = ArenaServer(attrs.evolve(TEST_CONFIG, **overrides))
    started: ArenaServer = await nursery.start(server.run)
    return started


async def join_together(*clients: ArenaClient, mode: str = "duel") -> list[Joined]:
    """Queue every client for `mode` at once (a duel needs both waiting) and take the seats; their `joined`."""
    joined: dict[int, Joined] = {}

    async def join(index: int) -> None:
        joined[index] = await clients[index].join(mode)

    async with trio.open_nursery() as together:
        for index in range(len(clients)):
            together.start_soon(join, index)
    return [joined[index] for index in range(len(clients))]


def ws_url(server: ArenaServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ArenaServer]:
    running = await start_server(nursery)
    yield running
    running.shutdown()


@pytest.fixture
def url(server: ArenaServer) -> str:
    return ws_url(server)


@pytest.fixture
def server_factory(nursery: trio.Nursery) -> Callable[..., object]:
    """`await server_factory(outbox_capacity=8, ...)` starts a server with other settings."""

    async def factory(**overrides: object) -> ArenaServer:
        return await start_server(nursery, **overrides)

    return factory


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a unix socket of its own, stopped after the test."""
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis
    redis.stop()
