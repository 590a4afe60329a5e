"""The swarm's report: figures from the raw counts and samples of one or more swarm processes, printed as a
table, written as JSON, and drawn as an HTML page whose plots over time (bots, throughput, latency, resumes and
queue time, with chaos events on the time axis) matplotlib draws as inline SVG.
"""

from __future__ import annotations

import html
import io
import json
from collections import Counter
from typing import Any

LIST_KEYS = (
    "queue_seconds",
    "resume_seconds",
    "move_seconds",
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
    "resumes_after_the_end",
    "moves",
    "resume_servers_unreachable",
    "hosts_gone_before_join",
    "queued_at_the_end",
    "servers_went_away",
    "inputs_sent",
    "updates",
    "bytes_received",
)
COUNTER_KEYS = ("refusals", "resumes_refused", "moves_refused", "errors", "close_codes", "chaos")
TIMELINE_SUMS = (
    "connected",
    "queued",
    "in_match",
    "reconnecting",
    "inputs_sent",
    "updates",
    "bytes",
    "errors",
    "joins",
    "resumes",
    "resumes_refused",
)
TIMELINE_WORST = ("input_ack_ms_p50", "input_ack_ms_p99", "rtt_ms_p50", "rtt_ms_p99", "queue_seconds_max")
"""Per-second figures that cannot be added across processes: the report shows the worst process's."""


def merge_raw(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One raw record from several processes' (timelines are added second by second)."""
    merged: dict[str, Any] = {"tick_rate": max((part["tick_rate"] for part in parts), default=0)}
    # a part written by an older swarm may lack a newer key (moves): it counts as none
    for key in LIST_KEYS:
        merged[key] = [value for part in parts for value in part.get(key, ())]
    for key in COUNT_KEYS:
        merged[key] = sum(part.get(key, 0) for part in parts)
    for key in COUNTER_KEYS:
        total: Counter[str] = Counter()
        for part in parts:
            total.update(part.get(key, {}))
        merged[key] = dict(total)
    merged["matches"] = sorted({match for part in parts for match in part["matches"]})
    merged["chaos_events"] = sorted(event for part in parts for event in part.get("chaos_events", []))
    timeline: dict[int, dict[str, Any]] = {}
    for part in parts:
        for second, point in enumerate(part["timeline"]):
            slot = timeline.setdefault(second, {"t": point["t"]})
            for key in TIMELINE_SUMS:
                slot[key] = slot.get(key, 0) + (point.get(key) or 0)
            for key in TIMELINE_WORST:
                if point.get(key) is not None:
                    slot[key] = max(slot.get(key) or 0, point[key])
                else:
                    slot.setdefault(key, None)
    merged["timeline"] = [slot for _, slot in sorted(timeline.items())]
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
            "still_queued_at_the_end": raw.get("queued_at_the_end", 0),
            "queue_seconds": quantiles(raw["queue_seconds"], 0.5, 0.95, 0.99),
            "matches_joined": len(raw["matches"]),
            "refusals": raw["refusals"],
        },
        "resume": {
            "attempts": raw["resume_attempts"],
            "not_attempted_before_the_end": raw["resumes_not_attempted"],
            "succeeded": raw["resumes"],
            "into_an_ended_match": raw["resumes_after_the_end"],
            "refused": resumes_refused,
            "success_rate": _ratio(raw["resumes"], raw["resume_attempts"]),
            "seconds_to_resume": quantiles(raw["resume_seconds"], 0.5, 0.99),
            "refusals": raw["resumes_refused"],
        },
        "moves": {  # matches that moved to another server of the fleet while bots played (a server drained)
            "followed": raw.get("moves", 0),
            "resumes_via_the_first_server": raw.get("resume_servers_unreachable", 0),
            "seats_whose_server_went_away_before_the_join": raw.get("hosts_gone_before_join", 0),
            "connections_closed_by_a_server_going_away": raw.get("servers_went_away", 0),
            "seconds_to_resume": quantiles(raw.get("move_seconds", []), 0.5, 0.99),
            "refusals": raw.get("moves_refused", {}),
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
        "chaos_events": raw.get("chaos_events", []),
        # the run's last point is taken while its bots close: it would show every line falling to zero
        "timeline": [point for point in raw["timeline"] if point["t"] < config.get("duration_seconds", seconds)],
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
        f"(success {_percent(resume['success_rate'])}; {resume['into_an_ended_match']} into a match that had ended: "
        f"its final state and left); time to resume p50 {resume['seconds_to_resume']['p50']} s, "
        f"p99 {resume['seconds_to_resume']['p99']} s; refused: {_counts(resume['refusals'])}",
        f"  latency       round trip p50 {latency['rtt_ms']['p50']} ms, p99 {latency['rtt_ms']['p99']} ms; "
        f"input to acknowledgement p50 {latency['input_ack_ms']['p50']} ms, p99 {latency['input_ack_ms']['p99']} ms",
        f"  updates       {updates['per_bot_rate_mean']}/s per bot in a match (server ticks at "
        f"{updates['server_tick_rate']}/s; slowest 1% {updates['per_bot_rate']['p1']}/s); "
        f"{_kilobytes(updates['bytes_per_second_per_bot']['p50'])} per bot (p99 "
        f"{_kilobytes(updates['bytes_per_second_per_bot']['p99'])})",
        f"  chaos         {_counts(report['chaos'])}",
        f"  close codes   {_counts(report['close_codes'])} (sent by the server to bots)",
        f"  errors        {report['errors']['total']}: {_counts(report['errors']['by_kind'])}",
    ]
    for result in slo_results:
        verdict = "met" if result["passed"] else "MISSED"
        lines.append(f"  SLO {result['slo']:<28} {verdict} (value: {result['value']})")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    """ "drop 87, burst 52, leave 26": a count of each kind, most first."""
    if not counts:
        return "none"
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{100 * ratio:.1f}%"


