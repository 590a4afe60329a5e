"""The outbox on a real socket pair: writes at once, keeps order across partial writes, drops only state frames."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing
import wsproto.frame_protocol as frames

from server.outbox import Outbox, Put, binary_frame

SMALL_BUFFER = 4096


def _socket_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    writer, reader = trio.socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    return writer, reader


async def _read_frames(reader: trio.socket.SocketType, count: int) -> list[bytes]:
    """Parse `count` frames from the socket as a client would."""
    parser = frames.FrameProtocol(client=True, extensions=[])
    payloads: list[bytes] = []
    partial = b""
    while len(payloads) < count:
        parser.receive_bytes(await reader.recv(65536))
        for frame in parser.received_frames():
            if frame.opcode is frames.Opcode.CLOSE:
                code, reason = frame.payload
                payloads.append(f"close {int(code)} {reason}".encode())
                continue
            partial += bytes(frame.payload)
            if frame.frame_finished:
                payloads.append(partial)
                partial = b""
    return payloads


def test_binary_frame_is_one_unmasked_binary_frame():
    assert binary_frame(b"abc") == b"\x82\x03abc"
    assert binary_frame(b"x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    wsproto_framing = frames.FrameProtocol(client=False, extensions=[])
    for length in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
        assert binary_frame(payload) == bytes(wsproto_framing.send_data(payload, fin=True)), length


async def test_a_frame_goes_out_at_once_when_nothing_waits():
    writer, reader = _socket_pair()
    with writer, reader:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=8)
            assert outbox.put_nowait(binary_frame(b"hello"), state=True) is Put.ACCEPTED
            assert len(outbox) == 0
            assert outbox.frames_sent == 1
        assert await _read_frames(reader, 1) == [b"hello"]


async def test_frames_the_socket_cannot_take_wait_in_order_and_drain_later():
    writer, reader = _socket_pair()
    with writer, reader:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=1000)
            payloads = [bytes([index]) * 1500 for index in range(200)]
            for payload in payloads:
                assert outbox.put_nowait(binary_frame(payload), state=False) is Put.ACCEPTED
            assert len(outbox) > 0, "the small socket buffer should have filled"
            assert await _read_frames(reader, len(payloads)) == payloads
        assert outbox.frames_sent == len(payloads)
        assert len(outbox) == 0


async def test_a_full_backlog_drops_state_frames_but_keeps_control_frames_and_the_half_written_one():
    writer, reader = _socket_pair()
    with writer, reader:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=4)
            while not len(outbox):
                outbox.put_nowait(binary_frame(b"s" * 3000), state=True)
            outbox.put_nowait(binary_frame(b"control"), state=False)
            while len(outbox) < 4:
                assert outbox.put_nowait(binary_frame(b"s" * 3000), state=True) is Put.ACCEPTED
            assert outbox.put_nowait(binary_frame(b"dropped"), state=True) is Put.STATE_DROPPED
            assert len(outbox) <= 2, "only the control frame and a half-written state frame may stay"
            received = await _read_frames(reader, outbox.frames_sent + len(outbox))
        assert received[-1] == b"control"
        assert set(received[:-1]) == {b"s" * 3000}


async def test_send_all_returns_once_written_and_no_data_follows_close():
    writer, reader = _socket_pair()
    with writer, reader:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=8)
            outbox.put_nowait(binary_frame(b"before"), state=True)
            outbox.close_data()
            await outbox.send_all(b"\x88\x02\x03\xe8")
            assert outbox.put_nowait(binary_frame(b"after"), state=True) is Put.ACCEPTED
            assert len(outbox) == 0
        data = await reader.recv(65536)
        assert data == binary_frame(b"before") + b"\x88\x02\x03\xe8"


async def test_a_reset_peer_fails_the_outbox_and_send_all_raises():
    writer, reader = _socket_pair()
    with writer:
        reader.close()
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=8)
            outbox.put_nowait(binary_frame(b"lost"), state=True)
            assert isinstance(outbox.error, BrokenPipeError | ConnectionResetError)
            with pytest.raises(trio.BrokenResourceError, match="broken"):
                await outbox.send_all(b"\x88\x00")


async def test_frames_put_after_state_frames_were_dropped_are_delivered_in_order():
    writer, reader = _socket_pair()
    with writer, reader:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=4)
            while len(outbox) < 4:
                outbox.put_nowait(binary_frame(b"s" * 3000), state=True)
            assert outbox.put_nowait(binary_frame(b"reply 1"), state=False) is Put.STATE_DROPPED
            assert outbox.put_nowait(binary_frame(b"reply 2"), state=False) is Put.ACCEPTED
            assert outbox.put_nowait(binary_frame(b"state"), state=True) is Put.ACCEPTED
            close = b"\x88\x02\x03\xe8"
            nursery.start_soon(outbox.send_all, close)
            data = b""
            with trio.fail_after(5):
                while not data.endswith(close):
                    data += await reader.recv(65536)
        parser = frames.FrameProtocol(client=True, extensions=[])
        parser.receive_bytes(data)
        received = [
            bytes(f.payload) if f.opcode is not frames.Opcode.CLOSE else b"close" for f in parser.received_frames()
        ]
        assert [r for r in received if r != b"s" * 3000] == [b"reply 1", b"reply 2", b"state", b"close"]


async def test_control_frames_beyond_capacity_are_refused_but_send_all_always_goes_out():
    writer, reader = _socket_pair()
    with writer, reader:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=writer.fileno(), nursery=nursery, capacity=4)
            results = [outbox.put_nowait(binary_frame(b"c" * 3000), state=False) for _ in range(12)]
            assert results.count(Put.REFUSED) >= 1
            assert Put.REFUSED not in results[: results.index(Put.REFUSED)]
            accepted = results.index(Put.REFUSED)
            assert all(result is Put.REFUSED for result in results[accepted:])
            async with trio.open_nursery() as closing:
                closing.start_soon(outbox.send_all, b"\x88\x02\x03\xf0")
                received = await _read_frames(reader, accepted + 1)
        assert received[:accepted] == [b"c" * 3000] * accepted
        assert received[accepted] == b"close 1008 "


async def test_over_a_stream_every_frame_goes_through_its_send_all_in_order():
    sent, received = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        outbox = Outbox(fd=-1, nursery=nursery, capacity=8, stream=sent)
        for index in range(5):
            assert outbox.put_nowait(binary_frame(bytes([index])), state=index % 2 == 0) is Put.ACCEPTED
        await outbox.send_all(b"end")
        data = b""
        while not data.endswith(b"end"):
            data += await received.receive_some()
    assert data == b"".join(binary_frame(bytes([index])) for index in range(5)) + b"end"
    assert outbox.frames_sent == 6
