"""Server-side bots: an input for a bot player computed from the match state alone (so bots stay deterministic).

A bot turns towards the nearest living enemy and fires when one is within range, keeps to a comfortable
distance (closing in when far, backing off when close), and strafes, switching direction every second or so.
"""

from __future__ import annotations

import math

from game.state import MatchState, PlayerInput

FIRING_RANGE = 700
PREFERRED_DISTANCE = 300
STRAFE_TICKS = 37


def bot_input(state: MatchState, player_id: int) -> PlayerInput:
    """What bot `player_id` does this tick."""
    me = state.players[player_id]
    enemies = [p for p in state.players.values() if p.id != player_id and p.alive]
    if not me.alive or not enemies:
        return PlayerInput(seq=state.tick)
    target = min(enemies, key=lambda p: ((p.x - me.x) ** 2 + (p.y - me.y) ** 2, p.id))
    dx, dy = target.x - me.x, target.y - me.y
    distance = math.hypot(dx, dy)
    aim = math.atan2(dy, dx)
    approach = 1 if distance > PREFERRED_DISTANCE * 1.3 else -1 if distance < PREFERRED_DISTANCE * 0.7 else 0
    strafe = 1 if (state.tick // STRAFE_TICKS + player_id) % 2 else -1
    move_x = _sign(approach * dx - strafe * dy * 0.6)
    move_y = _sign(approach * dy + strafe * dx * 0.6)
    return PlayerInput(seq=state.tick, move_x=move_x, move_y=move_y, aim=aim, fire=distance <= FIRING_RANGE)


def _sign(value: float) -> int:
    if abs(value) < 1e-6:
        return 0
    return 1 if value > 0 else -1
