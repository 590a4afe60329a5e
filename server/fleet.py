"""A server's place in a fleet of servers sharing one Redis (`arena serve --redis URL`): its presence, and the
fleet-wide list of matches that GET /matches answers with. (The first part of the fleet; matchmaking, seats,
identities and resume tokens are still each server's own.)

Rules: nothing here is on a tick's path, and nothing here waits on Redis for a client: a task heartbeats every
`HEARTBEAT_SECONDS`, writing this server's entry (id, public WebSocket URL, load, its matches' summaries) under a
key that expires after `PRESENCE_TTL_SECONDS`, then reading every server's entry into `view`, which the listing
reads. A server that is killed or cut off drops out of every other server's listing once its key expires. While
Redis cannot be reached, each heartbeat is tried again (bounded by `REDIS_TIMEOUT_SECONDS`), one WARNING says so
and one INFO says when it is back, and the listing holds this server's own matches only, marked `fleet: false`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import coredis
import coredis.exceptions
import trio

logger = logging.getLogger(__name__)

KEY_PREFIX = "arena:server:"
SECRET_KEY = "arena:fleet:hs256-secret"
"""Where the fleet keeps the secret its servers sign guest tokens with, when none is configured."""
SECRET_WAIT_SECONDS = 10.0
HEARTBEAT_SECONDS = 1.0
PRESENCE_TTL_SECONDS = 3
"""A server's entry outlives three missed heartbeats at most: how long a dead server stays listed."""
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_FAILURES = (coredis.exceptions.RedisError, OSError, anyio.ClosedResourceError, anyio.BrokenResourceError)
"""What a Redis request may raise when Redis is gone: coredis' own errors, and anyio's from its connections."""
MAX_SERVERS_READ = 1000


def new_server_id() -> str:
    return secrets.token_hex(6)


class FleetUnavailableError(Exception):
    """Redis could not be reached when the server needed it to join the fleet; the message says what to do."""


async def shared_secret(url: str, *, wait_seconds: float = SECRET_WAIT_SECONDS) -> str:
    """The fleet's HS256 secret: the one in Redis, or a new one put there if this is the first server (SET NX, so
    that servers starting together agree). Tries for `wait_seconds`.

    Raises:
        FleetUnavailableError: if Redis cannot be reached meanwhile.
    """
    client: coredis.Redis[str] = coredis.Redis.from_url(url, decode_responses=True)
    failure = "timed out"
    with contextlib.suppress(*REDIS_FAILURES), trio.move_on_after(wait_seconds):
        async with client:
            while True:
                try:
                    await client.set(SECRET_KEY, secrets.token_urlsafe(32), condition=coredis.PureToken.NX)
                    secret = await client.get(SECRET_KEY)
                    if secret:
                        return secret
                except REDIS_FAILURES as error:
                    failure = str(error) or type(error).__name__
                await trio.sleep(HEARTBEAT_SECONDS)
    raise FleetUnavailableError(
        f"cannot reach Redis at {url} for the fleet's token secret ({failure}): start redis-server, check --redis, "
        "or give every server the same --auth-secret-file"
    )


@attrs.define(eq=False)
class FleetView:
    """What the fleet looked like at the last heartbeat."""

    servers: list[dict[str, Any]] = attrs.field(factory=list)
    """Each live server's entry: id, url, started, load, matches (their summaries)."""
    connected: bool = False
    """Whether the last heartbeat reached Redis."""


