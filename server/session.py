"""One client's connection: its messages in (validated, rate limited, handed to the server), what it sends
(through its outbox, the socket's one writer), keepalive, deadlines, and closing with a code and a reason.

Rules: nothing that serves a match ever waits on a session (`deliver` never blocks); a session that keeps
overflowing its backlog, leaves its replies unread, stops answering pings, or sends frames beyond its budget is
closed, and costs no one else anything. Every frame the client sends is counted before it is parsed further
(server.limits.FrameBudget); a connection over its budget is failed at once (its Close frame goes out, then the
TCP connection is dropped without waiting for the client's Close). A closed session cancels its timers, so
nothing it set outlives it.
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from game import PlayerInput
from server.auth import Identity
from server.codec import CloseCode, ProtocolError, decode_client, decode_input
from server.config import ServerConfig
from server.limits import FrameBudget, FrameKind
from server.messages import ClientMessage
from server.outbox import Outbox, Put, binary_frame, ping_frame
from server.timers import Timer, Timers

if TYPE_CHECKING:
    from server.match import Match
    from server.websocket import WebSocket

logger = logging.getLogger(__name__)

_session_ids = itertools.count(1)

INPUT_QUEUE_LENGTH = 3
"""Inputs a player may have waiting: enough to absorb network jitter (two inputs landing in one tick), few
enough that a client sending faster than the tick rate is at most this many ticks behind (older ones drop)."""

MessageHandler = Callable[["Session", ClientMessage], None]


@attrs.define(eq=False)
class Session:
    """A client's connection, from the end of the WebSocket handshake until it is closed.

    Messages arrive through `receive_message` (a `ConnectionListener` of server.websocket), in the connection's
    reader task; `handle_message` gets each valid one. Keepalive and deadlines run on the server's `timers`.
    """

    ws: WebSocket
    outbox: Outbox
    nursery: trio.Nursery
    """The connection's nursery: closing runs in it."""
    config: ServerConfig
    timers: Timers
    handle_message: MessageHandler
    remote: str
    """The client's address (a trusted proxy's forwarded one, if it came through one)."""
    budget: FrameBudget
    on_limit: Callable[[str], None] = lambda limit: None
    """Told which limit the client hit (server.metrics.LIMITS) when it is closed for one."""
    id: int = attrs.field(factory=lambda: next(_session_ids))
    name: str | None = None
    identity: Identity | None = None
    token_deadline: float = float("inf")
    """When the identity's token expires, in trio time; the session is closed then unless refreshed."""
    match: Match | None = None
    player_id: int | None = None
    latest_input: PlayerInput | None = None
    """The input the match applied last; it holds while no newer one waits."""
    pending_inputs: list[PlayerInput] = attrs.field(factory=list)
    """Inputs received and not applied yet, oldest first (at most `INPUT_QUEUE_LENGTH`); the match applies one
    per tick."""
    rtt_ms: int = 0
    rating: float = 0.0
    """The player's skill rating (mu - 3 sigma; 0 until known or for a new player): matchmaking uses it."""
    _view_lag: int = attrs.field(default=0, init=False)
    """How many ticks behind the server the latest input's view was when it was first applied."""
    needs_snapshot: bool = False
    overflows: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    close_code: int | None = None
    close_reason: str = ""
    _overflow_times: list[float] = attrs.field(factory=list, init=False)
    closing: bool = attrs.field(default=False, init=False)
    """Whether the session is being closed (then nothing more is sent or handled)."""
    _failing: bool = attrs.field(default=False, init=False)
    _pings_sent: int = attrs.field(default=0, init=False)
    _ping_sent_at: float | None = attrs.field(default=None, init=False)
    """When the ping now awaiting its pong was sent; None while none is outstanding."""
    _hello_timer: Timer | None = attrs.field(default=None, init=False)
    _ping_timer: Timer | None = attrs.field(default=None, init=False)
    """The next ping, or the deadline of the outstanding one's pong."""
    _token_timer: Timer | None = attrs.field(default=None, init=False)

    @property
    def log_fields(self) -> dict[str, object]:
        """The ids a structured log line about this session carries."""
        return {
            "connection": self.id,
            "remote": self.remote,
            "player": self.identity.subject if self.identity else None,
            "match": self.match.id if self.match else None,
        }

    @property
    def backlog(self) -> int:
        return len(self.outbox)

    def start(self) -> None:
        """Set the hello deadline and send the first ping (after whatever is already queued, the welcome)."""
        self._hello_timer = self.timers.call_at(trio.current_time() + self.config.hello_timeout, self._check_hello)
        self._send_ping()

    def authenticated(self, identity: Identity, name: str) -> None:
        """The client's `hello` was accepted: from now on it is `identity`, with the main frame budget."""
        self.identity, self.name = identity, name
        self.budget.authenticated(trio.current_time())
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def expire_token_at(self, deadline: float) -> None:
        """Close the session at trio time `deadline` unless another token moves it first."""
        self.token_deadline = deadline
        if self._token_timer is not None:
            self._token_timer.cancel()
        self._token_timer = self.timers.call_at(deadline, self._check_token)

    def send_control(self, message: bytes) -> None:
        """Send an encoded message that must arrive: it is never dropped; a client that leaves `outbox_capacity`
        of them unread is closed with 1008."""
        if not self.closing:
            self._sent(self.outbox.put_nowait(binary_frame(message), state=False))

    def send_state(self, frame: bytes) -> None:
        """Send a snapshot or delta, framed once for everyone with `binary_frame`, without waiting.

        If the backlog is full it is dropped and the client is marked for a full snapshot; a client that
        overflows `overflow_limit` times within `overflow_window` seconds is closed with 1008.
        """
        if not self.closing:
            result = self.outbox.put_nowait(frame, state=True)
            if result is not Put.ACCEPTED:
                self._sent(result)

    def _sent(self, result: Put) -> None:
        if result is Put.ACCEPTED:
            return
        if result is Put.REFUSED:
            self.on_limit("unread_replies")
            self.close(
                CloseCode.POLICY_VIOLATION,
                f"too slow: {self.config.outbox_capacity} replies waiting unread",
                fail=True,
            )
            return
        self.needs_snapshot = True
        self.overflows += 1
        now = trio.current_time()
        recent = [at for at in self._overflow_times if at >= now - self.config.overflow_window]
        recent.append(now)
        self._overflow_times = recent
        logger.info(
            "session %d fell behind (%d times recently); resyncing", self.id, len(recent), extra=self.log_fields
        )
        if len(recent) >= self.config.overflow_limit:
            self.on_limit("slow_reader")
            self.close(
                CloseCode.POLICY_VIOLATION,
                f"too slow: fell {self.config.outbox_capacity} frames behind "
                f"{len(recent)} times in {self.config.overflow_window:g} s",
            )

    def close(self, code: int, reason: str, *, fail: bool = False) -> None:
        """Close the connection with `code` and `reason` (the closing handshake runs in the background); the
        first request wins. `fail`: drop the connection once the Close frame is out, without waiting for the
        client's (RFC 6455 section 7.1.7: for a client that abuses the connection)."""
        if self.closing:
            return
        self.closing = True
        self._failing = fail
        self.close_code, self.close_reason = code, reason
        self._cancel_timers()
        self.nursery.start_soon(self._close_websocket)

    def _cancel_timers(self) -> None:
        for timer in (self._hello_timer, self._ping_timer, self._token_timer):
            if timer is not None:
                timer.cancel()
        self._hello_timer = self._ping_timer = self._token_timer = None

    async def _close_websocket(self) -> None:
        with trio.move_on_after(self.config.close_timeout) as scope:
            await self.ws.aclose(
                self.close_code or CloseCode.NORMAL, self.close_reason or None, wait_for_peer=not self._failing
            )
        if scope.cancelled_caught:
            logger.info("session %d did not finish the close handshake in time", self.id, extra=self.log_fields)

    # What the connection reports (server.websocket.ConnectionListener).

    def receive_frame(self, kind: FrameKind) -> bool:
        if self.closing:
            return not self._failing  # a closing connection is read for the client's Close frame
        refusal = self.budget.spend(kind, trio.current_time())
        if refusal is None:
            return True
        logger.info(
            "session %d (%s) is over its frame budget: %s", self.id, self.remote, refusal, extra=self.log_fields
        )
        self.on_limit("frame_budget")
        self.close(CloseCode.POLICY_VIOLATION, refusal, fail=True)
        return False

    def receive_message(self, data: bytes | str) -> None:
        if self.closing:
            return
        self.messages_received += 1
        self.bytes_received += len(data)
        if self.name is not None and type(data) is bytes:  # after hello, inputs (the common case) go straight
            player_input = decode_input(data)
            if player_input is not None:
                if self.player_id is not None:
                    self.receive_input(player_input)
                return  # outside a match an input means nothing (docs/protocol.md): valid, and ignored
        try:
            if isinstance(data, str):
                raise ProtocolError(CloseCode.UNSUPPORTED_DATA, "text frames are not accepted: send binary msgpack")
            self.handle_message(self, decode_client(data))
        except ProtocolError as error:
            logger.info("session %d (%s) broke the protocol: %s", self.id, self.remote, error, extra=self.log_fields)
            self.close(error.code, error.reason)
        except Exception:
            logger.exception(
                "session %d: error while handling a message; closing it with 1011", self.id, extra=self.log_fields
            )
            self.close(CloseCode.INTERNAL_ERROR, "internal server error; please report it")

    def receive_pong(self, payload: bytes) -> None:
        sent_at = self._ping_sent_at
        if sent_at is None or payload != _ping_payload(self._pings_sent):
            return  # unsolicited, or an answer to an older ping
        now = trio.current_time()
        self._ping_sent_at = None
        self.rtt_ms = round((now - sent_at) * 1000)
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if not self.closing:
            self._ping_timer = self.timers.call_at(now + self.config.ping_interval, self._send_ping)

    def message_too_big(self, limit: int) -> None:
        self.close(CloseCode.MESSAGE_TOO_BIG, f"message too big: the limit is {limit} bytes")

    def control_refused(self) -> None:
        self._sent(Put.REFUSED)

    def connection_lost(self) -> None:
        if not self.closing:
            self.closing = True
            self.close_code = self.ws.close_code or CloseCode.GOING_AWAY
            self.close_reason = self.ws.close_reason
        self._cancel_timers()

    # Inputs, applied by the match one per tick.

    def receive_input(self, player_input: PlayerInput) -> None:
        """Queue an input for the match; one older than the newest received is late, and ignored."""
        newest = self.pending_inputs[-1] if self.pending_inputs else self.latest_input
        if newest is None or player_input.seq > newest.seq:
            self.pending_inputs.append(player_input)
            if len(self.pending_inputs) > INPUT_QUEUE_LENGTH:
                del self.pending_inputs[0]

    def next_input(self, tick: int) -> PlayerInput | None:
        """The input to apply at `tick`: the oldest waiting one, else the last one again. A held input's view
        moves on with the ticks (the client's view does), so a held trigger is judged as late as the first shot."""
        if self.pending_inputs:
            arrived = self.latest_input = self.pending_inputs.pop(0)
            if arrived.view_tick is not None:
                self._view_lag = tick - arrived.view_tick
            return arrived
        latest = self.latest_input
        if latest is not None and latest.fire and latest.view_tick is not None:
            return latest.with_view_tick(tick - self._view_lag)
        return latest

    def reset_inputs(self) -> None:
        """Forget all inputs (the session left its seat, or took one)."""
        self.latest_input = None
        self.pending_inputs.clear()

    # Timers.

    def _send_ping(self) -> None:
        if self.closing:
            return
        self._pings_sent += 1
        self._ping_sent_at = trio.current_time()
        self._ping_timer = self.timers.call_at(self._ping_sent_at + self.config.pong_timeout, self._check_pong)
        self._sent(self.outbox.put_nowait(ping_frame(_ping_payload(self._pings_sent)), state=False))

    def _check_pong(self) -> None:
        sent_at = self._ping_sent_at
        if sent_at is not None and trio.current_time() >= sent_at + self.config.pong_timeout:
            self.close(
                CloseCode.INTERNAL_ERROR, f"keepalive ping timeout: no pong within {self.config.pong_timeout:g} s"
            )

    def _check_hello(self) -> None:
        if self.name is None:
            self.close(CloseCode.POLICY_VIOLATION, f"no hello within {self.config.hello_timeout:g} s")

    def _check_token(self) -> None:
        if trio.current_time() >= self.token_deadline:
            self.close(CloseCode.POLICY_VIOLATION, "token expired: reconnect with a new token")


def _ping_payload(number: int) -> bytes:
    return struct.pack("!I", number & 0xFFFFFFFF)
