"""A sync test in the manner of ggrs: record a match's inputs, replay them, compare state hashes tick by tick.

The recorded match has 8 players who wander and shoot at the nearest enemy, so it has hits, deaths and respawns.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import pickle
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

import game
from game import MatchState, PlayerInput, add_player, state_hash, step

PLAYERS = 8
TICKS = 600  # 20 s at 30 ticks/s
MIDPOINT = 300

Inputs = Mapping[int, PlayerInput]


@attrs.frozen
class Recording:
    initial: MatchState
    inputs: tuple[Inputs, ...]
    hashes: tuple[str, ...]
    """`hashes[i]` is the hash after the step that took `inputs[i]`."""
    midpoint: bytes
    """The state after `MIDPOINT` ticks, pickled."""
    event_counts: Mapping[str, int]


def _bot_inputs(
    state: MatchState, rng: random.Random, wander: dict[int, tuple[int, int, int]]
) -> dict[int, PlayerInput]:
    """Each player aims at the nearest living enemy (with a little jitter), fires, and wanders."""
    inputs = {}
    living = [p for p in state.players.values() if p.alive]
    for pid in sorted(state.players):
        me = state.players[pid]
        enemies = [p for p in living if p.id != pid]
        aim = rng.uniform(-math.pi, math.pi)
        if enemies:
            target = min(enemies, key=lambda p: ((p.x - me.x) ** 2 + (p.y - me.y) ** 2, p.id))
            aim = math.atan2(target.y - me.y, target.x - me.x) + rng.uniform(-0.05, 0.05)
        move_x, move_y, left = wander.get(pid, (0, 0, 0))
        if left <= 0:
            move_x, move_y, left = rng.choice((-1, 0, 1)), rng.choice((-1, 0, 1)), rng.randint(5, 40)
        wander[pid] = (move_x, move_y, left - 1)
        inputs[pid] = PlayerInput(seq=state.tick + 1, move_x=move_x, move_y=move_y, aim=aim, fire=bool(enemies))
    return inputs


def _initial(seed: int) -> MatchState:
    state = MatchState.initial(seed=seed)
    for pid in range(1, PLAYERS + 1):
        state = add_player(state, pid, f"bot {pid}")
    return state


@functools.cache
def _record(seed: int) -> Recording:
    rng = random.Random(seed)
    wander: dict[int, tuple[int, int, int]] = {}
    initial = state = _initial(seed)
    inputs, hashes = [], []
    counts: collections.Counter[str] = collections.Counter()
    midpoint = b""
    for _ in range(TICKS):
        tick_inputs = _bot_inputs(state, rng, wander)
        state, events = step(state, tick_inputs)
        inputs.append(tick_inputs)
        hashes.append(state_hash(state))
        counts.update(type(event).__name__ for event in events)
        if state.tick == MIDPOINT:
            midpoint = pickle.dumps(state)
    return Recording(initial, tuple(inputs), tuple(hashes), midpoint, dict(counts))


def _replay(state: MatchState, inputs: Sequence[Inputs]) -> list[str]:
    hashes = []
    for tick_inputs in inputs:
        state, _ = step(state, tick_inputs)
        hashes.append(state_hash(state))
    return hashes


def _first_divergence(expected: Sequence[str], actual: Sequence[str], *, first_tick: int) -> int | None:
    """The first tick whose hashes differ, or None."""
    assert len(expected) == len(actual)
    for offset, (want, got) in enumerate(zip(expected, actual, strict=True)):
        if want != got:
            return first_tick + offset
    return None


def test_recorded_match_has_hits_deaths_and_respawns() -> None:
    recording = _record(1)
    assert recording.event_counts.get("Hit", 0) >= 20
    assert recording.event_counts.get("Death", 0) >= 3
    assert recording.event_counts.get("Respawn", 0) >= 3
    assert len(set(recording.hashes)) == TICKS  # the state changes every tick


def test_replay_from_the_initial_state_matches_every_tick() -> None:
    recording = _record(1)
    replayed = _replay(recording.initial, recording.inputs)
    assert _first_divergence(recording.hashes, replayed, first_tick=1) is None


def test_replay_from_a_pickled_mid_match_state_matches_every_tick() -> None:
    recording = _record(1)
    state = pickle.loads(recording.midpoint)
    assert state.tick == MIDPOINT
    assert state_hash(state) == recording.hashes[MIDPOINT - 1]
    replayed = _replay(state, recording.inputs[MIDPOINT:])
    assert _first_divergence(recording.hashes[MIDPOINT:], replayed, first_tick=MIDPOINT + 1) is None


def test_replay_does_not_depend_on_the_order_inputs_arrive_in() -> None:
    recording = _record(1)
    reordered = [dict(reversed(list(tick_inputs.items()))) for tick_inputs in recording.inputs]
    replayed = _replay(recording.initial, reordered)
    assert _first_divergence(recording.hashes, replayed, first_tick=1) is None


def test_replay_in_a_fresh_interpreter_with_another_hash_seed_matches(tmp_path: Path) -> None:
    recording = _record(1)
    ticks = 200
    saved = tmp_path / "recording.pickle"
    saved.write_bytes(pickle.dumps((recording.initial, recording.inputs[:ticks])))
    program = (
        "import pickle, sys\n"
        "from game import state_hash, step\n"
        "state, inputs = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "for tick_inputs in inputs:\n"
        "    state, _ = step(state, tick_inputs)\n"
        "    print(state_hash(state))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    result = subprocess.run(
        [sys.executable, "-c", program, str(saved)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=Path(game.__file__).parent.parent,
        timeout=60,
    )
    assert _first_divergence(recording.hashes[:ticks], result.stdout.split(), first_tick=1) is None


def test_a_different_seed_gives_different_hashes() -> None:
    first, second = _record(1), _record(2)
    assert all(a != b for a, b in zip(first.hashes, second.hashes, strict=True))
    # The same inputs from a differently seeded start diverge too.
    replayed = _replay(_initial(2), first.inputs)
    assert all(a != b for a, b in zip(first.hashes, replayed, strict=True))


def test_state_hash_notices_the_smallest_change() -> None:
    state = pickle.loads(_record(1).midpoint)
    player = state.players[1]
    nudged = attrs.evolve(player, x=math.nextafter(player.x, math.inf))
    assert state_hash(attrs.evolve(state, players={**state.players, 1: nudged})) != state_hash(state)
    assert state_hash(attrs.evolve(state, rng_state=state.rng_state ^ 1)) != state_hash(state)
    assert state_hash(attrs.evolve(state, next_projectile_id=state.next_projectile_id + 1)) != state_hash(state)


def test_state_hash_ignores_the_order_players_were_inserted_in() -> None:
    state = add_player(add_player(MatchState.initial(seed=3), 1, "a"), 2, "b")
    reordered = attrs.evolve(state, players=dict(reversed(list(state.players.items()))))
    assert list(reordered.players) != list(state.players)
    assert state_hash(reordered) == state_hash(state)
