"""One task ticks every match (server.match.TickScheduler): in deadline order, never earlier than
TICK_EARLY_FRACTION of an interval (ticks falling due that close together share a wake-up), each on its own
schedule, and a match that stops ticking leaves the others alone."""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace

import numpy
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from server.match import (
    READ_INTERVAL_SECONDS,
    SEND_DELAY_LIMIT_SECONDS,
    TICK_EARLY_FRACTION,
    TIMER_RESOLUTION_SECONDS,
    TickScheduler,
    TickStatistics,
    percentiles_ms,
    send_states,
)


class Ticking:
    """Stands in for a match: records when its ticks ran, and ticks `ticks` times every `interval` seconds."""

    def __init__(self, name: str, interval: float, ticks: int, log: list[tuple[str, float, float]]) -> None:
        self.name, self.interval, self.left, self.log = name, interval, ticks, log

    def due(self, deadline: float, now: float) -> float | None:
        assert now <= trio.current_time()
        self.log.append((self.name, deadline, trio.current_time()))
        self.left -= 1
        return deadline + self.interval if self.left else None


async def test_ticks_run_in_deadline_order_never_too_early_and_each_on_its_own_schedule(autojump_clock) -> None:
    log: list[tuple[str, float, float]] = []
    scheduler = TickScheduler()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        start = trio.current_time()
        scheduler.schedule(Ticking("a", 1 / 30, 30, log), start + 0.010)
        scheduler.schedule(Ticking("b", 1 / 30, 30, log), start + 0.010)
        scheduler.schedule(Ticking("c", 1 / 20, 3, log), start + 0.005)
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    assert [name for name, _, _ in log].count("a") == 30 and [name for name, _, _ in log].count("c") == 3
    assert all(ran >= deadline - TICK_EARLY_FRACTION / 30 for name, deadline, ran in log if name != "c")
    assert all(ran >= deadline - TICK_EARLY_FRACTION / 20 for name, deadline, ran in log if name == "c")
    deadlines = [deadline for _, deadline, _ in log]
    assert deadlines == sorted(deadlines)
    a_deadlines = [deadline for name, deadline, _ in log if name == "a"]
    assert all(abs((later - earlier) - 1 / 30) < 1e-9 for earlier, later in itertools.pairwise(a_deadlines))
    # a and b fall due together: one wake-up runs both, back to back (the mock clock stands still while tasks run)
    first_a = next(ran for name, _, ran in log if name == "a")
    first_b = next(ran for name, _, ran in log if name == "b")
    assert first_a == first_b


async def test_ticks_falling_due_within_an_eighth_of_an_interval_share_one_wake_up(autojump_clock) -> None:
    log: list[tuple[str, float, float]] = []
    scheduler = TickScheduler()
    interval = 1 / 30
    early = TICK_EARLY_FRACTION * interval
    # the scheduler asks to wake this much before a deadline (a real wait can end that late): what falls due
    # within an eighth of an interval of the moment it asked for runs then
    ahead = TIMER_RESOLUTION_SECONDS
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        start = trio.current_time()
        scheduler.schedule(Ticking("first", interval, 3, log), start + 0.010)
        scheduler.schedule(Ticking("close", interval, 3, log), start + 0.010 - ahead + early * 0.9)
        scheduler.schedule(Ticking("apart", interval, 3, log), start + 0.010 - ahead + early * 1.1)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    ran = {(name, round((deadline - start) / interval)): at - start for name, deadline, at in log}
    for n in range(3):
        # the first's deadline wakes the scheduler; the close one runs then too, early; the other on its own
        assert ran["first", n] == ran["close", n] == pytest.approx(0.010 - ahead + n * interval, abs=1e-9)
        assert ran["apart", n] == pytest.approx(0.010 - ahead + early * 1.1 - ahead + n * interval, abs=1e-9)


