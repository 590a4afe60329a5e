"""game.values' classes, game.state.MatchState and game.snapshot.Delta are plain classes (mypyc compiles them to
native ones) that behave as the attrs.frozen classes they replaced: equality by value, attrs' repr (state hashes are
taken of reprs), and attrs' and cattrs' functions."""

from __future__ import annotations

import inspect
import math
from typing import Any

import attrs
import cattrs
import pytest

from game.events import Death, Hit
from game.rules import Rules
from game.snapshot import Delta
from game.state import MatchState
from game.value_fields import DeltaFields, MatchStateFields, PlayerFields, PlayerInputFields, ProjectileFields
from game.values import Player, PlayerInput, Projectile

EXAMPLES: dict[type, tuple[type, list[Any]]] = {
    Player: (
        PlayerFields,
        [
            Player(id=1, name="p'1\"", x=1.0, y=2.5, aim_mrad=3, deaths=1, respawn_tick=None, next_fire_tick=5),
            Player(id=2, name="é", x=1e-300, y=-0.0, aim_mrad=-1570, hp=0, kills=7, deaths=9, respawn_tick=123),
            Player(id=3, name="x", x=math.pi, y=880.0),
        ],
    ),
    PlayerInput: (
        PlayerInputFields,
        [PlayerInput(), PlayerInput(seq=7, move_x=-1, move_y=1, aim=-3.0000001, fire=True, view_tick=0)],
    ),
    Projectile: (ProjectileFields, [Projectile(id=9, owner=2, x0=-5, y0=900, aim_mrad=3141, spawn_tick=77)]),
    Delta: (
        DeltaFields,
        [
            Delta(tick=3, base_tick=2, added={}, changed={}, removed={}),
            Delta(
                tick=9,
                base_tick=7,
                added={"players": {4: {"name": "d", "x": 10, "y": -2}}},
                changed={"match": {0: {"over": 1}}},
                removed={"projectiles": (5, 6)},
                events=(Hit(shooter=1, target=4, damage=25, hp=75), Death(victim=4, killer=1)),
            ),
        ],
    ),
    MatchState: (
        MatchStateFields,
        [
            MatchState.initial(seed=3),
            MatchState(
                rules=Rules(max_players=4),
                tick=12,
                rng_state=2**64 - 1,
                players={2: Player(id=2, name="b", x=0.5, y=-0.0), 1: Player(id=1, name="a", x=3.0, y=4.0, hp=0)},
                projectiles={9: Projectile(id=9, owner=2, x0=-5, y0=900, aim_mrad=3141, spawn_tick=11)},
                next_projectile_id=10,
                start_tick=2,
                end_tick=5402,
                history=((11, ((2, 0.5, -0.0),)), (12, ((1, 3.0, 4.0), (2, 0.5, 0.1)))),
            ),
        ],
    ),
}
VALUES = list(EXAMPLES)


@pytest.mark.parametrize("value_class", VALUES)
def test_its_fields_are_its_constructors_parameters_in_order_with_their_defaults(value_class: type) -> None:
    twin, _ = EXAMPLES[value_class]
    parameters = list(inspect.signature(value_class.__init__).parameters.values())[1:]
    fields = attrs.fields(twin)
    assert [parameter.name for parameter in parameters] == [field.name for field in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        expected = inspect.Parameter.empty if field.default is attrs.NOTHING else field.default
        assert parameter.default == expected, field.name
    assert attrs.fields(value_class) == fields


@pytest.mark.parametrize("value_class", VALUES)
def test_its_repr_is_the_one_attrs_gives_the_same_fields(value_class: type) -> None:
    twin, examples = EXAMPLES[value_class]
    fields = {field.name: attrs.field(default=field.default) for field in attrs.fields(twin)}
    as_attrs = attrs.make_class(value_class.__name__, fields, frozen=True)
    for value in examples:
        assert repr(value) == repr(as_attrs(**attrs.asdict(value, recurse=False)))


@pytest.mark.parametrize("value_class", VALUES)
def test_equality_and_hashing_are_by_value(value_class: type) -> None:
    _, examples = EXAMPLES[value_class]
    for value in examples:
        twin = value_class(**attrs.asdict(value, recurse=False))
        assert twin == value and twin is not value
        assert value != attrs.asdict(value, recurse=False)
        if value_class in (MatchState, Delta):  # they hold dicts: unhashable, as the attrs classes were
            with pytest.raises(TypeError):
                hash(value)
        else:
            assert hash(twin) == hash(value)
    assert Player(id=1, name="a", x=1.0, y=2.0, hp=5) != Player(id=1, name="a", x=1.0, y=2.0, hp=6)
    assert PlayerInput(view_tick=None) != PlayerInput(view_tick=0)


@pytest.mark.parametrize("value_class", VALUES)
def test_attrs_evolve_and_cattrs_work_on_it(value_class: type) -> None:
    _, examples = EXAMPLES[value_class]
    converter = cattrs.Converter()
    for value in examples:
        if value_class is Delta:  # its field values are int | str, which cattrs structures only with a hook
            unstructured = converter.unstructure(value)
            assert [unstructured[field.name] for field in attrs.fields(DeltaFields)][:4] == list(value._values())[:4]
            assert len(unstructured["events"]) == len(value.events)
            continue
        assert converter.structure(converter.unstructure(value), value_class) == value
    moved = attrs.evolve(EXAMPLES[Player][1][0], x=9.5)
    assert type(moved) is Player and moved.x == 9.5 and moved.name == "p'1\""
    later = attrs.evolve(EXAMPLES[MatchState][1][1], tick=13)
    assert type(later) is MatchState and later.tick == 13 and later.players == EXAMPLES[MatchState][1][1].players


def test_an_input_with_another_view_tick_is_attrs_evolve_of_it() -> None:
    held = PlayerInput(seq=7, move_x=-1, move_y=1, aim=-3.0000001, fire=True, view_tick=40)
    for view_tick in (41, 0, None):
        assert held.with_view_tick(view_tick) == attrs.evolve(held, view_tick=view_tick)
        assert repr(held.with_view_tick(view_tick)) == repr(attrs.evolve(held, view_tick=view_tick))
