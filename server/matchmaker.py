"""Matchmaking: players queue for a mode; matches are formed from the queue; each player gets a seat reservation.

Rules: a queue is served oldest ticket first. In a mode with backfill, a player goes to a running match with a
free seat first. Otherwise a mode's match forms as soon as `max_players` tickets wait, or
once the oldest ticket has waited `fill_after_seconds` and at least `min_players` wait (the match starts with
fewer), or, if the mode fills with bots, with at least one player and bots for the missing seats up to
`min_players`. Every player of a formed match gets a `Reservation` that expires after `reservation_seconds`;
joining a match needs one, once. Time is passed in (`now`, seconds), never read here.

The matchmaker knows matches only through `MatchDirectory`: it never imports the match runner, so another
directory (shared by several server processes) can stand in for the in-memory one.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from game.ai import MAX_BOT_LEVEL


@attrs.frozen(kw_only=True)
class Mode:
    name: str
    min_players: int
    max_players: int
    fill_after_seconds: float = 10.0
    fill_with_bots: bool = False
    backfill: bool = False
    """Whether players are also seated in running matches of this mode that have a free seat (drop-in)."""
    fill_to: int = 0
    """With `fill_with_bots`: the participants (players and bots) a match of this mode keeps while it runs: bots
    fill the missing seats, give them up to arriving players, and take over the seats players leave. 0: as many as
    `min_players`."""

    @property
    def participants_target(self) -> int:
        """How many participants bots keep a match at (0: bots do not fill)."""
        return max(self.min_players, self.fill_to) if self.fill_with_bots else 0


DEFAULT_MODES = (
    Mode(name="duel", min_players=2, max_players=2, fill_after_seconds=10.0, fill_with_bots=True),
    Mode(
        name="ffa", min_players=2, max_players=8, fill_after_seconds=5.0, fill_with_bots=True, backfill=True, fill_to=4
    ),
)


def modes_by_name(modes: Iterable[Mode]) -> dict[str, Mode]:
    return {mode.name: mode for mode in modes}


@attrs.frozen
class Ticket:
    id: str
    subject: str
    mode: str
    queued_at: float
    rating: float = 0.0
    """The player's skill rating (server.ratings: mu - 3 sigma) when it queued."""


SKILL_WINDOW_START = 5.0
"""Rating points a new ticket accepts either side of its own (about a fifth of the spread between a new player
and a good one)."""
SKILL_WINDOW_GROWTH = 2.5
"""Rating points the window widens by for every second a ticket waits."""
SKILL_WINDOW_OPEN_AFTER = 20.0
"""Seconds after which a ticket takes anyone: a match with a mismatch beats no match."""


BOT_LEVEL_RATINGS = (5.0, 15.0, 25.0)
"""The ratings (mu - 3 sigma) from which bots of level 1, 2 and 3 fill a match: a new player (rating 0) meets
level 0, the easiest."""


def bot_level_for(rating: float) -> int:
    """The bots' level for players of `rating` (game.ai: 0 easiest to MAX_BOT_LEVEL)."""
    return sum(1 for threshold in BOT_LEVEL_RATINGS if rating >= threshold)


def skill_window(waited: float) -> float:
    """How far apart in rating the players a ticket that waited `waited` seconds may be matched with."""
    if waited >= SKILL_WINDOW_OPEN_AFTER:
        return math.inf
    return SKILL_WINDOW_START + SKILL_WINDOW_GROWTH * max(0.0, waited)


@attrs.frozen
class Reservation:
    """A seat held in `match_id` for `subject` until `expires_at`; `id` is the secret a client joins with."""

    id: str
    match_id: str
    subject: str
    mode: str
    expires_at: float
    queued_seconds: float = 0.0
    """How long the player waited in the queue for it."""


@attrs.frozen
class FormedMatch:
    match_id: str
    mode: str
    reservations: tuple[Reservation, ...]
    bots: int
    bot_level: int = MAX_BOT_LEVEL


@attrs.frozen
class QueueStatus:
    position: int
    """1 for the oldest ticket of its mode."""
    waiting: int
    estimated_wait_seconds: float


class MatchDirectory(Protocol):
    """Where matches are created and found; the in-memory one serves a single process."""

    def create_match(self, mode: Mode, *, players: int, bots: int, bot_level: int = MAX_BOT_LEVEL) -> str:
        """Create a match for `players` reserved seats plus `bots`, and return its id."""

    def open_seat(self, mode: Mode) -> str | None:
        """Hold a free seat for one reservation in a running match of `mode`; return that match's id, or None."""

    def has_room_for_a_match(self) -> bool:
        """Whether a new match may start here now (the server's load leaves room for it)."""


class MatchmakingError(Exception):
    """A request the matchmaker refuses; the message says why."""


