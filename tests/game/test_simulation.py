"""The rules of a match, one behaviour per test, on small scripted setups.

Players are placed with `attrs.evolve` on the state; every position used below is checked against the default
walls (`game.rules.DEFAULT_WALLS`) so that only the wall a test is about can get in the way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game import (
    Death,
    Event,
    Hit,
    MatchEnd,
    MatchFullError,
    MatchState,
    PlayerInput,
    Respawn,
    Rules,
    ScoreLine,
    add_player,
    projectile_position,
    simulation,
    step,
)
from game.arithmetic import nearest_int

RULES = Rules()
STEP = 220 / 30
"""Units a player moves per tick at full speed: 220 units/s at 30 ticks/s."""

EAST = 0.0
WEST = math.pi

# A clear lane along y = 100 from x = 0 to x = 1600: no wall comes within a player's or a projectile's reach.
LANE_Y = 100


def _match(*positions: tuple[float, float], rules: Rules = RULES, seed: int = 7) -> MatchState:
    """A match at tick 0 with players 1, 2, ... standing at `positions`."""
    state = MatchState.initial(seed=seed, rules=rules)
    for pid in range(1, len(positions) + 1):
        state = add_player(state, pid, f"p{pid}")
    for pid, (x, y) in enumerate(positions, start=1):
        state = _evolve_player(state, pid, x=float(x), y=float(y))
    return state


def _evolve_player(state: MatchState, pid: int, **changes: Any) -> MatchState:
    players = dict(state.players)
    players[pid] = attrs.evolve(players[pid], **changes)
    return attrs.evolve(state, players=players)


def _run(
    state: MatchState, inputs: Mapping[int, PlayerInput], ticks: int
) -> tuple[MatchState, list[tuple[int, tuple[Event, ...]]]]:
    """Step `ticks` times with the same inputs; returns the final state and each tick's events."""
    history = []
    for _ in range(ticks):
        state, events = step(state, inputs)
        history.append((state.tick, events))
    return state, history


def _events(history: list[tuple[int, tuple[Event, ...]]]) -> list[Event]:
    return [event for _, events in history for event in events]


def _move(move_x: int, move_y: int) -> PlayerInput:
    return PlayerInput(move_x=move_x, move_y=move_y)


def _fire(aim: float) -> PlayerInput:
    return PlayerInput(aim=aim, fire=True)


def _overlaps_a_wall(x: float, y: float, rules: Rules) -> bool:
    r = rules.player_radius
    return any(x - r < w.x + w.width and x + r > w.x and y - r < w.y + w.height and y + r > w.y for w in rules.walls)


# Movement


def test_player_moves_220_units_per_second() -> None:
    state = _match((400, 800))
    state, _ = _run(state, {1: _move(1, 0)}, 30)
    assert state.players[1].x == pytest.approx(400 + 220)
    assert state.players[1].y == 800


