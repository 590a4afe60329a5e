"""One task keeps the timers of every session: keepalive pings, pong and hello deadlines, token expiry.

Rules: a callback runs at or after its trio time, in order of due time, in the timers' task; it must not block,
and what it raises is logged without stopping the others. A timer holds its callback's object weakly, so a
closed session is not kept alive by a timer it set; a callback that finds its work gone simply returns.
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


@attrs.define(eq=False)
class Timers:
    _heap: list[tuple[float, int, weakref.ref[Any], Callable[[Any], object]]] = attrs.field(factory=list, init=False)
    """(due, order of setting, the method's object, the method's function)."""
    _order: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _earlier_timer: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, when: float, callback: Callable[[], object]) -> None:
        """Call the bound method `callback` at trio time `when` (unless its object is gone by then)."""
        method: MethodType = callback  # type: ignore[assignment]
        entry = (when, next(self._order), weakref.ref(method.__self__), method.__func__)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._earlier_timer.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the timers as they fall due, until cancelled."""
        task_status.started()
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, owner_ref, function = heapq.heappop(heap)
                owner = owner_ref()
                if owner is None:
                    continue
                try:
                    function(owner)
                except Exception:
                    logger.exception("a timer's callback failed; the other timers go on")
            self._earlier_timer = trio.Event()
            with trio.move_on_at(heap[0][0] if heap else math.inf):
                await self._earlier_timer.wait()
