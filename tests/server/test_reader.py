"""The shared socket reader (server.reader) reads on its own while no tick scheduler wakes soon, and leaves the
reading to the scheduler (which calls `read_ready` as it wakes, and between the ticks it runs together) while one
does: inputs then cost no wake-up."""

from __future__ import annotations

import socket
import time

import trio

from server.match import READ_INTERVAL_SECONDS, TickScheduler
from server.reader import HANDOFF_SECONDS, SocketReader


async def test_the_reader_reads_alone_until_a_scheduler_wakes_soon_then_the_scheduler_reads() -> None:
    reader = SocketReader()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    received: list[bytes] = []

    def receive(data: bytes) -> bytes:
        received.append(data)
        return b""  # all taken

    async def arrives(data: bytes) -> None:
        theirs.send(data)
        with trio.fail_after(2):
            while data not in received:
                await trio.sleep(0.001)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            nursery.start_soon(reader.handled_elsewhere, ours.fileno(), receive)
            await trio.sleep(0.01)
            await arrives(b"alone")  # no scheduler: the reader reads by itself
            reader.scheduler_woke(trio.current_time() + 10)
            await arrives(b"scheduler far off")  # still by itself
            reader.scheduler_woke(trio.current_time() + HANDOFF_SECONDS / 2)
            await arrives(b"scheduler soon")  # read by the reader, which then hands over
            theirs.send(b"left to the scheduler")
            await trio.sleep(HANDOFF_SECONDS / 4)
            assert received[-1] == b"scheduler soon"  # nobody read it yet
            reader.read_ready()  # the scheduler wakes and reads
            assert received[-1] == b"left to the scheduler"
            reader.scheduler_woke(trio.current_time() + 10)  # nothing due soon any more: the reader reads again
            await trio.sleep(0.01)
            await arrives(b"alone again")
            nursery.cancel_scope.cancel()
    finally:
        ours.close()
        theirs.close()
        reader.close()


async def test_what_arrives_during_a_long_group_of_ticks_is_read_before_the_groups_next_tick() -> None:
    reader = SocketReader()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    received: list[bytes] = []
    seen: list[list[bytes]] = []

    def receive(data: bytes) -> bytes:
        received.append(data)
        return b""

    class InputArrives:
        """A match during whose tick (a long one) a client's input arrives."""

        interval = 1.0

        def due(self, deadline: float, now: float) -> None:
            theirs.send(b"input")
            time.sleep(READ_INTERVAL_SECONDS)

    class Looks(InputArrives):
        """A match due in the same group of ticks, right after: its tick must have the input."""

        def due(self, deadline: float, now: float) -> None:
            seen.append(list(received))

    scheduler = TickScheduler(reader)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.handled_elsewhere, ours.fileno(), receive)
            nursery.start_soon(scheduler.run)
            await trio.sleep(0.01)
            start = trio.current_time()
            scheduler.schedule(InputArrives(), start + 0.02)
            scheduler.schedule(Looks(), start + 0.021)
            with trio.fail_after(2):
                while not seen:
                    await trio.sleep(0.005)
            nursery.cancel_scope.cancel()
    finally:
        ours.close()
        theirs.close()
        reader.close()
    assert seen == [[b"input"]]