@pytest.mark.parametrize(("move_x", "move_y"), [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_player_moves_the_same_distance_per_tick_in_every_direction(move_x: int, move_y: int) -> None:
    state = _match((800, 800))
    state, _ = step(state, {1: _move(move_x, move_y)})
    dx, dy = state.players[1].x - 800, state.players[1].y - 800
    assert math.hypot(dx, dy) == pytest.approx(STEP)
    assert math.copysign(1, dx) == move_x or move_x == 0 == dx
    assert math.copysign(1, dy) == move_y or move_y == 0 == dy
    if move_x and move_y:
        assert abs(dx) == pytest.approx(STEP / math.sqrt(2))
        assert abs(dy) == pytest.approx(STEP / math.sqrt(2))


def test_player_without_input_stands_still() -> None:
    state = _match((400, 800), (1200, 100))
    before = state.players[2]
    state, _ = _run(state, {1: _move(1, 1)}, 10)
    assert state.players[2] == before


@pytest.mark.parametrize(
    ("start", "move", "end"),
    [
        ((30, 30), (-1, -1), (20, 20)),
        ((1570, 870), (1, 1), (1580, 880)),
        ((30, 450), (-1, 0), (20, 450)),
        ((800, 870), (0, 1), (800, 880)),
    ],
)
def test_arena_edges_stop_players(start: tuple[int, int], move: tuple[int, int], end: tuple[int, int]) -> None:
    state = _match(start)
    state, _ = _run(state, {1: _move(*move)}, 10)
    assert (state.players[1].x, state.players[1].y) == end


@pytest.mark.parametrize(
    ("start", "move", "end"),
    [
        # The wall Rect(700, 375, 200, 150), approached from each side; a player is stopped flush, 20 units off.
        ((650, 450), (1, 0), (680, 450)),
        ((950, 450), (-1, 0), (920, 450)),
        ((800, 330), (0, 1), (800, 355)),
        ((800, 570), (0, -1), (800, 545)),
    ],
)
def test_walls_stop_players(start: tuple[int, int], move: tuple[int, int], end: tuple[int, int]) -> None:
    state = _match(start)
    state, _ = _run(state, {1: _move(*move)}, 20)
    assert (state.players[1].x, state.players[1].y) == end


def test_player_slides_along_a_wall_when_moving_diagonally() -> None:
    state = _match((680, 450))
    state, _ = _run(state, {1: _move(1, 1)}, 3)
    assert state.players[1].x == 680
    assert state.players[1].y == pytest.approx(450 + 3 * STEP / math.sqrt(2))


@settings(max_examples=40, deadline=None)
@given(
    spawn=st.sampled_from(RULES.spawn_points),
    moves=st.lists(
        st.tuples(st.sampled_from((-1, 0, 1)), st.sampled_from((-1, 0, 1)), st.integers(1, 40)), max_size=12
    ),
)
def test_players_never_enter_walls_or_leave_the_arena(
    spawn: tuple[int, int], moves: list[tuple[int, int, int]]
) -> None:
    state = _match(spawn)
    r = RULES.player_radius
    for move_x, move_y, ticks in moves:
        for _ in range(ticks):
            state, _ = step(state, {1: _move(move_x, move_y)})
            player = state.players[1]
            assert r <= player.x <= RULES.width - r
            assert r <= player.y <= RULES.height - r
            assert not _overlaps_a_wall(player.x, player.y, RULES)


# Shooting


def _shot_ticks(fire_pattern: list[bool]) -> list[int]:
    """The ticks on which a lone player launched a projectile while pressing fire as in `fire_pattern`."""
    state = _match((100, LANE_Y))
    shots = []
    for fire in fire_pattern:
        before = state.next_projectile_id
        state, _ = step(state, {1: PlayerInput(aim=EAST, fire=fire)})
        shots.extend([state.tick] * (state.next_projectile_id - before))
    return shots


def test_holding_fire_shoots_as_often_as_allowed_and_no_more() -> None:
    shots = _shot_ticks([True] * 90)
    assert shots[0] == 1
    assert len(shots) == 12  # 3 s at 4 shots/s
    assert all(later - earlier == RULES.fire_interval_ticks for earlier, later in itertools.pairwise(shots))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=150))
def test_no_player_fires_more_than_four_shots_in_any_second(fire_pattern: list[bool]) -> None:
    shots = _shot_ticks(fire_pattern)
    for first in shots:
        in_one_second = [t for t in shots if first <= t < first + RULES.tick_rate]
        assert len(in_one_second) <= RULES.shots_per_second


def test_projectile_lives_one_and_a_half_seconds() -> None:
    state = _match((100, LANE_Y))
    state, _ = step(state, {1: _fire(EAST)})
    (projectile,) = state.projectiles.values()
    assert projectile.spawn_tick == 1
    assert (projectile.x0, projectile.y0) == (124, LANE_Y)  # launched from the player's edge

    state, _ = _run(state, {}, 45)  # 1.5 s at 30 ticks/s
    assert state.tick == 46
    assert list(state.projectiles) == [projectile.id]
    assert projectile_position(projectile, state.tick, RULES) == pytest.approx((124 + 1.5 * 600, LANE_Y))

    state, _ = step(state, {})
    assert state.projectiles == {}


def test_projectile_stops_at_a_wall() -> None:
    # Shooter left of the wall Rect(700, 375, 200, 150), target right behind it, both at y = 450.
    state = _match((600, 450), (950, 450))
    for _ in range(60):
        state, events = step(state, {1: _fire(EAST)})
        assert events == ()
        for projectile in state.projectiles.values():
            x, _ = projectile_position(projectile, state.tick, RULES)
            assert x < 700 - RULES.projectile_radius
    assert state.players[2].hp == RULES.max_hp
    assert state.next_projectile_id > 5  # it did shoot


def test_projectile_stops_at_the_arena_edge() -> None:
    state = _match((100, 450))
    state, _ = step(state, {1: _fire(WEST)})
    assert len(state.projectiles) == 1
    state, _ = _run(state, {}, 4)  # launched at x = 76, it would be at x = -4
    assert state.projectiles == {}


def test_projectile_does_not_hit_its_owner() -> None:
    state = _match((100, LANE_Y))
    state, history = _run(state, {1: PlayerInput(move_x=1, aim=EAST, fire=True)}, 30)
    assert _events(history) == []
    assert state.players[1].hp == RULES.max_hp


# Damage, death, respawn


