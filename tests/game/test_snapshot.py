"""Snapshots and deltas: `apply(previous, delta(previous, current)) == current` for any pair, and deltas stay small."""

from __future__ import annotations

import math
import random

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from game import (
    Death,
    Delta,
    DeltaBaseError,
    Event,
    Hit,
    MatchEnd,
    MatchState,
    PlayerInput,
    Respawn,
    ScoreLine,
    Snapshot,
    add_player,
    apply,
    delta,
    remove_player,
    snapshot,
    step,
)
from game.snapshot import PLAYERS, PROJECTILES, SnapshotBuilder

# Small pools of kinds, ids and field names, so that two drawn snapshots share entities and fields often.
KINDS = st.sampled_from(["players", "projectiles", "match", "pickups"])
IDS = st.integers(min_value=0, max_value=12) | st.integers(min_value=-(2**63), max_value=2**64 - 1)
FIELD_NAMES = st.sampled_from(["x", "y", "aim", "hp", "name", "ping", "ack", ""])
VALUES = st.integers(min_value=-3, max_value=3) | st.integers() | st.text(max_size=6)
FIELDS = st.dictionaries(FIELD_NAMES, VALUES, max_size=5)
ENTITIES = st.dictionaries(KINDS, st.dictionaries(IDS, FIELDS, max_size=4), max_size=3)
SMALL_INTS = st.integers(min_value=-1, max_value=2**31)

EVENTS = st.one_of(
    st.builds(Hit, shooter=SMALL_INTS, target=SMALL_INTS, damage=SMALL_INTS, hp=SMALL_INTS),
    st.builds(Death, victim=SMALL_INTS, killer=SMALL_INTS),
    st.builds(Respawn, player=SMALL_INTS, x=SMALL_INTS, y=SMALL_INTS),
    st.builds(
        MatchEnd,
        reason=st.sampled_from(["kill_limit", "time_limit"]),
        winner=st.none() | SMALL_INTS,
        scoreboard=st.lists(
            st.builds(ScoreLine, player=SMALL_INTS, name=st.text(max_size=8), kills=SMALL_INTS, deaths=SMALL_INTS),
            max_size=8,
        ).map(tuple),
    ),
)

SNAPSHOTS = st.builds(
    Snapshot,
    tick=st.integers(min_value=0, max_value=2**40),
    entities=ENTITIES,
    events=st.lists(EVENTS, max_size=3).map(tuple),
)


@st.composite
def _edited(draw: st.DrawFn, previous: Snapshot) -> Snapshot:
    """A later snapshot made from `previous` the way a match changes: entities kept, edited, dropped or added."""
    entities: dict[str, dict[int, dict[str, int | str]]] = {}
    for kind, by_id in previous.entities.items():
        for eid, fields in by_id.items():
            edit = draw(st.sampled_from(["change", "keep", "reshape", "drop", "change", "change"]))
            if edit == "drop":
                continue
            new_fields = dict(fields)
            if edit == "change" and fields:
                for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, unique=True)):
                    new_fields[name] = draw(VALUES)
            elif edit == "reshape":
                new_fields = draw(FIELDS)
            entities.setdefault(kind, {})[eid] = new_fields
    for kind, by_id in draw(ENTITIES).items():
        for eid, fields in by_id.items():
            entities.setdefault(kind, {}).setdefault(eid, fields)
    return Snapshot(
        tick=previous.tick + draw(st.integers(min_value=1, max_value=10)),
        entities=entities,
        events=draw(st.lists(EVENTS, max_size=3).map(tuple)),
    )


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Snapshot, Snapshot]:
    previous = draw(SNAPSHOTS)
    current = draw(SNAPSHOTS) if draw(st.integers(0, 3)) == 3 else draw(_edited(previous))
    return previous, current


def _assert_minimal(previous: Snapshot, change: Delta, current: Snapshot) -> None:
    """A delta carries only what changed: no unchanged field, no entity it could have patched instead."""
    for kind, by_id in change.changed.items():
        for eid, fields in by_id.items():
            old = previous.entities[kind][eid]
            assert fields
            assert old.keys() == current.entities[kind][eid].keys()
            assert all(old[name] != value for name, value in fields.items())
    for kind, by_id in change.added.items():
        for eid, fields in by_id.items():
            before = previous.entities.get(kind, {})
            assert eid not in before or before[eid].keys() != fields.keys()
    for kind, ids in change.removed.items():
        assert ids
        assert all(eid in previous.entities[kind] and eid not in current.entities.get(kind, {}) for eid in ids)


