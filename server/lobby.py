"""Where a player who asks to join is seated: the first match with a free seat, else a new match.

This is the simplest rule that works; matchmaking by mode, with seat reservations, replaces it.
"""

from __future__ import annotations

import logging

import attrs
import trio

from game import Rules
from server.match import Match, TickStatistics
from server.session import Session

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class Lobby:
    rules: Rules
    statistics: TickStatistics
    linger_seconds: float
    seed: int | None = None
    matches: dict[str, Match] = attrs.field(factory=dict, init=False)

    def join(self, session: Session, nursery: trio.Nursery) -> Match:
        """Seat `session` (which must be in no match), starting a new match in `nursery` if every match is full."""
        for match in self.matches.values():
            if match.has_free_seat():
                match.add(session)
                return match
        match = Match.create(
            rules=self.rules, statistics=self.statistics, linger_seconds=self.linger_seconds, seed=self.seed
        )
        self.matches[match.id] = match
        match.add(session)
        nursery.start_soon(self._run_match, match)
        return match

    async def _run_match(self, match: Match) -> None:
        logger.info("match %s started (seed %d)", match.id, match.seed)
        try:
            await match.run()
        except Exception:
            logger.exception(
                "match %s failed at tick %d (seed %d); its players were told", match.id, match.state.tick, match.seed
            )
        finally:
            del self.matches[match.id]
            logger.info("match %s closed after %d ticks", match.id, match.state.tick)

    @property
    def player_count(self) -> int:
        return sum(match.player_count for match in self.matches.values())
