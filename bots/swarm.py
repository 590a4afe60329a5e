"""A swarm of headless bots: real WebSocket clients that queue, play, drop and resume, and measure it all.

Each bot is a `bots.client.ArenaClient` speaking the documented protocol. It gets one guest token for its
whole life (so a resume after a drop is the same player), queues for the mode, plays with `bots.brain.Brain`
(rethinking at most every `DECISION_INTERVAL_SECONDS`, sending an input only when it changes), and causes the
chaos it is asked to (`bots.chaos`). Everything is bounded: bots start at the ramp rate, stop at the duration,
and get `CLOSE_GRACE_SECONDS` to close before they are cut off.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, HandshakeError

from bots.brain import ARENA_SIZE, Brain, Intent
from bots.chaos import BURST_INPUTS, DROP_DELAY_SECONDS, SILENT_SECONDS, STORM_SHARE, Chaos
from bots.client import ArenaClient, RefusedError, connect, guest_token, is_loopback_url, loopback_address
from game import Delta, Snapshot
from server.codec import ProtocolError
from server.messages import Joined, Leave, Left, Moved

logger = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 5.0
RECONNECT_BACKOFF_SECONDS = (0.5, 2.0)
MAX_SAMPLES = 500_000
"""Per kind of sample (queue times, acks, ...): enough for 1,000 bots for minutes, bounded all the same."""
PENDING_ACKS = 64
DECISION_INTERVAL_SECONDS = 0.1
"""A bot rethinks its input at most ten times a second, as a person would; it sends one only when it changes."""


@attrs.frozen
class SwarmConfig:
    url: str
    count: int
    mode: str = "ffa"
    ramp_per_second: float = 50.0
    duration: float = 60.0
    chaos: Chaos = attrs.field(factory=Chaos)
    seed: int = 1
    first_index: int = 0
    """Bots are named bot<first_index>... (several processes split one swarm)."""


@attrs.define(eq=False)
class SwarmStats:
    """What the swarm saw, as raw counts and samples (`raw()` is JSON, and merges across processes)."""

    started_at: float = attrs.field(factory=trio.current_time)
    tick_rate: int = 0
    # current state, for the progress line
    connected: int = 0
    connections_opened: int = 0
    queued: int = 0
    in_match: int = 0
    reconnecting: int = 0
    # matchmaking
    queue_attempts: int = 0
    joins: int = 0
    queue_seconds: list[float] = attrs.field(factory=list)
    matches: set[str] = attrs.field(factory=set)
    refusals: Counter[str] = attrs.field(factory=Counter)
    # resuming
    resume_attempts: int = 0
    resumes_not_attempted: int = 0
    """Drops whose bot could not try to resume before the run ended."""
    resumes: int = 0
    resumes_after_the_end: int = 0
    """Of the resumes, those into a match that had ended meanwhile (answered with its final state and left)."""
    resume_seconds: list[float] = attrs.field(factory=list)
    resumes_refused: Counter[str] = attrs.field(factory=Counter)
    moves: int = 0
    """Matches that moved to another server of the fleet (`moved`) while the bot played."""
    move_seconds: list[float] = attrs.field(factory=list)
    """From `moved` to back in the match on the new server."""
    moves_refused: Counter[str] = attrs.field(factory=Counter)
    servers_went_away: int = 0
    """Connections a server closed with 1001 as it shut down (its matches moved first): the bot reconnects."""
    queued_at_the_end: int = 0
    """Bots still waiting for a seat when the run ended (not counted as queue attempts)."""
    resume_servers_unreachable: int = 0
    """Resumes that went through the starting server because the match's server could not be reached."""
    hosts_gone_before_join: int = 0
    """Seats given on another server of the fleet that refused the connection when the bot got there (it shut
    down meanwhile, a deploy): the bot queued again from where it was, as the browser client does."""
    # latency and throughput
    rtt_ms: list[float] = attrs.field(factory=list)
    input_ack_ms: list[float] = attrs.field(factory=list)
    inputs_sent: int = 0
    updates: int = 0
    bytes_received: int = 0
    bot_rates: list[float] = attrs.field(factory=list)
    """Per bot and match stay: updates received per second in the match."""
    bot_bytes_per_second: list[float] = attrs.field(factory=list)
    # failures
    errors: Counter[str] = attrs.field(factory=Counter)
    close_codes: Counter[str] = attrs.field(factory=Counter)
    """Codes the server closed a bot's connection with."""
    chaos: Counter[str] = attrs.field(factory=Counter)
    chaos_events: list[tuple[float, str]] = attrs.field(factory=list)
    """(seconds into the run, kind) of every chaos event, for the report's time axis."""
    timeline: list[dict[str, float | None]] = attrs.field(factory=list)

    def elapsed(self) -> float:
        return trio.current_time() - self.started_at

    def chaos_event(self, kind: str) -> None:
        self.chaos[kind] += 1
        if len(self.chaos_events) < MAX_SAMPLES:
            self.chaos_events.append((round(self.elapsed(), 2), kind))

    def sample(self, samples: list[float], value: float) -> None:
        if len(samples) < MAX_SAMPLES:
            samples.append(value)

    def raw(self) -> dict[str, Any]:
        return {
            "tick_rate": self.tick_rate,
            "connections_opened": self.connections_opened,
            "queue_attempts": self.queue_attempts,
            "joins": self.joins,
            "queue_seconds": self.queue_seconds,
            "matches": sorted(self.matches),
            "refusals": dict(self.refusals),
            "resume_attempts": self.resume_attempts,
            "resumes_not_attempted": self.resumes_not_attempted,
            "resumes": self.resumes,
            "resumes_after_the_end": self.resumes_after_the_end,
            "resume_seconds": self.resume_seconds,
            "resumes_refused": dict(self.resumes_refused),
            "moves": self.moves,
            "move_seconds": self.move_seconds,
            "moves_refused": dict(self.moves_refused),
            "resume_servers_unreachable": self.resume_servers_unreachable,
            "hosts_gone_before_join": self.hosts_gone_before_join,
            "queued_at_the_end": self.queued_at_the_end,
            "servers_went_away": self.servers_went_away,
            "rtt_ms": self.rtt_ms,
            "input_ack_ms": self.input_ack_ms,
            "inputs_sent": self.inputs_sent,
            "updates": self.updates,
            "bytes_received": self.bytes_received,
            "bot_rates": self.bot_rates,
            "bot_bytes_per_second": self.bot_bytes_per_second,
            "errors": dict(self.errors),
            "close_codes": dict(self.close_codes),
            "chaos": dict(self.chaos),
            "chaos_events": self.chaos_events,
            "timeline": self.timeline,
        }


