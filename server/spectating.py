"""What a match's spectators see: the frames its players got, `delay_ticks` later.

Rules: spectators never get a frame the players have not had for at least the delay (against ghosting: a spectator
cannot relay what it sees to a player in time to matter). The feed keeps the encoded deltas of the last
`delay_ticks + keyframe_interval` ticks and a full snapshot every `keyframe_interval` ticks, all already made for
the players (the deltas as bytes alone, their ticks counted from the first: nothing a tick adds here is an object
the garbage collector scans); a spectator that arrives (or fell behind) gets the newest keyframe at or before the
delayed tick and the deltas after it, then one delta a tick. Bounded memory: a few hundred small frames per match.
"""

from __future__ import annotations

import itertools
from collections import deque

import attrs

KEYFRAME_INTERVAL_TICKS = 30


@attrs.define(eq=False)
class DelayedFeed:
    delay_ticks: int
    keyframe_interval: int = KEYFRAME_INTERVAL_TICKS
    _deltas: deque[bytes] = attrs.field(factory=deque, init=False)
    """The delta frames that bring a client to ticks `_first_delta_tick`, `_first_delta_tick` + 1, and so on."""
    _first_delta_tick: int = attrs.field(default=0, init=False)
    _keyframes: deque[tuple[int, bytes]] = attrs.field(factory=deque, init=False)
    """(tick, a full snapshot frame of that tick), oldest first."""

    def wants_keyframe(self, tick: int) -> bool:
        return tick % self.keyframe_interval == 0 or not self._keyframes

    def record(self, tick: int, delta_frame: bytes, keyframe: bytes | None = None) -> None:
        """The players got `delta_frame` for `tick` (and `keyframe` is its full snapshot, when wanted)."""
        deltas = self._deltas
        if tick != self._first_delta_tick + len(deltas):  # the first tick, or ticks not one after another
            deltas.clear()
            self._first_delta_tick = tick
        deltas.append(delta_frame)
        if keyframe is not None:
            self._keyframes.append((tick, keyframe))
        oldest_needed = tick - self.delay_ticks - self.keyframe_interval
        while len(self._keyframes) > 1 and self._keyframes[1][0] <= tick - self.delay_ticks:
            self._keyframes.popleft()
        drop = min(oldest_needed, self._keyframes[0][0] if self._keyframes else tick) - self._first_delta_tick + 1
        for _ in range(min(drop, len(deltas))):
            deltas.popleft()
            self._first_delta_tick += 1

    def due(self, tick: int) -> bytes | None:
        """The delta for spectators at `tick` (the one the players got `delay_ticks` ago), if kept."""
        index = tick - self.delay_ticks - self._first_delta_tick
        return self._deltas[index] if 0 <= index < len(self._deltas) else None

    def catch_up(self, tick: int) -> list[bytes]:
        """What a spectator without a state needs at `tick`: the newest keyframe at or before the delayed tick
        and the deltas after it; empty while the match is younger than the delay."""
        shown = tick - self.delay_ticks
        keyframe = next(((t, frame) for t, frame in reversed(self._keyframes) if t <= shown), None)
        if keyframe is None:
            return []
        first = self._first_delta_tick
        after = max(0, keyframe[0] + 1 - first)
        through = min(len(self._deltas), shown + 1 - first)
        return [keyframe[1], *itertools.islice(self._deltas, after, max(after, through))]