def _kilobytes(bytes_per_second: float | None) -> str:
    return "n/a" if bytes_per_second is None else f"{bytes_per_second / 1000:.1f} kB/s"


CHAOS_STYLES = {
    "drop": ("#d62728", "v"),
    "storm drop": ("#d62728", "v"),
    "leave": ("#9467bd", "<"),
    "burst": ("#ff7f0e", "^"),
    "silent": ("#7f7f7f", "s"),
}


def _figure_svg(figure: Any) -> str:
    """A matplotlib figure as inline SVG (without the XML prologue), and the figure closed."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _mark_chaos(axes: Any, events: list[tuple[float, str]], *, duration: float) -> None:
    """Chaos on the time axis: a rug of markers per kind along the bottom, a vertical line per storm."""
    storms = [t for t, kind in events if kind == "storms"]
    for index, t in enumerate(storms):
        axes.axvline(t, color="#d62728", linestyle="--", linewidth=1, label="storm" if index == 0 else None)
    for kind, (colour, marker) in CHAOS_STYLES.items():
        times = [t for t, event in events if event == kind and t <= duration]
        if times:
            axes.plot(
                times,
                [0.02] * len(times),
                linestyle="none",
                marker=marker,
                markersize=4,
                color=colour,
                alpha=0.6,
                transform=axes.get_xaxis_transform(),
                label=f"{kind} ({len(times)})",
            )


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, inline SVG) of each plot over time, drawn with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, selectable, readable by tests
    matplotlib.rcParams["svg.hashsalt"] = "arena"  # the same report gives the same SVG ids
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    timeline = report["timeline"]
    events = [(float(t), str(kind)) for t, kind in report.get("chaos_events", [])]
    duration = float(report["config"].get("duration_seconds") or report["seconds"])
    t = [point["t"] for point in timeline]
    plots: list[tuple[str, str]] = []

    def new_axes(ylabel: str) -> tuple[Any, Any]:
        figure, axes = plt.subplots(figsize=(9, 3.2))
        axes.set_xlim(0, duration)
        axes.set_xlabel("seconds into the run")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        return figure, axes

    def series(key: str, scale: float = 1.0) -> list[float | None]:
        return [None if point.get(key) is None else point[key] * scale for point in timeline]

    figure, axes = new_axes("bots")
    for key, label, colour in (
        ("connected", "connected", "#1f77b4"),
        ("in_match", "in a match", "#2ca02c"),
        ("queued", "queued", "#9467bd"),
        ("reconnecting", "reconnecting", "#d62728"),
    ):
        axes.step(t, series(key), where="post", label=label, color=colour)
    _mark_chaos(axes, events, duration=duration)
    axes.legend(loc="upper left", fontsize=8, ncol=3)
    plots.append(("Bots, and chaos events (markers along the bottom; dashed lines: storms)", _figure_svg(figure)))

    figure, axes = new_axes("updates per second")
    axes.plot(t, series("updates"), color="#1f77b4", label="updates received (all bots)")
    second = axes.twinx()
    second.plot(t, series("bytes", 1 / 1000), color="#ff7f0e", label="kB received (all bots)")
    second.set_ylabel("kB per second")
    handles = axes.get_legend_handles_labels()[0] + second.get_legend_handles_labels()[0]
    axes.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    plots.append(("Throughput: what all bots received each second", _figure_svg(figure)))

    figure, axes = new_axes("milliseconds")
    axes.yaxis.set_major_locator(MaxNLocator())
    axes.plot(t, series("input_ack_ms_p50"), color="#2ca02c", label="input to ack, p50 of the second")
    axes.plot(t, series("input_ack_ms_p99"), color="#d62728", label="input to ack, p99 of the second")
    axes.plot(t, series("rtt_ms_p50"), color="#17becf", linestyle=":", label="round trip, p50 of the second")
    axes.plot(t, series("rtt_ms_p99"), color="#8c564b", linestyle=":", label="round trip, p99 of the second")
    whole_run = report["latency"]["input_ack_ms"]["p99"]
    if whole_run is not None:
        axes.axhline(
            whole_run,
            color="#d62728",
            linestyle="--",
            linewidth=1,
            label=f"input to ack, p99 of the run ({whole_run:.0f} ms)",
        )
    _mark_chaos(axes, [event for event in events if event[1] == "storms"], duration=duration)
    axes.legend(loc="upper left", fontsize=8, ncol=2)
    plots.append(
        (
            "Latency. Each point is a percentile of one second's samples, so a high p99 point is one bad second; "
            "the dashed line is the p99 of every input of the run, the summary's figure (a few bad seconds hold "
            "few of all inputs)",
            _figure_svg(figure),
        )
    )

    figure, axes = new_axes("resumes per second")
    width = 0.8
    axes.bar(t, series("resumes"), width=width, color="#2ca02c", label="resumes")
    refused = series("resumes_refused")
    axes.bar(t, [-(value or 0) for value in refused], width=width, color="#d62728", label="resumes refused (below 0)")
    second = axes.twinx()
    second.plot(
        t, series("queue_seconds_max"), "o", markersize=3, color="#9467bd", label="longest queue wait of the second"
    )
    second.set_ylabel("queue wait (s)")
    _mark_chaos(axes, [event for event in events if event[1] == "storms"], duration=duration)
    handles = axes.get_legend_handles_labels()[0] + second.get_legend_handles_labels()[0]
    axes.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    plots.append(("Resumes and queue time", _figure_svg(figure)))
    return plots


def render_html(report: dict[str, Any], slo_results: list[dict[str, Any]]) -> str:
    """A page a person can open: the summary, the SLOs, and plots over time."""
    plots = [f"<figure><figcaption>{html.escape(title)}</figcaption>{svg}</figure>" for title, svg in _plots(report)]
    slo_rows = "".join(
        f"<tr><td>{html.escape(r['slo'])}</td><td>{html.escape(str(r['value']))}</td>"
        f"<td class={'met' if r['passed'] else 'missed'}>{'met' if r['passed'] else 'missed'}</td></tr>"
        for r in slo_results
    )
    summary = html.escape(format_report(report, []))
    figures = html.escape(
        json.dumps({key: value for key, value in report.items() if key not in ("timeline", "chaos_events")}, indent=2)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Arena bot swarm report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}} pre{{background:#f4f4f4;padding:1em;
overflow-x:auto}} td{{padding:2px 12px}} figure{{margin:1.5em 0}} figcaption{{font-weight:bold;margin-bottom:.3em}}
svg{{max-width:100%;height:auto}} .met{{color:#2a2}} .missed{{color:#c22;font-weight:bold}}</style></head>
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
{"".join(plots)}
<h2>All figures</h2><pre>{figures}</pre>
</body></html>
"""
