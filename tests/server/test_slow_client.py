"""A client that reads slowly or not at all never changes the match's tick rate for anyone else."""

from __future__ import annotations

import math

import trio

from bots.client import ArenaClient, connect
from game import Delta, Snapshot
from tests.conftest import ws_url

TICK_RATE = 30
SMALL_BUFFERS = {"send_buffer_bytes": 4096, "outbox_capacity": 8}


async def _count_updates(client: ArenaClient, seconds: float) -> int:
    updates = 0
    with trio.move_on_after(seconds):
        while True:
            if isinstance(await client.receive(), Delta | Snapshot):
                updates += 1
    return updates


async def _keep_moving_and_firing(client: ArenaClient) -> None:
    """Change input every few ticks so the match produces traffic: moves, aim, projectiles."""
    for step in range(10_000):
        angle = step / 3
        await client.send_input(
            mx=round(math.cos(angle)), my=round(math.sin(angle)), aim=math.pi * math.sin(angle), fire=True
        )
        await trio.sleep(0.1)


async def test_a_client_that_never_reads_for_10_s_leaves_the_others_update_rate_unchanged(server_factory):
    server = await server_factory(**SMALL_BUFFERS, overflow_limit=3)
    url = ws_url(server)
    async with connect(url, name="mover") as mover, connect(url, name="watcher") as watcher:
        await mover.join()
        await watcher.join()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep_moving_and_firing, mover)
            nursery.start_soon(_count_updates, mover, 1e9)
            baseline = await _count_updates(watcher, 2.0) / 2.0

            async with connect(url, name="silent", receive_buffer_bytes=4096, message_queue_size=1) as silent:
                await silent.join()
                assert silent.match == watcher.match
                # from here on, `silent` never reads again
                while_silent = await _count_updates(watcher, 10.0) / 10.0
                closes = server.health()["close_codes"]
            nursery.cancel_scope.cancel()

    print(f"watcher updates/s: {baseline:.1f} before, {while_silent:.1f} while a client stopped reading")
    assert baseline >= 0.95 * TICK_RATE
    assert while_silent >= 0.95 * TICK_RATE
    assert abs(while_silent - baseline) <= 0.05 * TICK_RATE
    assert watcher.deltas_out_of_sync == 0
    # the silent client kept overflowing its backlog and was closed for it, within the 10 s
    assert closes.get("1008") == 1, closes


async def test_a_client_that_falls_behind_is_resynced_with_a_full_snapshot(server_factory):
    server = await server_factory(**SMALL_BUFFERS, overflow_limit=100)
    url = ws_url(server)
    async with (
        connect(url, name="mover") as mover,
        connect(url, name="slow", receive_buffer_bytes=4096, message_queue_size=1) as slow,
    ):
        await mover.join()
        await slow.join()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep_moving_and_firing, mover)
            nursery.start_soon(_count_updates, mover, 1e9)
            # stall until the backlog overflows and is dropped
            with trio.fail_after(20):
                while server.health()["backlog_overflows"] == 0:
                    await trio.sleep(0.1)
            snapshots_before = slow.snapshots_received
            # then read at full speed again
            await _count_updates(slow, 2.0)
            nursery.cancel_scope.cancel()
    assert slow.snapshots_received > snapshots_before
    assert slow.deltas_out_of_sync <= 1 + slow.snapshots_received
    assert slow.view is not None and slow.player in slow.view.entities["players"]
    assert server.health()["close_codes"].get("1008") is None
