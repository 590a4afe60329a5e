"""Fixtures shared by all tests: a real Arena server on 127.0.0.1, on a free port, in the test's nursery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import trio

from server.app import ArenaServer
from server.config import ServerConfig

TEST_CONFIG = ServerConfig(port=0, hello_timeout=2.0, match_linger_seconds=1.0)


async def start_server(nursery: trio.Nursery, **overrides: object) -> ArenaServer:
    """Start a server with the test defaults changed by `overrides`; it stops when the nursery does."""
    server = ArenaServer(attrs.evolve(TEST_CONFIG, **overrides))
    started: ArenaServer = await nursery.start(server.run)
    return started


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
