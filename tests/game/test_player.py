"""game.player.Player is a plain class (mypyc compiles it to a native one) that behaves as the attrs.frozen class it
replaced: equality by value, attrs' repr (state hashes are taken of reprs), and attrs' and cattrs' functions."""

from __future__ import annotations

import inspect
import math

import attrs
import cattrs

from game.player import Player
from game.player_fields import PlayerFields

EXAMPLES = [
    Player(
        id=1, name="p'1\"", x=1.0, y=2.5, aim_mrad=3, hp=100, kills=0, deaths=1, respawn_tick=None, next_fire_tick=5
    ),
    Player(id=2, name="é", x=1e-300, y=-0.0, aim_mrad=-1570, hp=0, kills=7, deaths=9, respawn_tick=123),
    Player(id=3, name="x", x=math.pi, y=880.0),
]


def test_its_fields_are_its_constructors_parameters_in_order_with_their_defaults() -> None:
    parameters = list(inspect.signature(Player.__init__).parameters.values())[1:]
    fields = attrs.fields(PlayerFields)
    assert [parameter.name for parameter in parameters] == [field.name for field in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        expected = inspect.Parameter.empty if field.default is attrs.NOTHING else field.default
        assert parameter.default == expected, field.name
    assert attrs.fields(Player) == fields


def test_its_repr_is_the_one_attrs_gives_the_same_fields() -> None:
    as_attrs = attrs.make_class(
        "Player", {field.name: attrs.field(default=field.default) for field in attrs.fields(PlayerFields)}, frozen=True
    )
    for player in EXAMPLES:
        assert repr(player) == repr(as_attrs(**attrs.asdict(player)))


def test_equality_and_hashing_are_by_value() -> None:
    for player in EXAMPLES:
        twin = Player(**attrs.asdict(player))
        assert twin == player and hash(twin) == hash(player) and twin is not player
        assert attrs.evolve(player, hp=player.hp + 1) != player
    assert EXAMPLES[0] != (1, "p'1\"")


def test_attrs_evolve_and_cattrs_work_on_it() -> None:
    player = EXAMPLES[0]
    moved = attrs.evolve(player, x=9.5)
    assert type(moved) is Player and moved.x == 9.5 and moved.y == player.y and moved.name == player.name
    converter = cattrs.Converter()
    for player in EXAMPLES:
        assert converter.structure(converter.unstructure(player), Player) == player