@settings(max_examples=200)
@given(_pairs())
def test_apply_delta_gives_the_current_snapshot(pair: tuple[Snapshot, Snapshot]) -> None:
    previous, current = pair
    change = delta(previous, current)
    assert (change.base_tick, change.tick, change.events) == (previous.tick, current.tick, current.events)
    assert apply(previous, change) == current
    _assert_minimal(previous, change, current)


@settings(max_examples=50)
@given(SNAPSHOTS)
def test_delta_of_identical_snapshots_is_empty(current: Snapshot) -> None:
    same = Snapshot(tick=current.tick + 1, entities=current.entities, events=())
    for previous, then in ((current, current), (current, same)):
        change = delta(previous, then)
        assert (change.added, change.changed, change.removed) == ({}, {}, {})
        assert apply(previous, change) == then


@settings(max_examples=50)
@given(_pairs(), st.integers(min_value=1, max_value=5) | st.integers(min_value=-5, max_value=-1))
def test_apply_on_the_wrong_base_raises(pair: tuple[Snapshot, Snapshot], offset: int) -> None:
    previous, current = pair
    change = delta(previous, current)
    wrong_base = attrs.evolve(previous, tick=previous.tick + offset)
    with pytest.raises(DeltaBaseError, match=f"from tick {previous.tick} "):
        apply(wrong_base, change)
    if current.tick != previous.tick:
        with pytest.raises(DeltaBaseError):
            apply(current, change)  # applied twice


def test_snapshot_drops_empty_kinds() -> None:
    assert Snapshot(tick=1, entities={"players": {}, "match": {0: {}}}).entities == {"match": {0: {}}}
    assert Snapshot(tick=1, entities={"players": {}}) == Snapshot(tick=1, entities={})


# Along real matches


