"""A small async client for Arena's protocol (docs/protocol.md), used by the tests and the bot swarm.

It keeps the latest view of its match by applying deltas to the last full snapshot, as any client must.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import attrs
import h11
import trio
import trio_websocket
from trio_websocket import CloseReason, ConnectionClosed, WebSocketConnection
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import Event, Pong

from game import Delta, Snapshot, apply
from server.codec import CloseCode, ProtocolError, decode_server, encode
from server.messages import (
    PROTOCOL_VERSION,
    Authenticated,
    ClientMessage,
    Hello,
    Input,
    Join,
    Joined,
    Left,
    Moved,
    Queue,
    Refused,
    Reserved,
    Resume,
    ServerMessage,
    Spectating,
    Welcome,
)

M = TypeVar("M")


class _ClientProtocol(WSConnection):
    """wsproto's connection, except that a ping arriving after this side sent Close goes unanswered.

    RFC 6455 section 5.5.1 lets no frame follow a Close; wsproto refuses to make such a pong and trio-websocket,
    which answers every ping, would then fail its reader task when a server's keepalive ping crosses our Close.
    """

    def send(self, event: Event) -> bytes:
        if isinstance(event, Pong) and self.state is not ConnectionState.OPEN:
            return b""
        return super().send(event)


class RefusedError(Exception):
    """The server refused a request; the message is its reason."""


@attrs.define(eq=False)
class ArenaClient:
    ws: WebSocketConnection
    stream: trio.abc.Stream | None = None
    url: str = ""
    """The WebSocket URL of the server this client is connected to now."""
    reopen: Callable[[str], Awaitable[ArenaClient]] | None = None
    """Opens a connection like this one (same token and name) to another server of the fleet (see `move_to`)."""
    welcome: Welcome | None = None
    authenticated: Authenticated | None = None
    match: str | None = None
    player: int | None = None
    resume_token: str | None = None
    view: Snapshot | None = None
    """The match as this client sees it: the last snapshot with every delta since applied."""
    left: Left | None = None
    moved: Moved | None = None
    """The match went on at another server (`moved`): `follow_move` resumes there."""
    refused: list[Refused] = attrs.field(factory=list)
    bytes_received: int = 0
    snapshots_received: int = 0
    last_snapshot: Snapshot | None = None
    """The newest full snapshot received (kept after `left`: the final state of a match that ended)."""
    deltas_received: int = 0
    deltas_out_of_sync: int = 0
    next_seq: int = 1

    async def send(self, message: ClientMessage) -> None:
        await self.ws.send_message(encode(message))

    async def receive(self) -> ServerMessage:
        """The next message from the server, after updating `view`, `match` and `player` with it."""
        data = await self.ws.get_message()
        self.bytes_received += len(data)
        if isinstance(data, str):
            raise ProtocolError(CloseCode.UNSUPPORTED_DATA, "the server sent a text frame; protocol 1 uses binary")
        message = decode_server(data)
        if isinstance(message, Welcome):
            self.welcome = message
        elif isinstance(message, Authenticated):
            self.authenticated = message
        elif isinstance(message, Joined):
            self.match, self.player, self.view, self.left = message.match, message.player, None, None
            self.resume_token = message.resume
        elif isinstance(message, Spectating):
            self.match, self.player, self.view, self.left = message.match, None, None, None
        elif isinstance(message, Left):
            self.match, self.player, self.view, self.left = None, None, None, message
        elif isinstance(message, Moved):
            self.moved = message
        elif isinstance(message, Refused):
            self.refused.append(message)
        elif isinstance(message, Snapshot):
            self.view = self.last_snapshot = message
            self.snapshots_received += 1
        elif isinstance(message, Delta):
            self.deltas_received += 1
            if self.view is not None and self.view.tick == message.base_tick:
                self.view = apply(self.view, message)
            else:
                self.deltas_out_of_sync += 1
        return message

    async def receive_until(self, accept: Callable[[ServerMessage], M | None], *, timeout: float = 5.0) -> M:
        """Receive until `accept` returns something other than None for a message, and return that.

        Raises:
            trio.TooSlowError: if that takes longer than `timeout` seconds.
        """
        with trio.fail_after(timeout):
            while True:
                result = accept(await self.receive())
                if result is not None:
                    return result

    async def receive_until_closed(self, *, timeout: float = 5.0) -> CloseReason:
        """Receive (and apply) messages until the server closes the connection; returns its close code and reason.

        Raises:
            trio.TooSlowError: if the connection is still open after `timeout` seconds.
        """
        with trio.fail_after(timeout):
            try:
                while True:
                    await self.receive()
            except ConnectionClosed as closed:
                assert closed.reason is not None
                return closed.reason

    async def queue(self, mode: str = "ffa", *, timeout: float = 10.0) -> Reserved:
        """Queue for a mode and wait for a seat reservation.

        Raises:
            RefusedError: if the server refuses to queue this client.
        """
        await self.send(Queue(mode=mode))
        return await self.receive_until(_reply_or_refusal("queue", Reserved), timeout=timeout)

    async def redeem(self, reservation: str, *, timeout: float = 5.0) -> Joined:
        """Take a reserved seat and wait for the first full snapshot of the match.

        Raises:
            RefusedError: if the reservation is refused.
        """
        await self.send(Join(reservation=reservation))
        joined = await self.receive_until(_reply_or_refusal("join", Joined), timeout=timeout)
        await self.receive_until(_first_snapshot, timeout=timeout)
        return joined

    async def join(self, mode: str = "ffa", *, timeout: float = 10.0) -> Joined:
        """Queue, take the reserved seat (on the server that hosts the match), and wait for the first full
        snapshot."""
        reserved = await self.queue(mode, timeout=timeout)
        await self.follow(reserved)
        return await self.redeem(reserved.reservation, timeout=timeout)

    async def follow(self, reserved: Reserved) -> None:
        """Connect to the server a reservation names, if it is another than this one (protocol 3)."""
        if reserved.url is not None and reserved.url != self.url:
            await self.move_to(reserved.url)

    async def move_to(self, url: str) -> None:
        """Go on on a new connection to `url` (another server of the fleet), as the same player; the old one is
        closed. What the client counted is kept.

        Raises:
            RuntimeError: if this client cannot open connections by itself (it was not made by `connect`).
        """
        if self.reopen is None:
            raise RuntimeError("this client was not opened by connect(); it cannot move to another server")
        moved = await self.reopen(url)
        old_ws, old_stream = self.ws, self.stream
        self.ws, self.stream, self.url = moved.ws, moved.stream, url
        self.welcome, self.authenticated = moved.welcome, moved.authenticated
        self.match, self.player, self.view = None, None, None
        with trio.move_on_after(2) as scope:
            scope.shield = True
            await old_ws.aclose()
        if old_stream is not None:
            await trio.aclose_forcefully(old_stream)

    async def resume(self, token: str, *, timeout: float = 5.0) -> Joined | Left:
        """Take back a held seat with a resume token, and wait for the full snapshot. If the match ended while
        the player was away, the server sends its final state and `left`: that `Left` is returned. If the seat is
        on another server of the fleet (`moved`), the client goes there and resumes.

        Raises:
            RefusedError: if the server refuses the resume.
        """
        await self.send(Resume(token=token))
        outcome: Joined | Left | Moved = await self.receive_until(_resume_outcome, timeout=timeout)
        if isinstance(outcome, Moved):  # the seat is on another server of the fleet: resume there
            self.moved = None
            await self.move_to(outcome.url)
            await self.send(Resume(token=token))
            outcome = await self.receive_until(_resume_outcome, timeout=timeout)
            if isinstance(outcome, Moved):
                raise RefusedError(f"sent on again, to {outcome.url}: the fleet does not agree where the seat is")
        if isinstance(outcome, Joined):
            await self.receive_until(_first_snapshot, timeout=timeout)
        return outcome

    async def follow_move(self, *, timeout: float = 5.0) -> Joined | Left:
        """After `moved`: connect to the server that adopted the match and take the seat back there.

        Raises:
            RefusedError: if the new server refuses the resume.
        """
        moved = self.moved
        assert moved is not None and self.resume_token is not None, "no `moved` received, or no seat held"
        await self.move_to(moved.url)
        self.moved = None
        return await self.resume(self.resume_token, timeout=timeout)

    async def send_input(
        self, *, mx: int = 0, my: int = 0, aim: float = 0.0, fire: bool = False, view: int | None = None
    ) -> int:
        """Send the input to hold from now on; returns its sequence number. `view` is the tick the bot sees the
        other players at: by default the newest state it holds (a bot draws nothing, so it shows no older one)."""
        seq = self.next_seq
        self.next_seq += 1
        if view is None:
            view = self.view.tick if self.view is not None else 0
        await self.send(Input(seq=seq, mx=mx, my=my, aim=aim, fire=fire, view=view))
        return seq

    async def drop_connection(self) -> None:
        """Cut the TCP connection at once, with no WebSocket close (a reset), as a failing network would."""
        if self.stream is not None:
            raw = self.stream.transport_stream if isinstance(self.stream, trio.SSLStream) else self.stream
            if isinstance(raw, trio.SocketStream):
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                await trio.aclose_forcefully(raw)

    def me(self) -> dict[str, int | str] | None:
        """This client's player as the view shows it."""
        if self.view is None or self.player is None:
            return None
        return dict(self.view.entities.get("players", {}).get(self.player, {})) or None


