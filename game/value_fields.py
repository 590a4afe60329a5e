"""The fields of the values in game.values, as attrs classes: each value declares its twin's fields as its own, so
attrs' functions (`attrs.evolve`, `attrs.asdict`, `attrs.fields`) and cattrs treat it as the attrs class it mirrors.

Rules: a twin has the same names, types, defaults and order as its value's `__init__` parameters
(tests/game/test_values.py checks it). Never built: only its field list is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:  # these import this module: game.state and game.snapshot resolve their twins' types
    from game.events import Event
    from game.rules import Rules
    from game.snapshot import Entities
    from game.state import HistoryFrame
    from game.values import Player, Projectile


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


@attrs.frozen
class MatchStateFields:
    rules: Rules
    tick: int
    rng_state: int
    players: Mapping[int, Player]
    projectiles: Mapping[int, Projectile]
    next_projectile_id: int = 1
    start_tick: int | None = None
    end_tick: int | None = None
    over: bool = False
    history: tuple[HistoryFrame, ...] = ()


@attrs.frozen
class DeltaFields:
    tick: int
    base_tick: int
    added: Entities
    changed: Entities
    removed: Mapping[str, tuple[int, ...]]
    events: tuple[Event, ...] = ()


for _twin in (PlayerInputFields, PlayerFields, ProjectileFields):
    attrs.resolve_types(_twin)  # real types, not postponed annotations' strings: cattrs reads them via the values
