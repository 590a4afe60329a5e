"""A small async client for Arena's protocol (docs/protocol.md), used by the tests and the bot swarm.

It keeps the latest view of its match by applying deltas to the last full snapshot, as any client must.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket
from trio_websocket import WebSocketConnection

from game import Delta, Snapshot, apply
from server.codec import CloseCode, ProtocolError, decode_server, encode
from server.messages import PROTOCOL_VERSION, ClientMessage, Hello, Input, Join, Joined, Left, ServerMessage, Welcome

M = TypeVar("M")


@attrs.define(eq=False)
class ArenaClient:
    ws: WebSocketConnection
    welcome: Welcome | None = None
    match: str | None = None
    player: int | None = None
    view: Snapshot | None = None
    """The match as this client sees it: the last snapshot with every delta since applied."""
    left: Left | None = None
    snapshots_received: int = 0
    deltas_received: int = 0
    deltas_out_of_sync: int = 0
    next_seq: int = 1

    async def send(self, message: ClientMessage) -> None:
        await self.ws.send_message(encode(message))

    async def receive(self) -> ServerMessage:
        """The next message from the server, after updating `view`, `match` and `player` with it."""
        data = await self.ws.get_message()
        if isinstance(data, str):
            raise ProtocolError(CloseCode.UNSUPPORTED_DATA, "the server sent a text frame; protocol 1 uses binary")
        message = decode_server(data)
        if isinstance(message, Welcome):
            self.welcome = message
        elif isinstance(message, Joined):
            self.match, self.player, self.view, self.left = message.match, message.player, None, None
        elif isinstance(message, Left):
            self.match, self.player, self.view, self.left = None, None, None, message
        elif isinstance(message, Snapshot):
            self.view = message
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

    async def join(self, *, timeout: float = 5.0) -> Joined:
        """Join a match and wait for the first full snapshot of it."""
        await self.send(Join())
        joined = await self.receive_until(lambda m: m if isinstance(m, Joined) else None, timeout=timeout)
        await self.receive_until(lambda m: m if isinstance(m, Snapshot) else None, timeout=timeout)
        return joined

    async def send_input(self, *, mx: int = 0, my: int = 0, aim: float = 0.0, fire: bool = False) -> int:
        """Send the input to hold from now on; returns its sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        await self.send(Input(seq=seq, mx=mx, my=my, aim=aim, fire=fire))
        return seq

    def me(self) -> dict[str, int | str] | None:
        """This client's player as the view shows it."""
        if self.view is None or self.player is None:
            return None
        return dict(self.view.entities.get("players", {}).get(self.player, {})) or None


@asynccontextmanager
async def connect(
    url: str,
    *,
    name: str | None = "bot",
    receive_buffer_bytes: int | None = None,
    message_queue_size: int = 64,
    timeout: float = 5.0,
) -> AsyncIterator[ArenaClient]:
    """Open a connection to an Arena server, read its welcome and, if `name` is given, say hello.

    Args:
        url: the server's WebSocket URL, e.g. ws://127.0.0.1:8000/ws.
        name: the display name to send in hello, or None to send nothing.
        receive_buffer_bytes: set the socket's receive buffer (SO_RCVBUF) before connecting, to make a
            client that stops reading back up quickly.
        message_queue_size: messages trio-websocket buffers before it stops reading the socket.
        timeout: seconds to wait for the connection and the welcome.
    """
    async with trio.open_nursery() as nursery:
        with trio.fail_after(timeout):
            stream, host, resource = await _open_stream(url, receive_buffer_bytes)
            try:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, stream, host, resource, message_queue_size=message_queue_size
                )
                client = ArenaClient(ws)
                await client.receive_until(lambda m: m if isinstance(m, Welcome) else None, timeout=timeout)
                if name is not None:
                    await client.send(Hello(protocol=PROTOCOL_VERSION, name=name))
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        try:
            yield client
        finally:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await ws.aclose()
            # trio-websocket leaves a client's socket open when the server closed first
            await trio.aclose_forcefully(stream)
            nursery.cancel_scope.cancel()


async def _open_stream(url: str, receive_buffer_bytes: int | None) -> tuple[trio.SocketStream, str, str]:
    """Connect a TCP stream to the URL's host; returns it with the Host header value and the resource path."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"expected a ws://host[:port]/path URL, got {url!r}")
    port = parts.port or 80
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"{parts.hostname}:{port}"
    if receive_buffer_bytes is None:
        return await trio.open_tcp_stream(parts.hostname, port), host_header, resource
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
    try:
        await sock.connect((parts.hostname, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock), host_header, resource
