"""The frames that skip wsproto (server.websocket's rules): a client's small final binary frames and its Pong frames,
read at a frame boundary of an open connection, reach the listener as wsproto would hand them, counted first; the
first frame of any other kind, and all after it, are left to wsproto."""

from __future__ import annotations

from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from server.limits import FrameKind
from server.websocket import _ServerProtocol
from tests.server.rawws import OP_BINARY, OP_PING, OP_PONG, frame


class Heard:
    """A listener that writes down what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def receive_frame(self, kind: FrameKind) -> bool:
        self.calls.append(("frame", kind))
        return True

    def receive_message(self, data: bytes | str) -> None:
        self.calls.append(("message", data))

    def receive_pong(self, payload: bytes) -> None:
        self.calls.append(("pong", payload))


def open_protocol(listener: Heard) -> _ServerProtocol:
    client = WSConnection(ConnectionType.CLIENT)
    protocol = _ServerProtocol(outbox=None, max_message_size=4096)  # type: ignore[arg-type]  # never sends here
    protocol.receive_data(client.send(Request(host="127.0.0.1", target="/ws")))
    assert isinstance(next(protocol.events()), Request)
    protocol.send(AcceptConnection())
    protocol.attach(listener)  # type: ignore[arg-type]
    return protocol


def test_pongs_and_small_binary_frames_skip_wsproto_in_order_and_counted() -> None:
    heard = Heard()
    protocol = open_protocol(heard)
    chunk = frame(OP_PONG, b"ping 7") + frame(OP_BINARY, b"input") + frame(OP_PONG) + frame(OP_BINARY, b"x" * 125)
    assert protocol.receive_small_binary_frames_at_boundary(chunk) == b""
    assert heard.calls == [
        ("frame", FrameKind.PONG),
        ("pong", b"ping 7"),
        ("frame", FrameKind.DATA),
        ("message", b"input"),
        ("frame", FrameKind.PONG),
        ("pong", b""),
        ("frame", FrameKind.DATA),
        ("message", b"x" * 125),
    ]


def test_any_other_frame_and_what_follows_it_are_left_to_wsproto() -> None:
    heard = Heard()
    protocol = open_protocol(heard)
    rest = frame(OP_PING, b"p") + frame(OP_PONG, b"after")
    unfinished_pong = frame(OP_PONG, b"whole")[:-1]
    not_final = frame(OP_BINARY, b"part", fin=False)
    unmasked_pong = frame(OP_PONG, b"u", masked=False)
    for tail in (rest, unfinished_pong, not_final, unmasked_pong, frame(OP_PONG, b"r", rsv=4)):
        heard.calls.clear()
        assert protocol.receive_small_binary_frames_at_boundary(frame(OP_PONG, b"a") + tail) == tail
        assert heard.calls == [("frame", FrameKind.PONG), ("pong", b"a")]
