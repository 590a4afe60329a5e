"""One client's connection: what it sends (through its outbox, the socket's one writer), keepalive, the message
rate limit, and closing with a code and a reason.

Rules: nothing that serves a match ever waits on a session (`deliver` never blocks); a session that keeps
overflowing its backlog, stops answering pings, or floods messages is closed, and costs no one else anything.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from game import PlayerInput
from server.auth import Identity
from server.codec import CloseCode, ProtocolError, decode_client
from server.config import ServerConfig
from server.messages import ClientMessage
from server.outbox import Outbox, binary_frame

if TYPE_CHECKING:
    from server.match import Match

logger = logging.getLogger(__name__)

_session_ids = itertools.count(1)

INPUT_QUEUE_LENGTH = 3
"""Inputs a player may have waiting: enough to absorb network jitter (two inputs landing in one tick), few
enough that a client sending faster than the tick rate is at most this many ticks behind (older ones drop)."""

MessageHandler = Callable[["Session", ClientMessage], None]


@attrs.define(eq=False)
class Session:
    ws: WebSocketConnection
    outbox: Outbox
    config: ServerConfig
    remote: str
    id: int = attrs.field(factory=lambda: next(_session_ids))
    name: str | None = None
    identity: Identity | None = None
    token_deadline: float = float("inf")
    """When the identity's token expires, in trio time; the session is closed then unless refreshed."""
    match: Match | None = None
    player_id: int | None = None
    latest_input: PlayerInput | None = None
    """The input the match applied last; it holds while no newer one waits."""
    pending_inputs: deque[PlayerInput] = attrs.field(factory=lambda: deque(maxlen=INPUT_QUEUE_LENGTH))
    """Inputs received and not applied yet, oldest first; the match applies one per tick."""
    rtt_ms: int = 0
    needs_snapshot: bool = False
    overflows: int = 0
    close_code: int | None = None
    close_reason: str = ""
    _overflow_times: deque[float] = attrs.field(factory=deque, init=False)
    _close_requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    _message_allowance: float = attrs.field(init=False)
    _allowance_updated: float = attrs.field(factory=trio.current_time, init=False)

    def __attrs_post_init__(self) -> None:
        self._message_allowance = float(self.config.max_messages_per_second)

    @property
    def closing(self) -> bool:
        return self._close_requested.is_set()

    @property
    def backlog(self) -> int:
        return len(self.outbox)

    def send_control(self, message: bytes) -> None:
        """Send an encoded message that must arrive (never dropped with the backlog)."""
        if not self.closing:
            self.outbox.put_nowait(binary_frame(message), state=False)

    def send_state(self, frame: bytes) -> None:
        """Send a snapshot or delta, framed once for everyone with `binary_frame`, without waiting.

        If the backlog is full it is dropped and the client is marked for a full snapshot; a client that
        overflows `overflow_limit` times within `overflow_window` seconds is closed with 1008.
        """
        if self.closing or self.outbox.put_nowait(frame, state=True):
            return
        self.needs_snapshot = True
        self.overflows += 1
        now = trio.current_time()
        self._overflow_times.append(now)
        while self._overflow_times and self._overflow_times[0] < now - self.config.overflow_window:
            self._overflow_times.popleft()
        logger.info("session %d fell behind (%d times recently); resyncing", self.id, len(self._overflow_times))
        if len(self._overflow_times) >= self.config.overflow_limit:
            self.close(
                CloseCode.POLICY_VIOLATION,
                f"too slow: fell {self.config.outbox_capacity} frames behind "
                f"{len(self._overflow_times)} times in {self.config.overflow_window:g} s",
            )

    def close(self, code: int, reason: str) -> None:
        """Ask for the connection to be closed with `code` and `reason`; the first request wins."""
        if self.closing:
            return
        self.close_code, self.close_reason = code, reason
        self._close_requested.set()

    async def run(self, handle_message: MessageHandler) -> None:
        """Serve the connection until it closes: read messages, ping; then close it.

        Args:
            handle_message: called for every valid message; it must not block.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keepalive_loop)
            nursery.start_soon(self._receive_loop, handle_message)
            nursery.start_soon(self._hello_deadline)
            nursery.start_soon(self._token_expiry)
            await self._close_requested.wait()
            await self._close_websocket()
            nursery.cancel_scope.cancel()

    async def _close_websocket(self) -> None:
        with trio.move_on_after(self.config.close_timeout) as scope:
            await self.ws.aclose(self.close_code or CloseCode.NORMAL, self.close_reason or None)
        if scope.cancelled_caught:
            logger.info("session %d did not finish the close handshake in time", self.id)
        if self.ws.closed is not None and self.close_code is None:
            self.close_code = self.ws.closed.code

    async def _keepalive_loop(self) -> None:
        """Ping now (after the welcome, which is already queued) and then every `ping_interval`; record the
        round trip; close if no pong in time."""
        while True:
            started = trio.current_time()
            with trio.move_on_after(self.config.pong_timeout) as scope:
                try:
                    await self.ws.ping()
                except ConnectionClosed:
                    self._peer_closed()
                    return
            if scope.cancelled_caught:
                self.close(
                    CloseCode.INTERNAL_ERROR, f"keepalive ping timeout: no pong within {self.config.pong_timeout:g} s"
                )
                return
            self.rtt_ms = round((trio.current_time() - started) * 1000)
            await trio.sleep(self.config.ping_interval)

    async def _hello_deadline(self) -> None:
        await trio.sleep(self.config.hello_timeout)
        if self.name is None:
            self.close(CloseCode.POLICY_VIOLATION, f"no hello within {self.config.hello_timeout:g} s")

    def receive_input(self, player_input: PlayerInput) -> None:
        """Queue an input for the match; one older than the newest received is late, and ignored."""
        newest = self.pending_inputs[-1] if self.pending_inputs else self.latest_input
        if newest is None or player_input.seq > newest.seq:
            self.pending_inputs.append(player_input)

    def next_input(self) -> PlayerInput | None:
        """The input to apply this tick: the oldest waiting one, else the last one again."""
        if self.pending_inputs:
            self.latest_input = self.pending_inputs.popleft()
        return self.latest_input

    def reset_inputs(self) -> None:
        """Forget all inputs (the session left its seat, or took one)."""
        self.latest_input = None
        self.pending_inputs.clear()

    async def _token_expiry(self) -> None:
        """Close the session when its token expires (a `refresh` moves the deadline)."""
        while True:
            now = trio.current_time()
            if now >= self.token_deadline:
                self.close(CloseCode.POLICY_VIOLATION, "token expired: reconnect with a new token")
                return
            await trio.sleep(min(1.0, self.token_deadline - now))

    async def _receive_loop(self, handle_message: MessageHandler) -> None:
        while True:
            try:
                data = await self.ws.get_message()
            except ConnectionClosed:
                self._peer_closed()
                return
            try:
                if isinstance(data, str):
                    raise ProtocolError(CloseCode.UNSUPPORTED_DATA, "text frames are not accepted: send binary msgpack")
                self._spend_message_allowance()
                handle_message(self, decode_client(data))
            except ProtocolError as error:
                logger.info("session %d (%s) broke the protocol: %s", self.id, self.remote, error)
                self.close(error.code, error.reason)
                return
            except Exception:
                logger.exception("session %d: error while handling a message; closing it with 1011", self.id)
                self.close(CloseCode.INTERNAL_ERROR, "internal server error; please report it")
                return

    def _spend_message_allowance(self) -> None:
        """A token bucket of `max_messages_per_second`, refilled continuously, one second deep."""
        now = trio.current_time()
        rate = self.config.max_messages_per_second
        self._message_allowance = min(rate, self._message_allowance + (now - self._allowance_updated) * rate)
        self._allowance_updated = now
        if self._message_allowance < 1:
            raise ProtocolError(CloseCode.POLICY_VIOLATION, f"too many messages: the limit is {rate} per second")
        self._message_allowance -= 1

    def _peer_closed(self) -> None:
        closed = self.ws.closed
        self.close(closed.code if closed else CloseCode.GOING_AWAY, (closed.reason or "") if closed else "")
