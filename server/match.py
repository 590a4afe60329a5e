"""A match runner: one trio task per match owns its life (joins, lingering, the end), and one `TickScheduler` per
server runs every match's fixed-step ticks.

Rules of a tick: take each player's next input (one per tick, in the order sent; the last one holds while
none waits) or its bot's, in player-id order, step the game, build one
delta, encode it once, and hand the same bytes to every player and spectator; whoever just arrived or fell
behind gets a full snapshot (also encoded once per tick) instead. Sending never waits on a client. The frames
of the ticks one scheduler wake-up runs are written together after them (within `SEND_DELAY_LIMIT_SECONDS`), in
the order the ticks made them, with one system call for all when the process has a send ring (server.send_ring).
The schedule is fixed: tick n is due at start + n / tick_rate, with the start placed at the match's `tick_phase` of an
interval; a late tick runs at once, and if the loop falls more than
`MAX_CATCH_UP_TICKS` behind it skips ahead instead of bursting.

Seats: a player whose connection drops keeps the seat for `resume_window` seconds (standing idle, or played by a
bot when `bot_takes_over` is set; shown as "reconnecting"); the single-use resume token given with `joined` takes
it back. A match runs while it has a human seat (connected or held) or a reservation still to be redeemed.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import math
import secrets
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy
import trio

import game
from game import MatchState, Notice, PlayerInput, Rules, ScoreLine
from game.ai import MAX_BOT_LEVEL
from game.snapshot import FieldValue, SnapshotBuilder
from server.checkpoint import MatchCheckpoint, SeatCheckpoint
from server.codec import encode
from server.matchmaker import Mode
from server.messages import Joined, Left, Moved, Spectating
from server.outbox import Outbox, binary_frame
from server.reader import HANDOFF_SECONDS, SocketReader
from server.recording import MatchRecorder
from server.send_ring import SendRing
from server.session import Session
from server.spectating import DelayedFeed

logger = logging.getLogger(__name__)

MAX_CATCH_UP_TICKS = 3
TICK_EARLY_FRACTION = 1 / 8
"""How early, in intervals, a tick may run when the scheduler is awake anyway (4.2 ms at 30 Hz): ticks falling due
that close together run in one wake-up, not one each. A wake-up costs the timer's cancellation and a trip through
the event loop and the kernel (50-100 us of CPU on a cloud VM, see docs/benchmarks.md); a tick a few ms early is
less than the jitter of the networks its deltas cross, and an input that arrives in those ms counts a tick later."""
PLAYING = "playing"
"""A seat's status while its player is connected (`Seat.status`)."""
TIMER_RESOLUTION_SECONDS = 0.001
"""How late a timed wait can end: trio waits in epoll, which counts whole milliseconds, rounding up (Python's
select.epoll.poll). The scheduler asks to wake this much before a tick is due (when the tick may run that early):
asking for the moment itself, it woke 0.8-1.0 ms after it at the median at 750 players (docs/benchmarks.md)."""
SEND_DELAY_LIMIT_SECONDS = 0.001
"""How long a tick's frames may wait for the ticks after it in the same scheduler wake-up before they are written.
Written together, the kernel's socket writes run back to back and the ticks' Python back to back, each with its
code and data still in the CPU's caches, instead of each evicting the other at every player: about 5% less CPU
per player-tick (docs/benchmarks.md, issue 15's seventh sitting)."""
READ_INTERVAL_SECONDS = HANDOFF_SECONDS
"""How long a group of ticks may run before the scheduler reads what came meanwhile (server.reader's promise: what a
client sends waits at most `HANDOFF_SECONDS` to be read). A busy server catching up runs ticks back to back for
40-400 ms; read only as it woke, its players' inputs waited that long, and then took one read of 10-60 ms that made
the next ticks late (docs/benchmarks.md, issue 15's eighth sitting)."""
SERVER_PLAYER_FIELDS = ("ping", "ack", "status")
"""What the server adds to each player in snapshots (docs/protocol.md): round trip, last input applied, seat."""
TIMING_WINDOW_SECONDS = 10.0
TICK_COST_SMOOTHING = 0.05
"""Weight of the newest tick in a match's `tick_cost` (about the last 20 ticks count)."""


Timings = numpy.ndarray[Any, numpy.dtype[numpy.float64]]
"""Seconds: the lateness or the duration of a number of ticks."""


@attrs.define(eq=False)
class _TimingSecond:
    """The ticks that started within one second of trio time: their lateness and duration, in seconds."""

    start: int
    lateness: array[float] = attrs.field(factory=lambda: array("d"))
    duration: array[float] = attrs.field(factory=lambda: array("d"))


