"""The server: one port for the browser client, /healthz, /matches, /auth/guest and the WebSocket endpoint
/ws; authentication, matchmaking, sessions; drain.

Rules: every connection runs in its own task and nursery, so nothing one client does can stop another; a
handler never lets an exception escape to the listener; a client is known by its token before it may do
anything; one identity has at most one connection (the newer one wins); shutting down stops accepting,
closes every client with 1001 and waits at most `drain_timeout` for them.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections import Counter
from typing import Any

import attrs
import h11
import trio

from game import PlayerInput, Rules
from server.auth import Authenticator, AuthError, Identity
from server.codec import MAX_CLIENT_MESSAGE_BYTES, CloseCode, ProtocolError, encode
from server.config import ServerConfig
from server.directory import InMemoryMatchDirectory
from server.match import SeatError, TickStatistics
from server.matchmaker import Matchmaker, MatchmakingError
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
    ListMatches,
    Matches,
    Queue,
    Queued,
    Refresh,
    Refused,
    Reserved,
    Resume,
    Spectate,
    Welcome,
    validate_display_name,
)
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
MATCHMAKING_INTERVAL = 0.1
QUEUE_STATUS_INTERVAL = 1.0
MAX_GUEST_REQUEST_BYTES = 1024


@attrs.define(eq=False)
class ArenaServer:
    config: ServerConfig
    rules: Rules = attrs.field(init=False)
    statistics: TickStatistics = attrs.field(factory=TickStatistics, init=False)
    authenticator: Authenticator = attrs.field(init=False)
    sessions: set[Session] = attrs.field(factory=set, init=False)
    sessions_by_subject: dict[str, Session] = attrs.field(factory=dict, init=False)
    close_codes: Counter[int] = attrs.field(factory=Counter, init=False)
    counters: Counter[str] = attrs.field(factory=Counter, init=False)
    port: int = attrs.field(default=0, init=False)
    draining: bool = attrs.field(default=False, init=False)
    _directory: InMemoryMatchDirectory | None = attrs.field(default=None, init=False)
    _matchmaker: Matchmaker | None = attrs.field(default=None, init=False)
    _started_at: float = attrs.field(factory=time.monotonic, init=False)
    _shutdown_requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    _sessions_changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _overflows_of_closed_sessions: int = attrs.field(default=0, init=False)
    _welcome_frame: bytes = attrs.field(init=False)
    _timers: Timers = attrs.field(factory=Timers, init=False)

    def __attrs_post_init__(self) -> None:
        config = self.config
        self.rules = Rules(
            tick_rate=config.tick_rate, kill_limit=config.kill_limit, duration_seconds=config.match_seconds
        )
        self.authenticator = Authenticator(config.auth)
        self._welcome_frame = encode(self._welcome())

    @property
    def directory(self) -> InMemoryMatchDirectory:
        assert self._directory is not None, "the server is not running"
        return self._directory

    @property
    def matchmaker(self) -> Matchmaker:
        assert self._matchmaker is not None, "the server is not running"
        return self._matchmaker

    async def run(self, *, task_status: trio.TaskStatus[ArenaServer] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `shutdown()` is called, then drain.

        `task_status.started` reports this server once it listens (`port` is then the bound port).
        """
        listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            self._directory = InMemoryMatchDirectory(
                nursery=nursery,
                rules=self.rules,
                statistics=self.statistics,
                linger_seconds=self.config.match_linger_seconds,
                resume_window=self.config.resume_window,
                bot_takes_over=self.config.bot_takes_over,
                seed=self.config.seed,
            )
            self._matchmaker = Matchmaker(
                directory=self._directory, modes=self.config.modes, reservation_seconds=self.config.reservation_seconds
            )
            accepting = trio.CancelScope()

            async def accept() -> None:
                with accepting:
                    await trio.serve_listeners(self._handle_connection, listeners, handler_nursery=nursery)

            await nursery.start(self._timers.run)
            nursery.start_soon(accept)
            nursery.start_soon(self._matchmaking_loop)
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
        directory = self._directory
        return {
            "status": "draining" if self.draining else "ok",
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "uptime_seconds": round(time.monotonic() - self._started_at, 1),
            "tick_rate": self.config.tick_rate,
            "connections": len(self.sessions),
            "matches": len(directory.matches) if directory else 0,
            "players": directory.player_count if directory else 0,
            "queued": len(list(self._matchmaker.queued())) if self._matchmaker else 0,
            "tick": self.statistics.summary(),
            "backlog_overflows": self._overflows_of_closed_sessions + sum(s.overflows for s in self.sessions),
            "counters": dict(sorted(self.counters.items())),
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
            modes=[
                {"name": m.name, "min_players": m.min_players, "max_players": m.max_players} for m in self.config.modes
            ],
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
        del head
        if request.path == WEBSOCKET_PATH and request.is_websocket_upgrade:
            del connection  # its work is done, and the WebSocket may live for hours: let both go
            request_head, after_head = request.raw, request.after_head
            del request
            await self._serve_websocket(stream, request_head, after_head)
            return
        try:
            await self._answer_http(stream, connection, request)
        except BadRequestError as error:
            await respond(stream, connection, error.status, f"{error}\n".encode())
        finally:
            await close_gracefully(stream)

    async def _answer_http(self, stream: trio.SocketStream, connection: h11.Connection, request: HttpRequest) -> None:
        head_only = request.method == "HEAD"
        if request.path == "/auth/guest":
            if request.method != "POST":
                await respond(
                    stream, connection, 405, b'POST a JSON object {"name": ...}\n', headers=(("Allow", "POST"),)
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
        elif request.path == "/matches":
            await respond_json(stream, connection, 200, {"matches": self.directory.listing()}, head_only=head_only)
        else:
            file = static_file(self.config.client_dir, request.path)
            if file is None:
                await respond(stream, connection, 404, f"nothing at {request.path}\n".encode(), head_only=head_only)
            else:
                body = await trio.Path(file).read_bytes()
                await respond(stream, connection, 200, body, content_type=content_type_of(file), head_only=head_only)

    async def _issue_guest_token(self, stream: trio.SocketStream, connection: h11.Connection) -> None:
        body = await read_body(stream, connection, max_bytes=MAX_GUEST_REQUEST_BYTES)
        try:
            request = json.loads(body or b"{}")
            name = validate_display_name(request.get("name") if isinstance(request, dict) else None)
            token, identity = self.authenticator.issue_guest(name)
        except (ValueError, AuthError) as error:
            status = 403 if isinstance(error, AuthError) else 400
            await respond_json(stream, connection, status, {"error": str(error)})
            return
        self.counters["guest_tokens"] += 1
        expires_in = round(identity.expires_at - time.time())
        await respond_json(
            stream,
            connection,
            200,
            {"token": token, "player": identity.subject, "name": name, "expires_in": expires_in},
        )

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
            self.counters["auth_refused"] += 1
            raise HandshakeRefusal(401, f"authentication failed: {error}") from None

    async def _serve_websocket(self, stream: trio.SocketStream, request_head: bytes, after_head: bytes) -> None:
        host, port = stream.socket.getpeername()[:2]
        remote = f"{host}:{port}"
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
            )
        finally:
            for session in opened:
                session.connection_lost()
                self._forget(session)
                self.close_codes[session.close_code or CloseCode.NORMAL] += 1
                self._overflows_of_closed_sessions += session.overflows
                logger.info("session %d closed: %s %s", session.id, session.close_code, session.close_reason)

    def _forget(self, session: Session) -> None:
        """A session's connection is gone: free what it held (a held seat stays held for resuming)."""
        subject = session.identity.subject if session.identity else None
        if subject is not None and self.sessions_by_subject.get(subject) is session:
            del self.sessions_by_subject[subject]
            if self._matchmaker is not None:
                self.matchmaker.cancel(subject)
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
                move_x, move_y, aim = message.mx, message.my, float(message.aim)
                session.receive_input(
                    PlayerInput(seq=message.seq, move_x=move_x, move_y=move_y, aim=aim, fire=message.fire)
                )
        elif isinstance(message, Refresh):
            self._refresh(session, message.token)
        elif isinstance(message, Queue):
            if session.match is not None:
                session.send_control(encode(Refused(request="queue", reason="leave your match first")))
                return
            try:
                self.matchmaker.enqueue(subject, message.mode, now=trio.current_time())
            except MatchmakingError as error:
                session.send_control(encode(Refused(request="queue", reason=str(error))))
                return
            self._send_queue_status(session)
        elif isinstance(message, Cancel):
            if self.matchmaker.cancel(subject) is not None:
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
            session.send_control(encode(Matches(matches=self.directory.listing())))
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
        session.identity = identity
        session.name = (hello.name or identity.name or "player").strip()
        session.expire_token_at(trio.current_time() + (identity.expires_at - time.time()))
        expires_in = round(identity.expires_at - time.time(), 1)
        session.send_control(encode(Authenticated(player=identity.subject, name=session.name, expires_in=expires_in)))
        previous = self.sessions_by_subject.get(identity.subject)
        self.sessions_by_subject[identity.subject] = session
        if previous is not None and previous is not session:
            self.counters["replaced_connections"] += 1
            previous.close(4002, "replaced: the same player connected again elsewhere")
            if previous.match is not None and previous.player_id is not None:
                previous.match.take_over(previous, session)

    def _verify(self, token: str) -> Identity:
        try:
            return self.authenticator.verify(token)
        except AuthError as error:
            self.counters["auth_refused"] += 1
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
            reservation = self.matchmaker.redeem(reservation_id, subject, now=trio.current_time())
            match = self.directory.get(reservation.match_id)
            match.reservation_settled()
            self._leave_current_match(session, reason="joined_another")
            match.add_player(session, subject)
        except (MatchmakingError, SeatError) as error:
            self.counters["joins_refused"] += 1
            session.send_control(encode(Refused(request="join", reason=str(error))))

    def _resume(self, session: Session, subject: str, token: str) -> None:
        try:
            match = self.directory.find_by_resume_token(token)
            if session.match is not match:
                self._leave_current_match(session, reason="joined_another")
            match.resume(session, subject, token)
        except SeatError as error:
            self.counters["resumes_refused"] += 1
            session.send_control(encode(Refused(request="resume", reason=str(error))))
            return
        self.counters["resumes"] += 1

    def _leave_current_match(self, session: Session, *, reason: str) -> None:
        if session.match is not None:
            session.match.remove(session, reason=reason)

    def _send_queue_status(self, session: Session) -> None:
        assert session.identity is not None
        now = trio.current_time()
        status = self.matchmaker.status(session.identity.subject, now=now)
        ticket = self.matchmaker.ticket(session.identity.subject)
        if status is None or ticket is None:
            return
        queued = Queued(
            mode=ticket.mode,
            position=status.position,
            waiting=status.waiting,
            estimated_wait=status.estimated_wait_seconds,
        )
        session.send_control(encode(queued))

    async def _matchmaking_loop(self) -> None:
        """Form matches from the queues, hand out reservations, expire unused ones, report queue positions."""
        next_status_at = trio.current_time()
        while True:
            await trio.sleep(MATCHMAKING_INTERVAL)
            now = trio.current_time()
            for formed in self.matchmaker.form_matches(now=now):
                self.counters["matches_formed"] += 1
                self.counters["bots_added"] += formed.bots
                for reservation in formed.reservations:
                    session = self.sessions_by_subject.get(reservation.subject)
                    if session is not None:
                        reserved = Reserved(
                            match=reservation.match_id,
                            mode=reservation.mode,
                            reservation=reservation.id,
                            expires_in=round(reservation.expires_at - now, 1),
                        )
                        session.send_control(encode(reserved))
            for expired in self.matchmaker.expire_reservations(now=now):
                self.counters["reservations_expired"] += 1
                match = self.directory.matches.get(expired.match_id)
                if match is not None:
                    match.reservation_settled()
            if now >= next_status_at:
                next_status_at = now + QUEUE_STATUS_INTERVAL
                for ticket in self.matchmaker.queued():
                    session = self.sessions_by_subject.get(ticket.subject)
                    if session is not None:
                        self._send_queue_status(session)