def test_hit_deals_25_damage() -> None:
    state = _match((100, LANE_Y), (400, LANE_Y))
    state, _ = step(state, {1: _fire(EAST)})
    state, history = _run(state, {}, 20)
    assert _events(history) == [Hit(shooter=1, target=2, damage=25, hp=75)]
    assert state.players[2].hp == 75
    assert state.projectiles == {}  # a projectile is spent on its hit


def test_player_dies_at_zero_hp_and_the_kill_is_credited() -> None:
    state = _match((100, LANE_Y), (400, LANE_Y))
    state, history = _run(state, {1: _fire(EAST)}, 45)
    events = _events(history)
    assert [e.hp for e in events if isinstance(e, Hit)] == [75, 50, 25, 0]
    assert events[-1] == Death(victim=2, killer=1)
    death_tick = next(tick for tick, tick_events in history if Death(victim=2, killer=1) in tick_events)

    victim, shooter = state.players[2], state.players[1]
    assert victim.hp == 0
    assert not victim.alive
    assert victim.deaths == 1
    assert victim.respawn_tick == death_tick + 2 * RULES.tick_rate
    assert (shooter.kills, shooter.deaths) == (1, 0)


def test_dead_player_is_not_hit_and_cannot_move_or_fire() -> None:
    state = _match((100, LANE_Y), (400, LANE_Y))
    state = _evolve_player(state, 2, hp=0, respawn_tick=1000)
    next_id = state.next_projectile_id
    state, history = _run(state, {1: _fire(EAST), 2: PlayerInput(move_x=1, aim=WEST, fire=True)}, 40)
    assert _events(history) == []
    assert (state.players[2].x, state.players[2].y, state.players[2].hp) == (400, LANE_Y, 0)
    assert {p.owner for p in state.projectiles.values()} == {1}
    assert state.next_projectile_id - next_id == 5  # player 1's shots only


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_dead_player_respawns_after_two_seconds_at_a_free_spawn_point(seed: int) -> None:
    # The shooter and six bystanders stand on seven of the eight spawn points; only (1380, 450) is free.
    shooter, *occupied, free = RULES.spawn_points
    assert shooter == (100, LANE_Y)
    state = _match(shooter, (400, LANE_Y), *occupied, seed=seed)
    state = _evolve_player(state, 2, hp=25)
    state, history = _run(state, {1: _fire(EAST)}, 1)
    state, more = _run(state, {}, 20)
    history += more
    ((death_tick, _),) = [(tick, events) for tick, events in history if Death(victim=2, killer=1) in events]

    state, more = _run(state, {}, death_tick + 2 * RULES.tick_rate - 1 - state.tick)
    assert not state.players[2].alive
    assert _events(more) == []

    state, events = step(state, {})
    assert state.tick == death_tick + 60
    assert events == (Respawn(player=2, x=free[0], y=free[1]),)
    victim = state.players[2]
    assert (victim.x, victim.y) == free
    assert victim.hp == RULES.max_hp
    assert victim.respawn_tick is None
    assert victim.deaths == 1


def test_players_join_at_distinct_spawn_points() -> None:
    state = MatchState.initial(seed=3)
    for pid in range(1, 9):
        state = add_player(state, pid, f"p{pid}")
    positions = {(p.x, p.y) for p in state.players.values()}
    assert positions == set(RULES.spawn_points)


# The match


@pytest.mark.parametrize("min_players", [2, 3])
def test_match_clock_starts_at_min_players(min_players: int) -> None:
    rules = Rules(min_players=min_players)
    state = MatchState.initial(seed=1, rules=rules)
    for pid in range(1, min_players):
        state = add_player(state, pid, f"p{pid}")
    state, _ = _run(state, {}, 5)
    assert not state.started
    assert (state.start_tick, state.end_tick) == (None, None)

    state = add_player(state, min_players, "last")
    state, _ = step(state, {})
    assert state.started
    assert state.start_tick == 6
    assert state.end_tick == 6 + 180 * 30


def test_match_ends_at_the_kill_limit() -> None:
    state = _match((100, LANE_Y), (400, LANE_Y), (1500, 800))
    state = _evolve_player(state, 1, kills=9)
    state = _evolve_player(state, 2, hp=25)
    state, history = _run(state, {1: _fire(EAST)}, 20)
    assert state.over
    end_tick, last_events = next((tick, events) for tick, events in history if events)
    assert state.tick == end_tick
    assert last_events == (
        Hit(shooter=1, target=2, damage=25, hp=0),
        Death(victim=2, killer=1),
        MatchEnd(
            reason="kill_limit",
            winner=1,
            scoreboard=(
                ScoreLine(player=1, name="p1", kills=10, deaths=0),
                ScoreLine(player=3, name="p3", kills=0, deaths=0),
                ScoreLine(player=2, name="p2", kills=0, deaths=1),
            ),
        ),
    )


