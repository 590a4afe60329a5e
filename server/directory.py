"""The in-memory match directory: the matches this process runs, found by id or by resume token.

It implements `server.matchmaker.MatchDirectory`; a directory shared by several processes can replace it
without the matchmaker noticing.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from game import Rules
from game.ai import MAX_BOT_LEVEL
from server.checkpoint import MatchCheckpoint
from server.match import Match, SeatError, TickScheduler, TickStatistics
from server.matchmaker import Mode
from server.reader import SocketReader
from server.recording import MatchRecorder, ReplayFile, ReplayWriter, prune, replay_path
from server.send_ring import SendRing

logger = logging.getLogger(__name__)

GOLDEN_RATIO_FRACTION = 0.6180339887498949
"""Successive multiples of it, modulo 1, are spread evenly over [0, 1) however many there are: matches
created one after another get tick phases far from each other's."""


MAX_ENDED_SEATS = 100_000


@attrs.frozen
class EndedSeat:
    """A seat in a match that is over: what its player is shown on coming back."""

    match_id: str
    subject: str
    final_snapshot: bytes
    """The match's last state, with its end (encoded)."""
    reason: str
    """Why the player is out of it: match_over, or match_closed (it closed early)."""
    until: float
    """Trio time after which a resume with its token is no longer answered this way."""
    moved_to: str | None = None
    """The server that adopted the match (it goes on there): a resume here is told to go there."""


