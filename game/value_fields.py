"""The fields of the values in game.values, as attrs classes: each value declares its twin's fields as its own, so
attrs' functions (`attrs.evolve`, `attrs.asdict`, `attrs.fields`) and cattrs treat it as the attrs class it mirrors.

Rules: a twin has the same names, types, defaults and order as its value's `__init__` parameters
(tests/game/test_values.py checks it). Never built: only its field list is used.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class PlayerInputFields:
    seq: int = 0
    move_x: int = 0
    move_y: int = 0
    aim: float = 0.0
    fire: bool = False
    view_tick: int | None = None


@attrs.frozen
class PlayerFields:
    id: int
    name: str
    x: float
    y: float
    aim_mrad: int = 0
    hp: int = 100
    kills: int = 0
    deaths: int = 0
    respawn_tick: int | None = None
    next_fire_tick: int = 0


@attrs.frozen
class ProjectileFields:
    id: int
    owner: int
    x0: int
    y0: int
    aim_mrad: int
    spawn_tick: int


for _twin in (PlayerInputFields, PlayerFields, ProjectileFields):
    attrs.resolve_types(_twin)  # real types, not postponed annotations' strings: cattrs reads them via the values
