"""Delayed spectating: spectators see what the players saw `spectator_delay` earlier, never sooner, and the
end of the match too."""

from __future__ import annotations

import trio

from bots.client import connect
from game import Delta, Snapshot
from server.messages import Left, Spectate, Spectating
from server.spectating import DelayedFeed
from tests.conftest import ws_url

DELAY_TICKS = 30  # 1 s at 30 ticks per second


def test_the_feed_gives_the_frames_of_delay_ticks_ago_and_a_keyframe_to_catch_up_from():
    feed = DelayedFeed(delay_ticks=5, keyframe_interval=4)
    for tick in range(1, 30):
        keyframe = f"K{tick}".encode() if feed.wants_keyframe(tick) else None
        feed.record(tick, f"D{tick}".encode(), keyframe)
        shown = tick - 5
        if shown >= 1:
            assert feed.due(tick) == f"D{shown}".encode()
        catch_up = feed.catch_up(tick)
        if catch_up:
            first = int(catch_up[0][1:])
            assert catch_up[0] == f"K{first}".encode() and first <= shown
            assert catch_up[1:] == [f"D{t}".encode() for t in range(first + 1, shown + 1)]
    assert len(feed._deltas) <= 5 + 4 + 1  # bounded


async def test_a_spectator_watches_one_second_behind_to_the_end(server_factory):
    server = await server_factory(spectator_delay=1.0, match_seconds=2)
    url = ws_url(server)
    async with (
        connect(url, name="player") as player,
        connect(url, name="rival") as rival,
        connect(url, name="watcher") as watcher,
    ):
        joined = await player.join()
        await rival.join()
        started = trio.current_time()
        await watcher.send(Spectate(match=joined.match))
        spectating = await watcher.receive_until(lambda m: m if isinstance(m, Spectating) else None)
        assert spectating.delay == 1.0
        seen_ticks: list[int] = []
        end_seen_by_player = end_seen_by_watcher = None

        async def follow_player() -> None:
            nonlocal end_seen_by_player
            while end_seen_by_player is None:
                message = await player.receive()
                if isinstance(message, Delta | Snapshot) and any(e.kind == "match_end" for e in message.events):
                    end_seen_by_player = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow_player)
            with trio.fail_after(10):
                while True:
                    message = await watcher.receive()
                    if isinstance(message, Delta | Snapshot):
                        # never ahead of what the players were sent a second earlier
                        match = server.directory.matches.get(joined.match)
                        if match is not None and not match.state.over:
                            assert message.tick <= match.state.tick - DELAY_TICKS, (message.tick, match.state.tick)
                        seen_ticks.append(message.tick)
                        if any(e.kind == "match_end" for e in message.events):
                            end_seen_by_watcher = trio.current_time()
                    if isinstance(message, Left):
                        break
        assert seen_ticks and seen_ticks[0] >= 1
        assert seen_ticks[0] - 0 <= (trio.current_time() - started) * 30
        assert end_seen_by_watcher is not None and end_seen_by_player is not None
        assert 0.8 <= end_seen_by_watcher - end_seen_by_player <= 1.5
