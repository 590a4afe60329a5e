"""The whole state of a match as immutable values: what `step` reads and returns, and all it depends on.

Nothing outside `MatchState` influences the next tick, so a saved state replays exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from game.rules import Rules
from game.values import Player, Projectile

_MASK64 = (1 << 64) - 1


def next_random(rng_state: int) -> tuple[int, int]:
    """Advance a SplitMix64 generator.

    Returns:
        The new generator state and a 64-bit pseudo-random value.
    """
    rng_state = (rng_state + 0x9E3779B97F4A7C15) & _MASK64
    z = rng_state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return rng_state, z ^ (z >> 31)


HistoryFrame = tuple[int, tuple[tuple[int, float, float], ...]]
"""(tick, ((player id, x, y) of each living player, in id order))."""


@attrs.frozen
class MatchState:
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
    """Where the living players were at each of the last `Rules.lag_compensation_ticks` ticks, oldest first:
    what lag-compensated shots are judged against."""

    @classmethod
    def initial(cls, *, seed: int, rules: Rules | None = None) -> MatchState:
        """A match with no players at tick 0, its randomness fixed by `seed`."""
        return cls(
            rules=rules or Rules(),
            tick=0,
            rng_state=seed & _MASK64,
            players={},
            projectiles={},
        )

    @property
    def started(self) -> bool:
        return self.start_tick is not None

    @property
    def full(self) -> bool:
        return len(self.players) >= self.rules.max_players
