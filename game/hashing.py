"""A fingerprint of the whole match state, to compare two runs tick by tick."""

from __future__ import annotations

import hashlib

from game.state import MatchState


def state_hash(state: MatchState) -> str:
    """A hex digest that changes whenever anything in `state` does (floats compared bit for bit via repr)."""
    return hashlib.blake2b(repr(state).encode(), digest_size=16).hexdigest()
