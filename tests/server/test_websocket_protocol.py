"""RFC 6455 at the byte level: the opening handshake done by hand, then frames no browser would send. Every
protocol error must be answered with a Close frame carrying the right code before the TCP connection ends
(section 7.1.7), and the server's own frames must be unmasked (section 5.1).
"""

from __future__ import annotations

import contextlib
import struct

import msgpack
import pytest
import trio

from server.app import ArenaServer
from server.messages import PROTOCOL_VERSION
from tests.conftest import make_token
from tests.server.rawws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    RawWebSocket,
    close_frame,
    frame,
    open_raw_websocket,
    parse_response_head,
    read_response_head,
    receive_until_closed,
    upgrade_request,
)

HELLO = msgpack.packb({"t": "hello", "protocol": PROTOCOL_VERSION, "name": "raw", "token": make_token("raw-client")})
QUEUE = msgpack.packb({"t": "queue", "mode": "ffa"})


async def open_and_read_welcome(server: ArenaServer, *, extra: str = "") -> RawWebSocket:
    """Handshake by hand and read the welcome, which must be the server's first data frame."""
    ws, _ = await open_raw_websocket(server.port, extra=extra)
    first = await ws.receive_data_frame()
    assert first.opcode == OP_BINARY, first
    assert first.fin and first.rsv == 0 and not first.masked, first
    welcome = msgpack.unpackb(first.payload)
    assert welcome["t"] == "welcome"
    assert welcome["protocol"] == PROTOCOL_VERSION
    return ws


async def receive_message(ws: RawWebSocket, *, timeout: float = 3.0) -> dict[str, object]:
    """The next msgpack message from the server, skipping pings and snapshots or deltas."""
    with trio.fail_after(timeout):
        while True:
            received = await ws.receive_data_frame()
            assert received.opcode == OP_BINARY, received
            message: dict[str, object] = msgpack.unpackb(received.payload, strict_map_key=False)
            if message["t"] not in ("snapshot", "delta"):
                return message


async def assert_closed_with(ws: RawWebSocket, code: int) -> Frame:
    """The server sends a Close frame with `code` and a reason, then ends the TCP connection promptly."""
    close = await ws.receive_close(timeout=2)
    assert close is not None, "the TCP connection ended without a Close frame"
    assert not close.masked, "a server must not mask its frames"
    assert close.fin and close.rsv == 0
    assert close.close_code == code, (close.close_code, close.close_reason)
    assert close.close_reason.strip(), "the Close frame gives no reason"
    # the server may end the TCP connection right after its Close frame (RFC 6455 section 7.1.1)
    with contextlib.suppress(trio.BrokenResourceError):
        await ws.send(close_frame(close.close_code))
    await ws.wait_closed(timeout=1)
    return close


async def test_the_handshake_is_accepted_and_the_welcome_is_the_first_message(server: ArenaServer):
    ws, _ = await open_raw_websocket(server.port)
    try:
        assert ws.status == 101
        assert "sec-websocket-extensions" not in ws.headers
        assert "sec-websocket-protocol" not in ws.headers
        with trio.fail_after(2):
            while True:
                first = await ws.receive_frame()
                assert first is not None
                if first.opcode != OP_PING:
                    break
                # a keepalive ping may come first: it is a control frame, not a message
        assert first.opcode == OP_BINARY
        assert not first.masked
        assert msgpack.unpackb(first.payload)["t"] == "welcome"
    finally:
        await ws.aclose()


async def test_permessage_deflate_is_not_negotiated_even_when_offered(server: ArenaServer):
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\r\n"
    ws = await open_and_read_welcome(server, extra=offer)
    try:
        assert "sec-websocket-extensions" not in ws.headers
        # and a compressed frame (RSV1 set) is therefore a protocol error
        await ws.send(frame(OP_BINARY, b"\xf2H\xcd\xc9\xc9\x07\x00", rsv=4))
        await assert_closed_with(ws, 1002)
    finally:
        await ws.aclose()


