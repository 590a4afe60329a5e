"""The in-memory match directory: the matches this process runs, found by id or by resume token.

It implements `server.matchmaker.MatchDirectory`; a directory shared by several processes can replace it
without the matchmaker noticing.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import attrs
import trio

from game import Rules
from server.match import Match, SeatError, TickStatistics
from server.matchmaker import Mode

logger = logging.getLogger(__name__)

GOLDEN_RATIO_FRACTION = 0.6180339887498949
"""Successive multiples of it, modulo 1, are spread evenly over [0, 1) however many there are: matches
created one after another get tick phases far from each other's."""


@attrs.define(eq=False)
class InMemoryMatchDirectory:
    nursery: trio.Nursery
    rules: Rules
    statistics: TickStatistics
    linger_seconds: float
    resume_window: float
    seed: int | None = None
    bot_takes_over: bool = False
    matches: dict[str, Match] = attrs.field(factory=dict, init=False)
    _matches_created: int = attrs.field(default=0, init=False)

    def create_match(self, mode: Mode, *, players: int, bots: int) -> str:
        match = Match(
            id=secrets.token_urlsafe(6),
            mode=mode,
            rules=attrs.evolve(self.rules, max_players=mode.max_players),
            statistics=self.statistics,
            linger_seconds=self.linger_seconds,
            resume_window=self.resume_window,
            bot_takes_over=self.bot_takes_over,
            seed=secrets.randbits(64) if self.seed is None else self.seed,
            pending_reservations=players,
            tick_phase=(self._matches_created * GOLDEN_RATIO_FRACTION) % 1.0,
        )
        self._matches_created += 1
        for _ in range(bots):
            match.add_bot()
        self.matches[match.id] = match
        self.nursery.start_soon(self._run, match)
        return match.id

    def open_seat(self, mode: Mode) -> str | None:
        for match in self.matches.values():
            if match.mode.name == mode.name and match.has_room():
                match.pending_reservations += 1
                return match.id
        return None

    def get(self, match_id: str) -> Match:
        """Raises: SeatError if there is no such match (any more)."""
        match = self.matches.get(match_id)
        if match is None or match.finished:
            raise SeatError(f"no running match {match_id!r}", reason="no_match")
        return match

    def find_by_resume_token(self, token: str) -> Match:
        for match in self.matches.values():
            if any(seat.resume_token == token for seat in match.humans):
                return match
        raise SeatError("unknown resume token: it was already used, or the seat was released", reason="unknown_token")

    def listing(self) -> list[dict[str, Any]]:
        return [match.summary() for match in self.matches.values() if not match.finished]

    @property
    def player_count(self) -> int:
        return sum(len(match.humans) for match in self.matches.values())

    async def _run(self, match: Match) -> None:
        logger.info("match %s (%s) started, seed %d", match.id, match.mode.name, match.seed, extra={"match": match.id})
        try:
            await match.run()
        except Exception:
            logger.exception(
                "match %s failed at tick %d (seed %d); its players were told", match.id, match.state.tick, match.seed
            )
        finally:
            del self.matches[match.id]
            logger.info("match %s closed after %d ticks", match.id, match.state.tick, extra={"match": match.id})
