"""The server: one port for the browser client, /healthz, /matches, /auth/guest and the WebSocket endpoint
/ws; authentication, matchmaking, sessions; drain.

Rules: every connection runs in its own task and nursery, so nothing one client does can stop another; a
handler never lets an exception escape to the listener, and an error a client causes is answered with a status
or close code and logged in one line below WARNING, never with a traceback; a client is known by its token
before it may do anything; one identity has at most one connection (the newer one wins, across a fleet too);
shutting down stops accepting, hands every running match to another server of the fleet if there is one
(server.fleet_matchmaking), closes every client with 1001 and waits at most `drain_timeout` for them.

Admission, in order: the total and per-address connection caps (an address is the TCP peer's, or for a trusted
proxy the address it forwards); then, for a WebSocket, the strict handshake and the Origin allowlist; then the
token. Refusals before the request is read are answered by a bounded pool; when the process runs out of file
descriptors, accepting backs off, one reserve descriptor answers /healthz (and 503 to the rest), and the
condition is logged once per interval.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import logging
import math
import os
import resource
import socket
import ssl
import sys
import time
from collections import Counter, deque
from typing import Any

import attrs
import h11
import trio
from openskill.models import PlackettLuce

from game import Rules
from server import compiled_game, send_ring
from server.auth import Authenticator, AuthError, Identity
from server.codec import MAX_CLIENT_MESSAGE_BYTES, CloseCode, ProtocolError, encode, encode_replay_view
from server.config import ServerConfig
from server.directory import InMemoryMatchDirectory
from server.fleet import REDIS_FAILURES, FleetPresence, new_server_id, shared_secret
from server.fleet_matchmaking import FleetMatchmaking
from server.fleet_ratings import RedisRatingStore
from server.handshake import HandshakeError, OriginPolicy, check_upgrade
from server.limits import AddressRateLimiter, ConnectionCounter, FrameBudget, FrameLimits, address_key
from server.match import Match, SeatError, TickStatistics, Timings, percentiles_ms
from server.matchmaker import Matchmaker, MatchmakingError, modes_by_name
from server.matchmaking import LocalMatchmaking, Matchmaking
from server.messages import (
    PROTOCOL_VERSION,
    Authenticated,
    Cancel,
    Cancelled,
    ClientMessage,
    Hello,
    Input,
    Join,
    Leave,
    Left,
    ListMatches,
    Matches,
    Moved,
    Queue,
    Rated,
    Refresh,
    Refused,
    Resume,
    Spectate,
    Welcome,
    validate_display_name,
)
from server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.metrics import Metrics
from server.proxies import client_address, is_trusted, parse_networks
from server.ratings import AsyncRatingStore, RatingStoreUnavailable, SqliteRatingStore, ThreadedRatings, rate_match
from server.reader import SocketReader
from server.recording import REPLAY_ID, list_replays
from server.recording import SUFFIX as REPLAY_SUFFIX
from server.replay import frames_for_viewer, read_replay
from server.session import Session
from server.timers import Timers
from server.web import (
    BadRequestError,
    HttpRequest,
    close_gracefully,
    content_type_of,
    read_body,
    read_request,
    respond,
    respond_json,
    static_file,
)
from server.websocket import AcceptedWebSocket, HandshakeRefusal, serve_websocket

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
WEBSOCKET_PATH = "/ws"
MAX_GUEST_REQUEST_BYTES = 1024
MONITOR_PATH = "/monitor"
RATINGS_FILE = "ratings.sqlite3"
LEADERBOARD_SIZE = 50
ADMIN_PREFIX = "/admin/"
HISTORY_SECONDS = 300
FILE_HEADROOM = 128
"""File descriptors kept out of `max_connections` when it is derived from the file limit: listeners, log and
client files, the refusal pool, the reserve descriptor."""
MAX_REFUSALS_IN_FLIGHT = 64
"""Refused connections being answered at once; beyond that a refused connection is closed without an answer."""
REFUSAL_READ_SECONDS = 1.0
"""How long a refused connection may take to send its request head before it is answered anyway."""
ACCEPT_CAPACITY_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_ERROR_LOG_INTERVAL = 10.0
MAX_ACCEPT_BACKOFF = 1.0


def default_max_connections() -> int:
    """Raise the soft file limit to the hard one, and derive the connection cap from it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return soft - FILE_HEADROOM if soft > 2 * FILE_HEADROOM else max(1, soft // 2)


class ListenError(Exception):
    """The server could not listen on its host and port (in use, not allowed, no such address)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@attrs.define(eq=False)
class ArenaServer:
    config: ServerConfig
    rules: Rules = attrs.field(init=False)
    metrics: Metrics = attrs.field(init=False)
    statistics: TickStatistics = attrs.field(init=False)
    authenticator: Authenticator = attrs.field(init=False)
    sessions: set[Session] = attrs.field(factory=set, init=False)
    sessions_by_subject: dict[str, Session] = attrs.field(factory=dict, init=False)
    port: int = attrs.field(default=0, init=False)
    draining: bool = attrs.field(default=False, init=False)
    _directory: InMemoryMatchDirectory | None = attrs.field(default=None, init=False)
    _matchmaking: Matchmaking | None = attrs.field(default=None, init=False)
    _started_at: float = attrs.field(factory=time.monotonic, init=False)
    _shutdown_requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    _sessions_changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _closed_traffic: Counter[str] = attrs.field(factory=Counter, init=False)
    """What sessions that are gone received and sent (see `traffic`)."""
    _welcome_frame: bytes = attrs.field(init=False)
    _timers: Timers = attrs.field(factory=Timers, init=False)
    _socket_reader: SocketReader = attrs.field(factory=SocketReader, init=False)
    """Reads every open plain-TCP WebSocket (server.reader)."""
    connections: ConnectionCounter = attrs.field(init=False)
    """Open TCP connections, in all and per client address."""
    _guest_tokens: AddressRateLimiter = attrs.field(init=False)
    _frame_limits: FrameLimits = attrs.field(init=False)
    _origins: OriginPolicy = attrs.field(init=False)
    _trusted_proxies: tuple[Any, ...] = attrs.field(init=False)
    _metrics_networks: tuple[Any, ...] = attrs.field(init=False)
    ratings: AsyncRatingStore | None = attrs.field(default=None, init=False)
    """The skill ratings: in the fleet's Redis with --redis, else in --data-dir (None without either)."""
    _rating_model: PlackettLuce = attrs.field(factory=PlackettLuce, init=False)
    _replay_renderer: trio.Semaphore = attrs.field(factory=lambda: trio.Semaphore(1), init=False)
    _history: deque[dict[str, float | int | None]] = attrs.field(
        factory=lambda: deque(maxlen=HISTORY_SECONDS), init=False
    )
    _cpu_share: float = attrs.field(default=0.0, init=False)
    """The share of a core this process used over the last second (its CPU time: ticks, reading, everything)."""
    _ssl_context: ssl.SSLContext | None = attrs.field(default=None, init=False)
    _refusals_in_flight: int = attrs.field(default=0, init=False)
    _reserve_fd: int | None = attrs.field(default=None, init=False)
    _accept_errors_unlogged: int = attrs.field(default=0, init=False)
    _accept_error_logged_at: float = attrs.field(default=-math.inf, init=False)
    fleet: FleetPresence | None = attrs.field(default=None, init=False)
    """This server's place in a fleet sharing one Redis (None without --redis)."""
    _connected_at: dict[str, float] = attrs.field(factory=dict, init=False)
    """When each player's session here said hello (wall time): a newer connection elsewhere in the fleet wins."""

    def __attrs_post_init__(self) -> None:
        """Raises ValueError (or OSError for a TLS file) if the configuration cannot work."""
        config = self.config
        self.rules = Rules(
            tick_rate=config.tick_rate,
            kill_limit=config.kill_limit,
            duration_seconds=config.match_seconds,
            lag_compensation_seconds=config.lag_compensation_seconds,
        )
        self.authenticator = Authenticator(config.auth)
        self.metrics = Metrics(modes=tuple(mode.name for mode in config.modes))
        self.statistics = TickStatistics(on_second=self._observe_ticks)
        self.metrics.watch(self)
        self._welcome_frame = encode(self._welcome())
        max_connections = default_max_connections() if config.max_connections is None else config.max_connections
        self.connections = ConnectionCounter(max_total=max_connections, max_per_address=config.max_connections_per_ip)
        per_minute = config.guest_tokens_per_minute
        self._guest_tokens = AddressRateLimiter(rate=per_minute / 60, burst=per_minute)
        self._frame_limits = config.frame_limits()
        self._origins = OriginPolicy.from_options(config.allowed_origins)
        if config.data_dir is not None:
            if config.redis_url is not None:
                self.ratings = RedisRatingStore(config.redis_url)
            else:
                self.ratings = ThreadedRatings(SqliteRatingStore(config.data_dir / RATINGS_FILE))
        self._trusted_proxies = parse_networks(config.trusted_proxies)
        self._metrics_networks = parse_networks(config.metrics_from, option="--metrics-from")
        if (config.tls_cert is None) != (config.tls_key is None):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        if config.tls_cert is not None and config.tls_key is not None:
            self._ssl_context = tls_context(config.tls_cert, config.tls_key)

    @property
    def directory(self) -> InMemoryMatchDirectory:
        assert self._directory is not None, "the server is not running"
        return self._directory

    @property
    def matchmaking(self) -> Matchmaking:
        assert self._matchmaking is not None, "the server is not running"
        return self._matchmaking

    async def run(self, *, task_status: trio.TaskStatus[ArenaServer] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `shutdown()` is called, then drain.

        `task_status.started` reports this server once it listens (`port` is then the bound port).
        """
        fleet_secret = None
        if self.config.redis_url is not None and self.authenticator.makes_its_own_secret:
            # every server of the fleet must accept the guest tokens any of them signs
            fleet_secret = await shared_secret(self.config.redis_url)
            self.authenticator.use_shared_secret(fleet_secret)
        try:
            listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        except OSError as error:
            raise ListenError(error) from error
        self.port = listeners[0].socket.getsockname()[1]
        if self.config.redis_url is not None:
            scheme = "wss" if self._ssl_context else "ws"
            self.fleet = FleetPresence(
                url=self.config.redis_url,
                server_id=new_server_id(),
                public_url=self.config.public_url or f"{scheme}://{self.config.host}:{self.port}/ws",
                entry=self._fleet_entry,
                secret=fleet_secret,
            )
        async with trio.open_nursery() as nursery:
            self._directory = InMemoryMatchDirectory(
                nursery=nursery,
                rules=self.rules,
                statistics=self.statistics,
                linger_seconds=self.config.match_linger_seconds,
                resume_window=self.config.resume_window,
                bot_takes_over=self.config.bot_takes_over,
                seed=self.config.seed,
                spectator_delay=self.config.spectator_delay,
                on_match_over=lambda match: nursery.start_soon(self._rate, match),
                replay_dir=self.config.replay_dir,
                replay_keep=self.config.replay_keep,
                replay_max_age_seconds=self.config.replay_max_age_days * 86400,
                max_tick_load=self.config.max_tick_load,
                socket_reader=self._socket_reader,
                send_ring=send_ring.load(),
            )
            logger.info("state frames: %s", send_ring.status)
            self._matchmaking = self._start_matchmaking(self._directory)
            accepting = trio.CancelScope()

            async def accept() -> None:
                try:
                    with accepting:
                        async with trio.open_nursery() as accepters:
                            for listener in listeners:
                                accepters.start_soon(self._accept_loop, listener, nursery)
                finally:
                    for listener in listeners:
                        await trio.aclose_forcefully(listener)

            self._open_reserve_fd()
            await nursery.start(self._timers.run)
            if isinstance(self.ratings, RedisRatingStore):
                await nursery.start(self.ratings.run)
            nursery.start_soon(self._socket_reader.run)
            if self.fleet is not None:
                await nursery.start(self.fleet.run)
            nursery.start_soon(accept)
            nursery.start_soon(self.matchmaking.run)
            nursery.start_soon(self._record_history)
            logger.info(
                "Arena listening on %s://%s:%d (at most %s connections, %s per address)",
                "https" if self._ssl_context else "http",
                self.config.host,
                self.port,
                self.connections.max_total or "unlimited",
                self.connections.max_per_address or "unlimited",
            )
            task_status.started(self)
            await self._shutdown_requested.wait()
            self.draining = True
            accepting.cancel()
            if self.fleet is not None:
                self.fleet.beat_now()
            if isinstance(self._matchmaking, FleetMatchmaking):
                with trio.move_on_after(self.config.drain_timeout):
                    await self._matchmaking.hand_over_matches()
            logger.info("draining: closing %d connections", len(self.sessions))
            for session in list(self.sessions):
                session.close(CloseCode.GOING_AWAY, "server is shutting down")
            with trio.move_on_after(self.config.drain_timeout):
                while self.sessions:
                    self._sessions_changed = trio.Event()
                    await self._sessions_changed.wait()
            nursery.cancel_scope.cancel()
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
        if self.ratings is not None:
            self.ratings.close()
        self._socket_reader.close()

    def shutdown(self) -> None:
        """Stop accepting connections and close every client with 1001 (going away)."""
        self._shutdown_requested.set()

    def health(self) -> dict[str, Any]:
        directory = self._directory
        metrics = self.metrics
        return {
            "status": "draining" if self.draining else "ok",
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "game_build": "compiled" if compiled_game.status.startswith("compiled") else "pure",
            "send_ring": self._directory is not None and self._directory.send_ring is not None,
            "uptime_seconds": round(time.monotonic() - self._started_at, 3),
            "tick_rate": self.config.tick_rate,
            "connections": len(self.sessions),
            "tcp_connections": self.connections.total,
            "addresses": len(self.connections.by_address),
            "busiest_addresses": [
                {"address": address, "connections": count} for address, count in self.connections.busiest(5)
            ],
            "limits": {
                "max_connections": self.connections.max_total,
                "max_connections_per_ip": self.connections.max_per_address,
            },
            "matches": len(directory.matches) if directory else 0,
            "players": directory.player_count if directory else 0,
            "queued": len(self._matchmaking.queued()) if self._matchmaking else 0,
            "matchmaking": self._matchmaking.health() if self._matchmaking else {"status": "starting"},
            "load": {
                "ticks": round(directory.tick_load, 4) if directory else 0.0,
                "max_ticks": self.config.max_tick_load,
                "cpu": round(self._cpu_share, 3),
                "admitting_matches": directory.has_room_for_a_match() if directory else True,
            },
            "tick": self.statistics.summary(),
            "backlog_overflows": self.traffic()["arena_backlog_overflows"],
            "counters": self._counters(),
            "limit_hits": {limit: int(n) for limit, n in sorted(metrics.totals(metrics.limit_hits).items()) if n},
            "close_codes": {code: int(n) for code, n in sorted(metrics.totals(metrics.closes).items()) if n},
            **({"fleet": self._fleet_health()} if self.fleet is not None else {}),
        }

    def _fleet_entry(self) -> dict[str, Any]:
        """What this server tells the fleet about itself at every heartbeat."""
        directory = self._directory
        return {
            "matches": directory.listing() if directory else [],
            "players": directory.player_count if directory else 0,
            "load": round(directory.tick_load, 4) if directory else 0.0,
            "admitting_matches": (directory.has_room_for_a_match() if directory else True) and not self.draining,
            "max_load": self.config.max_tick_load,
            "draining": self.draining,
        }

    def _fleet_health(self) -> dict[str, Any]:
        fleet = self.fleet
        assert fleet is not None
        return {
            "server": fleet.server_id,
            "url": fleet.public_url,
            "redis": "connected" if fleet.view.connected else "unreachable",
            "servers": len(fleet.view.servers) if fleet.view.connected else None,
        }

    def _counters(self) -> dict[str, int]:
        metrics = self.metrics
        counts = {
            "accept_errors": metrics.total(metrics.accept_errors),
            "auth_refused": metrics.total(metrics.auth_failures),
            "bots_added": metrics.total(metrics.bots_added),
            "guest_tokens": metrics.total(metrics.guest_tokens),
            "joins_refused": metrics.total(metrics.joins_refused),
            "matches_formed": metrics.total(metrics.matches_formed),
            "replaced_connections": metrics.total(metrics.replaced_connections),
            "reservations_expired": metrics.total(metrics.reservations_expired),
            "resumes": metrics.total(metrics.resumes),
            "resumes_refused": metrics.total(metrics.resumes_refused),
            "resumes_after_a_move": metrics.total(metrics.resumes_after_a_move),
            "matches_moved": metrics.total(metrics.matches_moved),
        }
        return {name: count for name, count in counts.items() if count}

    @property
    def running_directory(self) -> InMemoryMatchDirectory | None:
        return self._directory

    def uptime(self) -> float:
        return time.monotonic() - self._started_at

    def sessions_by_state(self) -> dict[str, int]:
        """Open sessions by what they are doing: awaiting_hello, lobby, queued, playing, spectating, closing."""
        states = dict.fromkeys(("awaiting_hello", "lobby", "queued", "playing", "spectating", "closing"), 0)
        queued = {ticket.subject for ticket in self._matchmaking.queued()} if self._matchmaking else set()
        for session in self.sessions:
            if session.closing:
                state = "closing"
            elif session.identity is None or session.name is None:
                state = "awaiting_hello"
            elif session.match is not None:
                state = "playing" if session.player_id is not None else "spectating"
            elif session.identity.subject in queued:
                state = "queued"
            else:
                state = "lobby"
            states[state] += 1
        return states

    def queue_lengths(self) -> dict[str, int]:
        lengths = dict.fromkeys((mode.name for mode in self.config.modes), 0)
        if self._matchmaking is not None:
            for ticket in self._matchmaking.queued():
                lengths[ticket.mode] = lengths.get(ticket.mode, 0) + 1
        return lengths

    def traffic(self) -> dict[str, int]:
        """Messages and bytes received, frames and bytes sent, backlog overflows: since start, all sessions."""
        totals = Counter(self._closed_traffic)
        for session in self.sessions:
            totals.update(_traffic_of(session))
        return {name: totals[name] for name in _TRAFFIC}

    def _observe_ticks(self, lateness: Timings, duration: Timings) -> None:
        self.metrics.tick_lateness.observe_all(lateness)
        self.metrics.tick_duration.observe_all(duration)

    def _limit_hit(self, limit: str) -> None:
        self.metrics.limit_hits.labels(limit=limit).inc()

    def _welcome(self) -> Welcome:
        rules = self.rules
        return Welcome(
            protocol=PROTOCOL_VERSION,
            server=f"arena/{VERSION}",
            tick_rate=rules.tick_rate,
            rules=client_rules(rules),
            modes=[
                {"name": m.name, "min_players": m.min_players, "max_players": m.max_players} for m in self.config.modes
            ],
            limits={
                "max_message_bytes": MAX_CLIENT_MESSAGE_BYTES,
                "max_messages_per_second": self.config.max_frames_per_second,
                "max_frames_per_second": self.config.max_frames_per_second,
                "max_frames_before_hello": self.config.max_frames_before_hello,
                "max_pings_per_second": self.config.max_pings_per_second,
                "ping_interval_seconds": self.config.ping_interval,
                "pong_timeout_seconds": self.config.pong_timeout,
                "hello_timeout_seconds": self.config.hello_timeout,
            },
        )

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept connections for ever. Out of file descriptors, answer waiting connections one at a time with
        the reserve descriptor (so /healthz keeps answering), and back off when that cannot go on either."""
        backoff = 0.0
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                if error.errno not in ACCEPT_CAPACITY_ERRORS:
                    raise
                self._accept_failed(error)
                if await self._answer_with_reserve_fd(listener):
                    continue
                backoff = min(max(2 * backoff, 0.01), MAX_ACCEPT_BACKOFF)
                await trio.sleep(backoff)
                continue
            backoff = 0.0
            nursery.start_soon(self._handle_connection, stream)

    def _accept_failed(self, error: OSError) -> None:
        """Count a failed accept; log it at most once per `ACCEPT_ERROR_LOG_INTERVAL`."""
        self.metrics.accept_errors.inc()
        self._limit_hit("out_of_files")
        self._accept_errors_unlogged += 1
        now = trio.current_time()
        if now - self._accept_error_logged_at >= ACCEPT_ERROR_LOG_INTERVAL:
            logger.warning(
                "cannot accept connections: %s (%d times since the last report); backing off. Raise the file "
                "limit (ulimit -n, LimitNOFILE=) or lower --max-connections",
                os.strerror(error.errno or 0),
                self._accept_errors_unlogged,
            )
            self._accept_errors_unlogged = 0
            self._accept_error_logged_at = now

    def _open_reserve_fd(self) -> None:
        if self._reserve_fd is None:
            try:
                self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                self._reserve_fd = None

    async def _answer_with_reserve_fd(self, listener: trio.SocketListener) -> bool:
        """Out of file descriptors: give up the reserve one to accept a waiting connection, answer it (/healthz,
        or 503) and close it, then take the reserve back. False if there was no reserve or no connection."""
        if self._reserve_fd is None:
            self._open_reserve_fd()
            return False
        os.close(self._reserve_fd)
        self._reserve_fd = None
        stream = None
        with trio.move_on_after(0.1), contextlib.suppress(OSError):
            stream = await listener.accept()  # the connection that could not be accepted is still waiting
        if stream is not None:
            try:
                await self._refuse(
                    stream, 503, "the server is out of file descriptors: try again shortly", read_seconds=0.1
                )
            finally:
                await trio.aclose_forcefully(stream)
        self._open_reserve_fd()
        return stream is not None

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        peer = _peer_address(stream)
        counted: str | None = None
        added = False
        try:
            if not is_trusted(peer, self._trusted_proxies):
                counted = address_key(peer)
            refusal = self.connections.refusal(counted)
            if refusal is not None:
                await self._refuse(stream, *refusal)
                return
            self.connections.add(counted)
            added = True
            await self._serve_connection(stream, peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            logger.exception("unexpected error on a connection; it was closed, the server goes on")
        finally:
            if added:
                self.connections.remove(counted)
            with trio.move_on_after(self.config.close_timeout) as scope:
                scope.shield = True
                await stream.aclose()

    async def _secured(self, stream: trio.SocketStream) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
        """The connection as HTTP is read from it: with TLS configured, wrapped and its handshake done."""
        if self._ssl_context is None:
            return stream
        secured = trio.SSLStream(stream, self._ssl_context, server_side=True, https_compatible=True)
        await secured.do_handshake()
        return secured

    async def _refuse(
        self, stream: trio.SocketStream, status: int, reason: str, *, read_seconds: float = REFUSAL_READ_SECONDS
    ) -> None:
        """Answer a connection refused before its request was read: read the head briefly, answer `status`
        (or /healthz, which keeps answering when the server is full), close. At most
        `MAX_REFUSALS_IN_FLIGHT` at once; beyond that the connection is closed unanswered."""
        self._limit_hit("connections_total" if status == 503 else "connections_per_ip")
        if self._refusals_in_flight >= MAX_REFUSALS_IN_FLIGHT:
            return
        self._refusals_in_flight += 1
        try:
            head = None
            transport: trio.SocketStream | trio.SSLStream[trio.SocketStream] = stream
            with trio.move_on_after(read_seconds):
                transport = await self._secured(stream)
                head = await read_request(transport)
            connection = head[0] if head is not None else None
            if head is not None and head[1].path == "/healthz" and status == 503:
                await respond_json(transport, head[0], 200, self.health())
            else:
                headers = (("Retry-After", "1" if status == 503 else "10"),)
                await respond(transport, connection, status, f"{reason}\n".encode(), headers=headers)
            if head is not None:  # a client that said nothing in time is not waited for either
                await close_gracefully(transport, timeout=read_seconds)
        except (BadRequestError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._refusals_in_flight -= 1

    async def _serve_connection(self, stream: trio.SocketStream, peer: str) -> None:
        if self.config.send_buffer_bytes is not None:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.send_buffer_bytes)
        transport: trio.SocketStream | trio.SSLStream[trio.SocketStream] = stream
        head = None
        try:
            with trio.move_on_after(self.config.hello_timeout):
                transport = await self._secured(stream)
                head = await read_request(transport)
        except BadRequestError as error:
            logger.debug("bad request from %s: %s", peer, error, extra={"remote": peer})
            await respond(transport, None, error.status, f"{error}\n".encode())
            return
        if head is None:
            return
        connection, request = head
        del head
        address, counted = peer, None
        if is_trusted(peer, self._trusted_proxies):
            address = client_address(peer, request.headers, self._trusted_proxies)
            refusal = self.connections.address_refusal(address_key(address))
            if refusal is not None:
                self._limit_hit("connections_total" if refusal[0] == 503 else "connections_per_ip")
                retry = (("Retry-After", "10"),)
                await respond(transport, connection, refusal[0], f"{refusal[1]}\n".encode(), headers=retry)
                await close_gracefully(transport)
                return
            counted = address_key(address)
            self.connections.assign(counted)
        remote = address if counted is not None else f"{peer}:{_peer_port(stream)}"
        try:
            if request.path == WEBSOCKET_PATH and request.is_websocket_upgrade:
                try:
                    check_upgrade(request.headers, self._origins)
                except HandshakeError as error:
                    self._limit_hit("origin" if error.status == 403 else "handshake")
                    logger.debug(
                        "refused a WebSocket upgrade from %s: %d %s",
                        remote,
                        error.status,
                        error.reason,
                        extra={"remote": remote},
                    )
                    body = f"{error.reason}\n".encode()
                    await respond(transport, connection, error.status, body, headers=error.headers)
                    await close_gracefully(transport)
                    return
                # the request's work is done, and the WebSocket may live for hours: let it go
                request_head, after_head = request.raw, request.after_head
                del connection, request
                await self._serve_websocket(transport, request_head, after_head, remote)
                return
            try:
                await self._answer_http(transport, connection, request, address)
            except BadRequestError as error:
                await respond(transport, connection, error.status, f"{error}\n".encode())
            finally:
                await close_gracefully(transport)
        finally:
            if counted is not None:
                self.connections.unassign(counted)

    async def _answer_http(
        self, stream: trio.abc.Stream, connection: h11.Connection, request: HttpRequest, address: str
    ) -> None:
        head_only = request.method == "HEAD"
        if request.path == MONITOR_PATH or request.path.startswith(ADMIN_PREFIX):
            await self._answer_admin(stream, connection, request)
            return
        if request.path == "/auth/guest":
            if request.method != "POST":
                await respond(
                    stream, connection, 405, b'POST a JSON object {"name": ...}\n', headers=(("Allow", "POST"),)
                )
                return
            wait = self._guest_tokens.spend(address_key(address), trio.current_time())
            if wait is not None:
                self._limit_hit("guest_tokens")
                limit = self.config.guest_tokens_per_minute
                await respond_json(
                    stream,
                    connection,
                    429,
                    {"error": f"too many guest tokens from your address (the limit is {limit} a minute)"},
                    headers=(("Retry-After", str(math.ceil(wait))),),
                )
                return
            await self._issue_guest_token(stream, connection)
        elif request.method not in ("GET", "HEAD"):
            await respond(stream, connection, 405, b"only GET and HEAD are served\n", headers=(("Allow", "GET, HEAD"),))
        elif request.path == WEBSOCKET_PATH:
            await respond(
                stream,
                connection,
                426,
                b"this endpoint speaks WebSocket only: send an Upgrade: websocket request\n",
                headers=(("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")),
                head_only=head_only,
            )
        elif request.path == "/healthz":
            await respond_json(stream, connection, 200, self.health(), head_only=head_only)
        elif request.path == "/leaderboard" or request.path.startswith("/players/"):
            await self._answer_ratings(stream, connection, request.path, head_only=head_only)
        elif request.path == "/replays" or request.path.startswith("/replays/"):
            await self._answer_replays(stream, connection, request.path, head_only=head_only)
        elif request.path == "/metrics":
            if not is_trusted(address, self._metrics_networks) and not self._is_admin(request):
                body = b"/metrics is open to --metrics-from networks (and the admin token) only\n"
                await respond(stream, connection, 403, body, head_only=head_only)
                return
            body = self.metrics.exposition()
            await respond(stream, connection, 200, body, content_type=METRICS_CONTENT_TYPE, head_only=head_only)
        elif request.path == "/matches":
            local = self.directory.listing()
            if self.fleet is None:
                await respond_json(stream, connection, 200, {"matches": local}, head_only=head_only)
            else:
                matches, whole_fleet = self.fleet.listing(local)
                await respond_json(
                    stream, connection, 200, {"matches": matches, "fleet": whole_fleet}, head_only=head_only
                )
        else:
            file = static_file(self.config.client_dir, request.path)
            if file is None:
                await respond(stream, connection, 404, f"nothing at {request.path}\n".encode(), head_only=head_only)
            else:
                body = await trio.Path(file).read_bytes()
                await respond(stream, connection, 200, body, content_type=content_type_of(file), head_only=head_only)

    async def _issue_guest_token(self, stream: trio.abc.Stream, connection: h11.Connection) -> None:
        body = await read_body(stream, connection, max_bytes=MAX_GUEST_REQUEST_BYTES)
        try:
            request = json.loads(body or b"{}")
            name = validate_display_name(request.get("name") if isinstance(request, dict) else None)
            token, identity = self.authenticator.issue_guest(name)
        except (ValueError, AuthError) as error:
            status = 403 if isinstance(error, AuthError) else 400
            await respond_json(stream, connection, status, {"error": str(error)})
            return
        self.metrics.guest_tokens.inc()
        expires_in = round(identity.expires_at - time.time())
        await respond_json(
            stream,
            connection,
            200,
            {"token": token, "player": identity.subject, "name": name, "expires_in": expires_in},
        )

    async def _answer_replays(
        self, stream: trio.abc.Stream, connection: h11.Connection, path: str, *, head_only: bool
    ) -> None:
        """GET /replays lists the recorded matches; GET /replays/{id} downloads one (docs/protocol.md)."""
        directory = self.config.replay_dir
        if directory is None:
            await respond(stream, connection, 404, b"matches are not recorded on this server (--replay-dir)\n")
            return
        if path == "/replays":
            replays = await trio.to_thread.run_sync(list_replays, directory) if directory.exists() else []
            await respond_json(stream, connection, 200, {"replays": replays}, head_only=head_only)
            return
        replay_id = path[len("/replays/") :]
        as_view = replay_id.endswith("/view")
        replay_id = replay_id.removesuffix("/view")
        file = directory / f"{replay_id}{REPLAY_SUFFIX}"
        if not REPLAY_ID.match(replay_id) or not await trio.Path(file).is_file():
            await respond(stream, connection, 404, f"no replay {replay_id[:80]!r}\n".encode(), head_only=head_only)
            return
        if as_view:
            async with self._replay_renderer:  # one at a time: it is a minute of CPU per hour of match
                # in a process of its own at the lowest priority, never in the ticks' (server.replay_view)
                rendered = await trio.run_process(
                    [sys.executable, "-m", "server.replay_view", str(file)],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            reason = rendered.stderr.decode(errors="replace").strip()
            if rendered.returncode == 1:
                await respond(stream, connection, 422, f"{reason}\n".encode())
            elif rendered.returncode != 0:
                logger.error(
                    "rendering the replay %s for a viewer failed (exit %d): %s",
                    replay_id,
                    rendered.returncode,
                    reason[-2000:],
                )
                await respond(stream, connection, 500, b"the replay could not be rendered; please report it\n")
            else:
                await respond(
                    stream, connection, 200, rendered.stdout, content_type="application/msgpack", head_only=head_only
                )
            return
        body = await trio.Path(file).read_bytes()
        headers = (("Content-Disposition", f'attachment; filename="{file.name}"'),)
        await respond(
            stream, connection, 200, body, content_type="application/octet-stream", headers=headers, head_only=head_only
        )

    async def _answer_ratings(
        self, stream: trio.abc.Stream, connection: h11.Connection, path: str, *, head_only: bool
    ) -> None:
        """GET /leaderboard (the best 50) and GET /players/{id} (one player's rating)."""
        store = self.ratings
        if store is None:
            await respond(stream, connection, 404, b"this server keeps no ratings (--data-dir)\n")
            return
        if path == "/leaderboard":
            try:
                top = await store.leaderboard(LEADERBOARD_SIZE)
            except RatingStoreUnavailable as error:
                await respond_json(stream, connection, 503, {"error": f"{error}; try again shortly"})
                return
            leaderboard = [{"rank": index, **rating.public()} for index, rating in enumerate(top, start=1)]
            await respond_json(stream, connection, 200, {"leaderboard": leaderboard}, head_only=head_only)
            return
        subject = path[len("/players/") :]
        try:
            found = (await store.get_many([subject])).get(subject) if subject else None
        except RatingStoreUnavailable as error:
            await respond_json(stream, connection, 503, {"error": f"{error}; try again shortly"})
            return
        if found is None:
            await respond_json(stream, connection, 404, {"error": f"no rated player {subject[:80]!r}"})
            return
        await respond_json(stream, connection, 200, found.public(), head_only=head_only)

    async def _load_rating(self, session: Session) -> None:
        """Learn a player's rating for matchmaking (a worker thread reads the store)."""
        store = self.ratings
        if store is None or session.identity is None:
            return
        subject = session.identity.subject
        try:
            found = (await store.get_many([subject])).get(subject)
        except RatingStoreUnavailable as error:
            logger.warning("could not read the rating of %s: %s", subject, error, extra=session.log_fields)
            return
        if found is not None:
            session.rating = found.ordinal

    async def _rate(self, match: Match) -> None:
        """Rate the players of a match that ended, store it (off the tick's path), and tell them."""
        store = self.ratings
        if store is None:
            return
        lines, subjects = match.standings()
        if len(subjects) < 2:
            return  # beating bots proves nothing
        try:
            before = await store.get_many(list(subjects.values()))
            results = rate_match(self._rating_model, lines, subjects, before)
            await store.save([after for _, after in results])
        except RatingStoreUnavailable as error:
            logger.error("match %s: ratings not saved: %s", match.id, error, extra={"match": match.id})
            return
        for old, new in results:
            session = self.sessions_by_subject.get(new.subject)
            if session is not None:
                session.rating = new.ordinal
                change = round(new.ordinal - old.ordinal, 2)
                rated = Rated(match=match.id, rating=round(new.ordinal, 2), change=change, matches=new.matches)
                session.send_control(encode(rated))

    def _is_admin(self, request: HttpRequest) -> bool:
        token = self.config.admin_token
        authorization = (request.header(b"authorization") or b"").decode("latin-1")
        scheme, _, presented = authorization.partition(" ")
        return token is not None and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token)

    async def _answer_admin(self, stream: trio.abc.Stream, connection: h11.Connection, request: HttpRequest) -> None:
        """The operators' monitor page and admin API (docs/operations.md), all behind the admin token."""
        path, method = request.path, request.method
        if self.config.admin_token is None:
            body = b"the monitor and the admin API are off: start the server with --admin-token-file FILE\n"
            await respond(stream, connection, 404, body)
            return
        if path == MONITOR_PATH:
            if method not in ("GET", "HEAD"):
                await respond(stream, connection, 405, b"GET the monitor\n", headers=(("Allow", "GET, HEAD"),))
                return
            page = await trio.Path(self.config.client_dir / "monitor.html").read_bytes()
            await respond(stream, connection, 200, page, content_type="text/html; charset=utf-8")
            return
        if not self._is_admin(request):
            self.metrics.auth_failures.labels(where="admin").inc()
            body = b"the admin API needs 'Authorization: Bearer <admin token>'\n"
            await respond(stream, connection, 401, body, headers=(("WWW-Authenticate", 'Bearer realm="arena admin"'),))
            return
        parts = path[len(ADMIN_PREFIX) :].split("/")
        if method in ("GET", "HEAD") and parts == ["state"]:
            await respond_json(stream, connection, 200, self.monitor_state(), head_only=method == "HEAD")
            return
        if method != "POST":
            await respond(stream, connection, 405, b"admin actions are POST requests\n", headers=(("Allow", "POST"),))
            return
        if len(parts) == 3 and parts[0] == "matches" and parts[2] == "end":
            match = self.directory.matches.get(parts[1])
            if match is None or match.finished:
                await respond_json(stream, connection, 404, {"error": f"no running match {parts[1]!r}"})
                return
            match.end()
            self.metrics.admin_actions.labels(action="end_match").inc()
            logger.warning("an operator ended match %s", match.id, extra={"match": match.id})
            await respond_json(stream, connection, 200, {"ended": match.id})
        elif len(parts) == 3 and parts[0] == "players" and parts[2] == "kick":
            session = self.sessions_by_subject.get(parts[1])
            if session is None:
                await respond_json(stream, connection, 404, {"error": f"player {parts[1]!r} is not connected"})
                return
            if session.match is not None:
                session.match.remove(session, reason="kicked")
            session.close(CloseCode.KICKED, "kicked by an operator")
            self.metrics.admin_actions.labels(action="kick").inc()
            logger.warning("an operator kicked player %s (session %d)", parts[1], session.id, extra=session.log_fields)
            await respond_json(stream, connection, 200, {"kicked": parts[1]})
        elif parts == ["drain"]:
            self.metrics.admin_actions.labels(action="drain").inc()
            logger.warning("an operator asked the server to drain")
            await respond_json(
                stream, connection, 202, {"draining": True, "timeout_seconds": self.config.drain_timeout}
            )
            self.shutdown()
        else:
            await respond(stream, connection, 404, f"no admin action at {path}\n".encode())

    def monitor_state(self) -> dict[str, Any]:
        """Everything the monitor shows, in one JSON value."""
        directory = self._directory
        now = trio.current_time()
        queued = []
        if self._matchmaking is not None:
            for ticket in self._matchmaking.queued():
                session = self.sessions_by_subject.get(ticket.subject)
                queued.append(
                    {
                        "subject": ticket.subject,
                        "name": session.name if session else None,
                        "mode": ticket.mode,
                        "waiting_seconds": round(now - ticket.queued_at, 1),
                    }
                )
        return {
            "server": {
                "status": "draining" if self.draining else "ok",
                "uptime_seconds": round(self.uptime(), 1),
                "tcp_connections": self.connections.total,
                "sessions": self.sessions_by_state(),
                "queues": self.queue_lengths(),
                "tick": self.statistics.summary(),
            },
            "matches": [match.monitor() for match in directory.matches.values()] if directory else [],
            "queue": queued,
            "history": list(self._history),
        }

    async def _record_history(self) -> None:
        """Once a second: the last second's tick lateness (ms), the share of a core the process and its ticks
        used, and the connection and queue counts, for the monitor's plots (the last `HISTORY_SECONDS`)."""
        cpu_before, wall_before = time.process_time(), time.monotonic()
        while True:
            await trio.sleep(1.0)
            cpu, wall = time.process_time(), time.monotonic()
            self._cpu_share = (cpu - cpu_before) / max(wall - wall_before, 1e-6)
            cpu_before, wall_before = cpu, wall
            now = trio.current_time()
            recent = self.statistics.lateness_since(now - 1.0)
            p50, p99, most = percentiles_ms(recent, (0.5, 0.99, 1.0)) if len(recent) else (None, None, None)
            point: dict[str, float | int | None] = {
                "t": round(self.uptime(), 1),
                "cpu": round(self._cpu_share, 3),
                "ticks": round(self._directory.tick_load, 3) if self._directory else 0.0,
                "lateness_ms_p50": p50,
                "lateness_ms_p99": p99,
                "lateness_ms_max": most,
                "connections": len(self.sessions),
                "queued": sum(self.queue_lengths().values()),
            }
            self._history.append(point)

    def _check_upgrade(self, headers: list[tuple[bytes, bytes]]) -> Identity | None:
        """Verify a token sent as `Authorization: Bearer`; no header means the token comes in `hello`."""
        authorization = next((value for key, value in headers if key.lower() == b"authorization"), None)
        if authorization is None:
            return None
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HandshakeRefusal(401, "Authorization must be 'Bearer <token>'")
        try:
            return self.authenticator.verify(token.strip())
        except AuthError as error:
            self.metrics.auth_failures.labels(where="upgrade").inc()
            raise HandshakeRefusal(401, f"authentication failed: {error}") from None

    async def _serve_websocket(
        self,
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
        request_head: bytes,
        after_head: bytes,
        remote: str,
    ) -> None:
        opened: list[Session] = []

        def open_session(accepted: AcceptedWebSocket[Identity | None]) -> Session:
            session = Session(
                ws=accepted.ws,
                outbox=accepted.outbox,
                nursery=accepted.nursery,
                config=self.config,
                timers=self._timers,
                handle_message=self._handle_message,
                remote=remote,
                budget=FrameBudget(self._frame_limits),
                on_limit=self._limit_hit,
                identity=accepted.checked,
            )
            opened.append(session)
            self.sessions.add(session)
            session.send_control(self._welcome_frame)
            session.start()
            if self.draining:
                session.close(CloseCode.GOING_AWAY, "server is shutting down")
            return session

        try:
            await serve_websocket(
                stream,
                request_head,
                after_head,
                check=self._check_upgrade,
                open_listener=open_session,
                max_message_size=MAX_CLIENT_MESSAGE_BYTES,
                outbox_capacity=self.config.outbox_capacity,
                delay=self.config.simulated_latency,
                reader=self._socket_reader,
            )
        finally:
            for session in opened:
                session.connection_lost()
                self._forget(session)
                self.metrics.closes.labels(code=str(session.close_code or CloseCode.NORMAL)).inc()
                self._closed_traffic.update(_traffic_of(session))
                logger.info(
                    "session %d closed: %s %s",
                    session.id,
                    session.close_code,
                    session.close_reason,
                    extra={**session.log_fields, "close_code": session.close_code},
                )

    def _forget(self, session: Session) -> None:
        """A session's connection is gone: free what it held (a held seat stays held for resuming)."""
        subject = session.identity.subject if session.identity else None
        if subject is not None and self.sessions_by_subject.get(subject) is session:
            del self.sessions_by_subject[subject]
            self._connected_at.pop(subject, None)
            if self._matchmaking is not None:
                self.matchmaking.cancel(subject)
        if session.match is not None:
            session.match.detach(session)
        self.sessions.discard(session)
        self._sessions_changed.set()

    def _handle_message(self, session: Session, message: ClientMessage) -> None:
        """Act on one valid message. Never blocks; raises ProtocolError for a message out of place."""
        if isinstance(message, Hello):
            self._hello(session, message)
            return
        identity = session.identity
        if session.name is None or identity is None:
            raise ProtocolError(CloseCode.POLICY_VIOLATION, "the first message must be hello")
        subject = identity.subject
        if isinstance(message, Input):
            if session.player_id is not None:
                session.receive_input(message.player_input())
        elif isinstance(message, Refresh):
            self._refresh(session, message.token)
        elif isinstance(message, Queue):
            if session.match is not None:
                session.send_control(encode(Refused(request="queue", reason="leave your match first")))
                return
            try:
                self.matchmaking.enqueue(subject, message.mode, rating=session.rating)
            except MatchmakingError as error:
                session.send_control(encode(Refused(request="queue", reason=str(error))))
                return
            self._send_queue_status(session)
        elif isinstance(message, Cancel):
            if self.matchmaking.cancel(subject):
                session.send_control(encode(Cancelled(reason="cancelled")))
        elif isinstance(message, Join):
            self._join(session, subject, message.reservation)
        elif isinstance(message, Resume):
            self._resume(session, subject, message.token)
        elif isinstance(message, Spectate):
            self._leave_current_match(session, reason="joined_another")
            try:
                self.directory.get(message.match).add_spectator(session)
            except SeatError as error:
                session.send_control(encode(Refused(request="spectate", reason=str(error))))
        elif isinstance(message, ListMatches):
            local = self.directory.listing()
            session.send_control(encode(Matches(matches=self.fleet.listing(local)[0] if self.fleet else local)))
        elif isinstance(message, Leave):
            self._leave_current_match(session, reason="left")

    def _hello(self, session: Session, hello: Hello) -> None:
        if session.name is not None:
            raise ProtocolError(CloseCode.POLICY_VIOLATION, "hello was already sent")
        if hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                CloseCode.UNSUPPORTED_PROTOCOL_VERSION,
                f"this server speaks protocol {PROTOCOL_VERSION}, not {hello.protocol}",
            )
        identity = session.identity
        if hello.token is not None:
            identity = self._verify(hello.token)
        if identity is None:
            raise ProtocolError(
                CloseCode.POLICY_VIOLATION, "authentication needed: send a token in hello or an Authorization header"
            )
        name = (hello.name or identity.name or "player").strip()
        session.authenticated(identity, name)
        if self.ratings is not None:
            session.nursery.start_soon(self._load_rating, session)
        session.expire_token_at(trio.current_time() + (identity.expires_at - time.time()))
        expires_in = round(identity.expires_at - time.time(), 1)
        session.send_control(encode(Authenticated(player=identity.subject, name=name, expires_in=expires_in)))
        previous = self.sessions_by_subject.get(identity.subject)
        self.sessions_by_subject[identity.subject] = session
        self._connected_at[identity.subject] = time.time()
        if isinstance(self._matchmaking, FleetMatchmaking):
            self._matchmaking.connected(identity.subject)
        if previous is not None and previous is not session:
            self.metrics.replaced_connections.inc()
            previous.close(4002, "replaced: the same player connected again elsewhere")
            if previous.match is not None and previous.player_id is not None:
                previous.match.take_over(previous, session)

    def _verify(self, token: str) -> Identity:
        try:
            return self.authenticator.verify(token)
        except AuthError as error:
            self.metrics.auth_failures.labels(where="hello").inc()
            raise ProtocolError(CloseCode.POLICY_VIOLATION, f"authentication failed: {error}") from None

    def _refresh(self, session: Session, token: str) -> None:
        identity = self._verify(token)
        assert session.identity is not None
        if identity.subject != session.identity.subject:
            raise ProtocolError(CloseCode.POLICY_VIOLATION, "refresh: the new token is for another player")
        session.identity = identity
        session.expire_token_at(trio.current_time() + (identity.expires_at - time.time()))
        expires_in = round(identity.expires_at - time.time(), 1)
        session.send_control(
            encode(Authenticated(player=identity.subject, name=session.name or "", expires_in=expires_in))
        )

    def _join(self, session: Session, subject: str, reservation_id: str) -> None:
        try:
            reservation = self.matchmaking.redeem(reservation_id, subject)
            match = self.directory.get(reservation.match_id)
            match.reservation_settled()
            self._leave_current_match(session, reason="joined_another")
            match.add_player(session, subject)
            if isinstance(self._matchmaking, FleetMatchmaking):
                self._matchmaking.seated(subject, match.id)
        except (MatchmakingError, SeatError) as error:
            reason = error.reason if isinstance(error, SeatError) else "reservation"
            self.metrics.joins_refused.labels(reason=reason).inc()
            session.send_control(encode(Refused(request="join", reason=str(error))))

    def _resume(self, session: Session, subject: str, token: str) -> None:
        ended = self.directory.ended_seat(token, subject)
        if ended is not None and ended.moved_to is not None:
            # the match went on at another server (this one drained): resume there
            session.send_control(encode(Moved(match=ended.match_id, url=ended.moved_to)))
            return
        if ended is not None:
            # the match ended while the player was away: its final state (the scoreboard), then out of it
            self._leave_current_match(session, reason="joined_another")
            session.send_control(ended.final_snapshot)
            session.send_control(encode(Left(match=ended.match_id, reason=ended.reason)))
            self.metrics.resumes.inc()
            self.metrics.resumes_after_the_end.inc()
            return
        try:
            match = self.directory.find_by_resume_token(token)
            if session.match is not match:
                self._leave_current_match(session, reason="joined_another")
            after_a_move = match.resume(session, subject, token)
        except SeatError as error:
            if error.reason == "unknown_token" and isinstance(self._matchmaking, FleetMatchmaking):
                session.nursery.start_soon(self._resume_elsewhere, session, subject, error, self._matchmaking)
                return
            self.metrics.resumes_refused.labels(reason=error.reason).inc()
            session.send_control(encode(Refused(request="resume", reason=str(error))))
            return
        (self.metrics.resumes_after_a_move if after_a_move else self.metrics.resumes).inc()

    async def _resume_elsewhere(
        self, session: Session, subject: str, error: SeatError, fleet: FleetMatchmaking
    ) -> None:
        """A resume token this server does not know, in a fleet: the player's seat may be on another server (it
        is sent there with `moved`), or on one that is gone (it is told so, and queues again)."""
        reason, why = error.reason, str(error)
        try:
            seat = await fleet.where_is(subject)
        except (*REDIS_FAILURES, trio.TooSlowError):
            seat = None
        if seat is not None and seat["server"] != fleet.server_id:
            if seat["alive"]:
                session.send_control(encode(Moved(match=str(seat["match"]), url=str(seat["url"]))))
                return
            reason = "server_gone"
            why = f"the server that hosted your match ({seat['server']}) is gone: queue for a new match"
        self.metrics.resumes_refused.labels(reason=reason).inc()
        session.send_control(encode(Refused(request="resume", reason=why)))

    def _replaced_elsewhere(self, subject: str, at: float) -> None:
        """The player connected to another server of the fleet at `at`: close its older connection here."""
        session = self.sessions_by_subject.get(subject)
        if session is not None and self._connected_at.get(subject, math.inf) < at:
            self.metrics.replaced_connections.inc()
            session.close(4002, "replaced: the same player connected again to another server")

    def _leave_current_match(self, session: Session, *, reason: str) -> None:
        if session.match is not None:
            session.match.remove(session, reason=reason)

    def _send_queue_status(self, session: Session) -> None:
        assert session.identity is not None
        status = self.matchmaking.queue_status(session.identity.subject)
        if status is not None:
            session.send_control(encode(status))

    def _send_to_player(self, subject: str, message: Any) -> bool:
        """Send a server message to the player's session here; False if it has none here."""
        session = self.sessions_by_subject.get(subject)
        if session is None:
            return False
        session.send_control(encode(message))
        return True

    def _start_matchmaking(self, directory: InMemoryMatchDirectory) -> Matchmaking:
        """Matchmaking in this process, or across the fleet when there is one."""
        config = self.config
        if self.fleet is None:
            matchmaker = Matchmaker(
                directory=directory, modes=config.modes, reservation_seconds=config.reservation_seconds
            )
            return LocalMatchmaking(
                matchmaker=matchmaker, directory=directory, metrics=self.metrics, send=self._send_to_player
            )
        assert config.redis_url is not None
        return FleetMatchmaking(
            redis_url=config.redis_url,
            presence=self.fleet,
            directory=directory,
            metrics=self.metrics,
            send=self._send_to_player,
            modes=modes_by_name(config.modes),
            reservation_seconds=config.reservation_seconds,
            admitting=lambda: not self.draining,
            replaced=self._replaced_elsewhere,
        )


_TRAFFIC = (
    "arena_received_messages",
    "arena_received_bytes",
    "arena_sent_frames",
    "arena_sent_bytes",
    "arena_backlog_overflows",
)


def _traffic_of(session: Session) -> dict[str, int]:
    return {
        "arena_received_messages": session.messages_received,
        "arena_received_bytes": session.bytes_received,
        "arena_sent_frames": session.outbox.frames_sent,
        "arena_sent_bytes": session.outbox.bytes_sent,
        "arena_backlog_overflows": session.overflows,
    }


def render_replay_view(data: bytes) -> bytes:
    """A replay file as the viewer downloads it (see codec.encode_replay_view). Raises ReplayError."""
    replay = read_replay(data)
    return encode_replay_view(replay.header, client_rules(replay.rules), frames_for_viewer(replay))


def client_rules(rules: Rules) -> dict[str, Any]:
    """The rules as clients get them (`welcome.rules`): what they need to draw the arena and predict moves."""
    return {
        "width": rules.width,
        "height": rules.height,
        "walls": [[w.x, w.y, w.width, w.height] for w in rules.walls],
        "player_radius": rules.player_radius,
        "player_speed": rules.player_speed,
        "projectile_speed": rules.projectile_speed,
        "projectile_radius": rules.projectile_radius,
        "projectile_life_ticks": rules.projectile_life_ticks,
        "fire_interval_ticks": rules.fire_interval_ticks,
        "max_hp": rules.max_hp,
        "kill_limit": rules.kill_limit,
        "duration_seconds": rules.duration_seconds,
        "min_players": rules.min_players,
        "max_players": rules.max_players,
        "lag_compensation_seconds": rules.lag_compensation_seconds,
        "tick_rate": rules.tick_rate,
    }


def _peer_address(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "unknown"


def _peer_port(stream: trio.SocketStream) -> int:
    try:
        return int(stream.socket.getpeername()[1])
    except OSError:
        return 0


def tls_context(cert: os.PathLike[str], key: os.PathLike[str]) -> ssl.SSLContext:
    """A server-side TLS context: TLS 1.2 or newer, the library's default ciphers, no renegotiation, HTTP/1.1.

    Raises:
        ValueError: if a file cannot be read, or they are not a matching PEM pair.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        raise ValueError(f"--tls-cert {cert} and --tls-key {key} are not a matching PEM pair: {error}") from None
    except OSError as error:
        raise ValueError(f"cannot read --tls-cert {cert} or --tls-key {key}: {error.strerror}") from None
    return context
