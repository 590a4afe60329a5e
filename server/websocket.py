"""The WebSocket side of the server's port: wsproto, driven by the connection's own task, after h11 has routed
the request here.

One task per connection reads the socket and feeds wsproto; everything written goes through the connection's
`Outbox`, the socket's one writer (the handshake answer, pongs, the Close frame, and the server's frames).
`_ServerProtocol` hands each message, as wsproto completes it, straight to the connection's listener (the
session), and tells it of pongs and of the end of the connection: a client message costs no task switch and no
queue. Every frame the client sends is counted by the listener (`receive_frame`) as soon as wsproto has it
whole, before its message is assembled; once the listener refuses one, the rest of what the client sends is
discarded unread. Over TLS the connection reads and writes through trio's SSLStream instead of the socket.

The common frames, a client's inputs and its answers to keepalive pings, skip wsproto: while the connection is
open and wsproto holds no part of a frame or message, a received chunk's leading complete frames that are final,
binary or Pong, masked, with no RSV bit and a payload under 126 bytes are unmasked here and handed on exactly as
wsproto would hand them (counted first, then delivered; a Pong needs no answer and changes nothing of wsproto's).
Every other frame, and everything after the first one that is not of that kind, goes to wsproto, which is then at
a frame boundary with no message open, as if it had parsed those frames itself.
Rules of the closing handshake (RFC 6455 section 7): a peer's Close is answered with the same code and
the server then closes the TCP connection; a Close the server starts waits for the peer's answer (the caller
bounds how long); a frame wsproto cannot parse is answered with a Close frame carrying wsproto's code (1002,
or 1007 for invalid UTF-8) before the connection is dropped (section 7.1.7).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import Generic, Protocol, TypeVar

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from server.limits import FrameKind
from server.outbox import Outbox, Put
from server.reader import SocketReader

RECEIVE_BYTES = 65536
ABNORMAL_CLOSURE = 1006
FINAL_BINARY_OPCODE_BYTE = 0x82
"""A frame's first byte when it is final, binary, with no RSV bit set (RFC 6455 section 5.2)."""
PONG_OPCODE_BYTE = 0x8A
"""A Pong frame's first byte: final (as every control frame must be), no RSV bit (RFC 6455 sections 5.2, 5.5)."""
MASK_BIT = 0x80
EXTENDED_LENGTH_MARK = 126
"""A 7-bit payload length of 126 or 127 means a longer length follows."""
MASKED_HEADER_BYTES = 6
"""The header of a masked frame under 126 bytes: two bytes, then the 4-byte masking key."""
"""The close code for a connection that ended without a Close frame (never sent on the wire)."""

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

    def receive_frame(self, kind: FrameKind) -> bool:
        """A whole frame arrived: count it. False if it is over the connection's budget (the listener closes
        the connection; nothing more of it is read)."""

    def receive_message(self, data: bytes | str) -> None:
        """A whole message arrived (str for a text message)."""

    def receive_pong(self, payload: bytes) -> None:
        """A pong arrived."""

    def message_too_big(self, limit: int) -> None:
        """A message grew past `limit` bytes; the rest of it is discarded."""

    def control_refused(self) -> None:
        """A reply of the protocol's own (a pong) could not be queued: too many replies wait unread."""

    def connection_lost(self) -> None:
        """The connection is over: closed by either side, or dropped."""