async def test_a_tick_scheduled_earlier_than_the_one_slept_for_wakes_the_scheduler(autojump_clock) -> None:
    log: list[tuple[str, float, float]] = []
    scheduler = TickScheduler()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        start = trio.current_time()
        scheduler.schedule(Ticking("late", 1.0, 1, log), start + 10)
        await trio.sleep(1)
        scheduler.schedule(Ticking("soon", 1.0, 1, log), start + 2)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert [(name, deadline - start, ran - start) for name, deadline, ran in log] == [
        ("soon", 2.0, pytest.approx(2.0 - TIMER_RESOLUTION_SECONDS)),
        ("late", 10.0, pytest.approx(10.0 - TIMER_RESOLUTION_SECONDS)),
    ]


class Receiver:
    """Stands in for a session: logs the frames handed to it."""

    def __init__(self, name: str, log: list[str], *, fails: bool = False) -> None:
        self.name, self.log, self.fails, self.needs_snapshot = name, log, fails, False

    def send_state(self, frame: bytes) -> None:
        if self.fails:
            raise RuntimeError("a fault in sending")
        self.log.append(f"{self.name} got {frame.decode()}")


class Sending:
    """Stands in for a match whose every tick takes `cost` seconds (on the mock clock) and makes one frame for
    each of its receivers."""

    def __init__(
        self, name: str, scheduler: TickScheduler, clock: trio.testing.MockClock, cost: float, receivers: list[Receiver]
    ) -> None:
        self.name, self.scheduler, self.clock, self.cost, self.receivers = name, scheduler, clock, cost, receivers
        self.interval, self.ticks, self.unbilled_write_seconds = 1 / 30, 0, 0.0
        self.log = receivers[0].log

    def due(self, deadline: float, now: float) -> float | None:
        self.ticks += 1
        self.log.append(f"{self.name} ticks")
        self.clock.jump(self.cost)
        self.scheduler.outgoing.append((self, f"{self.name}{self.ticks}".encode(), self.receivers))
        return None  # one tick each


async def test_the_frames_of_one_wake_ups_ticks_are_written_after_them_in_order_within_the_delay_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    scheduler = TickScheduler()
    cost = SEND_DELAY_LIMIT_SECONDS * 0.4  # the third tick in a row ends past the limit
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        start = trio.current_time()
        for name in "abcde":  # all due at once: one wake-up
            receivers = [Receiver(f"{name}-1", log), Receiver(f"{name}-2", log)]
            scheduler.schedule(Sending(name, scheduler, autojump_clock, cost, receivers), start + 0.010)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert log == [
        "a ticks",
        "b ticks",
        "c ticks",  # the oldest frame has now waited 1.2 ms: what waits is written
        *("a-1 got a1", "a-2 got a1", "b-1 got b1", "b-2 got b1", "c-1 got c1", "c-2 got c1"),
        "d ticks",
        "e ticks",  # no more ticks due: written
        *("d-1 got d1", "d-2 got d1", "e-1 got e1", "e-2 got e1"),
    ]
    assert not scheduler.outgoing


