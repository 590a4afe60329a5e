"""The one writer of a connection's socket, with the connection's bounded backlog.

Rules: putting never waits. Everything sent on a connection goes through its outbox, in order: the frames of
the match and the session, and the protocol's own (the handshake answer, pongs, the Close frame). A
frame is written at once with a non-blocking send when nothing waits before it; what the socket does not take
waits in the backlog, which a task started for the purpose writes out as the socket drains.

Frames are either state (snapshots and deltas, which a newer full snapshot replaces) or control (everything
else, never dropped). When the backlog holds `capacity` frames, every state frame in it that has not begun to
be written is dropped; the caller then resyncs the client with a full snapshot. Once the Close frame is on its
way no data frame follows it (RFC 6455 section 5.5.1).
"""

from __future__ import annotations

import os

import attrs
import trio
from wsproto.frame_protocol import FrameProtocol

WRITEV_MAX_FRAMES = 64
"""Frames of the backlog written with one system call."""

_server_framing = FrameProtocol(client=False, extensions=[])


def binary_frame(payload: bytes) -> bytes:
    """`payload` as one unmasked binary WebSocket frame, ready to be written to any number of sockets."""
    return bytes(_server_framing.send_data(payload, fin=True))


def ping_frame(payload: bytes) -> bytes:
    """A Ping frame carrying `payload` (at most 125 bytes)."""
    return bytes(_server_framing.ping(payload))


@attrs.define(eq=False)
class Outbox:
    """Writes frames to the socket `fd`, keeping at most `capacity` of them waiting.

    Args:
        fd: the connection's socket (non-blocking, as trio keeps it); the outbox never closes it.
        nursery: where the task that writes out a backlog runs (the connection's).
        capacity: frames the backlog holds before state frames are dropped.
        delay: development only: hold every frame back this many seconds (simulated latency).
    """

    fd: int
    nursery: trio.Nursery
    capacity: int
    delay: float = 0.0
    frames_sent: int = attrs.field(default=0, init=False)
    bytes_sent: int = attrs.field(default=0, init=False)
    error: OSError | None = attrs.field(default=None, init=False)
    """Why writing failed (the peer reset the connection, say); nothing is written after that."""
    _backlog: list[tuple[bytes, bool, float]] = attrs.field(factory=list, init=False)
    """(frame, is state, when it may be written), oldest first. A list, not a deque: it is short (at most
    `capacity` plus control frames), and an empty list is a tenth of the size of an empty deque."""
    _head_written: int = attrs.field(default=0, init=False)
    """Bytes of the oldest frame in the backlog already written."""
    _data_closed: bool = attrs.field(default=False, init=False)
    _draining: bool = attrs.field(default=False, init=False)
    _progress: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __len__(self) -> int:
        return len(self._backlog)

    def close_data(self) -> None:
        """The Close frame is being sent: refuse data frames from now on."""
        self._data_closed = True

    def put_nowait(self, frame: bytes, *, state: bool) -> bool:
        """Send a data frame (built with `binary_frame`) now, or queue what the socket does not take.

        Returns:
            False if the backlog was full: its state frames were dropped and `frame`, if a state frame, too.
        """
        if self._data_closed:
            return True
        return self._put(frame, state=state)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send bytes that must arrive (the handshake answer, a Close frame), returning once the socket took them.

        Raises:
            trio.BrokenResourceError: if the connection is broken.
        """
        frame = bytes(data)
        self._put(frame, state=False)
        while self.error is None and any(queued is frame for queued, _, _ in self._backlog):
            self._progress = trio.Event()
            await self._progress.wait()
        if self.error is not None:
            raise trio.BrokenResourceError(f"the connection is broken: {self.error}") from self.error

    async def _drain(self) -> None:
        """Write out the backlog as the socket can take it; ends when the backlog is empty or writing fails."""
        try:
            while self._backlog and self.error is None:
                due = self._backlog[0][2]
                if due > trio.current_time():
                    await trio.sleep_until(due)
                try:
                    await trio.lowlevel.wait_writable(self.fd)
                except (trio.ClosedResourceError, OSError):
                    self._fail(BrokenPipeError("the socket was closed"))
                    return
                self._write_backlog()
        finally:
            self._draining = False

    def _start_draining(self) -> None:
        if not self._draining:
            self._draining = True
            self.nursery.start_soon(self._drain)

    def _put(self, frame: bytes, *, state: bool) -> bool:
        if self.error is not None:
            return True
        backlog = self._backlog
        if not backlog and not self.delay:
            written = self._write(frame)
            if written == len(frame):
                self.frames_sent += 1
                return True
            if self.error is not None:
                return True
            self._head_written = written
            backlog.append((frame, state, 0.0))
            self._start_draining()
            return True
        accepted = True
        if len(backlog) >= self.capacity:
            self._drop_state_frames()
            accepted = False
            if state:
                return False
        backlog.append((frame, state, trio.current_time() + self.delay if self.delay else 0.0))
        self._start_draining()
        return accepted

    def _drop_state_frames(self) -> None:
        """Drop every waiting state frame, except the oldest if it is half written (that would break the stream)."""
        half_written = self._backlog[0] if self._head_written else None
        self._backlog = [item for item in self._backlog if not item[1] or item is half_written]

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

    def _write_backlog(self) -> None:
        backlog = self._backlog
        now = trio.current_time()
        buffers: list[bytes | memoryview] = []
        for frame, _, due in backlog:
            if due > now or len(buffers) == WRITEV_MAX_FRAMES:
                break
            buffers.append(memoryview(frame)[self._head_written :] if not buffers else frame)
        try:
            written = os.writev(self.fd, buffers)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(error)
            return
        self.bytes_sent += written
        written += self._head_written
        done = 0
        while done < len(backlog) and written >= len(backlog[done][0]):
            written -= len(backlog[done][0])
            done += 1
        del backlog[:done]
        self.frames_sent += done
        self._head_written = written
        self._progress.set()

    def _fail(self, error: OSError) -> None:
        self.error = error
        self._backlog.clear()
        self._head_written = 0
        self._progress.set()