class _ServerProtocol(WSConnection):
    def __init__(self, outbox: Outbox, max_message_size: int) -> None:
        super().__init__(ConnectionType.SERVER)
        self._outbox = outbox
        self._max_message_size = max_message_size
        self._listener: ConnectionListener | None = None
        self._early_messages: list[bytes | str] = []
        """Messages that arrived before a listener was attached."""
        self._message_parts: list[bytes | str] = []
        self._message_size = 0
        self._discarding_message = False
        self._handshake_done = False
        self.refused = False
        """Whether the listener refused a frame: what the client sends from then on is not parsed."""

    def attach(self, listener: ConnectionListener) -> None:
        """Deliver messages to `listener` from now on (and those that arrived before)."""
        self._listener = listener
        early, self._early_messages = self._early_messages, []
        for message in early:
            listener.receive_message(message)

    def connection_lost(self) -> None:
        if self._listener is not None:
            self._listener.connection_lost()

    def control_refused(self) -> None:
        if self._listener is not None:
            self._listener.control_refused()

    def events(self) -> Generator[Event, None, None]:
        # Once open, only the connection has events: the handshake is gone (see `send`).
        connection = self.connection
        events = connection.events() if self._handshake_done and connection is not None else super().events()
        listener = self._listener
        for event in events:
            if isinstance(event, BytesMessage | TextMessage):
                if event.frame_finished and listener is not None and not listener.receive_frame(FrameKind.DATA):
                    self.refused = True
                    return
                self._receive_message_part(event)
                continue
            if isinstance(event, Ping | Pong) and listener is not None:
                if not listener.receive_frame(FrameKind.PING if isinstance(event, Ping) else FrameKind.PONG):
                    self.refused = True
                    return
                if isinstance(event, Pong):
                    listener.receive_pong(bytes(event.payload))
            yield event

    def send(self, event: Event) -> bytes:
        if isinstance(event, CloseConnection):
            self._outbox.close_data()
        data = super().send(event)
        if isinstance(event, AcceptConnection):
            # wsproto keeps its h11 handshake for the connection's life and never uses it again: let it go
            # (a few KB per connection).
            self._handshake_done = True
            del self.handshake
        return data

    def receive_small_binary_frames(self, data: bytes) -> bytes:
        """Deliver the small binary frames (and Pong frames) at the start of `data` (see the module's rules); return
        the rest, for wsproto."""
        if self.refused:
            return b""  # the connection is being failed: what it sends is not even parsed
        if self._listener is None or not self._handshake_done or not self.at_message_boundary():
            return data
        return self.receive_small_binary_frames_at_boundary(data)

    def receive_small_binary_frames_at_boundary(self, data: bytes) -> bytes:
        """`receive_small_binary_frames` for a caller that knows wsproto holds no part of a frame or message and
        that the handshake is done: the shared reader, which only has the socket while that holds (wsproto is fed
        by the connection's own task alone, which gets the socket back first)."""
        if self.refused:
            return b""
        listener = self._listener
        assert listener is not None
        connection = self.connection
        offset, end = 0, len(data)
        while end - offset >= MASKED_HEADER_BYTES:
            first = data[offset]
            if first != FINAL_BINARY_OPCODE_BYTE and first != PONG_OPCODE_BYTE:
                break
            length = data[offset + 1] - MASK_BIT
            if not 0 <= length < EXTENDED_LENGTH_MARK:  # unmasked (a protocol error) or a longer frame: wsproto's
                break
            frame_end = offset + MASKED_HEADER_BYTES + length
            if frame_end > end or connection is None or connection.state is not ConnectionState.OPEN:
                break
            if not listener.receive_frame(FrameKind.DATA if first == FINAL_BINARY_OPCODE_BYTE else FrameKind.PONG):
                self.refused = True
                return b""
            payload = data[offset + MASKED_HEADER_BYTES : frame_end]
            if length:
                mask = data[offset + 2 : offset + MASKED_HEADER_BYTES] * (length // 4 + 1)
                unmasked = int.from_bytes(payload, "big") ^ int.from_bytes(mask[:length], "big")
                payload = unmasked.to_bytes(length, "big")
            if first == FINAL_BINARY_OPCODE_BYTE:
                listener.receive_message(payload)
            else:
                listener.receive_pong(payload)
            offset = frame_end
        return data[offset:] if offset else data

    def at_message_boundary(self) -> bool:
        """Whether wsproto holds no part of a frame or message (its internals, read defensively: with another
        wsproto that lacks them, every frame goes to wsproto)."""
        connection = self.connection
        if connection is None or connection.state is not ConnectionState.OPEN or self._message_parts:
            return False
        try:
            frames = connection._proto
            decoder = frames._frame_decoder
            return decoder.header is None and not decoder.buffer.buffer and frames._message_decoder.opcode is None
        except AttributeError:
            return False

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


class WebSocket:
    """An open server-side connection: what the session closes it with, and how it ended.

    Attributes:
        close_code: the code of the Close frame that ended the connection (the peer's, or ours once the peer
            answered it), 1006 if it ended without one; None while it is open.
        close_reason: the reason that came with `close_code`.
    """

    def __init__(
        self, stream: trio.abc.Stream, outbox: Outbox, protocol: _ServerProtocol, release_socket: Callable[[], None]
    ) -> None:
        self.stream = stream
        self.outbox = outbox
        self.protocol = protocol
        self._release_socket = release_socket
        self.close_code: int | None = None
        self.close_reason = ""
        self._ended = trio.Event()

    async def aclose(self, code: int, reason: str | None = None, *, wait_for_peer: bool = True) -> None:
        """Send a Close frame and wait for the peer's (bound this with a timeout), then drop the connection.
        Without `wait_for_peer` the connection is dropped as soon as the Close frame is written."""
        try:
            if self.protocol.state is ConnectionState.OPEN:
                await self.outbox.send_all(self.protocol.send(CloseConnection(code=code, reason=reason)))
                if wait_for_peer:
                    await self._ended.wait()
                else:
                    self.mark_ended(code, reason or "")
        except trio.BrokenResourceError:
            pass
        finally:
            self._release_socket()
            await self.stream.aclose()

    def mark_ended(self, code: int, reason: str) -> None:
        """The connection is over (the first reason given stays)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._ended.set()


@attrs.frozen
class AcceptedWebSocket(Generic[T]):
    ws: WebSocket
    """The connection: for closing it, and how it ended."""
    outbox: Outbox
    """The socket's one writer: send frames with it."""
    nursery: trio.Nursery
    """The connection's nursery, for work that must end with it (closing it, say)."""
    checked: T
    """What the handshake check returned."""


async def serve_websocket(
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
    request_head: bytes,
    after_head: bytes,
    *,
    check: Callable[[list[tuple[bytes, bytes]]], T],
    open_listener: Callable[[AcceptedWebSocket[T]], ConnectionListener],
    max_message_size: int,
    outbox_capacity: int,
    delay: float,
    reader: SocketReader | None = None,
) -> None:
    """Complete the WebSocket handshake on a connection whose request head h11 has read, then read the
    connection until it ends; returns then (the caller closes the stream).

    Args:
        stream: the connection (a TLS one is read and written through its SSLStream).
        request_head: the bytes of the request head, already read.
        after_head: whatever the client sent after the head, already read (frames sent before the 101 count).
        check: looks at the request's headers before accepting; its result is handed to `open_listener`, and a
            `HandshakeRefusal` it raises is answered with that HTTP status and reason.
        open_listener: called once the connection is open; what it returns hears the connection's messages
            and, at the end, `connection_lost`.
        max_message_size: bigger messages are refused with close code 1009.
        outbox_capacity: frames the connection's backlog holds (see `Outbox`).
        delay: development only: seconds every frame sent is held back.
        reader: the shared reader that reads the socket while the connection is open (not over TLS).
    """
    tls = isinstance(stream, trio.SSLStream)
    socket_stream = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    async with trio.open_nursery() as nursery:
        outbox = Outbox(
            fd=socket_stream.socket.fileno(),
            nursery=nursery,
            capacity=outbox_capacity,
            delay=delay,
            stream=stream if tls else None,
        )
        fd = socket_stream.socket.fileno()
        shared = reader if reader is not None and not tls else None
        protocol = _ServerProtocol(outbox, max_message_size)
        ws = WebSocket(stream, outbox, protocol, lambda: shared.release(fd) if shared is not None else None)
        try:
            await _handshake(ws, request_head, after_head, check, open_listener, nursery)
            del request_head, after_head
            while ws.close_code is None:
                if shared is not None and protocol.at_message_boundary():
                    # the shared reader delivers the small frames; what it hands back is for wsproto
                    data = await shared.handled_elsewhere(fd, protocol.receive_small_binary_frames_at_boundary)
                    rest = data
                else:
                    data = bytes(await stream.receive_some(RECEIVE_BYTES)) if tls else await _read(socket_stream)
                    rest = protocol.receive_small_binary_frames(data) if data else data
                if not data:
                    ws.mark_ended(ABNORMAL_CLOSURE, "the connection was closed without a Close frame")
                    break
                if rest and not protocol.refused:
                    protocol.receive_data(rest)
                    await _handle_events(ws)
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Refused):  # SSLStream raises these too
            ws.mark_ended(ABNORMAL_CLOSURE, "the connection broke")
        finally:
            if shared is not None:
                shared.release(fd)
            protocol.connection_lost()
            nursery.cancel_scope.cancel()


