"""A player of a match: an immutable value, as a plain class that mypyc compiles to a native one.

Rules: it behaves as `attrs.frozen` would make it (equality and hashing by value, attrs' repr, which state hashes
are taken of, fields that cannot be set) and declares `game.player_fields.PlayerFields`' fields as its own, so
`attrs.evolve`, `attrs.asdict` and cattrs work on it as on any attrs class. Plain rather than attrs because every
tick builds a new Player per moving player and reads all of their fields: compiled, a Player is a C struct, built
and read without going through Python (the step in half the time, see docs/benchmarks.md), where an attrs class
stays a Python class that compiled code builds through its generated `__init__`. The fields are `Final`: the
compiled build refuses to set them (AttributeError); in pure Python mypy does.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from game.player_fields import PlayerFields


class Player:
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

    def _values(self) -> tuple[int, str, float, float, int, int, int, int, int | None, int]:
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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Player):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return (
            f"Player(id={self.id!r}, name={self.name!r}, x={self.x!r}, y={self.y!r}, aim_mrad={self.aim_mrad!r}, "
            f"hp={self.hp!r}, kills={self.kills!r}, deaths={self.deaths!r}, respawn_tick={self.respawn_tick!r}, "
            f"next_fire_tick={self.next_fire_tick!r})"
        )