def test_match_ends_at_the_time_limit_with_the_scoreboard_best_first() -> None:
    rules = Rules(duration_seconds=2)
    state = _match((100, 100), (1500, 800), (1500, 100), (100, 800), rules=rules)
    for pid, (kills, deaths) in {1: (3, 5), 2: (5, 1), 3: (3, 2), 4: (0, 0)}.items():
        state = _evolve_player(state, pid, kills=kills, deaths=deaths)

    state, history = _run(state, {}, 60)
    assert state.start_tick == 1
    assert not state.over
    assert _events(history) == []

    state, events = step(state, {})
    assert state.over
    assert state.tick == 1 + 2 * 30
    assert events == (
        MatchEnd(
            reason="time_limit",
            winner=2,
            scoreboard=(
                ScoreLine(player=2, name="p2", kills=5, deaths=1),
                ScoreLine(player=3, name="p3", kills=3, deaths=2),
                ScoreLine(player=1, name="p1", kills=3, deaths=5),
                ScoreLine(player=4, name="p4", kills=0, deaths=0),
            ),
        ),
    )


def test_finished_match_no_longer_changes() -> None:
    state = _match((100, 100), (1500, 800), rules=Rules(duration_seconds=1))
    state, _ = _run(state, {}, 31)
    assert state.over
    busy = {1: PlayerInput(move_x=1, aim=EAST, fire=True), 2: PlayerInput(move_y=-1, aim=WEST, fire=True)}
    for _ in range(10):
        after, events = step(state, busy)
        assert after == state
        assert events == ()


def test_add_player_refuses_a_ninth_player() -> None:
    state = MatchState.initial(seed=1)
    for pid in range(1, 9):
        state = add_player(state, pid, f"p{pid}")
    assert state.full
    with pytest.raises(MatchFullError):
        add_player(state, 9, "p9")
    assert len(state.players) == 8


def test_add_player_refuses_a_player_already_in_the_match() -> None:
    state = add_player(MatchState.initial(seed=1), 1, "p1")
    with pytest.raises(ValueError, match="already"):
        add_player(state, 1, "again")


def test_a_tie_at_the_top_has_no_winner() -> None:
    state = _match((100, 100), (1500, 800), (1500, 100), rules=Rules(duration_seconds=1))
    for pid, (kills, deaths) in {1: (2, 1), 2: (2, 1), 3: (0, 4)}.items():
        state = _evolve_player(state, pid, kills=kills, deaths=deaths)
    state, history = _run(state, {}, 31)
    end = next(e for _, events in history for e in events if isinstance(e, MatchEnd))
    assert end.winner is None
    assert [line.player for line in end.scoreboard] == [1, 2, 3]


def test_a_weaker_bot_aims_off_by_a_deterministic_wobble_and_fires_from_closer():
    from game.ai import AIM_ERROR_RADIANS, LEVEL_FIRING_RANGE, MAX_BOT_LEVEL, bot_input
    from game.simulation import add_player
    from game.state import MatchState

    state = add_player(add_player(MatchState.initial(seed=3), 1, "bot"), 2, "target")
    best = bot_input(state, 1, MAX_BOT_LEVEL)
    easy = [bot_input(attrs.evolve(state, tick=tick), 1, 0) for tick in range(0, 200, 10)]
    assert any(abs(e.aim - best.aim) > 0.01 for e in easy)
    assert all(
        abs(e.aim - best.aim) <= AIM_ERROR_RADIANS[0] + 1e-9 or abs(abs(e.aim - best.aim) - 2 * 3.14159) < 0.4
        for e in easy
    )
    assert bot_input(state, 1, 0) == bot_input(state, 1, 0)  # deterministic
    assert LEVEL_FIRING_RANGE[0] < LEVEL_FIRING_RANGE[MAX_BOT_LEVEL]


@settings(max_examples=2000)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**60), 2**60).map(lambda n: n + 0.5),  # halves, where rounding goes to even
        st.integers(-(10**6), 10**6).map(lambda n: n / 1000),
    )
)
def test_the_steps_rounding_is_pythons_round(value: float) -> None:
    assert nearest_int(value) == round(value)
    if math.isfinite(value * 1000):
        assert nearest_int(value * 1000) == round(value * 1000)  # as aims are rounded to milliradians


def test_the_geometry_of_each_of_hundreds_of_matches_rules_is_worked_out_once() -> None:
    # A server makes a Rules object per match: with hundreds of matches, each one's stays worked out.
    simulation._geometries.clear()
    rules = [Rules(max_players=8) for _ in range(300)]
    first = [simulation._geometry(match_rules) for match_rules in rules]
    assert all(
        simulation._geometry(match_rules) is geometry for match_rules, geometry in zip(rules, first, strict=True)
    )
