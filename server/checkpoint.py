"""A running match as one value another server can continue from: its whole simulation state (game.MatchState:
the simulation is pure and deterministic, so that is all the future depends on), its rules and mode, and its
seats (who plays which player, with the resume tokens they hold).

Rules: a checkpoint is taken between two ticks, never during one. It is JSON (cattrs structures and unstructures
the attrs classes; floats keep every bit through JSON), so that nothing read back from Redis can run code, and it
is checked as it is read: a bad one raises CheckpointError, never anything else.
"""

from __future__ import annotations

import json

import attrs
import cattrs
from cattrs.preconf.json import make_converter

from game import MatchState, Rules

VERSION = 1
_converter = make_converter()


class CheckpointError(Exception):
    """The bytes are not a checkpoint this server can continue from; the message says why."""


@attrs.frozen
class SeatCheckpoint:
    player_id: int
    subject: str | None
    """None: a server-side bot."""
    resume_token: str
    previous_token: str | None = None


@attrs.frozen
class MatchCheckpoint:
    match_id: str
    mode: str
    seed: int
    bot_level: int
    rules: Rules
    state: MatchState
    seats: tuple[SeatCheckpoint, ...]
    next_player_id: int
    version: int = VERSION


def dumps(checkpoint: MatchCheckpoint) -> str:
    return _converter.dumps(checkpoint)


def loads(raw: str | bytes) -> MatchCheckpoint:
    """Raises: CheckpointError if `raw` is not a checkpoint of this version."""
    try:
        version = json.loads(raw).get("version")
    except (ValueError, AttributeError):
        raise CheckpointError("not a checkpoint: not a JSON object") from None
    if version != VERSION:
        raise CheckpointError(f"a checkpoint of version {version!r}; this server reads version {VERSION}")
    try:
        checkpoint = _converter.loads(raw, MatchCheckpoint)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"a damaged checkpoint: {error}") from None
    if any(seat.player_id not in checkpoint.state.players for seat in checkpoint.seats):
        raise CheckpointError("a damaged checkpoint: a seat for a player the state does not have")
    return checkpoint