@attrs.define(eq=False)
class Matchmaker:
    directory: MatchDirectory
    modes: dict[str, Mode] = attrs.field(converter=modes_by_name, factory=lambda: modes_by_name(DEFAULT_MODES))
    reservation_seconds: float = 15.0
    _queues: dict[str, list[Ticket]] = attrs.field(factory=dict, init=False)
    _tickets_by_subject: dict[str, Ticket] = attrs.field(factory=dict, init=False)
    _reservations: dict[str, Reservation] = attrs.field(factory=dict, init=False)
    _recent_waits: dict[str, list[float]] = attrs.field(factory=dict, init=False)

    def enqueue(self, subject: str, mode_name: str, *, now: float, rating: float = 0.0) -> Ticket:
        """Queue a player for a mode; a player already queued is moved to the new mode's queue.

        Raises:
            MatchmakingError: if the mode does not exist.
        """
        mode = self.modes.get(mode_name)
        if mode is None:
            raise MatchmakingError(f"unknown mode {mode_name!r}: choose one of {', '.join(sorted(self.modes))}")
        self.cancel(subject)
        ticket = Ticket(id=secrets.token_urlsafe(9), subject=subject, mode=mode.name, queued_at=now, rating=rating)
        self._queues.setdefault(mode.name, []).append(ticket)
        self._tickets_by_subject[subject] = ticket
        return ticket

    def cancel(self, subject: str) -> Ticket | None:
        """Take a player's ticket out of its queue; returns it, or None if the player was not queued."""
        ticket = self._tickets_by_subject.pop(subject, None)
        if ticket is not None:
            self._queues[ticket.mode].remove(ticket)
        return ticket

    def status(self, subject: str, *, now: float) -> QueueStatus | None:
        """Where a queued player stands, or None if not queued."""
        ticket = self._tickets_by_subject.get(subject)
        if ticket is None:
            return None
        queue = self._queues[ticket.mode]
        position = queue.index(ticket) + 1
        mode = self.modes[ticket.mode]
        waited = now - ticket.queued_at
        if len(queue) >= mode.max_players and position <= mode.max_players:
            estimate = 0.0
        else:
            estimate = max(0.0, mode.fill_after_seconds - (now - queue[0].queued_at))
            recent = self._recent_waits.get(ticket.mode)
            if recent:
                estimate = min(estimate, max(0.0, sorted(recent)[len(recent) // 2] - waited))
        return QueueStatus(position=position, waiting=len(queue), estimated_wait_seconds=round(estimate, 1))

    def ticket(self, subject: str) -> Ticket | None:
        return self._tickets_by_subject.get(subject)

    def queued(self) -> Iterable[Ticket]:
        return list(self._tickets_by_subject.values())

    def form_matches(self, *, now: float) -> list[FormedMatch]:
        """Seat queued players in running matches (modes with backfill), then form every match the queues allow
        at `now`, creating them in the directory while it has room for them (admission by load)."""
        formed: list[FormedMatch] = []
        for mode_name, queue in self._queues.items():
            mode = self.modes[mode_name]
            while mode.backfill and queue:
                match_id = self.directory.open_seat(mode)
                if match_id is None:
                    break
                ticket = queue[0]
                reservation = self._reserve(ticket, match_id, now)
                formed.append(FormedMatch(match_id=match_id, mode=mode.name, reservations=(reservation,), bots=0))
            while queue and self.directory.has_room_for_a_match():  # if not, they wait: no seat is better
                taken, bots = self._next_group(mode, queue, now)
                if not taken:
                    break
                formed.append(self._form(mode, taken, bots, now))
        return formed

    def _next_group(self, mode: Mode, queue: list[Ticket], now: float) -> tuple[Sequence[Ticket], int]:
        """The next match to form: for each ticket, oldest first, the waiting players within its skill window
        (`skill_window`, widening as it waits); a full match at once, or after the mode's wait a smaller one (with
        bots, if the mode fills with them)."""
        for anchor in queue:
            waited = now - anchor.queued_at
            window = skill_window(waited)
            group = [ticket for ticket in queue if abs(ticket.rating - anchor.rating) <= window]
            if len(group) >= mode.max_players:
                return group[: mode.max_players], 0
            if waited < mode.fill_after_seconds:
                continue
            if mode.fill_with_bots:
                return group, max(0, min(mode.max_players, mode.participants_target) - len(group))
            if len(group) >= mode.min_players:
                return group, 0
        return (), 0

    def _form(self, mode: Mode, tickets: Sequence[Ticket], bots: int, now: float) -> FormedMatch:
        level = bot_level_for(sum(ticket.rating for ticket in tickets) / len(tickets))
        match_id = self.directory.create_match(mode, players=len(tickets), bots=bots, bot_level=level)
        reservations = tuple(self._reserve(ticket, match_id, now) for ticket in list(tickets))
        return FormedMatch(match_id=match_id, mode=mode.name, reservations=reservations, bots=bots, bot_level=level)

    def _reserve(self, ticket: Ticket, match_id: str, now: float) -> Reservation:
        """Take a ticket out of its queue and give its player a reservation in `match_id`."""
        self.cancel(ticket.subject)
        waits = self._recent_waits.setdefault(ticket.mode, [])
        waits.append(now - ticket.queued_at)
        del waits[:-50]
        reservation = Reservation(
            id=secrets.token_urlsafe(18),
            match_id=match_id,
            subject=ticket.subject,
            mode=ticket.mode,
            expires_at=now + self.reservation_seconds,
            queued_seconds=now - ticket.queued_at,
        )
        self._reservations[reservation.id] = reservation
        return reservation

    def hold(self, reservation: Reservation) -> None:
        """Keep a reservation made elsewhere (by the fleet's matchmaker, for a match of this server) until it is
        redeemed or expires."""
        self._reservations[reservation.id] = reservation

    def redeem(self, reservation_id: str, subject: str, *, now: float) -> Reservation:
        """Use a reservation to take its seat; each reservation works once, for its own player, before it expires.

        Raises:
            MatchmakingError: saying why the reservation cannot be used.
        """
        reservation = self._reservations.get(reservation_id)
        if reservation is None:
            raise MatchmakingError("no such reservation: it was never made, or was already used or expired")
        if reservation.subject != subject:
            raise MatchmakingError("this reservation belongs to another player")
        del self._reservations[reservation_id]
        if now > reservation.expires_at:
            raise MatchmakingError("reservation expired: queue again")
        return reservation

    def expire_reservations(self, *, now: float) -> list[Reservation]:
        """Drop the reservations that expired unused, and return them (their seats are free again)."""
        expired = [r for r in self._reservations.values() if now > r.expires_at]
        for reservation in expired:
            del self._reservations[reservation.id]
        return expired
