"""The one writer of a connection's socket, with the connection's bounded backlog.

Rules: putting never waits. Everything sent on a connection goes through its outbox, in order: the frames of
the match and the session, and the protocol's own (the handshake answer, pongs, the Close frame). A
frame is written at once with a non-blocking send when nothing waits before it; what the socket does not take
waits in the backlog, which a task started for the purpose writes out as the socket drains. Over TLS every
frame goes through the TLS stream, from that task.

Frames are either state (snapshots and deltas, which a newer full snapshot replaces) or control (everything
else). No frame is lost without the caller being told:
- when the backlog holds `capacity` frames, every state frame in it is dropped (and the new one, if a state
  frame), and `put_nowait` says so: the caller resyncs the client with a full snapshot;
- when `capacity` control frames already wait, a new one is refused and `put_nowait` says so: the caller
  closes the connection (a client that does not read its replies cannot be served);
- frames taken out of the backlog to be written are never dropped (a half-written frame would break the stream,
  and over TLS an encrypted record cannot be taken back);
- `send_all` (the handshake answer, the Close frame) is never refused and returns once the socket took it.
Once the Close frame is on its way no data frame follows it (RFC 6455 section 5.5.1).
"""

from __future__ import annotations

import enum
import errno
import os
import struct

import attrs
import trio
from wsproto.frame_protocol import FrameProtocol

WRITE_BATCH_FRAMES = 64
"""Frames of the backlog written with one system call."""

_server_framing = FrameProtocol(client=False, extensions=[])


FINAL_BINARY = 0x82
"""A frame's first byte when it is final and binary, with no RSV bit (RFC 6455 section 5.2)."""
_LENGTH_16, _LENGTH_64 = 126, 127