@attrs.define(eq=False)
class TickStatistics:
    """Tick timing across all matches of a server, for /healthz: counts since start, and every tick's lateness and
    duration over the last `TIMING_WINDOW_SECONDS`, kept a second at a time in arrays of floats (a busy server
    runs thousands of ticks a second: every one of them counts in the percentiles, for 16 bytes each)."""

    ticks: int = 0
    skipped_ticks: int = 0
    _seconds: deque[_TimingSecond] = attrs.field(
        factory=lambda: deque(maxlen=int(TIMING_WINDOW_SECONDS) + 1), init=False
    )
    on_second: Callable[[Timings, Timings], None] | None = None
    """Told each second's ticks (their lateness, their duration) once the second is over (the server's metrics)."""

    def record(self, started: float, lateness: float, duration: float) -> None:
        self.ticks += 1
        second = int(started)
        seconds = self._seconds
        if not seconds or seconds[-1].start != second:
            if seconds and self.on_second is not None:
                self.on_second(*self._timings(seconds[-1]))
            seconds.append(_TimingSecond(second))
        current = seconds[-1]
        current.lateness.append(lateness)
        current.duration.append(duration)

    def current_second(self) -> tuple[Timings, Timings]:
        """The lateness and the duration of the ticks of the second not over yet (not told to `on_second` yet)."""
        return self._timings(self._seconds[-1]) if self._seconds else (numpy.empty(0), numpy.empty(0))

    @staticmethod
    def _timings(second: _TimingSecond) -> tuple[Timings, Timings]:
        return numpy.array(second.lateness), numpy.array(second.duration)

    def lateness_since(self, start: float) -> Timings:
        """The lateness of the ticks of every whole second of trio time from the one holding `start` on (unordered)."""
        return self._since(start, "lateness")

    def duration_since(self, start: float) -> Timings:
        """The duration of the ticks of every whole second of trio time from the one holding `start` on (unordered)."""
        return self._since(start, "duration")

    def _since(self, start: float, field: str) -> Timings:
        first = int(start)
        arrays = [getattr(second, field) for second in self._seconds if second.start >= first]
        if not arrays:
            return numpy.empty(0)
        return numpy.concatenate([numpy.frombuffer(values, dtype=numpy.float64) for values in arrays])

    def summary(self) -> dict[str, float | int]:
        start = trio.current_time() - TIMING_WINDOW_SECONDS + 1
        lateness, durations = self.lateness_since(start), self.duration_since(start)
        lateness_p50, lateness_p99, lateness_max = percentiles_ms(lateness, (0.50, 0.99, 1.0))
        duration_p50, duration_p99 = percentiles_ms(durations, (0.50, 0.99))
        return {
            "ticks": self.ticks,
            "skipped": self.skipped_ticks,
            "window_seconds": TIMING_WINDOW_SECONDS,
            "window_ticks": len(lateness),
            "lateness_ms_p50": lateness_p50,
            "lateness_ms_p99": lateness_p99,
            "lateness_ms_max": lateness_max,
            "duration_ms_p50": duration_p50,
            "duration_ms_p99": duration_p99,
        }


def percentiles_ms(values: Timings, fractions: Sequence[float]) -> list[float]:
    """For each fraction, the value that many of the way through `values` in order (the one at index
    int(fraction * n) of them sorted; the largest for 1.0), in ms to the microsecond; 0.0 each if there are none.

    Found by partitioning (numpy, linear time), never by sorting in Python: the server asks on the event loop, and
    at a thousand players the 10 s window holds 37,500 ticks, whose sorting held every match up 15 ms."""
    count = len(values)
    if not count:
        return [0.0 for _ in fractions]
    indexes = [min(count - 1, int(fraction * count)) for fraction in fractions]
    ordered = numpy.partition(values, sorted(set(indexes)))
    return [round(float(ordered[index]) * 1000, 3) for index in indexes]


class SeatError(Exception):
    """A seat cannot be taken or taken back; the message says why, `reason` in one word (for metrics)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.define(eq=False)
class Seat:
    player_id: int
    subject: str | None
    """The player's identity, or None for a server-side bot."""
    session: Session | None = None
    resume_token: str = attrs.field(factory=lambda: secrets.token_urlsafe(18))
    previous_token: str | None = None
    """The token the player last resumed with: it stays good until the newer one is used, so a drop that crossed
    the `joined` carrying the newer one still gets the seat back."""

    def holds(self, token: str) -> bool:
        return token == self.resume_token or (self.previous_token is not None and token == self.previous_token)

    held_until: float | None = None
    """While the connection is gone: when the seat is released (trio time)."""
    moved_here: bool = False
    """The seat came with its match from another server, and its player has not resumed it here yet."""

    @property
    def status(self) -> str:
        if self.subject is None:
            return "bot"
        return PLAYING if self.session is not None else "reconnecting"