@attrs.define(eq=False)
class InMemoryMatchDirectory:
    nursery: trio.Nursery
    rules: Rules
    statistics: TickStatistics
    linger_seconds: float
    resume_window: float
    seed: int | None = None
    bot_takes_over: bool = False
    spectator_delay: float = 0.0
    on_match_over: Callable[[Match], None] | None = None
    """Told when a match ends by its rules (the server rates its players)."""
    replay_dir: Path | None = None
    """Where matches are recorded (None: not recorded)."""
    replay_keep: int = 1000
    replay_max_age_seconds: float = 7 * 86400.0
    max_tick_load: float = 0.45
    """New matches are made only while the matches' ticks use less than this share of a core (`tick_load`)."""
    socket_reader: SocketReader | None = None
    """The server's shared socket reader, which the tick scheduler reads for as it wakes (server.reader)."""
    send_ring: SendRing | None = None
    """What sends the tick scheduler's frames together (server.send_ring); None: one write per frame."""
    matches: dict[str, Match] = attrs.field(factory=dict, init=False)
    _ended: dict[str, EndedSeat] = attrs.field(factory=dict, init=False)
    """Seats of matches that have closed, by resume token, for `resume_window` after the close."""
    _matches_created: int = attrs.field(default=0, init=False)
    _scheduler: TickScheduler | None = attrs.field(default=None, init=False)
    """What ticks every match, started with the first match in `nursery`."""
    _replay_writer: ReplayWriter | None = attrs.field(default=None, init=False)
    """What writes every match's replay file, started with the first recorded match in `nursery`."""

    def create_match(
        self, mode: Mode, *, players: int, bots: int, bot_level: int = MAX_BOT_LEVEL, match_id: str | None = None
    ) -> str:
        """Start a match for `players` reserved seats plus `bots` (`match_id`: the id the fleet gave it)."""
        match_id = match_id or secrets.token_urlsafe(6)
        rules = attrs.evolve(self.rules, max_players=mode.max_players)
        seed = secrets.randbits(64) if self.seed is None else self.seed
        recorder = None
        if self.replay_dir is not None:
            recorder = MatchRecorder.start(match_id=match_id, mode=mode.name, seed=seed, rules=rules)
        match = Match(
            id=match_id,
            mode=mode,
            rules=rules,
            statistics=self.statistics,
            linger_seconds=self.linger_seconds,
            resume_window=self.resume_window,
            bot_takes_over=self.bot_takes_over,
            seed=seed,
            pending_reservations=players,
            tick_phase=(self._matches_created * GOLDEN_RATIO_FRACTION) % 1.0,
            recorder=recorder,
            spectator_delay=self.spectator_delay,
            on_over=self.on_match_over,
            bot_level=bot_level,
        )
        self._matches_created += 1
        for _ in range(bots):
            match.add_bot()
        self.matches[match.id] = match
        self.nursery.start_soon(self._run, match)
        return match.id

    def adopt(self, checkpoint: MatchCheckpoint, mode: Mode) -> Match:
        """Continue a match another server checkpointed, from its tick, with its seats held for their players
        (not recorded here: its replay ends on the server it left)."""
        match = Match(
            id=checkpoint.match_id,
            mode=mode,
            rules=checkpoint.rules,
            statistics=self.statistics,
            linger_seconds=self.linger_seconds,
            resume_window=self.resume_window,
            bot_takes_over=self.bot_takes_over,
            seed=checkpoint.seed,
            tick_phase=(self._matches_created * GOLDEN_RATIO_FRACTION) % 1.0,
            spectator_delay=self.spectator_delay,
            on_over=self.on_match_over,
            bot_level=checkpoint.bot_level,
        )
        match.continue_from(checkpoint)
        self._matches_created += 1
        self.matches[match.id] = match
        self.nursery.start_soon(self._run, match)
        return match

    @property
    def tick_load(self) -> float:
        """The share of a core the running matches' ticks take: each match's recent tick cost times its rate."""
        return sum(match.tick_cost * match.rules.tick_rate for match in self.matches.values() if not match.finished)

    def has_room_for_a_match(self) -> bool:
        return self.tick_load < self.max_tick_load

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
            if any(seat.holds(token) for seat in match.humans):
                return match
        raise SeatError("unknown resume token: it was already used, or the seat was released", reason="unknown_token")

    def listing(self) -> list[dict[str, Any]]:
        return [match.summary() for match in self.matches.values() if not match.finished]

    def ended_seat(self, token: str, subject: str) -> EndedSeat | None:
        """The seat a resume token held in a match that is over (still lingering, or closed less than
        `resume_window` ago), if it is this player's."""
        for match in self.matches.values():
            if match.state.over or match.finished:
                for seat in match.humans:
                    if seat.holds(token) and seat.subject == subject:
                        reason = "moved" if match.moved_to else "match_over"
                        return EndedSeat(match.id, subject, match.final_snapshot, reason, math.inf, match.moved_to)
        ended = self._ended.get(token)
        if ended is None or ended.subject != subject or ended.until < trio.current_time():
            return None
        return ended

    def _remember_seats(self, match: Match) -> None:
        now = trio.current_time()
        self._ended = {token: seat for token, seat in self._ended.items() if seat.until >= now}
        if len(self._ended) >= MAX_ENDED_SEATS:
            return
        reason = "match_over" if match.state.over else "moved" if match.moved_to else "match_closed"
        final = match.final_snapshot
        for seat in match.humans:
            if seat.subject is None:
                continue
            ended = EndedSeat(match.id, seat.subject, final, reason, now + self.resume_window, match.moved_to)
            for token in (seat.resume_token, seat.previous_token):
                if token is not None:
                    self._ended[token] = ended

    @property
    def player_count(self) -> int:
        return sum(len(match.humans) for match in self.matches.values())

    async def _run(self, match: Match) -> None:
        logger.info("match %s (%s) started, seed %d", match.id, match.mode.name, match.seed, extra={"match": match.id})
        try:
            async with trio.open_nursery() as nursery:
                if match.recorder is not None and self.replay_dir is not None:
                    nursery.start_soon(self._write_replay, match, self.replay_dir)
                if self._scheduler is None:
                    self._scheduler = TickScheduler(self.socket_reader, self.send_ring)
                    self.nursery.start_soon(self._scheduler.run)
                await match.run(self._scheduler)
                nursery.cancel_scope.cancel()  # the writer writes what is left as it stops
        except Exception:
            logger.exception(
                "match %s failed at tick %d (seed %d); its players were told", match.id, match.state.tick, match.seed
            )
        finally:
            del self.matches[match.id]
            self._remember_seats(match)
            logger.info("match %s closed after %d ticks", match.id, match.state.tick, extra={"match": match.id})

    async def _write_replay(self, match: Match, directory: Path) -> None:
        """Open the match's replay file and have the server's replay writer fill it until the match has ended."""
        recorder = match.recorder
        assert recorder is not None
        path = replay_path(directory, recorder.header)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            replay = await trio.to_thread.run_sync(ReplayFile, path)
        except OSError as error:
            logger.warning("match %s is not recorded: cannot write %s: %s", match.id, path, error.strerror)
            match.recorder = None
            return
        if self._replay_writer is None:
            self._replay_writer = ReplayWriter()
            self.nursery.start_soon(self._replay_writer.run)
        writer = self._replay_writer
        try:
            await writer.add(match.id, recorder, replay).wait()
        finally:
            with trio.CancelScope(shield=True):
                await writer.close(replay)
                if match.recorder is recorder and not recorder.ended:
                    match.recorder = None  # its recording stopped early (a write failed, or the disk fell behind)
                try:
                    await trio.to_thread.run_sync(
                        lambda: prune(directory, keep=self.replay_keep, max_age_seconds=self.replay_max_age_seconds)
                    )
                except OSError as error:
                    logger.warning("match %s: could not prune the replays in %s: %s", match.id, directory, error)