async def test_a_handshake_without_sec_websocket_key_is_refused_quickly(server: ArenaServer):
    started = trio.current_time()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(upgrade_request(server.port, key=None))
        data = await receive_until_closed(stream, timeout=2)
    head, _, _ = data.partition(b"\r\n\r\n")
    status, _, headers = parse_response_head(head)
    assert 400 <= status < 500, data
    assert "sec-websocket-accept" not in headers
    assert trio.current_time() - started < 1


async def test_a_handshake_for_another_websocket_version_is_refused_quickly(server: ArenaServer):
    request = upgrade_request(server.port, key=b"dGhlIHNhbXBsZSBub25jZQ==").replace(b"Version: 13", b"Version: 8")
    started = trio.current_time()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(request)
        data = await receive_until_closed(stream, timeout=2)
    head, _, _ = data.partition(b"\r\n\r\n")
    status, _, headers = parse_response_head(head)
    assert status == 426, data
    assert headers["sec-websocket-version"] == "13"
    assert trio.current_time() - started < 1


async def test_an_upgrade_request_for_another_path_is_not_a_websocket(server: ArenaServer):
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(upgrade_request(server.port, key=b"dGhlIHNhbXBsZSBub25jZQ==", path="/other"))
        head, _ = await read_response_head(stream)
    status, _, _ = parse_response_head(head)
    assert status == 404


async def test_frames_sent_with_the_handshake_are_not_lost(server_factory):
    server = await server_factory(hello_timeout=0.5)
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(upgrade_request(server.port, key=key) + frame(OP_BINARY, HELLO) + frame(OP_BINARY, QUEUE))
        head, rest = await read_response_head(stream)
        status, _, _ = parse_response_head(head)
        assert status == 101
        ws = RawWebSocket(stream=stream, status=status, headers={}, buffer=bytearray(rest))
        assert (await receive_message(ws))["t"] == "welcome"
        assert (await receive_message(ws, timeout=2))["t"] == "authenticated"
        assert (await receive_message(ws, timeout=2))["t"] == "queued"


async def test_a_message_in_fragments_with_a_ping_between_is_one_message(server: ArenaServer):
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(frame(OP_BINARY, HELLO[:5], fin=False))
        await ws.send(frame(OP_PING, b"mid", fin=True))
        await ws.send(frame(OP_CONTINUATION, HELLO[5:10], fin=False))
        await ws.send(frame(OP_CONTINUATION, HELLO[10:], fin=True))
        await ws.send(frame(OP_BINARY, QUEUE))
        with trio.fail_after(2):
            while True:
                received = await ws.receive_frame()
                assert received is not None
                if received.opcode == OP_PONG:
                    assert received.payload == b"mid"
                    break
        assert (await receive_message(ws))["t"] == "authenticated"
        assert (await receive_message(ws))["t"] == "queued"
    finally:
        await ws.aclose()


async def test_small_frames_in_one_chunk_with_other_frames_between_keep_their_order(server: ArenaServer):
    """Small final binary frames are read without wsproto, the rest by wsproto: in one TCP chunk, a message, a
    ping, a message in fragments, and a message again must all arrive, in order."""
    ws = await open_and_read_welcome(server)
    try:
        listing = msgpack.packb({"t": "list_matches"})
        chunk = frame(OP_BINARY, HELLO) + frame(OP_PING, b"between") + frame(OP_BINARY, listing[:3], fin=False)
        chunk += frame(OP_CONTINUATION, listing[3:]) + frame(OP_BINARY, QUEUE)
        await ws.send(chunk)
        kinds = []
        with trio.fail_after(3):
            while len(kinds) < 4:
                received = await ws.receive_frame()
                assert received is not None
                if received.opcode == OP_PONG:
                    kinds.append(("pong", received.payload))
                elif received.opcode == OP_BINARY:
                    message = msgpack.unpackb(received.payload, strict_map_key=False)
                    if message["t"] not in ("snapshot", "delta"):
                        kinds.append(("message", message["t"]))
        assert kinds[0] == ("message", "authenticated")
        assert ("pong", b"between") in kinds
        assert [kind for kind in kinds if kind[0] == "message"] == [
            ("message", "authenticated"),
            ("message", "matches"),
            ("message", "queued"),
        ]
    finally:
        await ws.aclose()


