"""A player's fields as an attrs class: `game.player.Player` declares them as its own, so attrs' functions
(`attrs.evolve`, `attrs.asdict`, `attrs.fields`) and cattrs treat a Player as the attrs class it mirrors.

Rules: the same names, types, defaults and order as `Player.__init__`'s parameters (tests/game/test_player.py
checks it). Never built: only its field list is used.
"""

from __future__ import annotations

import attrs


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


attrs.resolve_types(PlayerFields)  # real types, not the strings of postponed annotations: cattrs reads them via Player
