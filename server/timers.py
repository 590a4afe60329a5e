"""One task keeps the timers of every session: keepalive pings, pong and hello deadlines, token expiry.

Rules: a callback runs at or after its trio time (at most `SLACK_SECONDS` after), in order of due time, in the
timers' task; it must not block,
and what it raises is logged without stopping the others. A timer holds its callback's object weakly, so a
closed session is not kept alive by a timer it set; a callback that finds its work gone simply returns. A
cancelled timer never runs, and the heap is compacted whenever cancelled timers are half of it, so what a
closed session set is let go at once (amortised O(1) per cancel).
One task for all, rather than a few sleeping tasks per connection, keeps an idle connection small and spreads
pings over time instead of sending them to everyone at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import weakref
from collections.abc import Callable
from types import MethodType
from typing import Any

import attrs
import trio

logger = logging.getLogger(__name__)

SLACK_SECONDS = 0.05
"""How late a timer may run. The task sleeps until the earliest timer's time plus this and then runs every timer
that has fallen due: the keepalive pings, each on its own connection's schedule, share wake-ups (at 300 players,
60 timers a second ran in 4.3 wake-ups instead of 25.6; a wake-up costs 50-100 us of CPU on a cloud VM,
docs/benchmarks.md). Nothing a timer does here needs it sooner: by default pings every 5 s, deadlines of 10 s and
more."""


class Timer:
    """One callback set with `Timers.call_at`; `cancel()` it when its work is gone."""

    __slots__ = ("_function", "_owner", "_timers", "cancelled")

    def __init__(self, timers: Timers, owner: weakref.ref[Any], function: Callable[[Any], object]) -> None:
        self._timers = timers
        self._owner = owner
        self._function = function
        self.cancelled = False

    def cancel(self) -> None:
        """Never run it (it is let go soon, with the heap's next compaction). Cancelling twice does nothing."""
        if not self.cancelled:
            self.cancelled = True
            self._timers._cancelled_one()


@attrs.define(eq=False)
class Timers:
    _heap: list[tuple[float, int, Timer]] = attrs.field(factory=list, init=False)
    """(due, order of setting, timer)."""
    _order: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _cancelled: int = attrs.field(default=0, init=False)
    """Cancelled timers still in the heap."""
    _earlier_timer: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __len__(self) -> int:
        """Timers waiting to run (cancelled ones not counted)."""
        return len(self._heap) - self._cancelled

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Call the bound method `callback` at trio time `when` (unless its object is gone, or the timer is
        cancelled, by then)."""
        method: MethodType = callback  # type: ignore[assignment]
        timer = Timer(self, weakref.ref(method.__self__), method.__func__)
        entry = (when, next(self._order), timer)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._earlier_timer.set()
        return timer

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        if self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the timers as they fall due, until cancelled."""
        task_status.started()
        while True:
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                _, _, timer = heapq.heappop(self._heap)
                if timer.cancelled:
                    self._cancelled -= 1
                    continue
                timer.cancelled = True  # it ran: cancelling it now does nothing
                owner = timer._owner()
                if owner is None:
                    continue
                try:
                    timer._function(owner)
                except Exception:
                    logger.exception("a timer's callback failed; the other timers go on")
            self._earlier_timer = trio.Event()
            with trio.move_on_at(self._heap[0][0] + SLACK_SECONDS if self._heap else math.inf):
                await self._earlier_timer.wait()