def _first_snapshot(message: ServerMessage) -> Snapshot | None:
    """The match's first snapshot after joining; a `left` instead means the match ended first.

    Raises:
        RefusedError: if the server says the client left the match.
    """
    if isinstance(message, Left):
        raise RefusedError(f"left the match before its first snapshot: {message.reason}")
    return message if isinstance(message, Snapshot) else None


R = TypeVar("R", Reserved, Joined)


def _reply_or_refusal(request: str, reply_type: type[R]) -> Callable[[ServerMessage], R | None]:
    """Accepts the reply to `request`, and raises RefusedError if the server refused it instead."""

    def accept(message: ServerMessage) -> R | None:
        if isinstance(message, Refused) and message.request == request:
            raise RefusedError(message.reason)
        return message if isinstance(message, reply_type) else None

    return accept


def _resume_outcome(message: ServerMessage) -> Joined | Left | Moved | None:
    if isinstance(message, Refused) and message.request == "resume":
        raise RefusedError(message.reason)
    return message if isinstance(message, Joined | Left | Moved) else None


def http_url(ws_url: str) -> str:
    """The server's HTTP base URL for its WebSocket URL."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


def loopback_address(index: int) -> str:
    """The `index`-th of 62,500 loopback addresses (127.0.1.1 onwards), for a load generator on the server's own
    machine to come from many addresses, as many players would, instead of one that per-address limits cap."""
    index %= 250 * 250
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.")


async def guest_token(
    server_url: str, name: str, *, source_address: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> str:
    """Ask a server for a guest token (POST /auth/guest).

    Args:
        server_url: the server's http:// or ws:// URL.
        name: the display name the token carries.
        source_address: the local address to connect from (see `loopback_address`).
        ssl_context: for https:// and wss:// URLs, the TLS settings (default: the system's trusted certificates).

    Raises:
        RefusedError: if the server does not hand out a token.
    """
    body_sent = json.dumps({"name": name}).encode()
    status, body = await http_request(
        server_url, "POST", "/auth/guest", body_sent, source_address=source_address, ssl_context=ssl_context
    )
    answer = json.loads(body)
    if status != 200:
        raise RefusedError(f"guest token refused ({status}): {answer.get('error')}")
    token: str = answer["token"]
    return token


async def http_request(
    server_url: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    source_address: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One HTTP request to an Arena server on a fresh connection (TLS for https:// and wss:// URLs); returns
    the status and the body."""
    parts = urlsplit(server_url)
    if parts.hostname is None:
        raise ValueError(f"expected a URL with a host, got {server_url!r}")
    secure = parts.scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    connection = h11.Connection(h11.CLIENT)
    headers = [("Host", f"{parts.hostname}:{port}"), ("Content-Length", str(len(body))), ("Connection", "close")]
    if body:
        headers.append(("Content-Type", "application/json"))
    stream: trio.abc.Stream = await trio.open_tcp_stream(parts.hostname, port, local_address=source_address)
    if secure:
        stream = trio.SSLStream(stream, ssl_context or ssl.create_default_context(), server_hostname=parts.hostname)
    async with stream:
        outgoing = connection.send(h11.Request(method=method, target=path, headers=headers)) or b""
        outgoing += connection.send(h11.Data(data=body)) or b""
        outgoing += connection.send(h11.EndOfMessage()) or b""
        await stream.send_all(outgoing)
        status, received = 0, bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, bytes(received)


