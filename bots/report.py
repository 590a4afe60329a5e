"""The swarm's report: figures from the raw counts and samples of one or more swarm processes, printed as a
table, written as JSON, and drawn as an HTML page with SVG plots of latency and throughput over time.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import Any

LIST_KEYS = (
    "queue_seconds",
    "resume_seconds",
    "rtt_ms",
    "input_ack_ms",
    "bot_rates",
    "bot_bytes_per_second",
)
COUNT_KEYS = (
    "connections_opened",
    "queue_attempts",
    "joins",
    "resume_attempts",
    "resumes_not_attempted",
    "resumes",
    "inputs_sent",
    "updates",
    "bytes_received",
)
COUNTER_KEYS = ("refusals", "resumes_refused", "errors", "close_codes", "chaos")
TIMELINE_SUMS = ("connected", "queued", "in_match", "reconnecting", "inputs_sent", "updates", "bytes", "errors")


def merge_raw(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One raw record from several processes' (timelines are added second by second)."""
    merged: dict[str, Any] = {"tick_rate": max((part["tick_rate"] for part in parts), default=0)}
    for key in LIST_KEYS:
        merged[key] = [value for part in parts for value in part[key]]
    for key in COUNT_KEYS:
        merged[key] = sum(part[key] for part in parts)
    for key in COUNTER_KEYS:
        total: Counter[str] = Counter()
        for part in parts:
            total.update(part[key])
        merged[key] = dict(total)
    merged["matches"] = sorted({match for part in parts for match in part["matches"]})
    timeline: dict[int, dict[str, Any]] = {}
    for part in parts:
        for second, point in enumerate(part["timeline"]):
            slot = timeline.setdefault(second, {"t": point["t"], "acks_p50": [], "acks_p99": []})
            for key in TIMELINE_SUMS:
                slot[key] = slot.get(key, 0) + (point.get(key) or 0)
            if point.get("input_ack_ms_p50") is not None:
                slot["acks_p50"].append(point["input_ack_ms_p50"])
                slot["acks_p99"].append(point["input_ack_ms_p99"])
    merged["timeline"] = [
        {
            **{key: value for key, value in slot.items() if not key.startswith("acks")},
            "input_ack_ms_p50": max(slot["acks_p50"], default=None),
            "input_ack_ms_p99": max(slot["acks_p99"], default=None),
        }
        for _, slot in sorted(timeline.items())
    ]
    return merged