async def test_a_new_small_message_inside_a_fragmented_one_is_a_protocol_error(server: ArenaServer):
    """A final binary frame where a continuation is due breaks RFC 6455 section 5.4, however small it is."""
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(frame(OP_BINARY, HELLO[:5], fin=False))
        await ws.send(frame(OP_BINARY, QUEUE))
        await assert_closed_with(ws, 1002)
    finally:
        await ws.aclose()


async def test_an_unmasked_small_frame_is_a_protocol_error(server: ArenaServer):
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(frame(OP_BINARY, HELLO[:100], masked=False))
        await assert_closed_with(ws, 1002)
    finally:
        await ws.aclose()


async def test_a_map_with_a_key_twice_is_refused_at_the_top_and_inside(server: ArenaServer):
    for duplicated in (
        b"\x82\xa1t\xa5queue\xa1t\xa5queue",  # {"t": "queue", "t": "queue"}
        b"\x82\xa1t\xa5queue\xa4mode\x82\xa1a\x01\xa1a\x02",  # {"t": "queue", "mode": {"a": 1, "a": 2}}
    ):
        ws = await open_and_read_welcome(server)
        try:
            await ws.send(frame(OP_BINARY, HELLO) + frame(OP_BINARY, duplicated))
            close = await assert_closed_with(ws, 1007)
            assert "twice" in close.close_reason
        finally:
            await ws.aclose()


@pytest.mark.parametrize("payload", [b"", b"are you there?", bytes(range(125))], ids=["empty", "text", "125 bytes"])
async def test_a_ping_gets_a_pong_with_the_same_payload(server: ArenaServer, payload: bytes):
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(frame(OP_PING, payload))
        with trio.fail_after(2):
            while True:
                received = await ws.receive_frame()
                assert received is not None, "closed instead of answering the ping"
                if received.opcode == OP_PONG:
                    break
        assert received.payload == payload
        assert not received.masked and received.fin
    finally:
        await ws.aclose()


async def test_a_normal_close_from_the_client_gets_a_close_reply(server: ArenaServer):
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(frame(OP_BINARY, HELLO))
        await ws.send(close_frame(1000, "bye"))
        close = await ws.receive_close(timeout=2)
        assert close is not None, "no Close frame in reply"
        assert close.close_code == 1000
        assert not close.masked
        await ws.wait_closed(timeout=1)
    finally:
        await ws.aclose()
    with trio.fail_after(2):
        while server.health()["close_codes"] != {"1000": 1}:
            await trio.sleep(0.02)
    assert server.health()["connections"] == 0


async def test_a_close_without_a_code_gets_a_close_reply(server: ArenaServer):
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(close_frame(None))
        close = await ws.receive_close(timeout=2)
        assert close is not None, "no Close frame in reply"
        assert close.close_code in (None, 1000)
        await ws.wait_closed(timeout=1)
    finally:
        await ws.aclose()


