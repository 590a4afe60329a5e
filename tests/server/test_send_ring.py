"""The send ring (server.send_ring) on real TCP sockets on 127.0.0.1: each send's result as write(2) would give it,
and the tick scheduler's frames through it arriving as they do without it, in order, partial writes included."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from bots.client import connect
from server import send_ring
from server.match import send_states
from server.outbox import Outbox, binary_frame
from tests.conftest import join_together, ws_url
from tests.server.rawws import http_get

SMALL_BUFFER = 4096


@pytest.fixture
def ring() -> send_ring.SendRing:
    loaded = send_ring.load()
    if loaded is None and "kernel gives no io_uring" in send_ring.status:
        pytest.skip(send_ring.status)  # a sandbox refusing io_uring: the server writes frame by frame there
    assert loaded is not None, f"the send ring did not load: {send_ring.status} (scripts/setup.sh builds it)"
    return loaded


@pytest.fixture
def tcp_pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Three (server side, client side) TCP connections on 127.0.0.1, the server side non-blocking."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        pairs = []
        for _ in range(3):
            client = socket.create_connection(listener.getsockname())
            accepted, _ = listener.accept()
            accepted.setblocking(False)
            accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the server's sockets (trio's)
            pairs.append((accepted, client))
    yield pairs
    for accepted, client in pairs:
        accepted.close()
        client.close()


def _receive(client: socket.socket, count: int) -> bytes:
    client.settimeout(5)
    data = b""
    while len(data) < count:
        chunk = client.recv(65536)
        assert chunk, f"the connection ended after {len(data)} of {count} bytes"
        data += chunk
    return data


def test_each_send_has_the_result_write_would_give(ring, tcp_pairs) -> None:
    (full, full_client), (good, good_client), (reset, reset_client) = tcp_pairs
    full.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    full_client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    reset_client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    reset_client.close()  # linger 0: a reset
    big = b"b" * 200_000
    results = [0, 0, 0, 0]
    ring.send_each([full.fileno(), good.fileno(), reset.fileno(), 1_000_000], [big, b"hello", b"x", b"y"], results)
    assert 0 < results[0] < len(big)  # partly written: the rest is the caller's to keep
    assert results[1] == 5 and _receive(good_client, 5) == b"hello"
    assert results[3] == -errno.EBADF
    results = [0, 0]
    ring.send_each([reset.fileno(), full.fileno()], [b"x", big], results)
    assert results[0] in (-errno.ECONNRESET, -errno.EPIPE)  # and raises no SIGPIPE: this test is still running
    result = [results[1]]
    for _ in range(100):  # the client's kernel takes some more, then the socket is full
        if result[0] < 0:
            break
        ring.send_each([full.fileno()], [big], result)
    assert result == [-errno.EAGAIN]  # never waits for a full socket


def test_frames_are_given_as_long_lists_as_each_other(ring) -> None:
    with pytest.raises(ValueError):
        ring.send_each([1, 2], [b"a"], [0, 0])
    with pytest.raises(TypeError):
        ring.send_each([1], ["not bytes"], [0])


class _Match:
    """What send_states needs of a match: where the time its frames took is billed."""

    def __init__(self) -> None:
        self.unbilled_write_seconds = 0.0


class _Receiver:
    """What send_states needs of a session: its outbox, and `send_state` for frames that are not written at once."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.closing = False
        self.needs_snapshot = False

    def send_state(self, frame: bytes) -> None:
        self.outbox.put_nowait(frame, state=True)


@pytest.mark.parametrize("through_the_ring", [True, False])
async def test_frames_arrive_in_order_through_the_ring_as_without_it(ring, tcp_pairs, through_the_ring) -> None:
    # one receiver gets two frames in one wake-up (the ring takes one per socket per batch), one a frame too big
    # for its buffer (written in part, the rest drained as its client reads, and its next frame waits behind it)
    (fast, fast_client), (slow, slow_client), (other, other_client) = tcp_pairs
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)  # (a small receive buffer too would make
    # TCP send the rest in 200 ms probes)
    first, second = _Match(), _Match()
    delta_one, delta_two = binary_frame(b"one" * 10), binary_frame(b"two" * 10)
    huge = binary_frame(b"h" * 1_000_000)  # more than the client's kernel takes before its reader reads
    async with trio.open_nursery() as nursery:
        receivers = [_Receiver(Outbox(fd=sock.fileno(), nursery=nursery, capacity=8)) for sock in (fast, slow, other)]
        fast_receiver, slow_receiver, other_receiver = receivers
        outgoing = [
            (first, delta_one, [fast_receiver, other_receiver]),
            (second, huge, [slow_receiver]),
            (first, delta_two, [fast_receiver, slow_receiver]),
        ]
        send_states(outgoing, ring if through_the_ring else None)  # type: ignore[arg-type]  # stand-ins
        assert outgoing == []
        assert first.unbilled_write_seconds > 0 and second.unbilled_write_seconds > 0
        assert len(slow_receiver.outbox) > 0  # its huge frame's rest and the delta behind it wait
        assert _receive(fast_client, 2 * len(delta_one)) == delta_one + delta_two
        assert _receive(other_client, len(delta_one)) == delta_one
        received = await trio.to_thread.run_sync(_receive, slow_client, len(huge) + len(delta_two))
        assert received == huge + delta_two
        assert [receiver.outbox.frames_sent for receiver in receivers] == [2, 2, 1]


def test_the_ring_is_used_only_when_built_for_todays_source(tmp_path: Path, monkeypatch) -> None:
    assert send_ring.load(tmp_path) is None and "no send ring built" in send_ring.status
    monkeypatch.setenv(send_ring.SWITCH_VARIABLE, "0")
    assert send_ring.load() is None and "ARENA_SEND_RING=0" in send_ring.status


@pytest.mark.parametrize("switch", ["1", "0"])
async def test_a_server_plays_with_the_ring_and_without_it_and_says_which(
    ring, server_factory, monkeypatch, switch
) -> None:
    monkeypatch.setenv(send_ring.SWITCH_VARIABLE, switch)
    server = await server_factory()
    url = ws_url(server)
    async with connect(url, name="alice") as alice, connect(url, name="bob") as bob:
        _, joined_bob = await join_together(alice, bob)
        seq = await bob.send_input(mx=1)  # bob's input comes back acknowledged in the deltas alice receives

        def acknowledged(_: object) -> bool | None:
            assert alice.view is not None
            return True if alice.view.entities["players"][joined_bob.player]["ack"] >= seq else None

        assert await alice.receive_until(acknowledged)
        health = (await http_get(server.port, "/healthz")).json()
    assert health["send_ring"] is (switch == "1")