class _Refused(Exception):
    """The handshake was answered with an HTTP error: the connection ends."""


async def _handshake(
    ws: WebSocket,
    request_head: bytes,
    after_head: bytes,
    check: Callable[[list[tuple[bytes, bytes]]], T],
    open_listener: Callable[[AcceptedWebSocket[T]], ConnectionListener],
    nursery: trio.Nursery,
) -> None:
    protocol = ws.protocol
    try:
        protocol.receive_data(request_head)
        request = next((event for event in protocol.events() if isinstance(event, Request)), None)
    except RemoteProtocolError as error:  # not a valid upgrade: wsproto says how to answer (400)
        if error.event_hint is not None:
            await ws.outbox.send_all(protocol.send(error.event_hint))
        raise _Refused from None
    if request is None:
        raise _Refused
    try:
        checked = check(list(request.extra_headers))
    except HandshakeRefusal as refusal:
        body = f"{refusal.reason}\n".encode()
        headers = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", str(len(body)).encode())]
        response = protocol.send(RejectConnection(status_code=refusal.status, headers=headers, has_body=True))
        response += protocol.send(RejectData(data=body))
        await ws.outbox.send_all(response)
        raise _Refused from None
    await ws.outbox.send_all(protocol.send(AcceptConnection()))
    protocol.attach(open_listener(AcceptedWebSocket(ws, ws.outbox, nursery, checked)))
    if after_head:
        protocol.receive_data(after_head)
        await _handle_events(ws)


