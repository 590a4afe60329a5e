"""Lag-compensated shots: a shot made while the shooter saw the world L ticks ago flies as it would have from
then, judged against where the others were at each of those ticks; bounded, and still a pure function of the
inputs."""

from __future__ import annotations

import attrs

from game import Hit, MatchState, PlayerInput, Rules, state_hash, step
from game.simulation import add_player

OPEN_FLOOR = Rules(walls=(), spawn_points=((100, 100), (1500, 800)), duration_seconds=60)
SHOOTER, TARGET = 1, 2


def _crossing_state() -> MatchState:
    """The shooter at (200, 200) facing +x; the target at (500, 100) about to walk down across y = 200."""
    state = add_player(add_player(MatchState.initial(seed=7, rules=OPEN_FLOOR), SHOOTER, "s"), TARGET, "t")
    players = {
        SHOOTER: attrs.evolve(state.players[SHOOTER], x=200.0, y=200.0),
        TARGET: attrs.evolve(state.players[TARGET], x=500.0, y=100.0),
    }
    return attrs.evolve(state, players=players)


def _run(fire_at_tick: int, view_tick: int | None, ticks: int = 40) -> list[Hit]:
    """The target walks down every tick; the shooter fires once (aim 0) with its input of `fire_at_tick`."""
    state, hits = _crossing_state(), []
    for _ in range(ticks):
        tick = state.tick + 1
        shooter = PlayerInput(seq=tick, aim=0.0, fire=tick == fire_at_tick, view_tick=view_tick)
        state, events = step(state, {SHOOTER: shooter, TARGET: PlayerInput(seq=tick, move_y=1)})
        hits += [event for event in events if isinstance(event, Hit)]
    return hits


def test_the_shot_as_the_shooter_saw_it_hits_and_the_same_shot_judged_now_misses():
    assert len(_run(fire_at_tick=2, view_tick=None)) == 1  # fired in time, with no lag: a hit
    assert _run(fire_at_tick=6, view_tick=None) == []  # the same shot 4 ticks late, judged now: a miss
    assert len(_run(fire_at_tick=6, view_tick=2)) == 1  # ...made while seeing tick 2: judged as then, a hit


def test_claims_older_than_the_history_are_clamped_and_future_ones_count_as_now():
    limit = OPEN_FLOOR.lag_compensation_ticks
    assert limit == 8  # 0.25 s at 30 ticks per second
    # 12 ticks late: only 8 are made up, so the shot is still 4 ticks late and misses
    assert _run(fire_at_tick=14, view_tick=2) == []
    assert _run(fire_at_tick=6, view_tick=99) == _run(fire_at_tick=6, view_tick=None)


def test_a_rewound_hit_needs_the_target_alive_now():
    state = _crossing_state()
    state = attrs.evolve(
        state, players={**state.players, TARGET: attrs.evolve(state.players[TARGET], hp=0, respawn_tick=999)}
    )
    for _ in range(10):
        tick = state.tick + 1
        shooter = PlayerInput(seq=tick, aim=0.0, fire=tick == 6, view_tick=2)
        state, events = step(state, {SHOOTER: shooter})
        assert not [event for event in events if isinstance(event, Hit)]


def test_history_holds_the_last_ticks_only_and_replays_give_the_same_hashes():
    def run() -> list[str]:
        state, hashes = _crossing_state(), []
        for _ in range(30):
            tick = state.tick + 1
            shooter = PlayerInput(seq=tick, aim=0.1, fire=True, view_tick=tick - 3)
            state, _ = step(state, {SHOOTER: shooter, TARGET: PlayerInput(seq=tick, move_y=1)})
            hashes.append(state_hash(state))
        assert len(state.history) == OPEN_FLOOR.lag_compensation_ticks
        assert [frame[0] for frame in state.history] == list(range(23, 31))
        return hashes

    assert run() == run()


def test_no_history_is_kept_without_lag_compensation():
    rules = attrs.evolve(OPEN_FLOOR, lag_compensation_seconds=0.0)
    state = attrs.evolve(_crossing_state(), rules=rules)
    state, _ = step(state, {SHOOTER: PlayerInput(seq=1, fire=True, view_tick=0)})
    assert state.history == ()