def quantiles(values: list[float], *fractions: float) -> dict[str, float | None]:
    ordered = sorted(values)
    result: dict[str, float | None] = {}
    for fraction in fractions:
        name = f"p{round(fraction * 100)}"
        result[name] = round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3) if ordered else None
    return result


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def build_report(raw: dict[str, Any], *, config: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The figures a person (and an SLO) reads, from the raw record."""
    tick_rate = raw["tick_rate"]
    mean_rate = sum(raw["bot_rates"]) / len(raw["bot_rates"]) if raw["bot_rates"] else None
    resumes_refused = sum(raw["resumes_refused"].values())
    return {
        "config": config,
        "seconds": round(seconds, 1),
        "connections_opened": raw["connections_opened"],
        "matchmaking": {
            "queue_attempts": raw["queue_attempts"],
            "joins": raw["joins"],
            "match_start_success_rate": _ratio(raw["joins"], raw["queue_attempts"]),
            "queue_seconds": quantiles(raw["queue_seconds"], 0.5, 0.95, 0.99),
            "matches_joined": len(raw["matches"]),
            "refusals": raw["refusals"],
        },
        "resume": {
            "attempts": raw["resume_attempts"],
            "not_attempted_before_the_end": raw["resumes_not_attempted"],
            "succeeded": raw["resumes"],
            "refused": resumes_refused,
            "success_rate": _ratio(raw["resumes"], raw["resume_attempts"]),
            "seconds_to_resume": quantiles(raw["resume_seconds"], 0.5, 0.99),
            "refusals": raw["resumes_refused"],
        },
        "latency": {
            "rtt_ms": quantiles(raw["rtt_ms"], 0.5, 0.99),
            "input_ack_ms": quantiles(raw["input_ack_ms"], 0.5, 0.99),
        },
        "updates": {
            "server_tick_rate": tick_rate,
            "per_bot_rate_mean": round(mean_rate, 2) if mean_rate is not None else None,
            "per_bot_rate": quantiles(raw["bot_rates"], 0.01, 0.5),
            "rate_to_tick_rate": _ratio(mean_rate, tick_rate) if mean_rate is not None else None,
            "bytes_per_second_per_bot": quantiles(raw["bot_bytes_per_second"], 0.5, 0.99),
            "inputs_sent": raw["inputs_sent"],
            "updates_received": raw["updates"],
            "bytes_received": raw["bytes_received"],
        },
        "errors": {"total": sum(raw["errors"].values()), "by_kind": raw["errors"]},
        "close_codes": raw["close_codes"],
        "chaos": raw["chaos"],
        "timeline": raw["timeline"],
    }


def format_report(report: dict[str, Any], slo_results: list[dict[str, Any]]) -> str:
    """The report as a few readable lines."""
    mm, resume, latency, updates = report["matchmaking"], report["resume"], report["latency"], report["updates"]
    queue = mm["queue_seconds"]
    lines = [
        f"Arena bot swarm: {report['config']['count']} bots, {report['config']['mode']}, {report['seconds']} s",
        f"  matchmaking   {mm['joins']}/{mm['queue_attempts']} queued bots joined a match "
        f"(success {_percent(mm['match_start_success_rate'])}), {mm['matches_joined']} matches; "
        f"queue time p50 {queue['p50']} s, p95 {queue['p95']} s, p99 {queue['p99']} s",
        f"  resume        {resume['succeeded']}/{resume['attempts']} after a drop "
        f"(success {_percent(resume['success_rate'])}); time to resume p50 {resume['seconds_to_resume']['p50']} s, "
        f"p99 {resume['seconds_to_resume']['p99']} s; refused: {resume['refusals'] or 'none'}",
        f"  latency       round trip p50 {latency['rtt_ms']['p50']} ms, p99 {latency['rtt_ms']['p99']} ms; "
        f"input to acknowledgement p50 {latency['input_ack_ms']['p50']} ms, p99 {latency['input_ack_ms']['p99']} ms",
        f"  updates       {updates['per_bot_rate_mean']}/s per bot in a match (server ticks at "
        f"{updates['server_tick_rate']}/s; slowest 1% {updates['per_bot_rate']['p1']}/s); "
        f"{_kilobytes(updates['bytes_per_second_per_bot']['p50'])} per bot (p99 "
        f"{_kilobytes(updates['bytes_per_second_per_bot']['p99'])})",
        f"  chaos         {report['chaos'] or 'none'}",
        f"  close codes   {report['close_codes'] or 'none'} (sent by the server to bots)",
        f"  errors        {report['errors']['total']}: {report['errors']['by_kind'] or 'none'}",
    ]
    for result in slo_results:
        verdict = "met" if result["passed"] else "MISSED"
        lines.append(f"  SLO {result['slo']:<28} {verdict} (value: {result['value']})")
    return "\n".join(lines)


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{100 * ratio:.1f}%"


def _kilobytes(bytes_per_second: float | None) -> str:
    return "n/a" if bytes_per_second is None else f"{bytes_per_second / 1000:.1f} kB/s"


def _svg_plot(title: str, timeline: list[dict[str, Any]], series: list[tuple[str, str, str]], unit: str) -> str:
    """A line chart of timeline[key] for each (key, label, colour), with axes; no library needed."""
    width, height, left, bottom, top = 720, 220, 60, 30, 24
    points = [point for point in timeline if point.get("t") is not None]
    if not points:
        return f"<p>{html.escape(title)}: no data</p>"
    t_max = max(point["t"] for point in points) or 1
    values = [point.get(key) for point in points for key, _, _ in series]
    y_max = max((value for value in values if value is not None), default=0) or 1
    plot_w, plot_h = width - left - 10, height - bottom - top

    def x(t: float) -> float:
        return left + plot_w * t / t_max

    def y(value: float) -> float:
        return top + plot_h * (1 - value / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{y_max:.4g} {unit}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">{t_max:.0f} s</text>',
    ]
    for index, (key, label, colour) in enumerate(series):
        coordinates = " ".join(
            f"{x(point['t']):.1f},{y(point[key]):.1f}" for point in points if point.get(key) is not None
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coordinates}"/>')
        parts.append(
            f'<text x="{left + 10 + 170 * index}" y="{height - 8}" font-size="11" fill="{colour}">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(report: dict[str, Any], slo_results: list[dict[str, Any]]) -> str:
    """A page a person can open: the summary, the SLOs, and plots over time."""
    timeline = [{**point, "kilobytes": (point.get("bytes") or 0) / 1000} for point in report["timeline"]]
    plots = [
        _svg_plot(
            "Bots over time",
            timeline,
            [("connected", "connected", "#1f77b4"), ("in_match", "in a match", "#2ca02c"),
             ("reconnecting", "reconnecting", "#d62728"), ("queued", "queued", "#9467bd")],
            "bots",
        ),
        _svg_plot(
            "Throughput: updates received per second (all bots)", timeline,
            [("updates", "updates/s", "#1f77b4")], "/s",
        ),
        _svg_plot(
            "Throughput: kilobytes received per second (all bots)", timeline,
            [("kilobytes", "kB/s", "#ff7f0e")], "kB/s",
        ),
        _svg_plot(
            "Latency: input to acknowledgement", timeline,
            [("input_ack_ms_p50", "p50", "#2ca02c"), ("input_ack_ms_p99", "p99", "#d62728")], "ms",
        ),
    ]  # fmt: skip
    slo_rows = "".join(
        f"<tr><td>{html.escape(r['slo'])}</td><td>{html.escape(str(r['value']))}</td>"
        f"<td class={'met' if r['passed'] else 'missed'}>{'met' if r['passed'] else 'missed'}</td></tr>"
        for r in slo_results
    )
    summary = html.escape(format_report(report, []))
    figures = html.escape(json.dumps({key: value for key, value in report.items() if key != "timeline"}, indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Arena bot swarm report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}} pre{{background:#f4f4f4;padding:1em;
overflow-x:auto}} td{{padding:2px 12px}} .met{{color:#2a2}} .missed{{color:#c22;font-weight:bold}}</style></head>
<body><h1>Arena bot swarm report</h1>
<pre>{summary}</pre>
{
        "<h2>Service-level objectives</h2><table><tr><th>objective</th><th>value</th><th></th></tr>"
        + slo_rows
        + "</table>"
        if slo_results
        else ""
    }
<h2>Over time</h2>
{"".join(f"<div>{plot}</div>" for plot in plots)}
<h2>All figures</h2><pre>{figures}</pre>
</body></html>
"""
