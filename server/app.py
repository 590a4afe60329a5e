"""The server: one port for the browser client, /healthz and the WebSocket endpoint /ws; sessions; drain.

Rules: every connection runs in its own task and nursery, so nothing one client does can stop another; a
handler never lets an exception escape to the listener; shutting down stops accepting, closes every client with
1001 and waits at most `drain_timeout` for them.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from typing import Any

import attrs
import h11
import trio

from game import PlayerInput, Rules
from server.codec import MAX_CLIENT_MESSAGE_BYTES, CloseCode, ProtocolError, encode
from server.config import ServerConfig
from server.lobby import Lobby
from server.match import TickStatistics
from server.messages import PROTOCOL_VERSION, ClientMessage, Hello, Input, Join, Leave, Welcome
from server.session import Session
from server.web import (
    BadRequestError,
    HttpRequest,
    close_gracefully,
    content_type_of,
    read_request,
    respond,
    respond_json,
    static_file,
)
from server.websocket import accept_websocket

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
WEBSOCKET_PATH = "/ws"


@attrs.define(eq=False)
class ArenaServer:
    config: ServerConfig
    rules: Rules = attrs.field(init=False)
    statistics: TickStatistics = attrs.field(factory=TickStatistics, init=False)
    lobby: Lobby = attrs.field(init=False)
    sessions: set[Session] = attrs.field(factory=set, init=False)
    close_codes: Counter[int] = attrs.field(factory=Counter, init=False)
    _overflows_of_closed_sessions: int = attrs.field(default=0, init=False)
    port: int = attrs.field(default=0, init=False)
    draining: bool = attrs.field(default=False, init=False)
    _started_at: float = attrs.field(factory=time.monotonic, init=False)
    _shutdown_requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    _sessions_changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _matches_nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _welcome_frame: bytes = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        config = self.config
        self.rules = Rules(
            tick_rate=config.tick_rate, kill_limit=config.kill_limit, duration_seconds=config.match_seconds
        )
        self.lobby = Lobby(
            rules=self.rules, statistics=self.statistics, linger_seconds=config.match_linger_seconds, seed=config.seed
        )
        self._welcome_frame = encode(self._welcome())

    async def run(self, *, task_status: trio.TaskStatus[ArenaServer] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `shutdown()` is called, then drain.

        `task_status.started` reports this server once it listens (`port` is then the bound port).
        """
        listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            self._matches_nursery = nursery
            accepting = trio.CancelScope()

            async def accept() -> None:
                with accepting:
                    await trio.serve_listeners(self._handle_connection, listeners, handler_nursery=nursery)

            nursery.start_soon(accept)
            logger.info("Arena listening on http://%s:%d", self.config.host, self.port)
            task_status.started(self)
            await self._shutdown_requested.wait()
            self.draining = True
            accepting.cancel()
            logger.info("draining: closing %d connections", len(self.sessions))
            for session in list(self.sessions):
                session.close(CloseCode.GOING_AWAY, "server is shutting down")
            with trio.move_on_after(self.config.drain_timeout):
                while self.sessions:
                    self._sessions_changed = trio.Event()
                    await self._sessions_changed.wait()
            nursery.cancel_scope.cancel()

    def shutdown(self) -> None:
        """Stop accepting connections and close every client with 1001 (going away)."""
        self._shutdown_requested.set()

    def health(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.draining else "ok",
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "uptime_seconds": round(time.monotonic() - self._started_at, 1),
            "tick_rate": self.config.tick_rate,
            "connections": len(self.sessions),
            "matches": len(self.lobby.matches),
            "players": self.lobby.player_count,
            "tick": self.statistics.summary(),
            "backlog_overflows": self._overflows_of_closed_sessions + sum(s.overflows for s in self.sessions),
            "close_codes": {str(code): count for code, count in sorted(self.close_codes.items())},
        }

    def _welcome(self) -> Welcome:
        rules = self.rules
        return Welcome(
            protocol=PROTOCOL_VERSION,
            server=f"arena/{VERSION}",
            tick_rate=rules.tick_rate,
            rules={
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
            },
            limits={
                "max_message_bytes": MAX_CLIENT_MESSAGE_BYTES,
                "max_messages_per_second": self.config.max_messages_per_second,
                "ping_interval_seconds": self.config.ping_interval,
                "pong_timeout_seconds": self.config.pong_timeout,
                "hello_timeout_seconds": self.config.hello_timeout,
            },
        )

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve_connection(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            logger.exception("unexpected error on a connection; it was closed, the server goes on")
        finally:
            with trio.move_on_after(self.config.close_timeout) as scope:
                scope.shield = True
                await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        if self.config.send_buffer_bytes is not None:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.send_buffer_bytes)
        head = None
        try:
            with trio.move_on_after(self.config.hello_timeout):
                head = await read_request(stream)
        except BadRequestError as error:
            await respond(stream, None, error.status, f"{error}\n".encode())
            return
        if head is None:
            return
        connection, request = head
        if request.path == WEBSOCKET_PATH and request.is_websocket_upgrade:
            await self._serve_websocket(stream, request.raw, request.after_head)
            return
        try:
            await self._answer_http(stream, connection, request)
        finally:
            await close_gracefully(stream)

    async def _answer_http(self, stream: trio.SocketStream, connection: h11.Connection, request: HttpRequest) -> None:
        head_only = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
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
        else:
            file = static_file(self.config.client_dir, request.path)
            if file is None:
                await respond(stream, connection, 404, f"nothing at {request.path}\n".encode(), head_only=head_only)
            else:
                body = await trio.Path(file).read_bytes()
                await respond(stream, connection, 200, body, content_type=content_type_of(file), head_only=head_only)

    async def _serve_websocket(self, stream: trio.SocketStream, request_head: bytes, after_head: bytes) -> None:
        host, port = stream.socket.getpeername()[:2]
        remote = f"{host}:{port}"
        async with trio.open_nursery() as nursery:
            ws = await accept_websocket(
                nursery,
                stream,
                request_head,
                after_head,
                max_message_size=MAX_CLIENT_MESSAGE_BYTES,
                timeout=self.config.hello_timeout,
            )
            if ws is None:
                nursery.cancel_scope.cancel()
                return
            session = Session(ws=ws, config=self.config, remote=remote)
            if self.draining:
                session.close(CloseCode.GOING_AWAY, "server is shutting down")
            self.sessions.add(session)
            session.send_control(self._welcome_frame)
            try:
                await session.run(self._handle_message)
            finally:
                if session.match is not None:
                    session.match.remove(session, reason="disconnected")
                self.sessions.discard(session)
                self._sessions_changed.set()
                self.close_codes[session.close_code or CloseCode.NORMAL] += 1
                self._overflows_of_closed_sessions += session.overflows
                logger.info("session %d closed: %s %s", session.id, session.close_code, session.close_reason)
                nursery.cancel_scope.cancel()

    def _handle_message(self, session: Session, message: ClientMessage) -> None:
        """Act on one valid message. Never blocks; raises ProtocolError for a message out of place."""
        if isinstance(message, Hello):
            if session.name is not None:
                raise ProtocolError(CloseCode.POLICY_VIOLATION, "hello was already sent")
            if message.protocol != PROTOCOL_VERSION:
                raise ProtocolError(
                    CloseCode.UNSUPPORTED_PROTOCOL_VERSION,
                    f"this server speaks protocol {PROTOCOL_VERSION}, not {message.protocol}",
                )
            session.name = message.name.strip()
            return
        if session.name is None:
            raise ProtocolError(CloseCode.POLICY_VIOLATION, "the first message must be hello")
        if isinstance(message, Input):
            latest = session.latest_input
            if session.match is not None and (latest is None or message.seq > latest.seq):
                session.latest_input = PlayerInput(
                    seq=message.seq, move_x=message.mx, move_y=message.my, aim=float(message.aim), fire=message.fire
                )
        elif isinstance(message, Join):
            if session.match is not None:
                session.match.remove(session, reason="joined_another")
            assert self._matches_nursery is not None
            self.lobby.join(session, self._matches_nursery)
        elif isinstance(message, Leave) and session.match is not None:
            session.match.remove(session, reason="left")