class TickScheduler:
    """One task ticks every match of a server, in the order their ticks fall due.

    Rules: a match's tick n is due at its own deadline (see `Match.run`), and may run from `TICK_EARLY_FRACTION` of
    its interval before it. The scheduler sleeps until the earliest deadline (less `TIMER_RESOLUTION_SECONDS`, within
    that), then runs every tick whose time has come, earliest deadline first (reading the inputs that have come as it
    wakes, and every `READ_INTERVAL_SECONDS` of a long group of ticks: server.reader), and lets the other tasks run
    before it sleeps again. So a server with many matches pays for one timer and one wake-up per group of ticks
    falling due within a few ms, not one sleeping task per match per tick. A match's failure stays that match's
    (`Match.due`); ticks never wait on anything.

    The ticks hand their frames to `outgoing`, not to the sessions: the scheduler writes them, in order, once no
    more ticks are due or the oldest has waited `SEND_DELAY_LIMIT_SECONDS`.
    """

    def __init__(self, reader: SocketReader | None = None, ring: SendRing | None = None) -> None:
        """`reader`: the shared socket reader, which this scheduler reads for at each wake-up (server.reader).
        `ring`: what sends the frames together (server.send_ring), if this process has one."""
        self._reader = reader
        self._ring = ring
        self._due: list[tuple[float, int, Match, float]] = []
        """(deadline, order of scheduling, match, earliest moment it may run), a heap."""
        self._order = itertools.count()
        self._earlier = trio.Event()
        self.outgoing: Outgoing = []
        """The frames of this wake-up's ticks not yet written, in the order made."""

    def schedule(self, match: Match, deadline: float) -> None:
        """Call `match.due(deadline, now)` once `deadline` has come (or `TICK_EARLY_FRACTION` of an interval before)."""
        self._push(match, deadline)
        if self._due[0][2] is match:
            self._earlier.set()

    def _push(self, match: Match, deadline: float) -> None:
        heapq.heappush(self._due, (deadline, next(self._order), match, deadline - TICK_EARLY_FRACTION * match.interval))

    async def run(self) -> None:
        due = self._due
        while True:
            self._earlier = trio.Event()
            with trio.move_on_at(max(due[0][3], due[0][0] - TIMER_RESOLUTION_SECONDS) if due else math.inf):
                await self._earlier.wait()
            if self._reader is not None:
                self._reader.read_ready()  # inputs that came since the last wake-up count in these ticks
            now = read_at = trio.current_time()
            outgoing = self.outgoing
            oldest_waiting = now  # when the tick that made the oldest frame in `outgoing` began
            while due and due[0][3] <= now:
                deadline, _, match, _ = heapq.heappop(due)
                if not outgoing:
                    oldest_waiting = now
                next_deadline = match.due(deadline, now)
                if next_deadline is not None:
                    self._push(match, next_deadline)
                now = trio.current_time()  # where the last tick ended: when the next one starts
                if outgoing and now - oldest_waiting >= SEND_DELAY_LIMIT_SECONDS:
                    send_states(outgoing, self._ring)
                    now = trio.current_time()
                if self._reader is not None and now - read_at >= READ_INTERVAL_SECONDS:
                    send_states(outgoing, self._ring)  # what waits goes first: the read may take a while
                    self._reader.read_ready()
                    now = read_at = trio.current_time()
            send_states(outgoing, self._ring)
            if self._reader is not None:
                self._reader.scheduler_woke(due[0][0] if due else math.inf)
            await trio.lowlevel.checkpoint()


Outgoing = list[tuple["Match", bytes, Sequence[Session]]]
"""State frames waiting to be written, each with the match that made it and the sessions it goes to, in the order
they were made: a session's frames are written in the order it appears in the list."""


def send_states(outgoing: Outgoing, ring: SendRing | None = None) -> None:
    """Hand each frame to its sessions (`Session.send_state`), in order, and empty `outgoing`. The time it takes is
    billed to the match that made the frame (`Match.unbilled_write_seconds`): writing is part of what a tick costs.
    With a `ring` (server.send_ring), the frames that would be written at once go out together instead."""
    if ring is not None:
        _send_states_together(outgoing, ring)
        return
    started = time.perf_counter()
    for match, frame, sessions in outgoing:
        for session in sessions:
            try:
                session.send_state(frame)
            except Exception:  # a fault of ours, in that session's sending: the others' frames still go
                logger.exception("sending a state frame failed; the client will be sent a full snapshot")
                session.needs_snapshot = True
        written = time.perf_counter()
        match.unbilled_write_seconds += written - started
        started = written
    outgoing.clear()


