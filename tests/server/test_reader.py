"""The shared socket reader (server.reader) reads on its own while no tick scheduler wakes soon, and leaves the
reading to the scheduler (which calls `read_ready` as it wakes) while one does: inputs then cost no wake-up."""

from __future__ import annotations

import socket

import trio

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
