"""Server-side bots: an input for a bot player computed from the match state alone (so bots stay deterministic).

A bot turns towards the nearest living enemy and fires when one is within range, keeps to a comfortable
distance (closing in when far, backing off when close), and strafes, switching direction every second or so.
Its `level` (0 to `MAX_BOT_LEVEL`) sets how well it aims and from how far it fires: a lower level aims off by a
deterministic wobble (a function of the tick and its id, never of a clock or a global random) and fires from
closer.
"""

from __future__ import annotations

import math
from typing import Final

from game.state import MatchState
from game.values import PlayerInput

FIRING_RANGE: Final = 700
PREFERRED_DISTANCE: Final = 300
STRAFE_TICKS: Final = 37
MAX_BOT_LEVEL: Final = 3
AIM_ERROR_RADIANS: Final = (0.35, 0.2, 0.1, 0.0)
"""By level: the most a bot's aim is off (its wobble swings between minus and plus this)."""
LEVEL_FIRING_RANGE: Final = (450, 550, 650, FIRING_RANGE)
WOBBLE_TICKS: Final = 10


def bot_input(state: MatchState, player_id: int, level: int = MAX_BOT_LEVEL) -> PlayerInput:
    """What bot `player_id` of `level` does this tick."""
    level = max(0, min(MAX_BOT_LEVEL, level))
    me = state.players[player_id]
    enemies = [p for p in state.players.values() if p.id != player_id and p.alive]
    if not me.alive or not enemies:
        return PlayerInput(seq=state.tick)
    target = min(enemies, key=lambda p: ((p.x - me.x) ** 2 + (p.y - me.y) ** 2, p.id))
    dx, dy = target.x - me.x, target.y - me.y
    distance = math.hypot(dx, dy)
    aim = math.atan2(dy, dx)
    if AIM_ERROR_RADIANS[level]:
        aim += AIM_ERROR_RADIANS[level] * _wobble(state.tick // WOBBLE_TICKS, player_id)
        aim = (aim + math.pi) % (2 * math.pi) - math.pi
    approach = 1 if distance > PREFERRED_DISTANCE * 1.3 else -1 if distance < PREFERRED_DISTANCE * 0.7 else 0
    strafe = 1 if (state.tick // STRAFE_TICKS + player_id) % 2 else -1
    move_x = _sign(approach * dx - strafe * dy * 0.6)
    move_y = _sign(approach * dy + strafe * dx * 0.6)
    fire = distance <= LEVEL_FIRING_RANGE[level]
    return PlayerInput(seq=state.tick, move_x=move_x, move_y=move_y, aim=aim, fire=fire)


def _wobble(step: int, player_id: int) -> float:
    """A number from -1 to 1 that changes every step, the same on every run."""
    mixed = (step * 2654435761 + player_id * 40503 + 12345) & 0xFFFFFFFF
    return (mixed % 2001) / 1000.0 - 1.0


def _sign(value: float) -> int:
    if abs(value) < 1e-6:
        return 0
    return 1 if value > 0 else -1