def _send_states_together(outgoing: Outgoing, ring: SendRing) -> None:
    """`send_states` through `ring`: every frame whose session's outbox would write it at once
    (`Outbox.writes_now`) joins a batch sent with one system call, in order; the others go to their backlogs as
    usual. A socket takes one frame per batch (the ring's rule), so a session's second frame sends the batch
    first. The time is billed to the matches by their frames' share of the sends."""
    started = time.perf_counter()
    fds: list[int] = []
    frames: list[bytes] = []
    outboxes: list[Outbox] = []
    in_batch: set[int] = set()
    sends: dict[Match, int] = {}
    for match, frame, sessions in outgoing:
        sends[match] = sends.get(match, 0) + len(sessions)
        for session in sessions:
            outbox = session.outbox
            if outbox.fd in in_batch:
                _send_batch(ring, fds, frames, outboxes)
                in_batch.clear()
            if session.closing:
                continue
            if outbox.writes_now():
                fds.append(outbox.fd)
                frames.append(frame)
                outboxes.append(outbox)
                in_batch.add(outbox.fd)
                continue
            try:
                session.send_state(frame)
            except Exception:  # a fault of ours, in that session's sending: the others' frames still go
                logger.exception("sending a state frame failed; the client will be sent a full snapshot")
                session.needs_snapshot = True
    if fds:
        _send_batch(ring, fds, frames, outboxes)
    elapsed = time.perf_counter() - started
    total = sum(sends.values())
    for match, count in sends.items():
        if count:  # a match nobody watches has frames with no receivers
            match.unbilled_write_seconds += elapsed * count / total
    outgoing.clear()


_NOT_SENT = -errno.EIO
"""A send's result if the ring failed as a whole before saying what became of it: its connection is broken."""


def _send_batch(ring: SendRing, fds: list[int], frames: list[bytes], outboxes: list[Outbox]) -> None:
    results = [_NOT_SENT] * len(fds)
    try:
        ring.send_each(fds, frames, results)
    except OSError:
        logger.exception("io_uring failed to send %d state frames; the connections not sent to are closed", len(fds))
    for outbox, frame, result in zip(outboxes, frames, results, strict=True):
        try:
            outbox.sent_elsewhere(frame, result)
        except Exception:
            logger.exception("carrying on after a state frame was sent failed")
    fds.clear()
    frames.clear()
    outboxes.clear()


