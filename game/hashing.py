"""A fingerprint of the whole match state, to compare two runs tick by tick."""

from __future__ import annotations

import hashlib

from game.state import MatchState


def state_hash(state: MatchState) -> str:
    """A hex digest that changes whenever anything in `state` does (floats compared bit for bit via repr).

    Equal states hash equally whatever order their players and projectiles were inserted in.
    """
    canonical = state.with_entities(dict(sorted(state.players.items())), dict(sorted(state.projectiles.items())))
    return hashlib.blake2b(repr(canonical).encode(), digest_size=16).hexdigest()
