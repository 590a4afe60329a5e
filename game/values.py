"""The immutable values a tick builds and reads the most (a player's input, a player, a projectile), as plain
classes that mypyc compiles to native ones.

Rules: each behaves as `attrs.frozen` would make it (equality and hashing by value, attrs' repr, which state hashes
are taken of, fields that cannot be set) and declares its twin's fields in game.value_fields as its own, so
`attrs.evolve`, `attrs.asdict` and cattrs work on it as on any attrs class. Plain rather than attrs because a tick
builds a new Player per moving player and reads every field of every player, input and projectile: compiled, a
value is a C struct, built and read without going through Python (the step in half the time, see
docs/benchmarks.md), where an attrs class stays a Python class that compiled code builds through its generated
`__init__`. The fields are `Final`: the compiled build refuses to set them (AttributeError); in pure Python, mypy
does.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from game.value_fields import PlayerFields, PlayerInputFields, ProjectileFields


class Value:
    """Equality and hashing by the values of the fields, and the repr, as attrs gives them."""

    def _values(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Value):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        names = [field.name for field in attrs.fields(type(self))]  # type: ignore[arg-type]  # its twin's fields
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(names, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


class PlayerInput(Value):
    """What a player wants this tick: a move direction (each axis -1, 0 or 1), an aim angle in radians, fire.

    `seq` is the client's sequence number, reported back so the client can reconcile its prediction. `view_tick`:
    the tick the client was showing other players at when it made this input (its interpolation view): a shot is
    judged against other players as they were then (`Rules.lag_compensation_seconds` at most). None: now.
    """

    __attrs_attrs__: ClassVar[Any] = attrs.fields(PlayerInputFields)

    def __init__(
        self,
        seq: int = 0,
        move_x: int = 0,
        move_y: int = 0,
        aim: float = 0.0,
        fire: bool = False,
        view_tick: int | None = None,
    ) -> None:
        self.seq: Final = seq
        self.move_x: Final = move_x
        self.move_y: Final = move_y
        self.aim: Final = aim
        self.fire: Final = fire
        self.view_tick: Final = view_tick

    def _values(self) -> tuple[Any, ...]:
        return (self.seq, self.move_x, self.move_y, self.aim, self.fire, self.view_tick)

    def __eq__(self, other: object) -> bool:
        """`Value`'s equality without building the two tuples: a server's recorder compares every player's input
        with the one it holds, every tick. (A NaN aim, which no valid input carries, equals no other aim here.)"""
        if type(other) is not PlayerInput or not isinstance(other, PlayerInput):
            return NotImplemented
        return (
            self.seq == other.seq
            and self.move_x == other.move_x
            and self.move_y == other.move_y
            and self.aim == other.aim
            and self.fire == other.fire
            and self.view_tick == other.view_tick
        )

    def __hash__(self) -> int:
        return hash(self._values())

    def with_view_tick(self, view_tick: int | None) -> PlayerInput:
        """This input with another view tick: `attrs.evolve(self, view_tick=view_tick)` at a fraction of its cost (a
        server repeats a held trigger every tick, its view moving on with the ticks)."""
        return PlayerInput(self.seq, self.move_x, self.move_y, self.aim, self.fire, view_tick)


class Player(Value):
    __attrs_attrs__: ClassVar[Any] = attrs.fields(PlayerFields)

    def __init__(
        self,
        id: int,
        name: str,
        x: float,
        y: float,
        aim_mrad: int = 0,
        hp: int = 100,
        kills: int = 0,
        deaths: int = 0,
        respawn_tick: int | None = None,
        next_fire_tick: int = 0,
    ) -> None:
        self.id: Final = id
        self.name: Final = name
        self.x: Final = x
        self.y: Final = y
        self.aim_mrad: Final = aim_mrad
        self.hp: Final = hp
        self.kills: Final = kills
        self.deaths: Final = deaths
        self.respawn_tick: Final = respawn_tick
        self.next_fire_tick: Final = next_fire_tick

    @property
    def alive(self) -> bool:
        return self.hp > 0

    def _values(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.name,
            self.x,
            self.y,
            self.aim_mrad,
            self.hp,
            self.kills,
            self.deaths,
            self.respawn_tick,
            self.next_fire_tick,
        )


class Projectile(Value):
    """A shot flying in a straight line; its position at any tick follows from where and when it started."""

    __attrs_attrs__: ClassVar[Any] = attrs.fields(ProjectileFields)

    def __init__(self, id: int, owner: int, x0: int, y0: int, aim_mrad: int, spawn_tick: int) -> None:
        self.id: Final = id
        self.owner: Final = owner
        self.x0: Final = x0
        self.y0: Final = y0
        self.aim_mrad: Final = aim_mrad
        self.spawn_tick: Final = spawn_tick

    def _values(self) -> tuple[Any, ...]:
        return (self.id, self.owner, self.x0, self.y0, self.aim_mrad, self.spawn_tick)
