"""Arithmetic the step and the snapshots do on every tick, written so that mypyc compiles it to plain C.

Rules: each function gives exactly what the Python expression it stands for gives (the pure-Python game and the
compiled one must agree on every state hash); tests/game/test_simulation.py and tests/server/test_compiled_game.py
compare them.
"""

from __future__ import annotations

import math


def nearest_int(value: float) -> int:
    """`round(value)` (to the nearest int, halves to even) for a finite float, as arithmetic that mypyc compiles
    (the builtin is a generic call there, the most costly part of applying an input or showing a player). Exact:
    `value - floor` is exactly representable for every float (from 2**52 on, floats are whole numbers)."""
    floor = math.floor(value)
    rest = value - floor
    if rest > 0.5 or (rest == 0.5 and floor % 2 == 1):
        return floor + 1
    return floor