async def _handle_events(ws: WebSocket) -> None:
    """Act on what wsproto made of the bytes received (messages went to the listener already)."""
    protocol = ws.protocol
    for event in protocol.events():
        if isinstance(event, Ping):
            pong = protocol.send(event.response()) if protocol.state is ConnectionState.OPEN else None
            if pong is not None and ws.outbox.put_nowait(pong, state=False) is Put.REFUSED:
                protocol.control_refused()
        elif isinstance(event, CloseConnection):
            state = protocol.state
            if state is ConnectionState.REMOTE_CLOSING:  # the peer closes: answer with its code
                await ws.outbox.send_all(protocol.send(event.response()))
            elif state is ConnectionState.OPEN:  # a frame wsproto could not parse: say why, then drop
                await ws.outbox.send_all(protocol.send(CloseConnection(code=event.code, reason=event.reason)))
            ws.mark_ended(event.code, event.reason or "")
            return


async def _read(stream: trio.SocketStream) -> bytes:
    """What SocketStream.receive_some does, in the other order: wait until the socket is readable, then read.

    A client's messages come a tick or more apart, so reading first would mostly fail (a wasted system call
    and exception per message).
    """
    while True:
        fd = stream.socket.fileno()
        if fd == -1:
            raise trio.ClosedResourceError("the connection was closed")
        await trio.lowlevel.wait_readable(fd)
        try:
            return os.read(fd, RECEIVE_BYTES)
        except BlockingIOError:
            continue
        except OSError as error:
            raise trio.BrokenResourceError(f"the connection broke: {error}") from error