PROTOCOL_ERRORS = {
    "unmasked binary frame": (frame(OP_BINARY, HELLO, masked=False), 1002),
    "unmasked close frame": (close_frame(1000, masked=False), 1002),
    "text frame with invalid utf-8": (frame(OP_TEXT, b"ok \xff\xfe"), 1007),
    "text frame with a truncated utf-8 sequence": (frame(OP_TEXT, b"caf\xc3"), 1007),
    "fragmented text with invalid utf-8": (
        frame(OP_TEXT, b"fine so far ", fin=False) + frame(OP_CONTINUATION, b"\xed\xa0\x80"),
        1007,
    ),
    "rsv1 set": (frame(OP_BINARY, HELLO, rsv=4), 1002),
    "rsv2 set": (frame(OP_BINARY, HELLO, rsv=2), 1002),
    "rsv3 set": (frame(OP_BINARY, HELLO, rsv=1), 1002),
    "rsv bit on a ping": (frame(OP_PING, b"x", rsv=4), 1002),
    "unknown data opcode 0x3": (frame(0x3, b"x"), 1002),
    "unknown data opcode 0x7": (frame(0x7, b""), 1002),
    "unknown control opcode 0xb": (frame(0xB, b""), 1002),
    "unknown control opcode 0xf": (frame(0xF, b"x"), 1002),
    "fragmented ping": (frame(OP_PING, b"x", fin=False), 1002),
    "fragmented close": (frame(OP_CLOSE, struct.pack("!H", 1000), fin=False), 1002),
    "ping over 125 bytes": (frame(OP_PING, b"x" * 126), 1002),
    "continuation with nothing to continue": (frame(OP_CONTINUATION, b"x"), 1002),
    "new message inside a fragmented one": (frame(OP_BINARY, b"\x81", fin=False) + frame(OP_BINARY, b"x"), 1002),
    "close code 999": (close_frame(999), 1002),
    "close code 0": (close_frame(0), 1002),
    "close code 1004 (reserved)": (close_frame(1004), 1002),
    "close code 1005 (local only)": (close_frame(1005), 1002),
    "close code 1006 (local only)": (close_frame(1006), 1002),
    "close code 1015 (local only)": (close_frame(1015), 1002),
    "close code 2999 (unassigned)": (close_frame(2999), 1002),
    "close code 5000": (close_frame(5000), 1002),
    "close with a one-byte payload": (frame(OP_CLOSE, b"\x03"), 1002),
    "close reason with invalid utf-8": (frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
    "binary frame of 4097 bytes": (frame(OP_BINARY, bytes(4097)), 1009),
    "binary frame of 70000 bytes": (frame(OP_BINARY, bytes(70_000)), 1009),
    "fragmented message over 4096 bytes": (
        frame(OP_BINARY, bytes(3000), fin=False) + frame(OP_CONTINUATION, bytes(3000)),
        1009,
    ),
}


@pytest.mark.parametrize(("data", "code"), PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
@pytest.mark.parametrize("after_hello", [False, True], ids=["before hello", "after hello"])
async def test_a_protocol_error_is_answered_with_a_close_frame(
    server: ArenaServer, data: bytes, code: int, after_hello: bool
):
    ws = await open_and_read_welcome(server)
    try:
        if after_hello:
            await ws.send(frame(OP_BINARY, HELLO))
        await ws.send(data)
        await assert_closed_with(ws, code)
    finally:
        await ws.aclose()
    with trio.fail_after(2):
        while server.health()["close_codes"] != {str(code): 1}:
            await trio.sleep(0.02)
    assert server.health()["connections"] == 0


@pytest.mark.xfail(
    strict=True,
    reason="questionable: a frame header that declares more than the 4096-byte limit is not refused when it "
    "arrives; wsproto hands over payload as it arrives and the server counts only that, so the connection stays "
    "open (here until hello_timeout closes it with 1008) instead of being closed with 1009 at once",
)
async def test_a_frame_that_declares_more_than_4096_bytes_is_refused_at_its_header(server_factory):
    server = await server_factory(hello_timeout=1.5)
    ws = await open_and_read_welcome(server)
    try:
        await ws.send(frame(OP_BINARY, b"", length=2**40))  # the header alone, no payload yet
        close = None
        with trio.move_on_after(1):
            close = await ws.receive_close()
        assert close is not None, "no Close frame within 1 s"
        assert close.close_code == 1009
    finally:
        await ws.aclose()
