"""One task that reads the sockets of every open plain-TCP WebSocket connection, so that a client's input costs
no task switch and no epoll re-arming of its own.

Rules: a connection hands its socket to the reader (`handled_elsewhere`) only while its WebSocket is open and
wsproto holds no part of a frame or message; its own task then sleeps. The reader keeps the sockets in one
level-triggered epoll set of its own, whose descriptor is the only thing it waits on; when it wakes, it reads each
ready socket once and gives the bytes to the connection's `receive` right there (which delivers the small binary
frames, the common case, see server.websocket). Whatever `receive` does not take — any other frame, the end of
the stream, a read error, an exception — goes back to the connection's task with the socket, which the reader
forgets first. A connection about to close its socket takes it back (`release`) before closing it, so the
epoll set never holds a descriptor number that a new connection may reuse.

Pacing: while the tick scheduler (server.match.TickScheduler) will wake within `HANDOFF_SECONDS`, the reader does
not wait on its sockets: the scheduler reads whatever is ready (`read_ready`) as it wakes, before it ticks, and
every `HANDOFF_SECONDS` of a long group of ticks, and says when it will wake next (`scheduler_woke`). On a busy
server inputs then cost no wake-up of their own (a wake-up costs more CPU than reading an input, see
docs/benchmarks.md) and still reach the very next tick; anything a client sends waits at most `HANDOFF_SECONDS` more
to be read (a round trip measured by ping reads up to that much longer). (Reading what came every ms during a long
group of ticks cost ~10% more CPU at 750 players, both the server's and the clients', with 14% more TCP segments:
acknowledgements sent on their own rather than with the next delta; every 5 ms costs nothing measurable.
docs/benchmarks.md, issue 15's sixth and eighth sittings.)
"""

from __future__ import annotations

import contextlib
import math
import os
import select
from collections.abc import Callable

import attrs
import trio

READ_BYTES = 65536
HANDOFF_SECONDS = 0.005
"""The reader leaves reading to the tick scheduler when the scheduler wakes within this many seconds."""
MAX_EVENTS = 512
"""Sockets handled per wake-up at most; the rest are still ready at the next one (level-triggered)."""


@attrs.define(eq=False)
class _Watch:
    receive: Callable[[bytes], bytes]
    """Takes what it can of the bytes read; returns the rest, for the connection's own task."""
    done: trio.Event = attrs.field(factory=trio.Event)
    handed_back: bytes | BaseException | None = None
    """What the connection's task must deal with: bytes (b"" at the end of the stream) or an exception."""


class SocketReader:
    """The shared reader (see the module's rules). `run` it in a task for as long as connections are served."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, _Watch] = {}
        self._scheduler_wakes_at = math.inf
        self._scheduler_woke = trio.Event()

    def close(self) -> None:
        self._epoll.close()

    @property
    def watching(self) -> int:
        return len(self._watched)

    async def handled_elsewhere(self, fd: int, receive: Callable[[bytes], bytes]) -> bytes:
        """Let the reader read `fd` until something comes that `receive` leaves; return that (b"" once the peer
        ended the stream).

        Raises:
            trio.BrokenResourceError: if reading failed; or what `receive` raised.
            trio.ClosedResourceError: if the socket was released meanwhile (the connection is closing).
        """
        watch = _Watch(receive)
        self._watched[fd] = watch
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        try:
            await watch.done.wait()
        finally:
            self._forget(fd, watch)
        handed_back = watch.handed_back
        if isinstance(handed_back, BaseException):
            raise handed_back
        assert handed_back is not None
        return handed_back

    def release(self, fd: int) -> None:
        """The connection is closing `fd`: stop reading it, and wake its task (with ClosedResourceError)."""
        watch = self._watched.get(fd)
        if watch is not None:
            self._forget(fd, watch)
            self._hand_back(watch, trio.ClosedResourceError("the connection was closed"))

    def scheduler_woke(self, next_wake: float) -> None:
        """The tick scheduler has read what was ready and ticked; it wakes next at `next_wake` (math.inf: it has
        nothing scheduled)."""
        self._scheduler_wakes_at = next_wake
        self._scheduler_woke.set()

    async def run(self) -> None:
        while True:
            next_wake = self._scheduler_wakes_at
            if next_wake - trio.current_time() <= HANDOFF_SECONDS:  # the scheduler reads for us when it wakes
                self._scheduler_woke = trio.Event()
                await self._scheduler_woke.wait()
                continue
            with trio.move_on_at(next_wake - HANDOFF_SECONDS):
                await trio.lowlevel.wait_readable(self._epoll.fileno())
                self.read_ready()

    def read_ready(self) -> None:
        """Read every socket that has something to read (at most `MAX_EVENTS` of them)."""
        for fd, _ in self._epoll.poll(0, MAX_EVENTS):
            self._read(fd)  # a call of its own: nothing of a connection stays referenced here while waiting

    def _read(self, fd: int) -> None:
        watch = self._watched.get(fd)
        if watch is None:
            return
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError as error:
            self._stop_reading(fd, watch, trio.BrokenResourceError(f"the connection broke: {error}"))
            return
        if not data:
            self._stop_reading(fd, watch, b"")
            return
        try:
            rest = watch.receive(data)
        except Exception as error:  # the connection's task raises it, where its errors are handled
            self._stop_reading(fd, watch, error)
            return
        if rest:
            self._stop_reading(fd, watch, rest)

    def _stop_reading(self, fd: int, watch: _Watch, handed_back: bytes | BaseException) -> None:
        self._forget(fd, watch)
        self._hand_back(watch, handed_back)

    def _forget(self, fd: int, watch: _Watch) -> None:
        if self._watched.get(fd) is watch:
            del self._watched[fd]
            with contextlib.suppress(OSError, ValueError):  # closed meanwhile: epoll dropped it already
                self._epoll.unregister(fd)

    @staticmethod
    def _hand_back(watch: _Watch, handed_back: bytes | BaseException) -> None:
        if watch.handed_back is None:
            watch.handed_back = handed_back
        watch.done.set()
