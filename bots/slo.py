"""Service-level objectives for a swarm run: "metric op value[unit]", checked against the report.

Example: --slo "resume_success>=0.99,queue_p95<5s,input_ack_p99<200ms". Times may be written in s or ms and
are compared in the metric's own unit; rates are fractions from 0 to 1.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import attrs

# metric -> (where in the report, unit of the report's value)
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "queue_p50": (("matchmaking", "queue_seconds", "p50"), "s"),
    "queue_p95": (("matchmaking", "queue_seconds", "p95"), "s"),
    "queue_p99": (("matchmaking", "queue_seconds", "p99"), "s"),
    "match_start_success": (("matchmaking", "match_start_success_rate"), ""),
    "resume_success": (("resume", "success_rate"), ""),
    "resume_p50": (("resume", "seconds_to_resume", "p50"), "s"),
    "resume_p99": (("resume", "seconds_to_resume", "p99"), "s"),
    "rtt_p50": (("latency", "rtt_ms", "p50"), "ms"),
    "rtt_p99": (("latency", "rtt_ms", "p99"), "ms"),
    "input_ack_p50": (("latency", "input_ack_ms", "p50"), "ms"),
    "input_ack_p99": (("latency", "input_ack_ms", "p99"), "ms"),
    "update_rate_ratio": (("updates", "rate_to_tick_rate"), ""),
    "errors": (("errors", "total"), ""),
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
_SLO = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|==|<|>)\s*([0-9.]+)\s*(ms|s)?\s*$")


class SloSyntaxError(ValueError):
    """An --slo value that cannot be read; the message says what to write instead."""


@attrs.frozen
class Slo:
    text: str
    metric: str
    op: str
    value: float
    """In the unit of the metric's value in the report."""

    def check(self, report: dict[str, Any]) -> dict[str, Any]:
        """{"slo", "value", "passed"} for this objective against `report` (a missing value fails)."""
        path, _ = METRICS[self.metric]
        actual: Any = report
        for key in path:
            actual = actual.get(key) if isinstance(actual, dict) else None
        passed = actual is not None and OPERATORS[self.op](float(actual), self.value)
        return {"slo": self.text, "value": actual, "passed": passed}


def parse_slos(text: str) -> list[Slo]:
    """Read comma-separated objectives.

    Raises:
        SloSyntaxError: for an unknown metric, operator or unit.
    """
    slos = []
    for item in (part for part in text.split(",") if part.strip()):
        match = _SLO.match(item)
        if match is None:
            raise SloSyntaxError(f"--slo: cannot read {item.strip()!r}; write metric<op>value, e.g. queue_p95<5s")
        metric, op, number, unit = match.groups()
        if metric not in METRICS:
            raise SloSyntaxError(f"--slo: unknown metric {metric!r}; known: {', '.join(METRICS)}")
        _, metric_unit = METRICS[metric]
        value = float(number)
        if unit and not metric_unit:
            raise SloSyntaxError(f"--slo: {metric} is a ratio or a count; write it without a unit")
        if unit and unit != metric_unit:
            value = value * 1000 if (unit, metric_unit) == ("s", "ms") else value / 1000
        slos.append(Slo(text=item.strip(), metric=metric, op=op, value=value))
    return slos


def check_slos(slos: list[Slo], report: dict[str, Any]) -> list[dict[str, Any]]:
    return [slo.check(report) for slo in slos]