@attrs.define(eq=False)
class FleetPresence:
    """This server's heartbeat into Redis and its view of the fleet (see the module's rules).

    Args:
        url: the Redis URL (redis://host:port/db, rediss://..., unix:///path/to/socket?db=0).
        server_id: this server's id in the fleet.
        public_url: the WebSocket URL clients reach this server at.
        entry: called at every heartbeat for this server's current load and matches.
    """

    url: str
    server_id: str
    public_url: str
    entry: Callable[[], dict[str, Any]]
    secret: str | None = None
    """The fleet's token secret this server took from Redis, put back at every heartbeat if it is missing there
    (Redis restarted empty: servers started after that must sign with the same one)."""
    view: FleetView = attrs.field(factory=FleetView, init=False)
    started: float = attrs.field(factory=time.time, init=False)
    _reachable: bool | None = attrs.field(default=None, init=False)
    """Whether Redis answered the last heartbeat (None before the first): what was last logged."""
    _beat_now: trio.Event = attrs.field(factory=trio.Event, init=False)

    def beat_now(self) -> None:
        """Heartbeat at once (this server just started draining: the fleet must stop placing matches here)."""
        self._beat_now.set()

    def listing(self, local_matches: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """Every match of the fleet, each with its server's id and URL (and `local` for this server's own), and
        whether that is the fleet's (False: Redis unreachable, this server's own matches only)."""
        mine = [{**match, "server": self.server_id, "url": self.public_url, "local": True} for match in local_matches]
        if not self.view.connected:
            return mine, False
        others = [
            {**match, "server": server["id"], "url": server["url"], "local": False}
            for server in self.view.servers
            if server.get("id") != self.server_id
            for match in server.get("matches", ())
        ]
        return mine + others, True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat until cancelled; reports started at once (Redis may be down: the server runs anyway)."""
        client: coredis.Redis[str] = coredis.Redis.from_url(self.url, decode_responses=True)
        task_status.started()
        key = KEY_PREFIX + self.server_id
        with contextlib.suppress(*REDIS_FAILURES):  # closing the client's connections to a Redis that is gone
            async with client:
                try:
                    while True:
                        await self._heartbeat(client, key)
                        with trio.move_on_after(HEARTBEAT_SECONDS):
                            await self._beat_now.wait()
                        self._beat_now = trio.Event()
                finally:
                    with trio.move_on_after(REDIS_TIMEOUT_SECONDS) as scope:
                        scope.shield = True
                        await self._leave(client, key)

    async def _heartbeat(self, client: coredis.Redis[str], key: str) -> None:
        entry = {
            "id": self.server_id,
            "url": self.public_url,
            "started": self.started,
            "at": time.time(),
            **self.entry(),
        }
        servers: list[dict[str, Any]] | None = None
        failure = "timed out"
        with trio.move_on_after(REDIS_TIMEOUT_SECONDS):
            try:
                await client.set(key, json.dumps(entry), ex=PRESENCE_TTL_SECONDS)
                if self.secret is not None:
                    await client.set(SECRET_KEY, self.secret, condition=coredis.PureToken.NX)
                servers = await self._read_servers(client)
            except REDIS_FAILURES as error:
                failure = str(error) or type(error).__name__
        if servers is None:
            if self._reachable is not False:
                logger.warning(
                    "fleet: Redis at %s cannot be reached (%s): matches are listed from this server only until it "
                    "can; check that redis-server runs and that --redis is right",
                    self.url,
                    failure,
                )
            self._reachable = False
            self.view.connected = False
            return
        if self._reachable is not True:
            logger.info("fleet: in the fleet through Redis at %s as server %s (%d servers)", self.url, self.server_id,
                        len(servers))  # fmt: skip
        self._reachable = True
        self.view = FleetView(servers=servers, connected=True)

    async def _read_servers(self, client: coredis.Redis[str]) -> list[dict[str, Any]]:
        keys = []
        async for found in client.scan_iter(match=KEY_PREFIX + "*", count=100):
            keys.append(found)
            if len(keys) >= MAX_SERVERS_READ:
                break
        if not keys:
            return []
        servers = []
        for raw in await client.mget(keys):
            if raw is None:
                continue  # expired between the scan and the read
            try:
                server = json.loads(raw)
            except ValueError:
                continue  # not ours
            if isinstance(server, dict) and isinstance(server.get("id"), str):
                servers.append(server)
        return sorted(servers, key=lambda server: server["id"])

    async def _leave(self, client: coredis.Redis[str], key: str) -> None:
        """A server that stops takes its entry out at once rather than waiting for it to expire."""
        with contextlib.suppress(*REDIS_FAILURES):
            await client.delete([key])
