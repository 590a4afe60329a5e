"""The game plays six seeded matches exactly as it did when this digest was taken (commit 437d455, and every commit
since): every tick's state hash and events. Speed work on the step, the values or the hashing must leave it as it
is: a change here means recorded replays no longer verify (their hashes were taken by the old game). Change the
digest only with a change to the game's rules, on purpose.

The matches: 8 players, random inputs held for a while (move, aim including aims that round at a half, fire, view
ticks from the future to beyond the lag-compensation window), a player leaving and one joining late in odd seeds,
and in one seed of three the default rules (kill limit 10, so it ends)."""

from __future__ import annotations

import hashlib
import random

import game
from game import MatchState, PlayerInput, Rules, add_player, state_hash, step

DIGEST = "2588b0000702eddece97e962e4dff5fd63158c3a879e3df6439167c77f436042"
HALF_ROUNDING_AIMS = (0.0005, 0.0015, -0.0025, 1.0005, 3.1425)


def _digest() -> str:
    total = hashlib.sha256()
    for seed in range(6):
        rng = random.Random(seed)
        rules = Rules() if seed % 3 else Rules(duration_seconds=3600, kill_limit=1000)
        state = MatchState.initial(seed=seed, rules=rules)
        for player_id in range(1, 9):
            state = add_player(state, player_id, f"p{player_id}")
        held: dict[int, PlayerInput] = {}
        for tick in range(1500):
            inputs = {}
            for player_id in state.players:
                if player_id not in held or rng.random() < 0.3:
                    aim = rng.uniform(-4, 4) if rng.random() < 0.8 else rng.choice(HALF_ROUNDING_AIMS)
                    view = None if rng.random() < 0.2 else state.tick - rng.randint(-2, 12)
                    held[player_id] = PlayerInput(
                        seq=tick,
                        move_x=rng.choice((-1, 0, 1)),
                        move_y=rng.choice((-1, 0, 1)),
                        aim=aim,
                        fire=rng.random() < 0.6,
                        view_tick=view,
                    )
                if rng.random() < 0.95:
                    inputs[player_id] = held[player_id]
            if tick == 700 and seed % 2:
                state = game.remove_player(state, 3)
            if tick == 900 and seed % 2:
                state = add_player(state, 11, "late")
            state, events = step(state, inputs)
            total.update(state_hash(state).encode())
            total.update(repr(events).encode())
            if state.over:
                break
    return total.hexdigest()


def test_six_seeded_matches_play_tick_for_tick_as_they_always_have() -> None:
    assert _digest() == DIGEST
