"""Matchmaking for a fleet of servers sharing one Redis: one queue for the whole fleet, matches placed on the
server with the most room, and each player told the URL of the server that hosts its match.

Rules:
- A player queues on the server it is connected to, which holds its ticket in memory and keeps a copy in the
  Redis hash `arena:tickets` up to date every round (`MATCHMAKING_INTERVAL`): it writes the copies of its players'
  tickets that are missing (Redis restarted, say) and deletes those its players no longer hold. So Redis holds
  nothing a server could not write again, and no write can get lost between a server and Redis.
- One server at a time forms matches: the one holding the lease `arena:matchmaker` (renewed every round,
  expiring after `LEASE_MS`, so another takes over within seconds if it dies or loses Redis). It reads the fleet's
  tickets, groups them as server.matchmaker does (skill windows, fills, backfill), takes each group's tickets out
  of the hash in one atomic script (only if none changed meanwhile; a taken ticket is marked, so that its server
  does not write it back) and sends the match to the server that hosts it.
- A match goes to the admitting server with the lowest tick load (from the servers' presence, counting what this
  round placed already); a backfill seat to a running match with an open seat. The host creates the match, holds
  its reservations (so `join` is answered from memory there) and tells each player's server, which tells the
  player: `reserved` with the host's URL, or none if the player is connected to the host already.
- Servers talk through per-server lists in Redis (`arena:inbox:<server>`, expiring when nobody reads them).
- Players are the fleet's: each server records, per player, the server of its newest connection (the server of
  an older one closes it with 4002) and the server hosting its seat (a resume elsewhere is sent there with
  `moved`, or refused if that server is gone).
- A server that drains hands each running match over (`hand_over_matches`): it holds the match still between two
  ticks, writes its checkpoint (server.checkpoint) into Redis, and the server with the most room adopts it and
  continues from that tick; then every player and spectator is sent `moved`. With no taker the match stays.
- Nothing here runs on a tick's path. While Redis cannot be reached, matchmaking pauses (`health()` says so),
  players stay queued on their servers and running matches go on; it resumes by itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from typing import Any

import attrs
import coredis
import trio

from server import checkpoint
from server.directory import InMemoryMatchDirectory
from server.fleet import REDIS_FAILURES, REDIS_TIMEOUT_SECONDS, FleetPresence
from server.match import Match
from server.matchmaker import Matchmaker, MatchmakingError, Mode, Reservation, Ticket
from server.matchmaking import (
    MATCHMAKING_INTERVAL,
    QUEUE_STATUS_INTERVAL,
    SendToPlayer,
    expire_reservations,
    reserved_message,
)
from server.messages import Queued
from server.metrics import Metrics

logger = logging.getLogger(__name__)

TICKETS_KEY = "arena:tickets"
TAKEN_PREFIX = "arena:taken:"
LEADER_KEY = "arena:matchmaker"
PLAYER_PREFIX = "arena:player:"
"""Per player: the server its newest connection is on, and the server hosting its match (JSON)."""
PLAYER_SECONDS = 86400
INBOX_PREFIX = "arena:inbox:"
LEASE_MS = 3000
TAKEN_SECONDS = 60
"""How long a taken ticket stays marked: its server does not write it back meanwhile."""
UNANSWERED_SECONDS = 3.0
"""A ticket taken this long ago whose player heard nothing (its host died before telling it) is queued again."""
INBOX_SECONDS = 30
"""An inbox nobody reads (its server is gone) expires this long after its last message."""
INBOX_WAIT_SECONDS = 1.0
CHECKPOINT_PREFIX = "arena:checkpoint:"
CHECKPOINT_SECONDS = 60
"""A checkpoint nobody adopted is gone after this long."""
ADOPTION_WAIT_SECONDS = 3.0
"""How long a draining server waits for another to adopt a match before finishing it itself."""
DEFAULT_MATCH_LOAD = 0.01
"""The share of a core a new match is counted at until its server reports what its matches cost."""

TAKE_TICKETS = """
for i = 1, #ARGV - 1, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 0 end
end
for i = 1, #ARGV - 1, 2 do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('SET', KEYS[2] .. cjson.decode(ARGV[i + 1])['id'], '1', 'EX', ARGV[#ARGV])
end
return 1
"""
"""Take tickets (KEYS[1]: the hash; ARGV: subject, ticket JSON pairs, then the marker's lifetime) if all are
unchanged, and mark each taken; 1 if taken, 0 if any changed (the group is formed again next round)."""

DROP_TICKET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""
"""Delete one ticket if it is still the one given (a newer one of the same player, elsewhere, stays)."""

HOLD_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
"""Take the matchmaker's lease, or renew it if this server holds it; 1 if this server holds it now."""

RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""Give the lease up if this server holds it (it drains: another server forms matches from now on)."""


@attrs.define(eq=False)
class LocalTicket:
    """A ticket of a player connected to this server."""

    ticket: Ticket
    """`queued_at` in trio time."""
    wire: str
    """Its copy in Redis (JSON; `queued_at` in wall-clock time, comparable across servers)."""
    taken_at: float | None = None
    """Trio time at which this server saw it taken by the matchmaker (its player waits to hear where to play)."""


@attrs.define(eq=False)
class FleetMatchmaking:
    """See the module's rules; implements server.matchmaking.Matchmaking."""

    redis_url: str
    presence: FleetPresence
    directory: InMemoryMatchDirectory
    metrics: Metrics
    send: SendToPlayer
    modes: dict[str, Mode]
    reservation_seconds: float
    admitting: Any = attrs.field(default=lambda: True)
    """Called each round: whether this server may host new matches now (False while it drains)."""
    replaced: Any = attrs.field(default=lambda subject, at: None)
    """Called with (subject, wall time) when the player connected to another server of the fleet at that time:
    this server closes its older connection of that player (4002), as it does when both are here."""
    _reservations: Matchmaker = attrs.field(init=False)
    """Holds the reservations of this server's matches (its queues stay empty)."""
    _tickets: dict[str, LocalTicket] = attrs.field(factory=dict, init=False)
    _fleet_tickets: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    """Every ticket of the fleet at the last round, oldest first."""
    _redis: coredis.Redis[str] | None = attrs.field(default=None, init=False)
    _reachable: bool | None = attrs.field(default=None, init=False)
    leading: bool = attrs.field(default=False, init=False)
    """Whether this server formed the fleet's matches at the last round."""
    _placed: list[tuple[float, str, float]] = attrs.field(factory=list, init=False)
    """(wall time, server id, load) of the matches this server placed lately: counted on their servers until
    those report a load measured after them."""
    _claims: dict[str, float] = attrs.field(factory=dict, init=False)
    """Players who connected here (wall time) whose record in Redis is not written yet."""
    _hosted: dict[str, tuple[str, str]] = attrs.field(factory=dict, init=False)
    """Players seated here (match id, resume token) whose record in Redis is not written yet."""
    _adoptions: dict[str, Adoption] = attrs.field(factory=dict, init=False)
    """Matches this server handed to another, waiting for its answer, by id."""
    _seated: list[tuple[float, str, str, str, int]] = attrs.field(factory=list, init=False)
    """(wall time, server, match id, mode, seats) of the seats this server gave lately, in new matches and in
    running ones: counted against the matches' open seats until their servers' reports include them."""
    round_trips: Counter[str] = attrs.field(factory=Counter, init=False)
    """Redis requests by purpose (`formed` counts matches formed here): docs/benchmarks.md divides them."""

    def __attrs_post_init__(self) -> None:
        self._reservations = Matchmaker(
            directory=self.directory, modes=list(self.modes.values()), reservation_seconds=self.reservation_seconds
        )

    @property
    def server_id(self) -> str:
        return self.presence.server_id

    # ----- what the server asks (never waits) -----

    def enqueue(self, subject: str, mode: str, *, rating: float) -> None:
        if mode not in self.modes:
            raise MatchmakingError(f"unknown mode {mode!r}: choose one of {', '.join(sorted(self.modes))}")
        now = trio.current_time()
        ticket = Ticket(id=secrets.token_urlsafe(9), subject=subject, mode=mode, queued_at=now, rating=rating)
        self._tickets[subject] = LocalTicket(ticket=ticket, wire=self._wire(ticket, queued_at=time.time()))

    def cancel(self, subject: str) -> bool:
        return self._tickets.pop(subject, None) is not None

    def queued(self) -> list[Ticket]:
        return [local.ticket for local in self._tickets.values()]

    def queue_status(self, subject: str) -> Queued | None:
        local = self._tickets.get(subject)
        if local is None:
            return None
        ticket = local.ticket
        same_mode = [entry for entry in self._fleet_tickets if entry.get("mode") == ticket.mode]
        ids = [entry.get("id") for entry in same_mode]
        position = ids.index(ticket.id) + 1 if ticket.id in ids else len(same_mode) + 1
        mode = self.modes[ticket.mode]
        oldest = min((entry["queued_at"] for entry in same_mode), default=time.time())
        estimate = 0.0 if local.taken_at is not None else max(0.0, mode.fill_after_seconds - (time.time() - oldest))
        return Queued(
            mode=ticket.mode,
            position=position,
            waiting=max(len(same_mode), position),
            estimated_wait=round(estimate, 1),
        )

    def redeem(self, reservation_id: str, subject: str) -> Reservation:
        return self._reservations.redeem(reservation_id, subject, now=trio.current_time())

    def connected(self, subject: str) -> None:
        """The player said hello here: the fleet's other servers close its older connections (next round)."""
        self._claims[subject] = time.time()

    def seated(self, subject: str, match_id: str) -> None:
        """The player has a seat in a match of this server: a resume that lands on another server is sent here."""
        self._hosted[subject] = (match_id, self.presence.public_url)

    async def where_is(self, subject: str) -> dict[str, Any] | None:
        """Where the fleet last saw the player seated: {"server", "url", "match", "alive"}, or None.

        Raises:
            REDIS_FAILURES: if Redis cannot be asked.
        """
        redis = self._redis
        if redis is None:
            return None
        with trio.fail_after(REDIS_TIMEOUT_SECONDS):
            raw = await redis.hget(PLAYER_PREFIX + subject, "seat")
        self.round_trips["where"] += 1
        try:
            seat = json.loads(raw) if raw else None
        except ValueError:
            return None
        if not isinstance(seat, dict) or not isinstance(seat.get("server"), str):
            return None
        alive = any(server.get("id") == seat["server"] for server in self.presence.view.servers)
        return {**seat, "alive": alive or seat["server"] == self.server_id}

    def health(self) -> dict[str, Any]:
        if not self._reachable:
            status = "paused: Redis cannot be reached; players stay queued here until it can"
        else:
            status = "ok"
        return {
            "status": status,
            "leading": self.leading,
            "fleet_queued": len(self._fleet_tickets),
            "redis_round_trips": dict(self.round_trips),
        }

    # ----- the rounds -----

    async def run(self) -> None:
        redis: coredis.Redis[str] = coredis.Redis.from_url(self.redis_url, decode_responses=True)
        inbox: coredis.Redis[str] = coredis.Redis.from_url(self.redis_url, decode_responses=True)
        with contextlib.suppress(*REDIS_FAILURES):  # closing connections to a Redis that is gone
            async with redis, inbox, trio.open_nursery() as nursery:
                self._redis = redis
                nursery.start_soon(self._read_inbox, inbox)
                next_status_at = trio.current_time()
                while True:
                    await trio.sleep(MATCHMAKING_INTERVAL)
                    await self._round(redis)
                    now = trio.current_time()
                    expire_reservations(self._reservations, self.directory, self.metrics, now=now)
                    if now >= next_status_at:
                        next_status_at = now + QUEUE_STATUS_INTERVAL
                        for subject in list(self._tickets):
                            status = self.queue_status(subject)
                            if status is not None:
                                self.send(subject, status)

    async def _round(self, redis: coredis.Redis[str]) -> None:
        failure = "timed out"
        with trio.move_on_after(REDIS_TIMEOUT_SECONDS):
            try:
                await self._write_players(redis)
                await self._sync_tickets(redis)
                if not self.admitting():  # draining: matches are formed by another server
                    if self.leading:
                        await redis.eval(RELEASE_LEASE, keys=[LEADER_KEY], args=[self.server_id])
                    self.leading = False
                else:
                    self.leading = (
                        bool(await redis.eval(HOLD_LEASE, keys=[LEADER_KEY], args=[self.server_id, LEASE_MS]))
                        and self.presence.view.connected
                    )
                    self.round_trips["lease"] += 1
                if self.leading:
                    await self._form_matches(redis)
                self._reached(True, "")
                return
            except REDIS_FAILURES as error:
                failure = str(error) or type(error).__name__
        self.leading = False
        self._reached(False, failure)

    def _reached(self, reachable: bool, failure: str) -> None:
        if reachable and self._reachable is not True and self._reachable is not None:
            logger.info("matchmaking: Redis is back; forming matches across the fleet again")
        elif not reachable and self._reachable is not False:
            logger.warning(
                "matchmaking: Redis at %s cannot be reached (%s): no matches are formed until it can (players stay "
                "queued; running matches go on); check that redis-server runs",
                self.redis_url,
                failure,
            )
        self._reachable = reachable

    async def _write_players(self, redis: coredis.Redis[str]) -> None:
        """Record where this server's new connections and seats are, and tell the server that held a player's
        older connection to close it."""
        claims, self._claims = self._claims, {}
        hosted, self._hosted = self._hosted, {}
        if not claims and not hosted:
            return
        try:
            async with redis.pipeline(transaction=False) as pipeline:
                for subject, at in claims.items():
                    key = PLAYER_PREFIX + subject
                    pipeline.hget(key, "connection")
                    pipeline.hset(key, {"connection": json.dumps({"server": self.server_id, "at": at})})
                    pipeline.expire(key, PLAYER_SECONDS)
                for subject, (match_id, url) in hosted.items():
                    key = PLAYER_PREFIX + subject
                    seat = {"server": self.server_id, "url": url, "match": match_id}
                    pipeline.hset(key, {"seat": json.dumps(seat)})
                    pipeline.expire(key, PLAYER_SECONDS)
            results = list(pipeline.results or ())
        except BaseException:
            # try again next round (a newer claim of the same player wins)
            self._claims = {**claims, **self._claims}
            self._hosted = {**hosted, **self._hosted}
            raise
        self.round_trips["players"] += 1
        for index, (subject, at) in enumerate(claims.items()):
            try:
                previous = json.loads(results[3 * index] or "null")
            except ValueError:
                previous = None
            if not isinstance(previous, dict) or previous.get("server") in (None, self.server_id):
                continue
            previous_at = float(previous.get("at") or 0.0)
            if previous_at <= at:  # ours is the newer connection: the other server closes its older one
                await self._post(str(previous["server"]), {"t": "replaced", "subject": subject, "at": at})
            else:  # the other server wrote a newer one between our reads: ours is the older, it goes
                self.replaced(subject, previous_at)
                await redis.hset(PLAYER_PREFIX + subject, {"connection": json.dumps(previous)})

    async def _sync_tickets(self, redis: coredis.Redis[str]) -> None:
        """Read the fleet's tickets, then make Redis hold exactly this server's players' waiting tickets."""
        raw = await redis.hgetall(TICKETS_KEY)
        self.round_trips["read"] += 1
        fleet: list[dict[str, Any]] = []
        for subject, wire in raw.items():
            entry = _parse_ticket(wire)
            if entry is None or entry["subject"] != subject:
                continue
            fleet.append({**entry, "wire": wire})
            if entry["server"] == self.server_id:
                local = self._tickets.get(subject)
                if local is None or local.wire != wire:
                    await redis.eval(DROP_TICKET, keys=[TICKETS_KEY], args=[subject, wire])
                    self.round_trips["cancel"] += 1
        now = trio.current_time()
        missing = {subject: local for subject, local in self._tickets.items() if raw.get(subject) != local.wire}
        if missing:
            async with redis.pipeline(transaction=False) as pipeline:
                for local in missing.values():
                    pipeline.exists([TAKEN_PREFIX + local.ticket.id])
            self.round_trips["taken"] += 1
            writes: dict[str, str] = {}
            for (subject, local), taken in zip(missing.items(), pipeline.results or (), strict=False):
                if not taken:
                    writes[subject] = local.wire
                    local.taken_at = None
                elif local.taken_at is None:
                    local.taken_at = now
                elif now - local.taken_at > UNANSWERED_SECONDS:
                    self._requeue(subject, local.ticket.id)  # its host never told it where to play
            if writes:
                await redis.hset(TICKETS_KEY, writes)
                self.round_trips["write"] += 1
                for subject, wire in writes.items():
                    entry = _parse_ticket(wire)
                    if entry is not None and subject not in raw:
                        fleet.append({**entry, "wire": wire})
        fleet = [entry for entry in fleet if entry["server"] != self.server_id or entry["subject"] in self._tickets]
        self._fleet_tickets = sorted(fleet, key=lambda entry: (entry["queued_at"], entry["id"]))

    def _requeue(self, subject: str, ticket_id: str) -> None:
        """The player's ticket was taken but no seat came of it: queue it again as it was (same place in line)."""
        local = self._tickets.get(subject)
        if local is None or local.ticket.id != ticket_id:
            return
        ticket = attrs.evolve(local.ticket, id=secrets.token_urlsafe(9))
        queued_at = json.loads(local.wire)["queued_at"]
        self._tickets[subject] = LocalTicket(ticket=ticket, wire=self._wire(ticket, queued_at=queued_at))

    def _wire(self, ticket: Ticket, *, queued_at: float) -> str:
        return json.dumps(
            {
                "id": ticket.id,
                "subject": ticket.subject,
                "mode": ticket.mode,
                "rating": ticket.rating,
                "queued_at": queued_at,
                "server": self.server_id,
            },
            separators=(",", ":"),
        )

    # ----- forming (the lease holder only) -----

    async def _form_matches(self, redis: coredis.Redis[str]) -> None:
        if not self._fleet_tickets:
            return
        now = time.time()
        self._placed = [placed for placed in self._placed if now - placed[0] < PLACED_MEMORY_SECONDS]
        self._seated = [seated for seated in self._seated if now - seated[0] < PLACED_MEMORY_SECONDS]
        placement = Placement.of(
            self.presence, own_id=self.server_id, own_entry=self._own_entry(), placed=self._placed, seated=self._seated
        )
        deciding = Matchmaker(
            directory=placement, modes=list(self.modes.values()), reservation_seconds=self.reservation_seconds
        )
        by_subject = {}
        alive = {server.get("id") for server in self.presence.view.servers} | {self.server_id}
        for entry in self._fleet_tickets:
            if entry["server"] not in alive:  # its server is gone (killed): so is its player's connection
                await redis.eval(DROP_TICKET, keys=[TICKETS_KEY], args=[entry["subject"], entry["wire"]])
                self.round_trips["cancel"] += 1
                continue
            if entry["mode"] in self.modes:
                deciding.enqueue(entry["subject"], entry["mode"], now=entry["queued_at"], rating=entry["rating"])
                by_subject[entry["subject"]] = entry
        for formed in deciding.form_matches(now=time.time()):
            entries = [by_subject[reservation.subject] for reservation in formed.reservations]
            pairs = [value for entry in entries for value in (entry["subject"], entry["wire"])]
            taken = await redis.eval(TAKE_TICKETS, keys=[TICKETS_KEY, TAKEN_PREFIX], args=[*pairs, TAKEN_SECONDS])
            self.round_trips["take"] += 1
            if not taken:
                continue  # a ticket changed meanwhile: next round
            host = placement.host_of(formed.match_id)
            order = {
                "t": "create" if formed.match_id in placement.created else "seat",
                "match": formed.match_id,
                "mode": formed.mode,
                "bots": formed.bots,
                "bot_level": formed.bot_level,
                "seats": [
                    {
                        "reservation": reservation.id,
                        "subject": reservation.subject,
                        "ticket": entry["id"],
                        "server": entry["server"],
                        "waited": round(reservation.queued_seconds, 3),
                    }
                    for reservation, entry in zip(formed.reservations, entries, strict=True)
                ],
            }
            self.round_trips["formed"] += 1
            if order["t"] == "create":
                self._placed.append((time.time(), host, placement.estimates[formed.match_id]))
            seats = len(formed.reservations) + formed.bots
            self._seated.append((time.time(), host, formed.match_id, formed.mode, seats))
            await self._post(host, order)

    def _own_entry(self) -> dict[str, Any]:
        entry = {**self.presence.entry(), "at": time.time()}
        entry["admitting_matches"] = bool(entry.get("admitting_matches")) and self.admitting()
        return entry

    # ----- messages between servers -----

    async def _post(self, server_id: str, message: dict[str, Any]) -> None:
        """Send a message to a server of the fleet (this one: handled at once)."""
        if server_id == self.server_id:
            await self._handle(message)
            return
        redis = self._redis
        assert redis is not None
        key = INBOX_PREFIX + server_id
        async with redis.pipeline(transaction=False) as pipeline:
            pipeline.rpush(key, [json.dumps(message, separators=(",", ":"))])
            pipeline.expire(key, INBOX_SECONDS)
        self.round_trips["post"] += 1

    async def _read_inbox(self, inbox: coredis.Redis[str]) -> None:
        key = INBOX_PREFIX + self.server_id
        while True:
            try:
                popped = await inbox.blpop([key], timeout=INBOX_WAIT_SECONDS)
            except REDIS_FAILURES:
                await trio.sleep(HEARTBEAT_PAUSE)  # Redis is gone; `_round` says so
                continue
            if not popped:
                continue
            try:
                message = json.loads(popped[1])
            except ValueError:
                logger.warning("fleet: ignoring a message that is not JSON in %s", key)
                continue
            if isinstance(message, dict):
                with trio.move_on_after(REDIS_TIMEOUT_SECONDS):
                    try:
                        await self._handle(message)
                    except REDIS_FAILURES as error:
                        logger.warning("fleet: could not act on %s: %s", message.get("t"), error)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind in ("create", "seat"):
            await self._host(message)
        elif kind == "reserved":
            self._reserved(message)
        elif kind == "requeue":
            self._requeue(str(message.get("subject")), str(message.get("ticket")))
        elif kind == "replaced":
            self.replaced(str(message.get("subject")), float(message.get("at") or 0.0))
        elif kind == "adopt":
            await self._adopt(message)
        elif kind in ("adopted", "not_adopted"):
            adoption = self._adoptions.get(str(message.get("match")))
            if adoption is not None:
                adoption.url = str(message["url"]) if kind == "adopted" else None
                adoption.reason = str(message.get("reason", ""))
                adoption.answered.set()

    async def _host(self, order: dict[str, Any]) -> None:
        """Host a match the fleet's matchmaker placed here (or seat players in a running one), then tell each
        player's server where to play."""
        mode = self.modes.get(order["mode"])
        seats = order["seats"]
        now = trio.current_time()
        if mode is None:
            return
        if order["t"] == "create" and not self.admitting():  # it drains since it was placed here: back in line
            for seat in seats:
                await self._post(seat["server"], {"t": "requeue", "subject": seat["subject"], "ticket": seat["ticket"]})
            return
        if order["t"] == "create":
            if order["match"] in self.directory.matches:
                return  # already made (an order read twice)
            self.directory.create_match(
                mode, players=len(seats), bots=order["bots"], bot_level=order["bot_level"], match_id=order["match"]
            )
            self.metrics.matches_formed.labels(mode=mode.name).inc()
            self.metrics.bots_added.inc(order["bots"])
        else:
            match = self.directory.matches.get(order["match"])
            room = sum(1 for _ in seats) if match is not None and match.has_room() else 0
            if match is None or not room:
                for seat in seats:  # no seat after all: back in line
                    await self._post(
                        seat["server"], {"t": "requeue", "subject": seat["subject"], "ticket": seat["ticket"]}
                    )
                return
            match.pending_reservations += len(seats)
        by_server: dict[str, list[dict[str, str]]] = {}
        for seat in seats:
            reservation = Reservation(
                id=seat["reservation"],
                match_id=order["match"],
                subject=seat["subject"],
                mode=mode.name,
                expires_at=now + self.reservation_seconds,
                queued_seconds=seat["waited"],
            )
            self._reservations.hold(reservation)
            self.metrics.queue_wait.labels(mode=mode.name).observe(seat["waited"])
            by_server.setdefault(seat["server"], []).append(
                {"subject": seat["subject"], "ticket": seat["ticket"], "reservation": reservation.id}
            )
        for server_id, told in by_server.items():  # one message per player's server
            tell = {
                "t": "reserved",
                "seats": told,
                "match": order["match"],
                "mode": mode.name,
                "expires_in": self.reservation_seconds,
                "url": self.presence.public_url,
                "server": self.server_id,
            }
            await self._post(server_id, tell)

    # ----- moving matches (a draining server hands its matches to others) -----

    async def hand_over_matches(self) -> list[MatchHandOver]:
        """While this server drains: checkpoint each running match into Redis and have the server with the most
        room adopt it; its players and spectators are told `moved` to the adopter's URL and resume there. A match
        no server takes goes on here (it finishes within the drain timeout, as on a server on its own)."""
        handed: list[MatchHandOver] = []
        for match in list(self.directory.matches.values()):
            if match.finished or match.state.over:
                continue
            started = trio.current_time()
            match.pause()
            adoption = Adoption()
            target = None
            try:
                target = self._adopter()
                if target is None:
                    adoption.reason = "no other server admits matches"
                else:
                    self._adoptions[match.id] = adoption
                    with trio.move_on_after(ADOPTION_WAIT_SECONDS):
                        await self._offer(match, target)
                        await adoption.answered.wait()
                    if not adoption.answered.is_set():
                        adoption.reason = f"server {target} did not answer within {ADOPTION_WAIT_SECONDS:g} s"
            except REDIS_FAILURES as error:
                adoption.reason = f"Redis: {error}"
            finally:
                self._adoptions.pop(match.id, None)
                if adoption.url is None:
                    match.unpause()
            if adoption.url is not None:
                match.hand_over(adoption.url)
                with trio.move_on_after(1.0):
                    while not match.finished:  # its players are told `moved` as it stops
                        await trio.sleep(0.005)
                logger.info(
                    "match %s moved to server %s at tick %d (held still %.0f ms)",
                    match.id,
                    target,
                    match.state.tick,
                    (trio.current_time() - started) * 1000,
                    extra={"match": match.id},
                )
            else:
                logger.warning(
                    "match %s stays here to finish: %s", match.id, adoption.reason, extra={"match": match.id}
                )
            self.metrics.matches_moved.labels(how="out" if adoption.url else "stayed").inc()
            handed.append(MatchHandOver(match.id, target if adoption.url else None, trio.current_time() - started))
        return handed

    def _adopter(self) -> str | None:
        """The other server with the most room for a match, or None."""
        placement = Placement.of(
            self.presence, own_id=self.server_id, own_entry={**self._own_entry(), "admitting_matches": False},
            placed=self._placed,
        )  # fmt: skip
        try:
            match_id = placement.create_match(Mode(name="any", min_players=1, max_players=1), players=0, bots=0)
        except ValueError:
            return None  # no server admits matches
        server = placement.created[match_id]
        self._placed.append((time.time(), server, placement.estimates[match_id]))
        return server

    async def _offer(self, match: Match, server_id: str) -> None:
        redis = self._redis
        assert redis is not None
        await redis.set(CHECKPOINT_PREFIX + match.id, checkpoint.dumps(match.checkpoint()), ex=CHECKPOINT_SECONDS)
        self.round_trips["checkpoint"] += 1
        await self._post(server_id, {"t": "adopt", "match": match.id, "from": self.server_id})

    async def _adopt(self, message: dict[str, Any]) -> None:
        """Another server hands this one a match: continue it from its checkpoint, and say so (or why not)."""
        redis = self._redis
        assert redis is not None
        match_id, source = str(message.get("match")), str(message.get("from"))
        reason = ""
        raw = await redis.get(CHECKPOINT_PREFIX + match_id)
        self.round_trips["checkpoint"] += 1
        try:
            if raw is None:
                raise checkpoint.CheckpointError("its checkpoint is gone from Redis")
            saved = checkpoint.loads(raw)
            mode = self.modes.get(saved.mode)
            if mode is None:
                raise checkpoint.CheckpointError(f"this server has no mode {saved.mode!r}")
            if not self.admitting():
                raise checkpoint.CheckpointError("this server is draining too")
            if match_id in self.directory.matches:
                raise checkpoint.CheckpointError("this server runs a match with that id already")
            adopted = self.directory.adopt(saved, mode)
            for seat in adopted.humans:
                if seat.subject is not None:
                    self.seated(seat.subject, match_id)
        except checkpoint.CheckpointError as error:
            reason = str(error)
            logger.warning("fleet: not adopting match %s from server %s: %s", match_id, source, reason)
        else:
            self.metrics.matches_moved.labels(how="in").inc()
            logger.info("match %s adopted from server %s at tick %d", match_id, source, saved.state.tick)
        await redis.delete([CHECKPOINT_PREFIX + match_id])
        answer = {"t": "not_adopted" if reason else "adopted", "match": match_id, "url": self.presence.public_url}
        await self._post(source, {**answer, "reason": reason})

    def _reserved(self, message: dict[str, Any]) -> None:
        """A host holds seats for players of this server: tell each player that still waits for it."""
        url = None if message.get("server") == self.server_id else str(message["url"])
        for seat in message.get("seats") or ():
            subject = str(seat.get("subject"))
            local = self._tickets.get(subject)
            if local is None or local.ticket.id != seat.get("ticket"):
                continue  # it cancelled, or queued again: the seat expires unused
            del self._tickets[subject]
            reservation = Reservation(
                id=str(seat["reservation"]),
                match_id=str(message["match"]),
                subject=subject,
                mode=str(message["mode"]),
                expires_at=trio.current_time() + float(message["expires_in"]),
            )
            self.send(subject, reserved_message(reservation, now=trio.current_time(), url=url))


HEARTBEAT_PAUSE = 1.0
PLACED_MEMORY_SECONDS = 10.0
MEASURED_AFTER_SECONDS = 1.0
"""A new match's ticks show in its server's reported load from about this long after it was placed."""


@attrs.define(eq=False)
class Adoption:
    """A match offered to another server: its answer."""

    answered: trio.Event = attrs.field(factory=trio.Event)
    url: str | None = None
    """The adopter's URL, once it continues the match."""
    reason: str = ""


@attrs.frozen
class MatchHandOver:
    match_id: str
    server: str | None
    """The server that adopted it, or None: it stayed."""
    seconds: float
    """How long the match held still."""


@attrs.define(eq=False)
class Placement:
    """Where the matches of one forming round go: implements server.matchmaker.MatchDirectory over the fleet's
    servers as their presence describes them (this server's own entry fresh)."""

    servers: list[dict[str, Any]]
    created: dict[str, str] = attrs.field(factory=dict)
    """Match id -> the server that will host it, for matches formed in this round."""
    seated: dict[str, str] = attrs.field(factory=dict)
    """Match id -> its server, for running matches given players in this round."""
    estimates: dict[str, float] = attrs.field(factory=dict)
    """Match id -> the load it is expected to add to its server, for matches formed in this round."""
    _seats_given: Counter[str] = attrs.field(factory=Counter)
    _load: dict[str, float] = attrs.field(factory=dict)
    _unreported_seats: Counter[str] = attrs.field(factory=Counter)
    """Match id -> seats given lately that its server's report does not show yet."""
    _unreported_matches: dict[str, tuple[str, str]] = attrs.field(factory=dict)
    """Match id -> (server, mode) of matches made lately that their servers' reports do not list yet."""

    @classmethod
    def of(
        cls,
        presence: FleetPresence,
        *,
        own_id: str,
        own_entry: dict[str, Any],
        placed: list[tuple[float, str, float]] = (),  # type: ignore[assignment]
        seated: list[tuple[float, str, str, str, int]] = (),  # type: ignore[assignment]
    ) -> Placement:
        """`placed`: (wall time, server, load) of matches placed lately, added to each server's reported load
        unless that report was measured well after (it then counts them already); `seated`: (wall time, server,
        match, mode, seats) of seats given lately, the same way against the matches' open seats."""
        servers = [server for server in presence.view.servers if server.get("id") != own_id]
        servers.append({**own_entry, "id": own_id})
        placement = cls(servers=servers)
        reported_at = {server["id"]: float(server.get("at") or 0.0) for server in servers}
        for server in servers:
            pending = sum(
                load
                for at, where, load in placed
                if where == server["id"] and at + MEASURED_AFTER_SECONDS > reported_at[server["id"]]
            )
            placement._load[server["id"]] = float(server.get("load") or 0.0) + pending
        listed = {match.get("id") for server in servers for match in server.get("matches") or ()}
        for at, where, match_id, mode, seats in seated:
            if where not in reported_at:
                continue  # its server is gone
            if match_id not in listed:
                placement._unreported_matches[match_id] = (where, mode)
                placement._unreported_seats[match_id] += seats
            elif at + MEASURED_AFTER_SECONDS > reported_at[where]:
                placement._unreported_seats[match_id] += seats
        return placement

    def host_of(self, match_id: str) -> str:
        return self.created.get(match_id) or self.seated[match_id]

    def create_match(self, mode: Mode, *, players: int, bots: int, bot_level: int = 0) -> str:
        """Raises: ValueError if no server admits a match (ask `has_room_for_a_match` first)."""
        server = min(self._admitting(), key=lambda s: (self._load[s["id"]], s["id"]))
        match_id = secrets.token_urlsafe(6)
        self.created[match_id] = server["id"]
        matches = len(server.get("matches") or ())
        reported = float(server.get("load") or 0.0)
        estimate = reported / matches if matches and reported else DEFAULT_MATCH_LOAD
        self._load[server["id"]] += estimate
        self.estimates[match_id] = estimate
        return match_id

    def open_seat(self, mode: Mode) -> str | None:
        for server in self.servers:
            for match in server.get("matches") or ():
                if match.get("mode") != mode.name or match.get("state") == "over":
                    continue
                match_id = match.get("id")
                if not isinstance(match_id, str):
                    continue
                taken = self._seats_given[match_id] + self._unreported_seats[match_id]
                if int(match.get("open_seats") or 0) > taken:
                    return self._give_seat(match_id, server["id"])
        for match_id, (server_id, match_mode) in self._unreported_matches.items():  # made lately, not listed yet
            if (
                match_mode == mode.name
                and mode.max_players > self._unreported_seats[match_id] + self._seats_given[match_id]
            ):
                return self._give_seat(match_id, server_id)
        return None

    def _give_seat(self, match_id: str, server_id: str) -> str:
        self._seats_given[match_id] += 1
        self.seated[match_id] = server_id
        return match_id

    def has_room_for_a_match(self) -> bool:
        return any(True for _ in self._admitting())

    def _admitting(self) -> list[dict[str, Any]]:
        return [
            server
            for server in self.servers
            if server.get("admitting_matches")
            and not server.get("draining")
            and self._load[server["id"]] < float(server.get("max_load") or 1.0)
        ]


def _parse_ticket(wire: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(wire)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    if not all(isinstance(entry.get(key), str) for key in ("id", "subject", "mode", "server")):
        return None
    if not all(isinstance(entry.get(key), int | float) for key in ("rating", "queued_at")):
        return None
    return entry