@attrs.define(eq=False)
class _Bot:
    index: int
    name: str
    rng: random.Random
    brain: Brain
    source_address: str | None = None
    """The local address the bot connects from, or None for the system's choice."""
    token: str | None = None
    resume_token: str | None = None
    resume_url: str | None = None
    """The server that hosts the match the bot dropped out of (in a fleet, maybe not the one it queued on)."""
    dropped_at: float | None = None
    storm_hit: bool = False


@attrs.define(eq=False)
class Swarm:
    config: SwarmConfig
    stats: SwarmStats = attrs.field(factory=SwarmStats)
    deadline: float = attrs.field(init=False)
    _playing: set[_Bot] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        self.deadline = self.stats.started_at + self.config.duration

    async def run(self) -> SwarmStats:
        """Start the bots at the ramp rate, let them play until the duration is over, then close them."""
        config = self.config
        with trio.move_on_at(self.deadline + CLOSE_GRACE_SECONDS):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._record_timeline)
                if config.chaos.storm:
                    nursery.start_soon(self._storms)
                async with trio.open_nursery() as bots:
                    for offset in range(config.count):
                        if trio.current_time() >= self.deadline:
                            break
                        index = config.first_index + offset
                        rng = random.Random(config.seed * 1_000_003 + index)
                        # on the server's own machine, each bot comes from its own loopback address, as players
                        # would from theirs (one address for all would meet the per-address caps)
                        source = loopback_address(index) if is_loopback_url(config.url) else None
                        bot = _Bot(index=index, name=f"bot{index}", rng=rng, brain=Brain(rng), source_address=source)
                        bots.start_soon(self._run_bot, bot)
                        await trio.sleep(1 / config.ramp_per_second)
                nursery.cancel_scope.cancel()
        return self.stats

    async def _run_bot(self, bot: _Bot) -> None:
        try:
            await self._run_bot_connections(bot)
        finally:
            if bot.dropped_at is not None:
                self.stats.reconnecting -= 1
                self.stats.resumes_not_attempted += 1

    async def _run_bot_connections(self, bot: _Bot) -> None:
        stats = self.stats
        while trio.current_time() < self.deadline:
            try:
                if bot.token is None:
                    bot.token = await guest_token(self.config.url, bot.name, source_address=bot.source_address)
                if await self._play_connection(bot, bot.resume_url or self.config.url) == "done":
                    return
                continue  # dropped on purpose, or its match's server went away: reconnect and resume
            except BaseExceptionGroup as group:  # what went wrong inside the connection's nursery
                failures = _leaves(group)
                if not all(isinstance(failure, _BOT_FAILURES) for failure in failures):
                    raise
                for failure in failures:
                    self._record_failure(failure)
            except _BOT_FAILURES as failure:
                self._record_failure(failure)
            if bot.dropped_at is not None:
                stats.reconnecting -= 1
                bot.dropped_at = None
            bot.resume_token, bot.resume_url = None, None
            await trio.sleep(bot.rng.uniform(*RECONNECT_BACKOFF_SECONDS))

    async def _play_connection(self, bot: _Bot, url: str) -> str:
        """One connection to `url`: "done" when the run is over, "again" to reconnect (a chaos drop, or the server
        of the match it dropped out of refused the connection: gone, in a fleet, after a kill or a deploy; then it
        resumes through the server it started from, which knows where the seat is now)."""
        stats = self.stats
        connected = False
        try:
            async with connect(
                url, name=bot.name, token=bot.token, message_queue_size=16, source_address=bot.source_address
            ) as client:
                connected = True
                stats.connected += 1
                stats.connections_opened += 1
                if stats.tick_rate == 0 and client.welcome is not None:
                    stats.tick_rate = client.welcome.tick_rate
                if client.welcome is not None:
                    rules = client.welcome.rules
                    bot.brain.arena_size = (
                        int(rules.get("width", ARENA_SIZE[0])),
                        int(rules.get("height", ARENA_SIZE[1])),
                    )
                try:
                    return await self._serve_connection(bot, client)
                finally:
                    stats.connected -= 1
        except OSError:
            if connected or url == self.config.url:
                raise
            stats.resume_servers_unreachable += 1
            bot.resume_url = None
            return "again"

    def _record_failure(self, failure: BaseException) -> None:
        stats = self.stats
        if isinstance(failure, ConnectionClosed):
            code = failure.reason.code if failure.reason is not None else 1006
            stats.close_codes[str(code)] += 1
            if code == 1001:  # the server is going away (a deploy): not a failure; back to the first server
                stats.servers_went_away += 1
            else:
                stats.errors[f"closed by the server ({code})"] += 1
        elif isinstance(failure, RefusedError):
            stats.errors[f"refused: {failure}"] += 1
        elif isinstance(failure, trio.TooSlowError):
            stats.errors["timed out waiting for the server"] += 1
        elif isinstance(failure, HandshakeError):
            stats.errors[f"handshake failed: {type(failure).__name__}"] += 1
        elif isinstance(failure, ProtocolError):
            stats.errors[f"bad message from the server: {failure}"] += 1
        else:
            stats.errors[f"connection failed: {_failure_kind(failure)}"] += 1

    async def _serve_connection(self, bot: _Bot, client: ArenaClient) -> str:
        """Play on this connection until the run is over ("done") or a chaos drop ends it ("dropped")."""
        stats = self.stats
        seated = False  # in a match already (it moved with the bot)
        while trio.current_time() < self.deadline:
            if seated:
                seated = False
            elif bot.resume_token is not None:
                if await self._resume(bot, client) != "seat":
                    continue  # refused, or the match ended meanwhile: queue for another
            elif not await self._queue(client):
                return "done"
            outcome = await self._play(bot, client)
            if outcome == "moved":  # the match went on at another server: follow it there
                stats.moves += 1
                started = trio.current_time()
                try:
                    seated = isinstance(await client.follow_move(timeout=10), Joined)
                except RefusedError as refused:
                    stats.moves_refused[str(refused)] += 1
                    continue
                stats.sample(stats.move_seconds, trio.current_time() - started)
                continue
            if outcome == "drop":
                stats.chaos_event("drop")
                bot.resume_token, bot.dropped_at = client.resume_token, trio.current_time()
                bot.resume_url = client.url
                stats.reconnecting += 1
                await client.drop_connection()
                await trio.sleep(bot.rng.uniform(*DROP_DELAY_SECONDS))
                return "dropped"
            if outcome in ("leave", "finished"):  # chaos, or the match ended: leave it and queue again
                if outcome == "leave":
                    stats.chaos_event("leave")
                await client.send(Leave())
                await client.receive_until(lambda m: m if isinstance(m, Left) else None, timeout=10)
        return "done"

    async def _queue(self, client: ArenaClient) -> bool:
        """Queue and take the seat; False if the run ended while the bot still waited for one (not a failure:
        not counted as an attempt)."""
        stats = self.stats
        stats.queue_attempts += 1
        stats.queued += 1
        started = trio.current_time()
        try:
            try:
                reserved = await client.queue(self.config.mode, timeout=max(1.0, self.deadline - started))
            except trio.TooSlowError:
                if trio.current_time() < self.deadline:
                    raise
                stats.queue_attempts -= 1
                stats.queued_at_the_end += 1
                return False
            try:
                await client.follow(reserved)
            except OSError:  # the host shut down between placing the bot and its arrival (a deploy): queue again
                stats.hosts_gone_before_join += 1
                stats.queue_attempts -= 1
                return await self._queue(client)
            await client.redeem(reserved.reservation, timeout=10)
        except RefusedError as refused:
            stats.refusals[str(refused)] += 1
            raise
        finally:
            stats.queued -= 1
        stats.joins += 1
        stats.sample(stats.queue_seconds, trio.current_time() - started)
        if client.match is not None:
            stats.matches.add(client.match)
        return True

    async def _resume(self, bot: _Bot, client: ArenaClient) -> str:
        """Resume after a drop: "seat" (back in the match), "ended" (the match ended meanwhile: the server sent
        its final state and left, a success too) or "refused"."""
        stats = self.stats
        assert bot.resume_token is not None and bot.dropped_at is not None
        stats.resume_attempts += 1
        try:
            outcome = await client.resume(bot.resume_token, timeout=10)
        except RefusedError as refused:
            stats.resumes_refused[str(refused)] += 1
            return "refused"
        else:
            stats.resumes += 1
            stats.sample(stats.resume_seconds, trio.current_time() - bot.dropped_at)
            if isinstance(outcome, Left):
                stats.resumes_after_the_end += 1
                return "ended"
            return "seat"
        finally:
            stats.reconnecting -= 1
            bot.resume_token, bot.resume_url, bot.dropped_at = None, None, None

    async def _play(self, bot: _Bot, client: ArenaClient) -> str:
        """Play until the match is over ("finished", or "over" once the server has closed it), chaos says "drop" or
        "leave", or the run is over ("deadline")."""
        stats, chaos = self.stats, self.config.chaos
        entered = trio.current_time()
        updates, bytes_seen = 0, client.bytes_received
        bytes_at_entry = bytes_seen
        sent_at: dict[int, float] = {}
        last_intent: Intent | None = None
        next_roll = entered + 1.0
        next_rtt_sample = entered
        next_decision = entered
        stats.in_match += 1
        self._playing.add(bot)
        try:
            while True:
                now = trio.current_time()
                if now >= self.deadline:
                    return "deadline"
                if bot.storm_hit:
                    bot.storm_hit = False
                    stats.chaos_event("storm drop")
                    return "drop"
                if now >= next_roll:
                    next_roll += 1.0
                    action = self._roll_chaos(bot, chaos)
                    if action in ("drop", "leave"):
                        return action
                    if action == "burst":
                        stats.chaos_event("burst")
                        for _ in range(BURST_INPUTS):
                            intent = last_intent or Intent()
                            seq = await client.send_input(mx=intent.mx, my=intent.my, aim=intent.aim, fire=intent.fire)
                            stats.inputs_sent += 1
                            sent_at[seq] = trio.current_time()
                    elif action == "silent":
                        stats.chaos_event("silent")
                        sent_at.clear()  # acks read after its own silence say nothing of the server
                        await trio.sleep(bot.rng.uniform(*SILENT_SECONDS))
                with trio.move_on_at(min(next_roll, self.deadline)):
                    message = await client.receive()
                    stats.bytes_received += client.bytes_received - bytes_seen
                    bytes_seen = client.bytes_received
                    if isinstance(message, Snapshot | Delta):
                        updates += 1
                        stats.updates += 1
                    if isinstance(message, Left):
                        return "over"
                    if isinstance(message, Moved):
                        return "moved"
                    if client.view is not None and client.view.entities.get("match", {}).get(0, {}).get("over"):
                        return "finished"
                    if not isinstance(message, Snapshot | Delta) or client.view is None or client.player is None:
                        continue
                    now = trio.current_time()
                    me = client.me()
                    if me is not None:
                        ack = int(me.get("ack", 0))
                        for seq in [seq for seq in sent_at if seq <= ack]:
                            stats.sample(stats.input_ack_ms, (now - sent_at.pop(seq)) * 1000)
                        if now >= next_rtt_sample and int(me.get("ping", 0)) > 0:
                            stats.sample(stats.rtt_ms, float(me["ping"]))
                            next_rtt_sample = now + 1.0
                    if now < next_decision:
                        continue
                    next_decision = now + DECISION_INTERVAL_SECONDS
                    intent = bot.brain.decide(client.view, client.player)
                    if intent != last_intent:
                        seq = await client.send_input(mx=intent.mx, my=intent.my, aim=intent.aim, fire=intent.fire)
                        stats.inputs_sent += 1
                        sent_at[seq] = now
                        last_intent = intent
                        if len(sent_at) > PENDING_ACKS:
                            del sent_at[min(sent_at)]
        finally:
            self._playing.discard(bot)
            stats.in_match -= 1
            seconds = trio.current_time() - entered
            if seconds >= 2.0:
                stats.sample(stats.bot_rates, updates / seconds)
                stats.sample(stats.bot_bytes_per_second, (bytes_seen - bytes_at_entry) / seconds)

    def _roll_chaos(self, bot: _Bot, chaos: Chaos) -> str | None:
        for kind in ("drop", "leave", "burst", "silent"):
            rate = getattr(chaos, kind)
            if rate and bot.rng.random() < rate:
                return kind
        return None

    async def _storms(self) -> None:
        """Once a second, with the storm rate, drop a share of the playing bots at the same moment."""
        rng = random.Random(self.config.seed)
        while True:
            await trio.sleep(1.0)
            if self._playing and rng.random() < self.config.chaos.storm:
                playing = sorted(self._playing, key=lambda bot: bot.index)
                for bot in rng.sample(playing, max(1, math.ceil(len(playing) * STORM_SHARE))):
                    bot.storm_hit = True
                self.stats.chaos_event("storms")

    async def _record_timeline(self) -> None:
        """One point per second: who is where, and what arrived in that second."""
        stats = self.stats
        previous_updates, previous_bytes, previous_acks, previous_rtts, previous_queues = 0, 0, 0, 0, 0
        previous_resumes, previous_refused = 0, 0
        while True:
            await trio.sleep(1.0)
            acks = stats.input_ack_ms[previous_acks:]
            previous_acks = len(stats.input_ack_ms)
            rtts = stats.rtt_ms[previous_rtts:]
            previous_rtts = len(stats.rtt_ms)
            queues = stats.queue_seconds[previous_queues:]
            previous_queues = len(stats.queue_seconds)
            refused = sum(stats.resumes_refused.values())
            stats.timeline.append(
                {
                    "t": round(stats.elapsed(), 1),
                    "connected": stats.connected,
                    "queued": stats.queued,
                    "in_match": stats.in_match,
                    "reconnecting": stats.reconnecting,
                    "inputs_sent": stats.inputs_sent,
                    "updates": stats.updates - previous_updates,
                    "bytes": stats.bytes_received - previous_bytes,
                    "input_ack_ms_p50": _quantile(acks, 0.5),
                    "input_ack_ms_p99": _quantile(acks, 0.99),
                    "rtt_ms_p50": _quantile(rtts, 0.5),
                    "rtt_ms_p99": _quantile(rtts, 0.99),
                    "queue_seconds_max": max(queues, default=None),
                    "joins": len(queues),
                    "resumes": stats.resumes - previous_resumes,
                    "resumes_refused": refused - previous_refused,
                    "errors": sum(stats.errors.values()),
                }
            )
            previous_updates, previous_bytes = stats.updates, stats.bytes_received
            previous_resumes, previous_refused = stats.resumes, refused


_BOT_FAILURES = (
    ConnectionClosed,
    RefusedError,
    trio.TooSlowError,
    HandshakeError,
    OSError,
    trio.BrokenResourceError,
    ProtocolError,
)
"""What ends a bot's connection and is counted as an error (then the bot reconnects); anything else is a bug."""


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exception in group.exceptions:
        leaves.extend(_leaves(exception) if isinstance(exception, BaseExceptionGroup) else [exception])
    return leaves


def _quantile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


def _failure_kind(failure: BaseException) -> str:
    """The failure's type, with what trio's connection attempts met when it is trio's own OSError ("all attempts
    to connect ... failed", which names no cause): "OSError (ConnectionRefusedError)"."""
    causes = getattr(failure.__cause__, "exceptions", ())
    met = sorted({type(cause).__name__ for cause in causes})
    return f"{type(failure).__name__} ({', '.join(met)})" if met else type(failure).__name__