def binary_frame(payload: bytes) -> bytes:
    """`payload` as one unmasked binary WebSocket frame, ready to be written to any number of sockets.

    The header written here, not by wsproto's general framing (a tenth of its cost, every match every tick):
    RFC 6455 section 5.2's first byte, then the length in 7 bits, or 126 and 16 bits, or 127 and 64 bits, in
    network order (tests/server/test_outbox.py checks it against wsproto's frames)."""
    length = len(payload)
    if length < _LENGTH_16:
        return bytes((FINAL_BINARY, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", FINAL_BINARY, _LENGTH_16, length) + payload
    return struct.pack("!BBQ", FINAL_BINARY, _LENGTH_64, length) + payload


def ping_frame(payload: bytes) -> bytes:
    """A Ping frame carrying `payload` (at most 125 bytes)."""
    return bytes(_server_framing.ping(payload))


class Put(enum.Enum):
    """What became of a frame given to `Outbox.put_nowait`."""

    ACCEPTED = "accepted"
    """Written, or waiting in the backlog (or the connection is already closed or broken: nothing to do)."""
    STATE_DROPPED = "state dropped"
    """The backlog was full: its state frames were dropped (and this one, if a state frame); resync the client."""
    REFUSED = "refused"
    """A control frame, refused: `capacity` control frames wait already. Close the connection."""


@attrs.define(eq=False)
class Outbox:
    """Writes frames to the socket `fd`, keeping at most `capacity` of them waiting.

    Args:
        fd: the connection's socket (non-blocking, as trio keeps it); the outbox never closes it.
        nursery: where the task that writes out a backlog runs (the connection's).
        capacity: frames the backlog holds before state frames are dropped; also the most control frames that
            may wait.
        delay: development only: hold every frame back this many seconds (simulated latency).
        stream: if given (TLS), frames are written with its `send_all` instead of to `fd` directly.
    """

    fd: int
    nursery: trio.Nursery
    capacity: int
    delay: float = 0.0
    stream: trio.abc.SendStream | None = None
    frames_sent: int = attrs.field(default=0, init=False)
    bytes_sent: int = attrs.field(default=0, init=False)
    error: OSError | None = attrs.field(default=None, init=False)
    """Why writing failed (the peer reset the connection, say); nothing is written after that."""
    _backlog: list[tuple[bytes, bool, float, int]] = attrs.field(factory=list, init=False)
    """(frame, is state, when it may be written, sequence number), oldest first. A list, not a deque: it is short,
    and an empty list is a tenth of the size of an empty deque."""
    _controls_waiting: int = attrs.field(default=0, init=False)
    _taken: memoryview | None = attrs.field(default=None, init=False)
    """Bytes of frames taken out of the backlog and not yet written: they go first, and are never dropped."""
    _taken_frames: int = attrs.field(default=0, init=False)
    _taken_through: int = attrs.field(default=0, init=False)
    """The sequence number of the last frame in `_taken`."""
    _sequence: int = attrs.field(default=0, init=False)
    _written_through: int = attrs.field(default=0, init=False)
    """Every frame with a sequence number up to this one has been written (or dropped, if a state frame)."""
    _data_closed: bool = attrs.field(default=False, init=False)
    _draining: bool = attrs.field(default=False, init=False)
    _progress: trio.Event = attrs.field(factory=trio.Event, init=False)
    _writes_directly: bool = attrs.field(init=False)
    """Whether a frame may be written straight to the socket when nothing waits (no delay, no TLS)."""

    def __attrs_post_init__(self) -> None:
        self._writes_directly = not self.delay and self.stream is None

    def __len__(self) -> int:
        return len(self._backlog) + (self._taken is not None)

    def close_data(self) -> None:
        """The Close frame is being sent: refuse data frames from now on."""
        self._data_closed = True

    def put_nowait(self, frame: bytes, *, state: bool) -> Put:
        """Send a data frame (built with `binary_frame`) now, or queue what the socket does not take."""
        if self._data_closed or self.error is not None:
            return Put.ACCEPTED
        if not self._backlog and self._taken is None and self._writes_directly:  # `_put`'s first case, inline:
            try:  # every player's frame of every tick comes here (unless server.send_ring sends it: `sent_elsewhere`)
                written = os.write(self.fd, frame)
            except BlockingIOError:
                written = 0
            except OSError as error:
                self._fail(error)
                return Put.ACCEPTED
            self._written_directly(frame, written)
            return Put.ACCEPTED
        return self._put(frame, state=state, forced=False)

    def writes_now(self) -> bool:
        """Whether a data frame given now would be written straight to the socket (nothing waits before it, no
        delay, no TLS, not closed or broken): one that someone else may send to `fd` (`sent_elsewhere`)."""
        return (
            not self._backlog
            and self._taken is None
            and self._writes_directly
            and not self._data_closed
            and self.error is None
        )

    def sent_elsewhere(self, frame: bytes, result: int) -> None:
        """`frame` was sent to `fd` by someone else (server.send_ring) while `writes_now()`, with `result`: the
        bytes written, or minus the errno. Carries on as `put_nowait` would have: what was not written waits, and
        is written as the socket drains; a failure breaks the connection."""
        if result < 0:
            if result != -errno.EAGAIN:
                self._fail(OSError(-result, os.strerror(-result)))
                return
            result = 0
        self._written_directly(frame, result)

    def _written_directly(self, frame: bytes, written: int) -> None:
        self._sequence += 1
        self.bytes_sent += written
        if written == len(frame):
            self.frames_sent += 1
            self._written_through = self._sequence
        else:
            self._taken, self._taken_frames, self._taken_through = memoryview(frame)[written:], 1, self._sequence
            self._start_draining()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send bytes that must arrive (the handshake answer, a Close frame), returning once the socket took them.

        Raises:
            trio.BrokenResourceError: if the connection is broken.
        """
        if self.error is None:
            self._put(bytes(data), state=False, forced=True)
            sequence = self._sequence
            while self.error is None and self._written_through < sequence:
                self._progress = trio.Event()
                await self._progress.wait()
        if self.error is not None:
            raise trio.BrokenResourceError(f"the connection is broken: {self.error}") from self.error

    def _put(self, frame: bytes, *, state: bool, forced: bool) -> Put:
        self._sequence += 1
        sequence = self._sequence
        backlog = self._backlog
        if not backlog and self._taken is None and self._writes_directly:
            written = self._write(frame)
            if written == len(frame):
                self.frames_sent += 1
                self._written_through = sequence
                return Put.ACCEPTED
            if self.error is not None:
                return Put.ACCEPTED
            self._taken, self._taken_frames, self._taken_through = memoryview(frame)[written:], 1, sequence
            self._start_draining()
            return Put.ACCEPTED
        result = Put.ACCEPTED
        if forced:
            pass  # the handshake answer or the Close frame: never refused, and it drops nothing
        elif not state and self._controls_waiting >= self.capacity:
            return Put.REFUSED
        elif len(self) >= self.capacity:
            self._drop_state_frames()
            result = Put.STATE_DROPPED
            if state:
                return result
        backlog.append((frame, state, trio.current_time() + self.delay if self.delay else 0.0, sequence))
        if not state:
            self._controls_waiting += 1
        self._start_draining()
        return result

    def _drop_state_frames(self) -> None:
        self._backlog[:] = [item for item in self._backlog if not item[1]]

    def _start_draining(self) -> None:
        if not self._draining:
            self._draining = True
            self.nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        """Write out the backlog as the socket can take it; ends when the backlog is empty or writing fails."""
        try:
            while (self._taken is not None or self._backlog) and self.error is None:
                if self._taken is None:
                    due = self._backlog[0][2]
                    if due > trio.current_time():
                        await trio.sleep_until(due)
                    self._take_due_frames()
                if self.stream is not None:
                    await self._send_taken(self.stream)
                    continue
                try:
                    await trio.lowlevel.wait_writable(self.fd)
                except (trio.ClosedResourceError, OSError):
                    self._fail(BrokenPipeError("the socket was closed"))
                    return
                self._write_taken()
        finally:
            self._draining = False

    def _take_due_frames(self) -> None:
        """Move the frames that are due (at most a batch) out of the backlog, to be written as one."""
        backlog = self._backlog
        now = trio.current_time()
        count = 0
        while count < len(backlog) and count < WRITE_BATCH_FRAMES and backlog[count][2] <= now:
            count += 1
        taken = backlog[:count]
        del backlog[:count]
        self._controls_waiting -= sum(1 for _, state, _, _ in taken if not state)
        self._taken = memoryview(b"".join(frame for frame, _, _, _ in taken))
        self._taken_frames, self._taken_through = count, taken[-1][3]

    def _write_taken(self) -> None:
        taken = self._taken
        assert taken is not None
        written = self._write(taken)
        if written == len(taken):
            self._taken_written()
        elif written:
            self._taken = taken[written:]

    async def _send_taken(self, stream: trio.abc.SendStream) -> None:
        taken = self._taken
        assert taken is not None
        try:
            await stream.send_all(taken)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._fail(BrokenPipeError(f"the connection broke: {error}"))
            return
        self.bytes_sent += len(taken)
        self._taken_written()

    def _taken_written(self) -> None:
        self.frames_sent += self._taken_frames
        self._written_through = self._taken_through
        self._taken = None
        self._progress.set()

    def _write(self, data: bytes | memoryview) -> int:
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as error:
            self._fail(error)
            return 0
        self.bytes_sent += written
        return written

    def _fail(self, error: OSError) -> None:
        self.error = error
        self._backlog.clear()
        self._controls_waiting = 0
        self._taken = None
        self._progress.set()
