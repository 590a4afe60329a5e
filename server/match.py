"""A match runner: one trio task per match owns its state and runs the fixed-step tick loop.

Rules of a tick: take each player's latest input in player-id order, step the game, build one delta, encode
it once, and hand the same bytes to every player; a player who just joined or fell behind gets a full snapshot
(also encoded once per tick) instead. Sending never waits on a client. The schedule is fixed: tick n is due at
start + n / tick_rate; a late tick runs at once, and if the loop falls more than `MAX_CATCH_UP_TICKS` behind it
skips ahead instead of bursting.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque

import attrs
import trio

import game
from game import MatchState, Rules, Snapshot
from game.snapshot import PLAYERS
from server.codec import encode
from server.messages import Joined, Left
from server.session import Session

logger = logging.getLogger(__name__)

MAX_CATCH_UP_TICKS = 3
LATENESS_SAMPLES = 3000


@attrs.define(eq=False)
class TickStatistics:
    """Tick timing across all matches of a server, for /healthz."""

    ticks: int = 0
    skipped_ticks: int = 0
    lateness: deque[float] = attrs.field(factory=lambda: deque(maxlen=LATENESS_SAMPLES))
    durations: deque[float] = attrs.field(factory=lambda: deque(maxlen=LATENESS_SAMPLES))

    def summary(self) -> dict[str, float | int]:
        return {
            "ticks": self.ticks,
            "skipped": self.skipped_ticks,
            "lateness_ms_p50": _percentile_ms(self.lateness, 0.50),
            "lateness_ms_p99": _percentile_ms(self.lateness, 0.99),
            "lateness_ms_max": _percentile_ms(self.lateness, 1.0),
            "duration_ms_p50": _percentile_ms(self.durations, 0.50),
            "duration_ms_p99": _percentile_ms(self.durations, 0.99),
        }


def _percentile_ms(samples: deque[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)


@attrs.define(eq=False)
class Match:
    id: str
    rules: Rules
    statistics: TickStatistics
    linger_seconds: float
    seed: int = attrs.field(factory=lambda: secrets.randbits(64))
    state: MatchState = attrs.field(init=False)
    _seats: dict[int, Session] = attrs.field(factory=dict, init=False)
    _next_player_id: int = attrs.field(default=1, init=False)
    _last_snapshot: Snapshot = attrs.field(init=False)
    _membership_changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    finished: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self.state = MatchState.initial(seed=self.seed, rules=self.rules)
        self._last_snapshot = game.snapshot(self.state)

    @classmethod
    def create(
        cls, *, rules: Rules, statistics: TickStatistics, linger_seconds: float, seed: int | None = None
    ) -> Match:
        """A match with a fresh id, and a fresh seed unless `seed` is given."""
        return cls(
            id=secrets.token_urlsafe(6),
            rules=rules,
            statistics=statistics,
            linger_seconds=linger_seconds,
            seed=secrets.randbits(64) if seed is None else seed,
        )

    @property
    def player_count(self) -> int:
        return len(self._seats)

    def has_free_seat(self) -> bool:
        return not self.finished and not self.state.over and not self.state.full

    def add(self, session: Session) -> None:
        """Seat a session that is in no match; it gets `joined` now and a full snapshot at the next tick."""
        player_id = self._next_player_id
        self._next_player_id += 1
        self.state = game.add_player(self.state, player_id, session.name or f"player {player_id}")
        self._seats[player_id] = session
        session.match, session.player_id, session.latest_input = self, player_id, None
        session.needs_snapshot = True
        session.send_control(encode(Joined(match=self.id, player=player_id)))
        logger.info("match %s: %s joined as player %d", self.id, session.name, player_id)

    def remove(self, session: Session, *, reason: str) -> None:
        """Take a session out of the match and tell it why (if it is still connected)."""
        player_id = session.player_id
        if session.match is not self or player_id is None:
            return
        del self._seats[player_id]
        self.state = game.remove_player(self.state, player_id)
        session.match, session.player_id = None, None
        session.send_control(encode(Left(match=self.id, reason=reason)))
        self._membership_changed.set()
        logger.info("match %s: player %d left (%s)", self.id, player_id, reason)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until the match is over (then linger) or empty."""
        interval = 1 / self.rules.tick_rate
        deadline = trio.current_time()
        task_status.started()
        try:
            while self._seats and not self.state.over:
                deadline += interval
                await trio.sleep_until(deadline)
                started = trio.current_time()
                lateness = started - deadline
                if lateness > MAX_CATCH_UP_TICKS * interval:
                    skipped = int(lateness / interval)
                    deadline += skipped * interval
                    self.statistics.skipped_ticks += skipped
                self.tick()
                self.statistics.ticks += 1
                self.statistics.lateness.append(lateness)
                self.statistics.durations.append(trio.current_time() - started)
            if self.state.over:
                with trio.move_on_after(self.linger_seconds):
                    while self._seats:
                        self._membership_changed = trio.Event()
                        await self._membership_changed.wait()
        finally:
            self.finished = True
            for session in list(self._seats.values()):
                self.remove(session, reason="match_over" if self.state.over else "match_closed")

    def tick(self) -> None:
        """Advance the match one tick and send the result to every player."""
        inputs = {pid: s.latest_input for pid, s in sorted(self._seats.items()) if s.latest_input is not None}
        self.state, events = game.step(self.state, inputs)
        server_fields: dict[int, dict[str, int | str]] = {
            pid: {"ping": s.rtt_ms, "ack": s.latest_input.seq if s.latest_input else 0}
            for pid, s in self._seats.items()
        }
        current = game.snapshot(self.state, events).with_fields(PLAYERS, server_fields)
        delta_frame = encode(game.delta(self._last_snapshot, current))
        snapshot_frame: bytes | None = None
        for _, session in sorted(self._seats.items()):
            if session.needs_snapshot:
                snapshot_frame = snapshot_frame or encode(current)
                session.needs_snapshot = False
                session.send_state(snapshot_frame)
            else:
                session.send_state(delta_frame)
        self._last_snapshot = current
