"""The timers of every session (server.timers.Timers): each runs at or after its time, at most SLACK_SECONDS after,
in order of time; those falling due within the slack of the earliest share one wake-up."""

from __future__ import annotations

import pytest
import trio

from server.timers import SLACK_SECONDS, Timers


class Owner:
    """What sets timers (a session, in the server): its callbacks log when they ran."""

    def __init__(self, log: list[tuple[str, float]]) -> None:
        self.log = log

    def first(self) -> None:
        self.log.append(("first", trio.current_time()))

    def close_behind(self) -> None:
        self.log.append(("close behind", trio.current_time()))

    def apart(self) -> None:
        self.log.append(("apart", trio.current_time()))

    def cancelled(self) -> None:
        self.log.append(("cancelled", trio.current_time()))

    def failing(self) -> None:
        raise RuntimeError("a fault in a callback")


async def test_timers_due_within_the_slack_run_together_in_order_never_early_nor_later_than_the_slack(
    autojump_clock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, float]] = []
    owner = Owner(log)
    timers = Timers()
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        start = trio.current_time()
        timers.call_at(start + 1.0 + SLACK_SECONDS * 0.9, owner.close_behind)
        timers.call_at(start + 1.0, owner.first)
        timers.call_at(start + 1.0 + SLACK_SECONDS * 0.5, owner.failing)
        timers.call_at(start + 1.0 + SLACK_SECONDS * 0.6, owner.cancelled).cancel()
        timers.call_at(start + 1.0 + SLACK_SECONDS * 1.1, owner.apart)
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    ran = [(name, round(at - start, 9)) for name, at in log]
    assert ran == [
        ("first", 1.0 + SLACK_SECONDS),  # woke at the earliest one's time plus the slack: ran all that were due
        ("close behind", 1.0 + SLACK_SECONDS),
        ("apart", round(1.0 + SLACK_SECONDS * 1.1 + SLACK_SECONDS, 9)),  # due after that wake-up: one of its own
    ]
    assert "a timer's callback failed" in caplog.text
    assert len(timers) == 0