async def test_a_fault_in_sending_one_frame_is_logged_and_spares_the_others(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    scheduler = TickScheduler()
    failing = Receiver("broken", log, fails=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        receivers = [Receiver("first", log), failing, Receiver("last", log)]
        scheduler.schedule(Sending("a", scheduler, autojump_clock, 0.0, receivers), trio.current_time() + 0.010)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert log == ["a ticks", "first got a1", "last got a1"]
    assert failing.needs_snapshot  # the frame it missed: it is resynchronised with a full snapshot
    assert "sending a state frame failed" in caplog.text


class Reading:
    """Stands in for the shared socket reader: logs when the scheduler reads for it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.reads: list[float] = []

    def read_ready(self) -> None:
        self.reads.append(trio.current_time())
        self.log.append("read")

    def scheduler_woke(self, next_wake: float) -> None:
        pass


async def test_a_long_group_of_ticks_reads_what_came_every_read_interval_after_writing_what_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # a busy server catching up runs ticks back to back: inputs must not wait for the whole group to be read
    log: list[str] = []
    reader = Reading(log)
    scheduler = TickScheduler(reader)  # type: ignore[arg-type]  # a stand-in
    ticks, cost = 100, READ_INTERVAL_SECONDS / 14  # under the send delay limit: a read finds frames waiting
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        start = trio.current_time()
        for index in range(ticks):  # all due at once: one group of ticks, seven read intervals long
            receivers = [Receiver(f"m{index}", log)]
            scheduler.schedule(Sending(f"m{index}", scheduler, autojump_clock, cost, receivers), start + 0.010)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    during_group = [read for read in reader.reads if start < read <= start + 0.010 + ticks * cost]
    assert len(during_group) >= 7  # as it woke, then every interval
    assert all(
        later - earlier <= READ_INTERVAL_SECONDS + cost + 1e-9 for earlier, later in itertools.pairwise(during_group)
    )
    for index, entry in enumerate(log):  # every frame made before a read is written before it
        if entry == "read":
            made = {line.split()[0] for line in log[:index] if line.endswith("ticks")}
            written = {line.split()[0] for line in log[:index] if " got " in line}
            assert made == written, f"frames still waiting at a read: {made - written}"


class SlowReceiver(Receiver):
    def send_state(self, frame: bytes) -> None:
        time.sleep(0.003)  # a write that takes 3 ms
        super().send_state(frame)


def test_the_time_spent_writing_a_matchs_frames_is_billed_to_that_match() -> None:
    # a tick's cost (its match's tick_cost, which the tick budget --max-tick-load adds up, and the tick durations
    # of /healthz) includes writing its frames, though they are written after the wake-up's ticks
    log: list[str] = []
    quick, slow = SimpleNamespace(unbilled_write_seconds=0.0), SimpleNamespace(unbilled_write_seconds=0.0)
    outgoing = [
        (quick, b"q1", [Receiver("one", log)]),
        (slow, b"s1", [SlowReceiver("two", log), Receiver("three", log)]),
    ]
    send_states(outgoing)
    assert log == ["one got q1", "two got s1", "three got s1"] and outgoing == []
    assert slow.unbilled_write_seconds >= 0.003 > quick.unbilled_write_seconds > 0


async def test_tick_statistics_keep_every_tick_of_the_window_however_many_matches_tick(mock_clock) -> None:
    # 150 matches at 30 Hz: 4,500 ticks a second. /healthz's percentiles must cover the whole 10 s window, not the
    # last second or so (a bounded sample once kept only the last 3,000 ticks: a late second earlier in the window
    # went unseen). The mock clock stands still while the 54,000 ticks are recorded: on a busy machine that took
    # over a second of real time, and the window moved on under the test.
    statistics = TickStatistics()
    now = trio.current_time()
    ticks_per_second = 4500
    for index in range(12 * ticks_per_second):
        started = now - 12 + index / ticks_per_second
        late_second = now - 9 <= started < now - 8  # one bad second, early in the window
        statistics.record(started, 0.050 if late_second else 0.001, 0.0002)
    summary = statistics.summary()
    assert summary["ticks"] == 12 * ticks_per_second
    assert 9 * ticks_per_second <= summary["window_ticks"] <= 10 * ticks_per_second
    assert summary["lateness_ms_p99"] == 50.0  # the bad second is a tenth of the window
    assert summary["lateness_ms_p50"] == 1.0
    lateness = statistics.lateness_since(now - 1)
    assert 0.001 in lateness and 0.050 not in lateness


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=300))
def test_percentiles_are_the_values_at_their_place_in_order(values: list[float]) -> None:
    # what /healthz and the monitor show: found by numpy's partitioning, the same as sorting and indexing
    fractions = (0.0, 0.5, 0.9, 0.99, 1.0)
    ordered = sorted(values)
    expected = [
        round(ordered[min(len(values) - 1, int(f * len(values)))] * 1000, 3) if values else 0.0 for f in fractions
    ]
    assert percentiles_ms(numpy.array(values, dtype=numpy.float64), fractions) == expected
