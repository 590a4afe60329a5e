"""The plain-HTTP side of the server's one port, on h11: read a request head, answer it, close.

Routes: `GET /` and the browser client's files, `GET /healthz`, and `/ws`, whose WebSocket upgrade the caller
hands to server.websocket together with the bytes already read.
"""

from __future__ import annotations

import json
import mimetypes
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import h11
import trio

MAX_REQUEST_HEAD_BYTES = 16 * 1024
RECEIVE_CHUNK_BYTES = 4096
SERVER_NAME = b"arena"


@attrs.frozen
class HttpRequest:
    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...]
    raw: bytes
    """The request head exactly as read, to replay to the WebSocket handshake."""
    after_head: bytes = b""
    """Bytes that came after the head of an upgrade request (a client that did not wait for 101)."""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def is_websocket_upgrade(self) -> bool:
        upgrade = (self.header(b"upgrade") or b"").lower()
        connection = (self.header(b"connection") or b"").lower()
        return upgrade == b"websocket" and b"upgrade" in [token.strip() for token in connection.split(b",")]


class BadRequestError(Exception):
    """The peer sent something that is not an HTTP/1.1 request head we accept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_request(stream: trio.abc.Stream) -> tuple[h11.Connection, HttpRequest] | None:
    """Read one request head.

    Returns:
        The h11 connection (to answer with) and the request, or None if the peer closed first.

    Raises:
        BadRequestError: if the head is malformed or too large.
    """
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    raw = bytearray()
    event = await _next_event(stream, connection, raw)
    if isinstance(event, h11.Request):
        path = unquote(event.target.decode("ascii", "replace").split("?", 1)[0])
        request = HttpRequest(
            method=event.method.decode("ascii", "replace"),
            path=path,
            headers=tuple((bytes(k), bytes(v)) for k, v in event.headers),
            raw=bytes(raw),
        )
        if request.is_websocket_upgrade:
            after_head = _bytes_after_upgrade_request(connection)
            head = bytes(raw[: len(raw) - len(after_head)])
            request = attrs.evolve(request, raw=head, after_head=after_head)
        return connection, request
    return None


async def _next_event(
    stream: trio.abc.Stream, connection: h11.Connection, received: bytearray | None = None
) -> h11.Event | type[h11.PAUSED]:
    """The next h11 event, reading from the stream as needed (and keeping what was read in `received`)."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as error:
            raise BadRequestError(error.error_status_hint, _describe(error)) from None
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]  # mypy cannot narrow away the NEED_DATA sentinel
        data = await stream.receive_some(RECEIVE_CHUNK_BYTES)
        if received is not None:
            received += data
        connection.receive_data(bytes(data))


def _bytes_after_upgrade_request(connection: h11.Connection) -> bytes:
    """What the client sent after its upgrade request's head, which h11 holds back once it pauses."""
    try:
        while connection.next_event() not in (h11.PAUSED, h11.NEED_DATA):
            pass
    except h11.RemoteProtocolError:
        return b""
    return bytes(connection.trailing_data[0])


async def read_body(stream: trio.abc.Stream, connection: h11.Connection, *, max_bytes: int) -> bytes:
    """The request's body (after `read_request`).

    Raises:
        BadRequestError: 413 if it is over `max_bytes`, 400 if it is malformed or cut short.
    """
    body = bytearray()
    while True:
        event = await _next_event(stream, connection)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_bytes:
                raise BadRequestError(413, f"request body is over {max_bytes} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        else:
            raise BadRequestError(400, "request body cut short")


async def respond(
    stream: trio.abc.Stream,
    connection: h11.Connection | None,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> None:
    """Send one complete response and mark the connection to be closed."""
    connection = connection or _error_connection()
    response_headers = [
        ("Server", SERVER_NAME.decode()),
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
        *headers,
    ]
    reason = HTTPStatus(status).phrase.encode()
    data = connection.send(h11.Response(status_code=status, headers=response_headers, reason=reason)) or b""
    if not head_only:
        data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


def _error_connection() -> h11.Connection:
    """An h11 connection ready to send a response when the request itself could not be parsed."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(b"GET / HTTP/1.1\r\nHost: error\r\n\r\n")
    connection.next_event()
    return connection


async def respond_json(
    stream: trio.abc.Stream,
    connection: h11.Connection,
    status: int,
    value: Any,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> None:
    # compact: json's C encoder (indent= takes the pure-Python one: 4x the time, and garbage for the collector)
    body = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    await respond(
        stream, connection, status, body, content_type="application/json", headers=headers, head_only=head_only
    )


async def close_gracefully(stream: trio.abc.Stream, *, timeout: float = 1.0, max_bytes: int = 65536) -> None:
    """Finish sending, then read and discard what the client still sends (briefly), so that closing does not
    reset the connection and destroy the response before the client has read it. (A TLS stream cannot half
    close: its reads just wait for the client to close first.)"""
    with trio.move_on_after(timeout):
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            discarded = 0
            while discarded < max_bytes:
                data = await stream.receive_some(RECEIVE_CHUNK_BYTES)
                if not data:
                    break
                discarded += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _describe(error: h11.RemoteProtocolError) -> str:
    """A malformed-request message for the client, without Python's reprs of the bytes."""
    text = str(error).split(":", 1)[0] if "bytearray(" in str(error) else str(error)
    return f"malformed HTTP request: {text}"


def static_file(root: Path, path: str) -> Path | None:
    """The file under `root` that a URL path names (`/` is index.html), or None if there is none or it escapes."""
    relative = path.lstrip("/") or "index.html"
    if "\x00" in relative:
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        return None
    return candidate


def content_type_of(file: Path) -> str:
    if file.suffix == ".js" or file.suffix == ".mjs":
        return "text/javascript; charset=utf-8"
    guessed, _ = mimetypes.guess_type(file.name)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed
