"""Matchmaking as the server uses it: one interface, two implementations. `LocalMatchmaking` (here) serves one
process from memory, as Arena does with no `--redis`; `server.fleet_matchmaking.FleetMatchmaking` shares the
queue with every server of a fleet through Redis and places matches on the server with the most room.

Rules: every method but `run` returns at once and never waits on anything outside the process. A player's
reservation is always held by the server that hosts its match, so that `join` is answered from memory there.
What a player is told (`reserved`, `queued`) goes out through `send(subject, message)`, to the player's session
on this server if it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from server.directory import InMemoryMatchDirectory
from server.matchmaker import Matchmaker, Mode, Reservation, Ticket
from server.messages import Queued, Reserved
from server.metrics import Metrics

MATCHMAKING_INTERVAL = 0.1
"""Seconds between two rounds of forming matches."""
QUEUE_STATUS_INTERVAL = 1.0
"""Seconds between two `queued` updates to a waiting player."""

SendToPlayer = Callable[[str, Any], bool]
"""Send a message to the player `subject`'s session on this server; False if it has none here."""


class Matchmaking(Protocol):
    """What the server asks of matchmaking (see the module's rules)."""

    @property
    def modes(self) -> dict[str, Mode]:
        """The modes players can queue for, by name."""

    def enqueue(self, subject: str, mode: str, *, rating: float) -> None:
        """Queue a player (moving it if it waits in another mode's queue).

        Raises:
            MatchmakingError: if it cannot be queued (an unknown mode; a full queue); the message says why.
        """

    def cancel(self, subject: str) -> bool:
        """Take the player out of its queue; False if it was not queued here."""

    def queued(self) -> list[Ticket]:
        """The tickets of this server's players that wait, `queued_at` in trio time."""

    def queue_status(self, subject: str) -> Queued | None:
        """Where the player stands in its queue, or None if it does not wait here."""

    def redeem(self, reservation_id: str, subject: str) -> Reservation:
        """Use a reservation held for a match of this server (once, by its own player, before it expires).

        Raises:
            MatchmakingError: saying why it cannot be used.
        """

    def health(self) -> dict[str, Any]:
        """What /healthz shows of matchmaking: at least `status` ("ok", or why matches are not being formed)."""

    async def run(self) -> None:
        """Form matches and keep players told until cancelled."""


@attrs.define(eq=False)
class LocalMatchmaking:
    """This process's queue and matches, in memory (server.matchmaker does the deciding)."""

    matchmaker: Matchmaker
    directory: InMemoryMatchDirectory
    metrics: Metrics
    send: SendToPlayer

    @property
    def modes(self) -> dict[str, Mode]:
        return self.matchmaker.modes

    def enqueue(self, subject: str, mode: str, *, rating: float) -> None:
        self.matchmaker.enqueue(subject, mode, now=trio.current_time(), rating=rating)

    def cancel(self, subject: str) -> bool:
        return self.matchmaker.cancel(subject) is not None

    def queued(self) -> list[Ticket]:
        return list(self.matchmaker.queued())

    def queue_status(self, subject: str) -> Queued | None:
        status = self.matchmaker.status(subject, now=trio.current_time())
        ticket = self.matchmaker.ticket(subject)
        if status is None or ticket is None:
            return None
        return Queued(
            mode=ticket.mode,
            position=status.position,
            waiting=status.waiting,
            estimated_wait=status.estimated_wait_seconds,
        )

    def redeem(self, reservation_id: str, subject: str) -> Reservation:
        return self.matchmaker.redeem(reservation_id, subject, now=trio.current_time())

    def health(self) -> dict[str, Any]:
        return {"status": "ok" if self.directory.has_room_for_a_match() else "full: this server's ticks use its budget"}

    async def run(self) -> None:
        next_status_at = trio.current_time()
        while True:
            await trio.sleep(MATCHMAKING_INTERVAL)
            now = trio.current_time()
            for formed in self.matchmaker.form_matches(now=now):
                self.metrics.matches_formed.labels(mode=formed.mode).inc()
                self.metrics.bots_added.inc(formed.bots)
                for reservation in formed.reservations:
                    self.metrics.queue_wait.labels(mode=reservation.mode).observe(reservation.queued_seconds)
                    self.send(reservation.subject, reserved_message(reservation, now=now, url=None))
            expire_reservations(self.matchmaker, self.directory, self.metrics, now=now)
            if now >= next_status_at:
                next_status_at = now + QUEUE_STATUS_INTERVAL
                for ticket in self.matchmaker.queued():
                    status = self.queue_status(ticket.subject)
                    if status is not None:
                        self.send(ticket.subject, status)


def reserved_message(reservation: Reservation, *, now: float, url: str | None) -> Reserved:
    """What a player is told of its reservation; `url`: the server hosting the match (None: this one)."""
    return Reserved(
        match=reservation.match_id,
        mode=reservation.mode,
        reservation=reservation.id,
        expires_in=round(max(0.0, reservation.expires_at - now), 1),
        url=url,
    )


def expire_reservations(
    matchmaker: Matchmaker, directory: InMemoryMatchDirectory, metrics: Metrics, *, now: float
) -> None:
    """Drop the reservations that expired unused: their seats are free again."""
    for expired in matchmaker.expire_reservations(now=now):
        metrics.reservations_expired.inc()
        match = directory.matches.get(expired.match_id)
        if match is not None:
            match.reservation_settled()
