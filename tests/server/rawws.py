"""Raw HTTP and WebSocket over a plain TCP socket, byte by byte, to send what no well-behaved client would.

Nothing here imports the server: requests and frames are built by hand from RFC 9112 and RFC 6455, and the
server's answers are parsed the same way, so the tests see exactly what a stranger's client would see.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import Any

import attrs
import trio

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


@attrs.frozen
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]
    """Header names in lower case; a repeated header keeps its last value."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """The status, reason phrase and headers of a response head (without its final blank line)."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), reason[0] if reason else "", headers


async def receive_until_closed(stream: trio.abc.ReceiveStream, *, timeout: float = 3.0) -> bytes:
    """Everything the peer sends until it closes the connection.

    Raises:
        trio.TooSlowError: if the peer keeps the connection open longer than `timeout` seconds.
    """
    data = bytearray()
    with trio.fail_after(timeout):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:  # a reset after the peer's last bytes
                break
            if not chunk:
                break
            data += chunk
    return bytes(data)


async def http_exchange(port: int, request: bytes, *, timeout: float = 3.0, source: str | None = None) -> HttpResponse:
    """Send `request` as is to 127.0.0.1:`port` (from the local address `source`, if given), read until the server
    closes, and parse its one response."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=source)
    async with stream:
        await stream.send_all(request)
        data = await receive_until_closed(stream, timeout=timeout)
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {data[:200]!r}"
    status, reason, headers = parse_response_head(head)
    if "content-length" in headers and not request.startswith(b"HEAD "):
        assert len(body) == int(headers["content-length"]), (headers, body[:200])
    return HttpResponse(status=status, reason=reason, headers=headers, body=body)


async def http_get(port: int, target: str, *, method: str = "GET", extra: str = "") -> HttpResponse:
    """One request for `target` (sent as is, never normalised) with `Connection: close`."""
    request = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
    return await http_exchange(port, request.encode("latin-1"))


def accept_key(key: bytes) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode()


def upgrade_request(port: int, *, key: bytes | None, extra: str = "", path: str = "/ws") -> bytes:
    """A WebSocket opening handshake; `key=None` leaves out Sec-WebSocket-Key."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
    ]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key.decode()}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True, length: int | None = None
) -> bytes:
    """One WebSocket frame (RFC 6455 section 5.2), masked as a client's must be unless `masked=False`.

    Args:
        opcode: the frame's 4-bit opcode.
        payload: its payload (before masking).
        fin: the FIN bit.
        rsv: the three RSV bits, 0 to 7.
        masked: whether to set the MASK bit and mask the payload.
        length: the payload length to declare, if not `len(payload)`.
    """
    declared = len(payload) if length is None else length
    header = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    mask_bit = 0x80 if masked else 0
    if declared < 126:
        header.append(mask_bit | declared)
    elif declared < 2**16:
        header.append(mask_bit | 126)
        header += struct.pack("!H", declared)
    else:
        header.append(mask_bit | 127)
        header += struct.pack("!Q", declared)
    if not masked:
        return bytes(header) + payload
    mask = os.urandom(4)
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_frame(code: int | None, reason: str = "", *, masked: bool = True) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
    return frame(OP_CLOSE, payload, masked=masked)


@attrs.frozen
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        assert self.opcode == OP_CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        assert self.opcode == OP_CLOSE
        return self.payload[2:].decode()


@attrs.define(eq=False)
class RawWebSocket:
    """The client end of a WebSocket spoken by hand: send any bytes, parse what the server sends back."""

    stream: trio.SocketStream
    status: int
    headers: dict[str, str]
    buffer: bytearray = attrs.field(factory=bytearray)
    eof: bool = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self, size: int) -> bool:
        """Read until the buffer holds `size` bytes; False if the connection ended first."""
        while len(self.buffer) < size:
            if self.eof:
                return False
            try:
                chunk = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def receive_frame(self) -> Frame | None:
        """The server's next frame, or None if the TCP connection ended first."""
        if not await self._fill(2):
            return None
        first, second = self.buffer[0], self.buffer[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            if not await self._fill(4):
                return None
            (length,), offset = struct.unpack("!H", self.buffer[2:4]), 4
        elif length == 127:
            if not await self._fill(10):
                return None
            (length,), offset = struct.unpack("!Q", self.buffer[2:10]), 10
        masked = bool(second & 0x80)
        mask_size = 4 if masked else 0
        if not await self._fill(offset + mask_size + length):
            return None
        self._take(offset)
        mask = self._take(mask_size)
        payload = self._take(length)
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return Frame(fin=bool(first & 0x80), rsv=first >> 4 & 7, opcode=first & 0xF, masked=masked, payload=payload)

    async def receive_data_frame(self, *, timeout: float = 3.0) -> Frame:
        """The next frame that is not a ping (answering none of them)."""
        with trio.fail_after(timeout):
            while True:
                received = await self.receive_frame()
                assert received is not None, "the server closed the connection"
                if received.opcode != OP_PING:
                    return received

    async def receive_close(self, *, timeout: float = 3.0) -> Frame | None:
        """Skip data and ping frames until the server's Close frame; None if the TCP connection ends first."""
        with trio.fail_after(timeout):
            while True:
                received = await self.receive_frame()
                if received is None or received.opcode == OP_CLOSE:
                    return received

    async def wait_closed(self, *, timeout: float = 3.0) -> bytes:
        """Wait for the server to end the TCP connection; returns any bytes it sent meanwhile."""
        rest = bytes(self.buffer) + await receive_until_closed(self.stream, timeout=timeout)
        self.buffer.clear()
        self.eof = True
        return rest

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def read_response_head(stream: trio.abc.ReceiveStream, *, timeout: float = 3.0) -> tuple[bytes, bytes]:
    """Read up to the end of a response head; returns the head and any bytes that came after it.

    Raises:
        AssertionError: if the connection ends before the head does.
    """
    data = bytearray()
    with trio.fail_after(timeout):
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, f"the server closed the connection after {bytes(data)!r}"
            data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    return head, rest


async def open_raw_websocket(port: int, *, extra: str = "", source: str | None = None) -> tuple[RawWebSocket, bytes]:
    """Do the opening handshake by hand (from the local address `source`, if given) and check the 101 answer.

    Returns:
        The connection, and the Sec-WebSocket-Key that was sent.
    """
    key = base64.b64encode(os.urandom(16))
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=source)
    try:
        await stream.send_all(upgrade_request(port, key=key, extra=extra))
        head, rest = await read_response_head(stream)
        status, _, headers = parse_response_head(head)
        assert status == 101, head
        assert headers.get("upgrade", "").lower() == "websocket", head
        assert "upgrade" in headers.get("connection", "").lower(), head
        assert headers.get("sec-websocket-accept") == accept_key(key), head
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return RawWebSocket(stream=stream, status=status, headers=headers, buffer=bytearray(rest)), key
