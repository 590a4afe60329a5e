"""The WebSocket side of the server's port: trio-websocket, given the connection after h11 has routed it.

trio-websocket does the opening handshake, reads the socket, answers pings and runs the closing handshake.
Everything it writes goes through the connection's `Outbox`, the socket's one writer, which also writes the
server's own frames. Messages do not go through trio-websocket's message queue: `_ServerProtocol` hands each
one, as wsproto completes it, straight to the connection's listener (the session), so a client message costs
no task switch; the listener hears pongs and the end of the connection the same way.

Two more things trio-websocket does not do for a server on a shared port, done here:
- h11 has already read the request head, so the stream replays those bytes to trio-websocket first;
- wsproto reports a frame it cannot parse as a CloseConnection event while the connection is still open,
  and trio-websocket answers a CloseConnection only once the peer has started closing, so the peer would see
  the TCP connection drop with no code. `_ServerProtocol` makes that event answerable, so the server sends a
  Close frame with wsproto's code (1002, or 1007 for invalid UTF-8) before dropping the connection, as
  RFC 6455 section 7.1.7 asks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import Generic, Protocol, TypeVar

import attrs
import trio
import trio_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Event, Pong, TextMessage

from server.outbox import Outbox

HANDSHAKE_RECEIVE_BYTES = 4096
RECEIVE_BYTES = 65536

T = TypeVar("T")


class HandshakeRefusal(Exception):
    """Raised by a handshake check to refuse the upgrade with an HTTP status and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ConnectionListener(Protocol):
    """What hears a connection's messages (the session). Its methods are called from the connection's reader
    task and must not block."""

    def receive_message(self, data: bytes | str) -> None:
        """A whole message arrived (str for a text message)."""

    def receive_pong(self, payload: bytes) -> None:
        """A pong arrived."""

    def message_too_big(self, limit: int) -> None:
        """A message grew past `limit` bytes; the rest of it is discarded."""

    def connection_lost(self) -> None:
        """The connection is over: closed by either side, or dropped."""


class _ServerProtocol(WSConnection):
    def __init__(self, outbox: Outbox, max_message_size: int) -> None:
        super().__init__(ConnectionType.SERVER)
        self._answering_parse_failure = False
        self._outbox = outbox
        self._max_message_size = max_message_size
        self._listener: ConnectionListener | None = None
        self._early_messages: list[bytes | str] = []
        """Messages that arrived before a listener was attached."""
        self._message_parts: list[bytes | str] = []
        self._message_size = 0
        self._discarding_message = False
        self._handshake_done = False

    def attach(self, listener: ConnectionListener) -> None:
        """Deliver messages to `listener` from now on (and those that arrived before)."""
        self._listener = listener
        early, self._early_messages = self._early_messages, []
        for message in early:
            listener.receive_message(message)

    def connection_lost(self) -> None:
        if self._listener is not None:
            self._listener.connection_lost()

    @property
    def state(self) -> ConnectionState:
        if self._answering_parse_failure:
            return ConnectionState.REMOTE_CLOSING
        return super().state

    def events(self) -> Generator[Event, None, None]:
        # Once open, only the connection has events: the handshake is gone (see `send`).
        connection = self.connection
        events = connection.events() if self._handshake_done and connection is not None else super().events()
        for event in events:
            if isinstance(event, BytesMessage | TextMessage):
                self._receive_message_part(event)
                continue
            if isinstance(event, Pong) and self._listener is not None:
                self._listener.receive_pong(bytes(event.payload))
            elif isinstance(event, CloseConnection) and super().state is ConnectionState.OPEN:
                self._answering_parse_failure = True
            yield event

    def send(self, event: Event) -> bytes:
        if isinstance(event, CloseConnection):
            self._answering_parse_failure = False
            self._outbox.close_data()
        data = super().send(event)
        if isinstance(event, AcceptConnection):
            # wsproto keeps its h11 handshake for the connection's life and never uses it again: let it go
            # (a few KB per connection).
            self._handshake_done = True
            del self.handshake
        return data

    def _receive_message_part(self, part: BytesMessage | TextMessage) -> None:
        if not self._discarding_message:
            self._message_parts.append(part.data if isinstance(part.data, str) else bytes(part.data))
            self._message_size += len(part.data)
            if self._message_size > self._max_message_size:
                self._discarding_message = True
                self._message_parts.clear()
                if self._listener is not None:
                    self._listener.message_too_big(self._max_message_size)
        if not part.message_finished:
            return
        parts, self._message_parts, self._message_size = self._message_parts, [], 0
        if self._discarding_message:
            self._discarding_message = False
            return
        message = parts[0] if len(parts) == 1 else type(parts[0])().join(parts)  # type: ignore[arg-type]
        if self._listener is None:
            self._early_messages.append(message)
        else:
            self._listener.receive_message(message)


class _ReplayedStream(trio.abc.Stream):
    """A stream that first returns the request head h11 already read, then nothing until the handshake is
    complete, then what came after the head, then the rest of `stream`; and that writes through `outbox`, the
    socket's one writer.

    Holding back what follows the head keeps wsproto from reading WebSocket frames as part of the HTTP
    handshake, where it would drop them: a client that sends frames before the 101 arrives loses nothing.
    """

    def __init__(self, stream: trio.SocketStream, outbox: Outbox, request_head: bytes, after_head: bytes) -> None:
        self.stream = stream
        self.outbox = outbox
        self._request_head = request_head
        self._after_head = after_head
        self.handshake_complete = trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._request_head:
            await trio.lowlevel.checkpoint()
            data, self._request_head = self._request_head, b""
            return data
        if not self.handshake_complete.is_set():
            await self.handshake_complete.wait()
        if self._after_head:
            data, self._after_head = self._after_head, b""
            return data
        # What SocketStream.receive_some does, in the other order: wait until the socket is readable, then read.
        # A client's messages come a tick or more apart, so reading first would mostly fail (a wasted system call
        # and exception per message).
        while True:
            fd = self.stream.socket.fileno()
            if fd == -1:
                raise trio.ClosedResourceError("the connection was closed")
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, max_bytes or RECEIVE_BYTES)
            except BlockingIOError:
                continue
            except OSError as error:
                raise trio.BrokenResourceError(f"the connection broke: {error}") from error

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.outbox.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.outbox.fd)

    async def aclose(self) -> None:
        await self.stream.aclose()


@attrs.frozen
class AcceptedWebSocket(Generic[T]):
    ws: trio_websocket.WebSocketConnection
    """trio-websocket's connection: for closing it, and what `closed` says."""
    outbox: Outbox
    """The socket's one writer: send frames with it."""
    nursery: trio.Nursery
    """The connection's nursery, for work that must end with it (closing it, say)."""
    checked: T
    """What the handshake check returned."""


async def serve_websocket(
    stream: trio.SocketStream,
    request_head: bytes,
    after_head: bytes,
    *,
    check: Callable[[list[tuple[bytes, bytes]]], T],
    open_listener: Callable[[AcceptedWebSocket[T]], ConnectionListener],
    max_message_size: int,
    outbox_capacity: int,
    delay: float,
    timeout: float,
) -> None:
    """Complete the WebSocket handshake on a connection whose request head has been read, then read the
    connection until it ends; returns then.

    The reading happens in the calling task: a connection costs one task while idle.

    Args:
        stream: the connection.
        request_head: the bytes of the request head, already read.
        after_head: whatever the client sent after the head, already read.
        check: looks at the request's headers before accepting; its result is handed to `open_listener`, and a
            `HandshakeRefusal` it raises is answered with that HTTP status and reason.
        open_listener: called once the connection is open; what it returns hears the connection's messages
            and, at the end, `connection_lost`.
        max_message_size: bigger messages are refused with close code 1009.
        outbox_capacity: frames the connection's backlog holds (see `Outbox`).
        delay: development only: seconds every frame sent is held back.
        timeout: seconds the handshake may take.
    """
    async with trio.open_nursery() as nursery:
        outbox = Outbox(fd=stream.socket.fileno(), nursery=nursery, capacity=outbox_capacity, delay=delay)
        replayed = _ReplayedStream(stream, outbox, request_head, after_head)
        protocol = _ServerProtocol(outbox, max_message_size)
        # What `trio_websocket.wrap_server_stream` does, with our wsproto connection and stream: it builds its
        # own wsproto connection, so its private steps are called here (pyproject pins trio-websocket < 0.13).
        ws = trio_websocket.WebSocketConnection(
            replayed,
            protocol,
            message_queue_size=1,  # unused: messages go to the listener (see `_ServerProtocol`)
            max_message_size=max_message_size,
            receive_buffer_size=HANDSHAKE_RECEIVE_BYTES,
        )

        async def handshake() -> None:
            with trio.move_on_after(timeout):
                request = await ws._get_request()
                try:
                    checked = check(request.headers)
                except HandshakeRefusal as refusal:
                    body = f"{refusal.reason}\n".encode()
                    headers = [(b"Content-Type", b"text/plain; charset=utf-8")]
                    await request.reject(refusal.status, extra_headers=headers, body=body)
                    nursery.cancel_scope.cancel()
                    return
                accepted = await request.accept()
                replayed.handshake_complete.set()
                protocol.attach(open_listener(AcceptedWebSocket(accepted, outbox, nursery, checked)))
                return
            nursery.cancel_scope.cancel()  # the handshake took too long

        nursery.start_soon(handshake)
        await ws._reader_task()
        protocol.connection_lost()
        nursery.cancel_scope.cancel()
