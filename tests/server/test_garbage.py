"""What a match keeps from tick to tick for later (its replay records, its spectators' delayed frames) holds no
object the cyclic garbage collector tracks: on a full server such objects piled up in the young generation between
collections, and one collection scanning them paused every match for tens of milliseconds."""

from __future__ import annotations

import gc
import random

import game
from game import MatchState, PlayerInput, Rules
from server.recording import MatchRecorder
from server.spectating import DelayedFeed

TICKS = 99
"""Ticks 201 to 299."""


def test_recording_and_the_spectator_feed_keep_no_tracked_objects_per_tick() -> None:
    rules = Rules(duration_seconds=3600, kill_limit=1_000_000)
    state = MatchState.initial(seed=3, rules=rules)
    recorder = MatchRecorder.start(match_id="m", mode="ffa", seed=3, rules=rules)
    feed = DelayedFeed(delay_ticks=90)
    for player_id in range(1, 9):
        state = game.add_player(state, player_id, f"p{player_id}")
        recorder.join(player_id, f"p{player_id}")
    rng = random.Random(3)
    kept = [recorder, feed]

    def play(ticks: int) -> None:
        nonlocal state
        for _ in range(ticks):
            inputs = {
                player_id: PlayerInput(seq=state.tick, move_x=rng.choice((-1, 0, 1)), move_y=1, aim=rng.random())
                for player_id in range(1, 9)
                if rng.random() < 0.4  # a new input for some players every tick: the recorder keeps each
            }
            state, _ = game.step(state, inputs)
            recorder.tick(state.tick, inputs, state)
            frame = f"delta {state.tick}".encode()
            feed.record(
                state.tick, frame, f"keyframe {state.tick}".encode() if feed.wants_keyframe(state.tick) else None
            )

    play(200)  # past the feed's window, so it holds as many frames as it ever will
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        play(TICKS)
        state = MatchState.initial(seed=0, rules=rules)  # the last state itself is not what is kept
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert len(kept[0].take()) >= TICKS  # the records were kept, as bytes
    assert grown < TICKS / 10, f"{grown} more tracked objects after {TICKS} ticks"  # not one or more a tick