def _random_inputs(state: MatchState, rng: random.Random) -> dict[int, PlayerInput]:
    return {
        pid: PlayerInput(
            seq=state.tick,
            move_x=rng.choice((-1, 0, 0, 1)),
            move_y=rng.choice((-1, 0, 0, 1)),
            aim=rng.uniform(-math.pi, math.pi),
            fire=rng.random() < 0.7,
        )
        for pid in state.players
    }


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1), players=st.integers(min_value=2, max_value=8))
def test_apply_delta_holds_every_tick_of_a_simulated_match(seed: int, players: int) -> None:
    rng = random.Random(seed)
    state = MatchState.initial(seed=seed)
    for pid in range(1, players + 1):
        state = add_player(state, pid, f"player {pid}")
    server_view = snapshot(state)
    client_view = server_view
    kinds_seen: set[str] = set()
    for _ in range(450):
        state, events = step(state, _random_inputs(state, rng))
        # The server adds its own per-player fields: a ping that changes rarely and the last input acknowledged.
        extra = {pid: {"ping": 40 + (state.tick // 90) % 3, "ack": state.tick} for pid in state.players}
        current = snapshot(state, events).with_fields(PLAYERS, extra)
        change = delta(server_view, current)
        assert apply(server_view, change) == current
        client_view = apply(client_view, change)
        assert client_view == current
        # Projectiles fly straight, so a delta only ever adds or removes them.
        assert PROJECTILES not in change.changed
        kinds_seen |= change.added.keys() | change.removed.keys() | change.changed.keys()
        server_view = current
    assert {PLAYERS, PROJECTILES} <= kinds_seen


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1), players=st.integers(min_value=2, max_value=8))
@example(seed=9197, players=5)  # a player whose next shot moved while nothing it shows changed: its fields are kept
def test_the_builder_makes_the_same_snapshots_and_reuses_what_did_not_change(seed: int, players: int) -> None:
    rng = random.Random(seed)
    state = MatchState.initial(seed=seed)
    for pid in range(1, players + 1):
        state = add_player(state, pid, f"player {pid}")
    builder = SnapshotBuilder(("ping", "ack"))
    previous_state, previous = state, builder.build(state)
    reused = 0
    for _ in range(300):
        inputs = _random_inputs(state, rng) if rng.random() < 0.5 else {}
        state, events = step(state, inputs)
        extra = {pid: (40 + (state.tick // 90) % 3, state.tick // 10) for pid in state.players if pid != 1}
        built = builder.build(state, events, extra)
        expected_extra = {pid: {"ping": ping, "ack": ack} for pid, (ping, ack) in extra.items()}
        assert built == snapshot(state, events).with_fields(PLAYERS, expected_extra)
        for kind in (PLAYERS, PROJECTILES):
            for eid, fields in built.entities.get(kind, {}).items():
                old = previous.entities.get(kind, {}).get(eid)
                if (
                    old is fields
                ):  # reused: the same entity, or one that looks the same (a shot changes no field it shows)
                    reused += 1
                    entity = (previous_state.players if kind == PLAYERS else previous_state.projectiles).get(eid)
                    if entity is not (state.players if kind == PLAYERS else state.projectiles)[eid]:
                        assert snapshot(previous_state).entities[kind][eid] == snapshot(state).entities[kind][eid]
        previous_state, previous = state, built
    assert reused > 0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1), players=st.integers(min_value=2, max_value=8))
def test_the_builder_advances_by_exactly_the_delta_of_the_two_snapshots(seed: int, players: int) -> None:
    """`advance` gives `delta(previous, current)` to the last detail (kinds and entities in the same order, so the
    same bytes on the wire), through joins, leaves, idle ticks, extra fields that change or go missing."""
    rng = random.Random(seed)
    state = MatchState.initial(seed=seed)
    for pid in range(1, players + 1):
        state = add_player(state, pid, f"player {pid}")
    builder = SnapshotBuilder(("ping", "ack", "status"))
    builder.start(state)
    previous = snapshot(state)
    assert builder.snapshot() == previous
    next_id = players + 1
    for _ in range(400):
        if rng.random() < 0.02 and len(state.players) > 1:
            state = remove_player(state, rng.choice(sorted(state.players)))
        if rng.random() < 0.02 and not state.full:
            state = add_player(state, next_id, f"player {next_id}")
            next_id += 1
        inputs = _random_inputs(state, rng) if rng.random() < 0.7 else {}
        state, events = step(state, inputs)
        extra = {
            pid: (40 + (state.tick // 45) % 3, state.tick // 3, "playing" if pid % 2 else "bot")
            for pid in state.players
            if rng.random() < 0.95
        }
        change = builder.advance(state, events, extra)
        current = snapshot(state, events).with_fields(
            PLAYERS, {pid: dict(zip(("ping", "ack", "status"), values, strict=True)) for pid, values in extra.items()}
        )
        assert repr(change) == repr(delta(previous, current))
        assert builder.snapshot() == current
        previous = current


def test_snapshot_of_a_match_holds_only_ints_and_strs() -> None:
    rng = random.Random(5)
    state = MatchState.initial(seed=5)
    for pid in range(1, 5):
        state = add_player(state, pid, f"player {pid}")
    for _ in range(120):
        state, events = step(state, _random_inputs(state, rng))
        seen = snapshot(state, events)
        for by_id in seen.entities.values():
            for eid, fields in by_id.items():
                assert type(eid) is int
                assert all(type(value) in (int, str) for value in fields.values())
    assert set(seen.entities[PLAYERS]) == {1, 2, 3, 4}


def test_events_travel_with_the_delta() -> None:
    events: tuple[Event, ...] = (Hit(shooter=1, target=2, damage=25, hp=0), Death(victim=2, killer=1))
    previous = Snapshot(tick=3, entities={PLAYERS: {2: {"hp": 25}}})
    current = Snapshot(tick=4, entities={PLAYERS: {2: {"hp": 0}}}, events=events)
    change = delta(previous, current)
    assert change.events == events
    assert change.changed == {PLAYERS: {2: {"hp": 0}}}
    assert apply(previous, change).events == events


def test_apply_to_a_snapshot_that_lacks_a_changed_entity_raises() -> None:
    before = Snapshot(tick=5, entities={"players": {1: {"x": 1}}})
    after = Snapshot(tick=6, entities={"players": {1: {"x": 2}}})
    other_at_the_same_tick = Snapshot(tick=5, entities={"players": {2: {"x": 1}}})
    with pytest.raises(DeltaBaseError):
        apply(other_at_the_same_tick, delta(before, after))


def test_delta_lists_kinds_in_the_same_order_whatever_the_hash_seed() -> None:
    before = Snapshot(tick=1, entities={"b": {1: {"v": 1}}, "a": {1: {"v": 1}}, "c": {1: {"v": 1}}})
    after = Snapshot(tick=2, entities={"c": {1: {"v": 2}}, "a": {1: {"v": 2}}, "b": {1: {"v": 2}}})
    assert list(delta(before, after).changed) == ["a", "b", "c"]
