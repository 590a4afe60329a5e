"""The whole state of a match as immutable values: what `step` reads and returns, and all it depends on.

Nothing outside `MatchState` influences the next tick, so a saved state replays exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from game.rules import Rules
from game.value_fields import MatchStateFields
from game.values import Player, Projectile, Value

_MASK64: Final = (1 << 64) - 1


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


class MatchState(Value):
    """A match between two ticks. A plain class that mypyc compiles to a native one, as game.values' are (the step
    builds one every tick and reads it throughout), declaring its attrs twin's fields as its own
    (game.value_fields.MatchStateFields): equality by value, attrs' repr, `attrs.evolve` and cattrs as before."""

    __attrs_attrs__: ClassVar[Any] = attrs.fields(MatchStateFields)

    def __init__(
        self,
        rules: Rules,
        tick: int,
        rng_state: int,
        players: Mapping[int, Player],
        projectiles: Mapping[int, Projectile],
        next_projectile_id: int = 1,
        start_tick: int | None = None,
        end_tick: int | None = None,
        over: bool = False,
        history: tuple[HistoryFrame, ...] = (),
    ) -> None:
        self.rules: Final = rules
        self.tick: Final = tick
        self.rng_state: Final = rng_state
        self.players: Final = players
        self.projectiles: Final = projectiles
        self.next_projectile_id: Final = next_projectile_id
        self.start_tick: Final = start_tick
        self.end_tick: Final = end_tick
        self.over: Final = over
        self.history: Final = history
        """Where the living players were at each of the last `Rules.lag_compensation_ticks` ticks, oldest first:
        what lag-compensated shots are judged against."""

    @classmethod
    def initial(cls, *, seed: int, rules: Rules | None = None) -> MatchState:
        """A match with no players at tick 0, its randomness fixed by `seed`."""
        return MatchState(rules=rules or Rules(), tick=0, rng_state=seed & _MASK64, players={}, projectiles={})

    @property
    def started(self) -> bool:
        return self.start_tick is not None

    @property
    def full(self) -> bool:
        return len(self.players) >= self.rules.max_players

    def with_entities(
        self,
        players: Mapping[int, Player],
        projectiles: Mapping[int, Projectile] | None = None,
        rng_state: int | None = None,
    ) -> MatchState:
        """This state with other players (and projectiles, generator state): `attrs.evolve(self, ...)` of them, as
        compiled code can build it (mypy's attrs plugin knows no twins)."""
        return MatchState(
            self.rules,
            self.tick,
            self.rng_state if rng_state is None else rng_state,
            players,
            self.projectiles if projectiles is None else projectiles,
            self.next_projectile_id,
            self.start_tick,
            self.end_tick,
            self.over,
            self.history,
        )

    def _values(self) -> tuple[Any, ...]:
        return (
            self.rules,
            self.tick,
            self.rng_state,
            self.players,
            self.projectiles,
            self.next_projectile_id,
            self.start_tick,
            self.end_tick,
            self.over,
            self.history,
        )


attrs.resolve_types(  # the twin's types name these classes, which it cannot import (they import it)
    MatchStateFields,
    localns={"Rules": Rules, "Player": Player, "Projectile": Projectile, "HistoryFrame": HistoryFrame},
)