@attrs.define(eq=False)
class Match:
    id: str
    mode: Mode
    rules: Rules
    statistics: TickStatistics
    linger_seconds: float
    resume_window: float
    seed: int
    bot_takes_over: bool = False
    tick_phase: float = 0.0
    """Where in the tick interval this match ticks (0 to 1): matches with phases spread apart do not all tick at
    the same moment, so none waits for the others' ticks (lateness)."""
    pending_reservations: int = 0
    bot_level: int = MAX_BOT_LEVEL
    """How well this match's server-side bots play (game.ai), set for its players' skill."""
    on_over: Callable[[Match], None] | None = None
    """Told once when the match ends by its rules (not when it closes early): the server rates its players."""
    spectator_delay: float = 0.0
    """Seconds spectators watch behind the players (server.spectating)."""
    recorder: MatchRecorder | None = None
    """Where what the match does is recorded for replays (None: not recorded)."""
    tick_cost: float = attrs.field(default=0.0, init=False)
    """Seconds one tick of this match takes (its frames' writing included), a moving average over its last few
    dozen ticks."""
    unbilled_write_seconds: float = attrs.field(default=0.0, init=False)
    """Seconds spent writing this match's frames since its last tick was timed: the next tick's duration includes
    them (`send_states`)."""
    state: MatchState = attrs.field(init=False)
    seats: dict[int, Seat] = attrs.field(factory=dict, init=False)
    spectators: set[Session] = attrs.field(factory=set, init=False)
    finished: bool = attrs.field(default=False, init=False)
    _next_player_id: int = attrs.field(default=1, init=False)
    _snapshots: SnapshotBuilder = attrs.field(factory=lambda: SnapshotBuilder(SERVER_PLAYER_FIELDS), init=False)
    _feed: DelayedFeed | None = attrs.field(default=None, init=False)
    _membership_changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _ended_by_operator: bool = attrs.field(default=False, init=False)
    _paused: bool = attrs.field(default=False, init=False)
    """True while the match holds still between two ticks (a checkpoint is being taken)."""
    _parked: bool = attrs.field(default=False, init=False)
    """Its scheduler found it paused and left it out until `unpause` puts it back."""
    _scheduler: TickScheduler | None = attrs.field(default=None, init=False)
    _ticking: trio.Event | None = attrs.field(default=None, init=False)
    """Set when this match ticks no more (over, emptied, ended, handed over, or failed): its task goes on."""
    _tick_error: Exception | None = attrs.field(default=None, init=False)
    _last_deadline: float | None = attrs.field(default=None, init=False)
    """When its last tick was due."""
    moved_to: str | None = attrs.field(default=None, init=False)
    """The WebSocket URL of the server that adopted this match: it goes on there, and stops here."""
    _notices: list[Notice] = attrs.field(factory=list, init=False)
    _interval: float = attrs.field(default=0.0, init=False)
    """Seconds from one tick to the next (the rules' tick rate, worked out once)."""
    """Arrivals, departures and takeovers since the last tick, sent with its events."""

    def __attrs_post_init__(self) -> None:
        self._interval = 1 / self.rules.tick_rate
        self.state = MatchState.initial(seed=self.seed, rules=self.rules)
        self._snapshots.start(self.state)
        delay_ticks = round(self.spectator_delay * self.rules.tick_rate)
        if delay_ticks > 0:
            self._feed = DelayedFeed(delay_ticks=delay_ticks)

    @property
    def humans(self) -> list[Seat]:
        return [seat for seat in self.seats.values() if seat.subject is not None]

    @property
    def bot_count(self) -> int:
        return sum(1 for seat in self.seats.values() if seat.subject is None)

    @property
    def final_snapshot(self) -> bytes:
        """The last state sent, with the events of its tick (the match's end, once over), encoded: what a player
        who comes back after the end is shown."""
        return encode(self._snapshots.snapshot())

    def standings(self) -> tuple[list[ScoreLine], dict[int, str]]:
        """The scoreboard, best first (as `match_end` ranks it), and the identity of each player id (bots have none)."""
        ranked = sorted(self.state.players.values(), key=lambda p: (-p.kills, p.deaths, p.id))
        lines = [ScoreLine(player=p.id, name=p.name, kills=p.kills, deaths=p.deaths) for p in ranked]
        subjects = {seat.player_id: seat.subject for seat in self.humans if seat.subject is not None}
        return lines, subjects

    def summary(self) -> dict[str, Any]:
        """What match listings show."""
        state = self.state
        if state.over or self.finished:
            phase, time_left = "over", 0.0
        elif state.end_tick is None:
            phase, time_left = "waiting", float(self.rules.duration_seconds)
        else:
            phase, time_left = "playing", max(0.0, (state.end_tick - state.tick) / self.rules.tick_rate)
        return {
            "id": self.id,
            "mode": self.mode.name,
            "players": len(self.humans),
            "bots": self.bot_count,
            "spectators": len(self.spectators),
            "max_players": self.mode.max_players,
            "open_seats": max(0, self.mode.max_players - len(self.seats) - self.pending_reservations)
            if self.has_room()
            else 0,
            "state": phase,
            "time_left": round(time_left, 1),
            "load": round(self.tick_cost * self.rules.tick_rate, 4),
        }

    def has_room(self) -> bool:
        """Whether another reservation fits: not over, and seats plus pending reservations below the maximum."""
        taken = len(self.seats) + self.pending_reservations
        return not (self.finished or self.state.over) and taken < self.mode.max_players

    def add_bot(self) -> None:
        player_id = self._take_player_id()
        self.state = game.add_player(self.state, player_id, f"bot {player_id}")
        if self.recorder is not None:
            self.recorder.join(player_id, f"bot {player_id}")
        self.seats[player_id] = Seat(player_id=player_id, subject=None)

    def add_player(self, session: Session, subject: str) -> None:
        """Seat a session holding a redeemed reservation; it gets `joined` now, a full snapshot next tick.

        Raises:
            SeatError: if the match is over or full.
        """
        if self.finished or self.state.over:
            raise SeatError("the match is over", reason="match_over")
        if self.state.full:
            raise SeatError("the match is full", reason="match_full")
        player_id = self._take_player_id()
        name = session.name or f"player {player_id}"
        self.state = game.add_player(self.state, player_id, name)
        if self.recorder is not None:
            self.recorder.join(player_id, name)
        seat = Seat(player_id=player_id, subject=subject)
        self.seats[player_id] = seat
        self._notices.append(Notice(what="join", player=player_id, name=name))
        self._yield_bot_seats()
        self._attach(seat, session, resumed=False)
        logger.info("match %s: %s joined as player %d", self.id, session.name, player_id, extra={**session.log_fields})

    def resume(self, session: Session, subject: str, token: str) -> bool:
        """Give a held seat back to its player, on a new connection; True if this is the seat's first resume
        since the match moved here from another server (the player followed `moved`, no connection dropped).

        Raises:
            SeatError: if the token is not this match's, is another player's, or its window has passed, or the
                match is over.
        """
        seat = next((s for s in self.humans if s.holds(token)), None)
        if seat is None:
            raise SeatError(
                "unknown resume token: it was already used, or the seat was released", reason="unknown_token"
            )
        if seat.subject != subject:
            raise SeatError("this resume token belongs to another player", reason="not_yours")
        if self.finished or self.state.over:
            raise SeatError("the match is over: queue for a new one", reason="match_over")
        if seat.session is not None:
            seat.session.close(4002, "replaced: the same player resumed on another connection")
            self.detach(seat.session)
        if seat.held_until is not None and trio.current_time() > seat.held_until:
            self._release(seat)
            raise SeatError(
                f"the seat was released: the player did not come back within {self.resume_window:g} s",
                reason="window_expired",
            )
        self._attach(seat, session, resumed=True, resumed_with=token)
        logger.info("match %s: player %d resumed", self.id, seat.player_id, extra=session.log_fields)
        followed_a_move, seat.moved_here = seat.moved_here, False
        return followed_a_move

    def take_over(self, old: Session, new: Session) -> None:
        """Move a seat to a newer connection of the same player (the older one is being closed)."""
        seat = next((s for s in self.seats.values() if s.session is old), None)
        if seat is not None:
            self._attach(seat, new, resumed=True)

    def add_spectator(self, session: Session) -> None:
        if self.finished:
            raise SeatError("the match is over", reason="match_over")
        self.spectators.add(session)
        session.match = self
        session.needs_snapshot = True
        session.send_control(encode(Spectating(match=self.id, mode=self.mode.name, delay=self.spectator_delay)))

    def detach(self, session: Session) -> None:
        """The session's connection is gone: hold its seat for `resume_window` seconds."""
        self.spectators.discard(session)
        for seat in self.seats.values():
            if seat.session is session:
                seat.session = None
                seat.held_until = trio.current_time() + self.resume_window
                logger.info(
                    "match %s: player %d dropped; seat held %g s",
                    self.id,
                    seat.player_id,
                    self.resume_window,
                    extra={"match": self.id, "player": seat.subject},
                )
        if session.match is self:
            session.match, session.player_id = None, None
            session.reset_inputs()
        self._membership_changed.set()

    def remove(self, session: Session, *, reason: str) -> None:
        """The player leaves for good (or the spectator stops watching); tell the session why."""
        if session.match is not self:
            return
        self.spectators.discard(session)
        for seat in list(self.seats.values()):
            if seat.session is session:
                self._release(seat)
        session.match, session.player_id = None, None
        session.reset_inputs()
        session.send_control(encode(Left(match=self.id, reason=reason)))
        self._membership_changed.set()

    def reservation_settled(self) -> None:
        """One reservation for this match was redeemed or expired."""
        self.pending_reservations = max(0, self.pending_reservations - 1)
        self._membership_changed.set()

    def _take_player_id(self) -> int:
        player_id = self._next_player_id
        self._next_player_id += 1
        return player_id

    def _attach(self, seat: Seat, session: Session, *, resumed: bool, resumed_with: str | None = None) -> None:
        if seat.session is not None and seat.session is not session:
            seat.session.match, seat.session.player_id = None, None
        seat.session, seat.held_until = session, None
        seat.previous_token = resumed_with
        seat.resume_token = secrets.token_urlsafe(18)
        session.match, session.player_id = self, seat.player_id
        session.reset_inputs()
        session.needs_snapshot = True
        joined = Joined(
            match=self.id,
            mode=self.mode.name,
            player=seat.player_id,
            resume=seat.resume_token,
            resumed=resumed,
            resume_window=self.resume_window,
        )
        session.send_control(encode(joined))
        self._membership_changed.set()

    def _yield_bot_seats(self) -> None:
        """Bots give up their seats while the match has more participants than its mode keeps it at."""
        target = self.mode.participants_target
        bots = [seat for seat in self.seats.values() if seat.subject is None]
        while bots and len(self.seats) > target:
            bot = bots.pop()
            player = self.state.players.get(bot.player_id)
            self._notices.append(Notice(what="leave", player=bot.player_id, name=player.name if player else "bot"))
            self._remove_seat(bot)

    def _release(self, seat: Seat) -> None:
        """A player's seat is given up: a bot takes it over if the match would fall below its mode's participant
        target (the avatar and its score stay), else it goes."""
        player = self.state.players.get(seat.player_id)
        name = player.name if player else ""
        running = not (self.finished or self.state.over)
        if running and seat.subject is not None and len(self.seats) <= self.mode.participants_target:
            seat.subject, seat.session, seat.held_until = None, None, None
            self._notices.append(Notice(what="takeover", player=seat.player_id, name=name))
            logger.info("match %s: a bot took over player %d's seat", self.id, seat.player_id, extra={"match": self.id})
            return
        if running:
            self._notices.append(Notice(what="leave", player=seat.player_id, name=name))
        self._remove_seat(seat)

    def _remove_seat(self, seat: Seat) -> None:
        del self.seats[seat.player_id]
        self.state = game.remove_player(self.state, seat.player_id)
        if self.recorder is not None:
            self.recorder.leave(seat.player_id)
        logger.info(
            "match %s: player %d's seat released",
            self.id,
            seat.player_id,
            extra={"match": self.id, "player": seat.subject},
        )

    def _keeps_running(self) -> bool:
        if self._ended_by_operator:
            return False
        for seat in self.seats.values():  # twice a tick: a loop, no generator for any()
            if seat.subject is not None:
                return True
        return self.pending_reservations > 0

    def pause(self) -> None:
        """Hold still from now on (between two ticks: `state` does not change) until `unpause` or `hand_over`."""
        self._paused = True

    def unpause(self) -> None:
        """Go on at once (with no catch-up burst for the ticks it held still)."""
        self._paused = False
        if self._parked and self._scheduler is not None:
            self._parked = False
            self._scheduler.schedule(self, trio.current_time())

    def hand_over(self, url: str) -> None:
        """Another server adopted this match's checkpoint: stop here, and tell every player and spectator to go
        on at `url` (`moved`)."""
        self.moved_to = url
        self.unpause()
        self._stop_ticking()
        self._membership_changed.set()

    def checkpoint(self) -> MatchCheckpoint:
        """This match as another server continues it (take it while paused)."""
        seats = tuple(
            SeatCheckpoint(
                player_id=seat.player_id,
                subject=seat.subject,
                resume_token=seat.resume_token,
                previous_token=seat.previous_token,
            )
            for seat in self.seats.values()
        )
        return MatchCheckpoint(
            match_id=self.id,
            mode=self.mode.name,
            seed=self.seed,
            bot_level=self.bot_level,
            rules=self.rules,
            state=self.state,
            seats=seats,
            next_player_id=self._next_player_id,
        )

    def continue_from(self, checkpoint: MatchCheckpoint) -> None:
        """Take over a match another server checkpointed (before `run`): its state and seats, each player's
        seat held for `resume_window` seconds for it to resume here with the token it holds."""
        self.state = checkpoint.state
        self._snapshots = SnapshotBuilder(SERVER_PLAYER_FIELDS)
        self._snapshots.start(self.state)
        self._next_player_id = checkpoint.next_player_id
        held_until = trio.current_time() + self.resume_window
        for saved in checkpoint.seats:
            self.seats[saved.player_id] = Seat(
                player_id=saved.player_id,
                subject=saved.subject,
                resume_token=saved.resume_token,
                previous_token=saved.previous_token,
                held_until=held_until if saved.subject is not None else None,
                moved_here=saved.subject is not None,
            )

    def end(self) -> None:
        """An operator ends the match: it stops before its next tick and everyone is told `left` (match_closed)."""
        self._ended_by_operator = True
        self._stop_ticking()
        self._membership_changed.set()

    def monitor(self) -> dict[str, Any]:
        """What the operators' monitor shows of this match: its summary, cost, and every seat."""
        players = []
        for player_id, seat in sorted(self.seats.items()):
            player = self.state.players.get(player_id)
            players.append(
                {
                    "id": player_id,
                    "name": player.name if player else "",
                    "subject": seat.subject,
                    "status": seat.status,
                    "ping_ms": seat.session.rtt_ms if seat.session else None,
                    "kills": player.kills if player else 0,
                    "deaths": player.deaths if player else 0,
                    "remote": seat.session.remote if seat.session else None,
                }
            )
        return {
            **self.summary(),
            "tick": self.state.tick,
            "tick_cost_ms": round(self.tick_cost * 1000, 3),
            "seats": players,
        }

    async def run(
        self, scheduler: TickScheduler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Tick (through `scheduler`) until the match is over (then linger) or has no one left to play for."""
        interval = 1 / self.rules.tick_rate
        now = trio.current_time()
        deadline = (math.floor(now / interval) + self.tick_phase) * interval  # the first tick is one interval on
        task_status.started()
        try:
            if self._ticks_on():
                self._scheduler = scheduler
                self._ticking = trio.Event()
                scheduler.schedule(self, deadline + interval)
                await self._ticking.wait()
                if self._tick_error is not None:
                    raise self._tick_error
                if self._last_deadline is not None:
                    deadline = self._last_deadline
            if self.state.over and self.on_over is not None:
                self.on_over(self)
            if self.state.over and self._feed is not None:
                # spectators are behind: show them the end too, at the tick rate
                tick = self.state.tick
                for _ in range(self._feed.delay_ticks):
                    deadline += interval
                    await trio.sleep_until(deadline)
                    tick += 1
                    outgoing: Outgoing = []
                    self._send_to_spectators(tick, outgoing)
                    send_states(outgoing)
            if self.state.over:
                with trio.move_on_after(self.linger_seconds):
                    while any(seat.session for seat in self.seats.values()) or self.spectators:
                        self._membership_changed = trio.Event()
                        await self._membership_changed.wait()
        finally:
            self.finished = True
            reason = "match_over" if self.state.over else "moved" if self.moved_to else "match_closed"
            if self.recorder is not None:
                self.recorder.end(self.state, reason)
            for session in [seat.session for seat in self.seats.values() if seat.session] + list(self.spectators):
                if self.moved_to is None:
                    self.remove(session, reason=reason)
                else:
                    session.match, session.player_id = None, None
                    session.reset_inputs()
                    session.send_control(encode(Moved(match=self.id, url=self.moved_to)))

    def _ticks_on(self) -> bool:
        return self._keeps_running() and not self.state.over and self.moved_to is None and not self.finished

    @property
    def interval(self) -> float:
        """Seconds from one tick to the next."""
        return self._interval

    def due(self, deadline: float, now: float) -> float | None:
        """The scheduler's call when this match's tick at `deadline` is due (`now`: its clock, as it calls): tick,
        and say when the next one is (None: this match ticks no more, or holds still until `unpause`)."""
        if not self._ticks_on():  # handed over, ended or emptied while it waited: the last state stands
            self._stop_ticking()
            return None
        if self._paused:
            self._parked = True
            return None
        interval = self._interval
        started = now
        lateness = max(0.0, started - deadline)  # run early with others (TickScheduler): on time
        if lateness > MAX_CATCH_UP_TICKS * interval:
            skipped = int(lateness / interval)
            deadline += skipped * interval
            self.statistics.skipped_ticks += skipped
        self._last_deadline = deadline
        assert self._scheduler is not None  # set before it is scheduled (`run`)
        try:
            self.tick(self._scheduler.outgoing)
        except Exception as error:  # this match's own failure: its task reports it, the other matches tick on
            self._tick_error = error
            self._stop_ticking()
            return None
        # what the tick took, with the writing of the frames of its last tick (written since, `send_states`)
        duration = trio.current_time() - started + self.unbilled_write_seconds
        self.unbilled_write_seconds = 0.0
        self.tick_cost += (duration - self.tick_cost) * TICK_COST_SMOOTHING
        self.statistics.record(started, lateness, duration)
        if not self._ticks_on():
            self._stop_ticking()
            return None
        return deadline + interval

    def _stop_ticking(self) -> None:
        if self._ticking is not None:
            self._ticking.set()

    def _send_to_spectators(self, tick: int, outgoing: Outgoing) -> None:
        """Spectators get what the players got `spectator_delay` ago (a keyframe and catch-up when they need it),
        added to `outgoing`."""
        feed = self._feed
        assert feed is not None
        watching: list[Session] = []
        for session in self.spectators:
            if session.needs_snapshot:
                frames = feed.catch_up(tick)
                if frames:
                    session.needs_snapshot = False
                    outgoing += [(self, frame, (session,)) for frame in frames]
            else:
                watching.append(session)
        if watching:
            due = feed.due(tick)
            if due is not None:
                outgoing.append((self, due, watching))

    def tick(self, outgoing: Outgoing) -> None:
        """Advance the match one tick and add what every player and spectator is sent to `outgoing` (in the order
        it must be written: `send_states`)."""
        now = trio.current_time()
        for seat in list(self.seats.values()):
            if seat.held_until is not None and now > seat.held_until:
                self._release(seat)
        # One pass over the seats, in player-id order: each one's input, what the server adds to its player in
        # the delta (ping, last input applied, seat status), and who receives the tick.
        inputs: dict[int, PlayerInput] = {}
        server_fields: dict[int, tuple[FieldValue, ...]] = {}
        receivers: list[Session] = []
        state, bot_takes_over, next_tick = self.state, self.bot_takes_over, self.state.tick + 1
        for player_id, seat in sorted(self.seats.items()):
            session = seat.session
            if seat.subject is None or (session is None and bot_takes_over):
                inputs[player_id] = game.bot_input(state, player_id, self.bot_level)
            elif session is not None:
                player_input = session.next_input(next_tick)
                if player_input is not None:
                    inputs[player_id] = player_input
            if session is None:
                server_fields[player_id] = (0, 0, seat.status)
            else:  # connected, so "playing" (`Seat.status`, read without a call for every player of every tick)
                latest = session.latest_input
                server_fields[player_id] = (session.rtt_ms, latest.seq if latest else 0, PLAYING)
                receivers.append(session)
        self.state, events = game.step(state, inputs)
        if self.recorder is not None:
            self.recorder.tick(self.state.tick, inputs, self.state)
        if self._notices:
            events, self._notices = (*events, *self._notices), []
        delta_frame = binary_frame(encode(self._snapshots.advance(self.state, events, server_fields)))
        snapshot_frame: bytes | None = None
        feed = self._feed
        if feed is None:
            receivers += self.spectators
        else:
            if feed.wants_keyframe(self.state.tick):
                snapshot_frame = binary_frame(encode(self._snapshots.snapshot()))
                feed.record(self.state.tick, delta_frame, snapshot_frame)
            else:
                feed.record(self.state.tick, delta_frame)
            self._send_to_spectators(self.state.tick, outgoing)
        resynced = [session for session in receivers if session.needs_snapshot]
        if resynced:  # whoever just arrived or fell behind: the full snapshot instead of the delta
            receivers = [session for session in receivers if not session.needs_snapshot]
            snapshot_frame = snapshot_frame or binary_frame(encode(self._snapshots.snapshot()))
            for session in resynced:
                session.needs_snapshot = False
            outgoing.append((self, snapshot_frame, resynced))
        outgoing.append((self, delta_frame, receivers))
