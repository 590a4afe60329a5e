"""Arena's game: a pure, deterministic simulation. It never does I/O, never reads a clock, and draws all its
randomness from a generator kept in the state, so `step(state, inputs)` depends on nothing else."""

from game.ai import bot_input
from game.events import Death, Event, Hit, MatchEnd, Notice, Respawn, ScoreLine
from game.hashing import state_hash
from game.rules import Rect, Rules
from game.simulation import MatchFullError, add_player, projectile_position, remove_player, step
from game.snapshot import Delta, DeltaBaseError, Snapshot, apply, delta, snapshot
from game.state import MatchState
from game.values import Player, PlayerInput, Projectile

__all__ = [
    "Death",
    "Delta",
    "DeltaBaseError",
    "Event",
    "Hit",
    "MatchEnd",
    "MatchFullError",
    "MatchState",
    "Notice",
    "Player",
    "PlayerInput",
    "Projectile",
    "Rect",
    "Respawn",
    "Rules",
    "ScoreLine",
    "Snapshot",
    "add_player",
    "apply",
    "bot_input",
    "delta",
    "projectile_position",
    "remove_player",
    "snapshot",
    "state_hash",
    "step",
]