@asynccontextmanager
async def connect(
    url: str,
    *,
    name: str | None = "bot",
    token: str | None = None,
    authorization_header: bool = False,
    receive_buffer_bytes: int | None = None,
    message_queue_size: int = 64,
    timeout: float = 5.0,
    source_address: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[ArenaClient]:
    """Open a connection to an Arena server, read its welcome and, if `name` is given, say hello.

    Args:
        url: the server's WebSocket URL, e.g. ws://127.0.0.1:8000/ws.
        name: the display name; with no `token`, a guest token for this name is fetched first. None sends
            no hello (and fetches no token).
        token: the token to authenticate with.
        authorization_header: send the token in the upgrade's Authorization header instead of in hello.
        receive_buffer_bytes: set the socket's receive buffer (SO_RCVBUF) before connecting, to make a
            client that stops reading back up quickly.
        message_queue_size: messages trio-websocket buffers before it stops reading the socket.
        timeout: seconds to wait for the connection, the welcome and the authentication.
        source_address: the local address to connect from (see `loopback_address`).
        ssl_context: for wss:// URLs, the TLS settings (default: the system's trusted certificates).
    """
    if token is None and name is not None:
        token = await guest_token(url, name, source_address=source_address, ssl_context=ssl_context)
    opened = False
    try:
        async with trio.open_nursery() as nursery:

            async def open_to(server_url: str) -> ArenaClient:
                client = await _open_client(
                    nursery,
                    server_url,
                    name=name,
                    token=token,
                    authorization_header=authorization_header,
                    receive_buffer_bytes=receive_buffer_bytes,
                    message_queue_size=message_queue_size,
                    timeout=timeout,
                    source_address=source_address,
                    ssl_context=ssl_context,
                )
                client.reopen = open_to
                return client

            client = await open_to(url)
            opened = True
            try:
                yield client
            finally:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    await client.ws.aclose()
                # trio-websocket leaves a client's socket open when the server closed first
                if client.stream is not None:
                    await trio.aclose_forcefully(client.stream)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # a failure to connect (refused, rejected handshake, timeout) is raised as itself, not as a group
        if not opened and len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def _open_client(
    nursery: trio.Nursery,
    url: str,
    *,
    name: str | None,
    token: str | None,
    authorization_header: bool,
    receive_buffer_bytes: int | None,
    message_queue_size: int,
    timeout: float,
    source_address: str | None,
    ssl_context: ssl.SSLContext | None,
) -> ArenaClient:
    """Connect, read the welcome and, with a name, say hello and wait to be authenticated."""
    headers = [(b"Authorization", f"Bearer {token}".encode())] if authorization_header and token else None
    with trio.fail_after(timeout):
        stream, host, resource = await _open_stream(url, receive_buffer_bytes, source_address, ssl_context)
        try:
            # trio_websocket.wrap_client_stream, with a wsproto connection that will not answer pings after Close
            ws = trio_websocket.WebSocketConnection(
                stream,
                _ClientProtocol(ConnectionType.CLIENT),
                host=host,
                path=resource,
                client_extra_headers=headers,
                message_queue_size=message_queue_size,
            )
            nursery.start_soon(ws._reader_task)
            await ws._open_handshake.wait()
            client = ArenaClient(ws, stream, url=url)
            await client.receive_until(lambda m: m if isinstance(m, Welcome) else None, timeout=timeout)
            if name is not None:
                hello_token = None if authorization_header else token
                await client.send(Hello(protocol=PROTOCOL_VERSION, token=hello_token, name=name))
                await client.receive_until(lambda m: m if isinstance(m, Authenticated) else None, timeout=timeout)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    return client


async def _open_stream(
    url: str, receive_buffer_bytes: int | None, source_address: str | None, ssl_context: ssl.SSLContext | None
) -> tuple[trio.abc.Stream, str, str]:
    """Connect a TCP stream (TLS for wss://) to the URL's host; returns it with the Host header value and the
    resource path."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or parts.hostname is None:
        raise ValueError(f"expected a ws:// or wss://host[:port]/path URL, got {url!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"{parts.hostname}:{port}"
    stream: trio.abc.Stream
    if receive_buffer_bytes is None:
        stream = await trio.open_tcp_stream(parts.hostname, port, local_address=source_address)
    else:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        try:
            if source_address is not None:
                await sock.bind((source_address, 0))
            await sock.connect((parts.hostname, port))
        except BaseException:
            sock.close()
            raise
        stream = trio.SocketStream(sock)
    if parts.scheme == "wss":
        stream = trio.SSLStream(stream, ssl_context or ssl.create_default_context(), server_hostname=parts.hostname)
    return stream, host_header, resource
