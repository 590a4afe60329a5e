"""A client's bounded backlog of frames waiting to be sent.

Rules: putting never waits. Frames are either state (snapshots and deltas, which a newer full snapshot
replaces) or control (everything else, never dropped). When the backlog is full, every state frame in it is
dropped; the caller then resyncs the client with a full snapshot.
"""

from __future__ import annotations

from collections import deque

import attrs
import trio


@attrs.define(eq=False)
class Outbox:
    capacity: int
    _frames: deque[tuple[bytes, bool, float]] = attrs.field(factory=deque, init=False)
    _wakeup: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __len__(self) -> int:
        return len(self._frames)

    def put_nowait(self, frame: bytes, *, state: bool) -> bool:
        """Queue a frame to send.

        Returns:
            False if the backlog was full: its state frames were dropped and `frame`, if a state frame, too.
        """
        if len(self._frames) >= self.capacity:
            self._frames = deque(item for item in self._frames if not item[1])
            if state:
                return False
            self._frames.append((frame, state, trio.current_time()))
            self._wakeup.set()
            return False
        self._frames.append((frame, state, trio.current_time()))
        self._wakeup.set()
        return True

    async def get(self) -> tuple[bytes, float]:
        """The oldest frame and when it was queued (trio time), waiting for one if the backlog is empty."""
        while not self._frames:
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        frame, _, queued_at = self._frames.popleft()
        return frame, queued_at
