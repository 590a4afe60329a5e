"""Instruments: every number an operator reads (GET /metrics, /healthz, the monitor) is defined here, once.

Rules: events are counted where they happen, with prometheus-client's counters and histograms (but ticks, thousands
a second, are counted a second at a time: `TickHistogram`); what describes the server's state now (connections by
state, matches, players, queues, per-match tick cost, bytes and messages of live connections) is read from the
server when scraped, by `_StateCollector`, so nothing has to be kept in step. Each server has its own registry
(tests run several servers in one process). Label values are bounded: modes, close codes, fixed reason words, and
the ids of running matches only. Names follow Prometheus' conventions: `arena_` prefix, base units (`_seconds`,
`_bytes`), `_total` for counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from server.app import ArenaServer
    from server.match import Timings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# no `_created` series: they double the output and no dashboard here reads them
disable_created_metrics()  # type: ignore[no-untyped-call]
TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
QUEUE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)

LIMITS = (
    "connections_per_ip",
    "connections_total",
    "guest_tokens",
    "frame_budget",
    "unread_replies",
    "slow_reader",
    "origin",
    "handshake",
    "out_of_files",
)
"""The `limit` label of arena_limit_hits_total: which limit refused something (docs/operations.md)."""


class Metrics:
    """The event instruments of one server, and its Prometheus registry.

    Every label value known in advance starts at zero, so that rates and alerts see a series before its first
    event (Prometheus' advice for labelled counters).
    """

    def __init__(self, modes: tuple[str, ...] = ()) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, memory, open files: Prometheus' own names
        self.tick_lateness = TickHistogram(
            "arena_tick_lateness_seconds", "How late each match tick started after its due time"
        )
        self.tick_duration = TickHistogram(
            "arena_tick_duration_seconds", "How long each match tick took (step, snapshot, delta, sends)"
        )
        self.queue_wait = Histogram(
            "arena_queue_wait_seconds",
            "Time from queueing to a seat reservation",
            ["mode"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        self.matches_formed = Counter(
            "arena_matches_formed", "Matches formed by matchmaking", ["mode"], registry=registry
        )
        self.bots_added = Counter("arena_bots_added", "Server-side bots seated in new matches", registry=registry)
        self.reservations_expired = Counter(
            "arena_reservations_expired", "Seat reservations not redeemed in time", registry=registry
        )
        self.joins_refused = Counter("arena_join_refusals", "Refused joins", ["reason"], registry=registry)
        self.resumes = Counter("arena_resumes", "Seats taken back after a dropped connection", registry=registry)
        self.resumes_after_the_end = Counter(
            "arena_resumes_after_the_end",
            "Resumes into a match that ended meanwhile (answered with its final state and left)",
            registry=registry,
        )
        self.resumes_refused = Counter("arena_resume_refusals", "Refused resumes", ["reason"], registry=registry)
        self.resumes_after_a_move = Counter(
            "arena_resumes_after_a_move",
            "First resumes of the seats of matches that moved here from a draining server (not in resumes)",
            registry=registry,
        )
        self.matches_moved = Counter(
            "arena_matches_moved",
            "Matches handed over, by how it went: out (to another server), in (adopted here), stayed (none took it)",
            ["how"],
            registry=registry,
        )
        for how in ("out", "in", "stayed"):
            self.matches_moved.labels(how=how)
        self.auth_failures = Counter(
            "arena_auth_failures", "Refused tokens, by where they were sent", ["where"], registry=registry
        )
        self.replaced_connections = Counter(
            "arena_replaced_connections",
            "Connections closed because the same player connected again",
            registry=registry,
        )
        self.guest_tokens = Counter("arena_guest_tokens", "Guest tokens handed out", registry=registry)
        self.limit_hits = Counter(
            "arena_limit_hits", "Requests, connections or frames refused by a limit", ["limit"], registry=registry
        )
        self.accept_errors = Counter(
            "arena_accept_errors", "Failed accepts (out of file descriptors or memory)", registry=registry
        )
        self.closes = Counter("arena_closes", "Closed WebSocket sessions, by close code", ["code"], registry=registry)
        self.admin_actions = Counter("arena_admin_actions", "Operator actions", ["action"], registry=registry)
        for counter, label, values in (
            (self.limit_hits, "limit", LIMITS),
            (self.auth_failures, "where", ("upgrade", "hello", "admin")),
            (self.admin_actions, "action", ("end_match", "kick", "drain")),
            (self.joins_refused, "reason", ("reservation", "match_over", "match_full", "no_match")),
            (
                self.resumes_refused,
                "reason",
                ("unknown_token", "not_yours", "match_over", "window_expired", "no_match"),
            ),
            (self.closes, "code", ("1000", "1001", "1006", "1008", "1011", "4002", "4003")),
            (self.matches_formed, "mode", modes),
            (self.queue_wait, "mode", modes),
        ):
            for value in values:
                counter.labels(**{label: value})

    def watch(self, server: ArenaServer) -> None:
        """Report `server`'s state at every scrape."""
        self.registry.register(_StateCollector(server))

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return bytes(generate_latest(self.registry))

    def totals(self, counter: Counter) -> dict[str, float]:
        """A counter's values by its (single) label's value, or {"": value} for one without labels."""
        values: dict[str, float] = {}
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    values[next(iter(sample.labels.values()), "")] = sample.value
        return values

    def total(self, counter: Counter) -> int:
        return int(sum(self.totals(counter).values()))


class TickHistogram:
    """A histogram of tick timings, fed a second of ticks at a time (`observe_all`) and exposed by the collector
    with a histogram's usual series (`_bucket`, `_count`, `_sum`; buckets `TICK_BUCKETS`).

    A server ticks thousands of times a second; prometheus-client's `Histogram.observe` costs a microsecond or two
    a value, per tick on the tick's path. Counted here by numpy instead, once a second, off every tick."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = numpy.array(TICK_BUCKETS)
        self._counts = numpy.zeros(len(TICK_BUCKETS) + 1, dtype=numpy.int64)
        """How many values fell in each bucket (not cumulative); the last: above every bound."""
        self._sum = 0.0

    def observe_all(self, values: Timings) -> None:
        counts, total = self._counted(values)
        self._counts += counts
        self._sum += total

    def family(self, pending: Timings) -> HistogramMetricFamily:
        """The histogram as scraped: what was observed, and the `pending` values (the second not over yet)."""
        counts, total = self._counted(pending)
        cumulative = numpy.cumsum(counts + self._counts)
        bounds = [floatToGoString(bound) for bound in TICK_BUCKETS]  # type: ignore[no-untyped-call]
        buckets = [(bound, int(count)) for bound, count in zip(bounds, cumulative, strict=False)]
        buckets.append(("+Inf", int(cumulative[-1])))
        return HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum + total)

    def _counted(self, values: Timings) -> tuple[numpy.ndarray[Any, numpy.dtype[numpy.int64]], float]:
        # a value equal to a bound is in that bound's bucket (Prometheus' `le`): the leftmost place it would go
        buckets = numpy.searchsorted(self._bounds, values, side="left")
        return numpy.bincount(buckets, minlength=len(self._bounds) + 1), float(values.sum())


class _StateCollector(Collector):
    """Gauges and running totals read from the server at scrape time."""

    def __init__(self, server: ArenaServer) -> None:
        self._server = server

    def describe(self) -> list[Metric]:
        return []  # names are only known once collected; nothing to check them against at registration

    def collect(self) -> Iterator[Metric]:
        server = self._server
        yield _gauge("arena_tcp_connections", "Open TCP connections (HTTP and WebSocket)", server.connections.total)
        yield _gauge(
            "arena_tcp_connections_limit", "The cap on open TCP connections (0: none)", server.connections.max_total
        )
        yield _gauge_by(
            "arena_sessions", "Open WebSocket sessions by state", "state", server.sessions_by_state().items()
        )
        directory = server.running_directory
        matches: dict[tuple[str, str], int] = {}
        players: dict[tuple[str, str], int] = {}
        tick_cost = GaugeMetricFamily(
            "arena_match_tick_cost_seconds",
            "Mean time one tick of a match takes, over its last ticks",
            labels=["match", "mode"],
        )
        if directory is not None:
            for match in directory.matches.values():
                summary = match.summary()
                key = (match.mode.name, summary["state"])
                matches[key] = matches.get(key, 0) + 1
                for seat in match.seats.values():
                    player_key = (match.mode.name, seat.status)
                    players[player_key] = players.get(player_key, 0) + 1
                tick_cost.add_metric([match.id, match.mode.name], match.tick_cost)
        family = GaugeMetricFamily("arena_matches", "Matches by mode and state", labels=["mode", "state"])
        for (mode, state), count in sorted(matches.items()):
            family.add_metric([mode, state], count)
        yield family
        family = GaugeMetricFamily("arena_players", "Seats by mode and status", labels=["mode", "status"])
        for (mode, status), count in sorted(players.items()):
            family.add_metric([mode, status], count)
        yield family
        yield tick_cost
        yield _gauge_by(
            "arena_queue_length", "Players waiting in each mode's queue", "mode", server.queue_lengths().items()
        )
        traffic = server.traffic()
        for name, help_text in (
            ("arena_received_messages", "WebSocket messages received from clients"),
            ("arena_received_bytes", "Bytes of WebSocket messages received from clients"),
            ("arena_sent_frames", "WebSocket frames sent to clients"),
            ("arena_sent_bytes", "Bytes sent to WebSocket clients"),
            ("arena_backlog_overflows", "Times a client's backlog overflowed and was resynced"),
        ):
            yield CounterMetricFamily(name, help_text, value=traffic[name])
        lateness, duration = server.statistics.current_second()
        yield server.metrics.tick_lateness.family(lateness)
        yield server.metrics.tick_duration.family(duration)
        yield _gauge("arena_uptime_seconds", "Seconds since the server started", server.uptime())
        yield _gauge("arena_draining", "1 while the server drains (refuses new work)", int(server.draining))


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _gauge_by(name: str, help_text: str, label: str, values: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values):
        family.add_metric([key], value)
    return family
