"""`arena`: `arena serve ...` runs a server (server.cli), `arena bots ...` a bot swarm (also `python -m bots`).

The server never imports the bots, so the `arena` command lives here and hands `serve` to server.cli.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bots.chaos import CHAOS_KINDS, ChaosSyntaxError, parse_chaos
from bots.report import build_report, format_report, merge_raw, render_html
from bots.slo import METRICS, SloSyntaxError, check_slos, parse_slos
from bots.swarm import CLOSE_GRACE_SECONDS, Swarm, SwarmConfig, SwarmStats

MAX_BOTS = 10_000
MAX_DURATION_SECONDS = 3600.0
MAX_PROCESSES = 16
PLAIN_PROGRESS_SECONDS = 5.0
REPORTS_DIR = Path(".arena") / "reports"
"""Where reports go by default: hidden, and ignored by the repository."""
USAGE = """usage: arena {serve,bots,replay} ...

  arena serve [options]   run a game server with the browser client at / (arena serve --help)
  arena bots [options]    run a bot swarm against a server and report (arena bots --help)
  arena replay FILE       re-simulate a recorded match; --verify checks its state hashes (arena replay --help)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bots":
        return swarm_main(argv[1:], prog="arena bots")
    if argv and argv[0] == "replay":
        from server.replay import main as replay_main

        return replay_main(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv:
        print(USAGE)
        return 2
    from server.cli import main as serve_main

    return serve_main(argv)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A swarm of headless bots that play on an Arena server, cause chaos, and report what happened.",
        epilog=f"chaos kinds: {', '.join(CHAOS_KINDS)} (rates are probabilities per bot per second; storm per "
        f"second for the swarm). SLO metrics (unit): "
        + ", ".join(
            f"{name} ({unit or 'ratio' if name != 'errors' else 'count'})" for name, (_, unit) in METRICS.items()
        )
        + "; durations take s or ms, e.g. queue_p95<5s, input_ack_p99<250ms",
    )
    parser.add_argument(
        "--url",
        default="ws://127.0.0.1:8000/ws",
        help="the server's WebSocket URL, ws:// or wss:// (default %(default)s)",
    )
    parser.add_argument("--count", type=int, default=50, help=f"bots, at most {MAX_BOTS} (default %(default)s)")
    parser.add_argument(
        "--mode",
        default="ffa",
        help="the mode to queue for: one of the server's (duel, ffa by default) (default %(default)s)",
    )
    parser.add_argument("--ramp", default="50/s", help="how fast bots start, e.g. 50/s (default %(default)s)")
    parser.add_argument(
        "--duration", default="60s", help="how long the swarm runs, e.g. 90s or 5m (default %(default)s)"
    )
    parser.add_argument(
        "--chaos",
        default="off",
        help='"off", "default", or kind=rate,..., e.g. drop=0.02,leave=0.01,burst=0.01,silent=0.005,storm=0.01 '
        "(default %(default)s)",
    )
    parser.add_argument(
        "--slo",
        default="",
        help='objectives, e.g. "resume_success>=0.99,queue_p95<5s"; exit 1 if missed (default: none)',
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the bots' choices (default %(default)s)")
    parser.add_argument(
        "--procs", type=int, default=1, help="split the swarm across this many processes (default %(default)s)"
    )
    parser.add_argument(
        "--report-dir",
        default=str(REPORTS_DIR),
        help="where the report goes: a folder per run, named by its start time, holding report.json and report.html "
        "(default %(default)s)",
    )
    parser.add_argument("--report-json", help="write the JSON report here instead")
    parser.add_argument("--report-html", help="write the HTML report here instead")
    parser.add_argument("--quiet", action="store_true", help="no live progress (default: shown on standard error)")
    parser.add_argument("--raw-output", help=argparse.SUPPRESS)  # a child process of --procs writes here
    parser.add_argument("--first-index", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _seconds(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|min)?\s*", text)
    if match is None:
        raise ValueError(f"--duration: cannot read {text!r}; write e.g. 60s, 90 or 5m")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0}[unit]


def _rate(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(/s)?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"--ramp: cannot read {text!r}; write bots per second, e.g. 50/s")
    return float(match.group(1))


def swarm_main(argv: list[str], *, prog: str = "python -m bots") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        chaos = parse_chaos(args.chaos)
        slos = parse_slos(args.slo)
        duration, ramp = _seconds(args.duration), _rate(args.ramp)
    except (ChaosSyntaxError, SloSyntaxError, ValueError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    scheme = urlsplit(args.url).scheme
    problems = []
    if scheme not in ("ws", "wss"):
        problems.append(f"--url must be a ws:// or wss:// URL, got {args.url!r}")
    if not 1 <= args.count <= MAX_BOTS:
        problems.append(f"--count must be from 1 to {MAX_BOTS}, got {args.count}")
    if not 0 < duration <= MAX_DURATION_SECONDS:
        problems.append(f"--duration must be more than 0 and at most {MAX_DURATION_SECONDS:g} s")
    most_processes = min(MAX_PROCESSES, max(1, args.count))
    if not 1 <= args.procs <= most_processes:
        problems.append(f"--procs must be from 1 to {most_processes} (at most one per bot)")
    if problems:
        print(f"{prog}: " + "; ".join(problems), file=sys.stderr)
        return 2
    config = SwarmConfig(
        url=args.url,
        count=args.count,
        mode=args.mode,
        ramp_per_second=ramp,
        duration=duration,
        chaos=chaos,
        seed=args.seed,
        first_index=args.first_index,
    )
    started = time.time()
    if args.procs > 1:
        raw, seconds = _run_processes(args, argv)
    else:
        raw, seconds = trio.run(_run_swarm, config, not args.quiet)
        if args.raw_output:  # a child of --procs: the parent reports
            Path(args.raw_output).write_text(json.dumps({"raw": raw, "seconds": seconds}))
            return 0
    described = {
        "url": args.url,
        "count": args.count,
        "mode": args.mode,
        "ramp_per_second": ramp,
        "duration_seconds": duration,
        "chaos": chaos.as_dict(),
        "seed": args.seed,
        "procs": args.procs,
    }
    report = build_report(raw, config=described, seconds=seconds)
    slo_results = check_slos(slos, report)
    report["slo"] = slo_results
    print(format_report(report, slo_results))
    run_dir = Path(args.report_dir) / time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    json_path = Path(args.report_json) if args.report_json else run_dir / "report.json"
    html_path = Path(args.report_html) if args.report_html else run_dir / "report.html"
    for path in (json_path, html_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    html_path.write_text(render_html(report, slo_results))
    print(f"report written to {json_path} and {html_path}")
    missed = [result["slo"] for result in slo_results if not result["passed"]]
    if missed:
        print(f"{prog}: missed {len(missed)} SLO(s): {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


async def _run_swarm(config: SwarmConfig, show_progress: bool) -> tuple[dict[str, Any], float]:
    """Run the swarm; returns its raw record and how long it ran."""
    swarm = Swarm(config)
    async with trio.open_nursery() as nursery:
        if show_progress:
            nursery.start_soon(_show_progress, swarm.stats, config)
        await swarm.run()
        nursery.cancel_scope.cancel()
    return swarm.stats.raw(), swarm.stats.elapsed()


async def _show_progress(stats: SwarmStats, config: SwarmConfig) -> None:
    """On a terminal, a live panel redrawn every second (rich); otherwise a plain line every 5 seconds."""
    if not sys.stderr.isatty():
        while True:
            await trio.sleep(PLAIN_PROGRESS_SECONDS)
            print(_progress_line(stats, config), file=sys.stderr, flush=True)
    console = Console(stderr=True)
    with Live(_progress_table(stats, config), console=console, refresh_per_second=2, transient=False) as live:
        while True:
            await trio.sleep(1.0)
            live.update(_progress_table(stats, config))


def _progress_line(stats: SwarmStats, config: SwarmConfig) -> str:
    return (
        f"[{stats.elapsed():5.0f}/{config.duration:.0f} s] connected {stats.connected}/{config.count}, "
        f"queued {stats.queued}, in match {stats.in_match}, reconnecting {stats.reconnecting}; "
        f"matches {len(stats.matches)}; resumes {stats.resumes} ok / {sum(stats.resumes_refused.values())} refused; "
        f"errors {sum(stats.errors.values())}"
    )


def _progress_table(stats: SwarmStats, config: SwarmConfig) -> Table:
    elapsed = min(stats.elapsed(), config.duration)
    table = Table(title=f"arena bots: {elapsed:.0f} of {config.duration:.0f} s", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    latest = stats.timeline[-1] if stats.timeline else {}
    chaos = ", ".join(f"{kind} {count}" for kind, count in stats.chaos.most_common()) or "none"
    rows = [
        ("bots", f"{stats.connected}/{config.count} connected, {stats.queued} queued, {stats.in_match} in a match, "
                 f"{stats.reconnecting} reconnecting"),
        ("matches", str(len(stats.matches))),
        ("resumes", f"{stats.resumes} ok, {sum(stats.resumes_refused.values())} refused"),
        ("last second", f"{latest.get('updates', 0)} updates, input to ack p99 {latest.get('input_ack_ms_p99')} ms"),
        ("chaos", chaos),
        ("errors", str(sum(stats.errors.values()))),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    return table


def _run_processes(args: argparse.Namespace, argv: list[str]) -> tuple[dict[str, Any], float]:
    """Split the swarm across `--procs` child processes and merge what they saw."""
    shares = [args.count // args.procs + (1 if index < args.count % args.procs else 0) for index in range(args.procs)]
    ramp_share = _rate(args.ramp) / args.procs
    passthrough = _without_options(
        argv, {"--count", "--ramp", "--procs", "--report-json", "--report-html", "--report-dir", "--slo"}
    )
    with tempfile.TemporaryDirectory(prefix="arena-bots-") as folder:
        children = []
        first_index = 0
        for index, share in enumerate(shares):
            output = os.path.join(folder, f"part{index}.json")
            command = [sys.executable, "-m", "bots", *passthrough, "--count", str(share), "--ramp", f"{ramp_share}/s"]
            command += ["--first-index", str(first_index), "--raw-output", output]
            if index > 0:
                command.append("--quiet")
            children.append((subprocess.Popen(command), output))
            first_index += share
        timeout = _seconds(args.duration) + CLOSE_GRACE_SECONDS + 60
        parts, seconds = [], 0.0
        for child, output in children:
            child.wait(timeout=timeout)
            if child.returncode != 0 or not os.path.exists(output):
                print(f"a swarm process failed (exit {child.returncode}); its bots are left out", file=sys.stderr)
                continue
            part = json.loads(Path(output).read_text())
            parts.append(part["raw"])
            seconds = max(seconds, part["seconds"])
    return merge_raw(parts), seconds


def _without_options(argv: list[str], names: set[str]) -> list[str]:
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name in names:
            skip = "=" not in item
            continue
        kept.append(item)
    return kept
