"""The bot swarm against a real server: its report agrees with the server's own counters; SLOs gate a run."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import trio

from bots.chaos import ChaosSyntaxError, parse_chaos
from bots.client import http_request
from bots.report import build_report, format_report, merge_raw, render_html
from bots.slo import SloSyntaxError, check_slos, parse_slos
from bots.swarm import Swarm, SwarmConfig, _failure_kind
from server.matchmaker import Mode
from tests.conftest import ws_url

QUICK_FFA = Mode(name="ffa", min_players=2, max_players=8, fill_after_seconds=0.5, fill_with_bots=True, backfill=True)


async def _health(url: str) -> dict:
    status, body = await http_request(url, "GET", "/healthz")
    assert status == 200
    return json.loads(body)


async def test_a_swarm_with_chaos_reports_what_the_server_counted(server_factory):
    server = await server_factory(modes=(QUICK_FFA,), resume_window=10.0)
    url = ws_url(server)
    chaos = parse_chaos("drop=0.03,leave=0.02,burst=0.02,storm=0.05")
    config = SwarmConfig(url=url, count=40, ramp_per_second=40, duration=20, chaos=chaos, seed=7)
    stats = await Swarm(config).run()
    with trio.fail_after(10):  # the server counts a close code once it has seen the connection end
        while (health := await _health(url))["connections"] > 0:
            await trio.sleep(0.1)
    report = build_report(stats.raw(), config={"count": 40, "mode": "ffa"}, seconds=stats.elapsed())
    counters, close_codes = health["counters"], health["close_codes"]

    assert 1 <= report["matchmaking"]["matches_joined"] <= counters["matches_formed"]
    assert report["matchmaking"]["match_start_success_rate"] > 0.9
    drops = report["chaos"].get("drop", 0)
    assert drops >= 3, "the chaos rates should have dropped several connections"
    assert report["chaos"].get("leave", 0) >= 1
    assert report["resume"]["attempts"] + report["resume"]["not_attempted_before_the_end"] == drops
    assert report["resume"]["succeeded"] == counters["resumes"] > 0
    assert report["resume"]["refused"] == counters.get("resumes_refused", 0)
    # every connection the swarm opened was closed once, and every abrupt drop shows as 1006 (no close frame)
    assert sum(close_codes.values()) == report["connections_opened"]
    assert close_codes.get("1006", 0) == drops
    assert report["errors"]["total"] == 0, report["errors"]
    assert report["updates"]["rate_to_tick_rate"] > 0.8
    assert report["latency"]["input_ack_ms"]["p50"] is not None
    assert "Arena bot swarm" in render_html(report, [])


async def test_a_swarm_against_a_fleet_with_chaos_and_a_drain_reports_what_the_servers_counted(
    server_factory, redis_server
):
    home, other = [
        await server_factory(modes=(QUICK_FFA,), resume_window=10.0, redis_url=redis_server.url) for _ in range(2)
    ]
    with trio.fail_after(5):
        while not all(server.fleet.view.connected and len(server.fleet.view.servers) == 2 for server in (home, other)):
            await trio.sleep(0.05)
    chaos = parse_chaos("drop=0.03,leave=0.02")
    config = SwarmConfig(url=ws_url(home), count=40, ramp_per_second=40, duration=16, chaos=chaos, seed=11)
    hosted_by_other: set[str] = set()

    async def drain_other_midway() -> None:
        await trio.sleep(8)
        hosted_by_other.update(other.directory.matches)
        other.shutdown()  # a deploy: its matches move to `home`, and the swarm follows them there

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain_other_midway)
        stats = await Swarm(config).run()
    with trio.fail_after(10):
        while home.health()["connections"] > 0:
            await trio.sleep(0.1)
    report = build_report(stats.raw(), config={"count": 40, "mode": "ffa"}, seconds=stats.elapsed())
    counters = [server.health()["counters"] for server in (home, other)]

    assert hosted_by_other, "the fleet placed no match on the second server"
    assert report["moves"]["followed"] >= 1 and not report["moves"]["refusals"], report["moves"]
    assert 1 <= report["matchmaking"]["matches_joined"] <= sum(c["matches_formed"] for c in counters)
    assert report["matchmaking"]["match_start_success_rate"] > 0.9
    assert report["chaos"].get("drop", 0) >= 3
    # every seat taken back, after a drop or after following the match: a seat whose player dropped before the
    # match moved is taken back on the adopter, which counts it with the moved ones
    taken_back = sum(c.get("resumes", 0) + c.get("resumes_after_a_move", 0) for c in counters)
    assert report["resume"]["succeeded"] + report["moves"]["followed"] == taken_back > 0
    assert report["resume"]["refused"] == sum(c.get("resumes_refused", 0) for c in counters)
    assert counters[1].get("matches_moved", 0) == len(hosted_by_other)  # each moved (none stayed)
    assert report["errors"]["total"] == 0, report["errors"]
    assert report["updates"]["rate_to_tick_rate"] > 0.7


def test_slos_are_read_with_units_and_checked_against_the_report():
    slos = parse_slos("resume_success>=0.99, queue_p95<5s, input_ack_p99<200ms, rtt_p50<0.1s")
    assert [slo.value for slo in slos] == [0.99, 5.0, 200.0, 100.0]
    report = {
        "resume": {"success_rate": 1.0},
        "matchmaking": {"queue_seconds": {"p95": 6.5}},
        "latency": {"input_ack_ms": {"p99": 120.0}, "rtt_ms": {"p50": None}},
    }
    results = check_slos(slos, report)
    assert [result["passed"] for result in results] == [True, False, True, False]
    assert "MISSED" in format_report(_empty_report(), results)


@pytest.mark.parametrize("text", ["queue_p95 < soon", "latency<5s", "resume_success>=0.9s"])
def test_an_unreadable_slo_says_what_to_write(text):
    with pytest.raises(SloSyntaxError, match="--slo"):
        parse_slos(text)


def test_chaos_is_read_from_rates_and_refuses_unknown_kinds():
    assert parse_chaos("off").enabled is False
    assert parse_chaos("default").drop > 0
    assert parse_chaos("drop=0.5,storm=0.01").as_dict()["drop"] == 0.5
    with pytest.raises(ChaosSyntaxError, match="kinds are"):
        parse_chaos("explode=0.1")
    with pytest.raises(ChaosSyntaxError, match="probability"):
        parse_chaos("drop=2")


def test_the_command_exits_1_when_an_slo_is_missed(tmp_path):
    """A tiny real run from the command line against a server on a free port, with an SLO it cannot meet."""
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", "--queue-wait", "0.2", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        while "open http://" not in line:
            line = server.stdout.readline()
        port = re.search(r"http://[^/]+:(\d+)/", line).group(1)
        command = [sys.executable, "-m", "bots", "--url", f"ws://127.0.0.1:{port}/ws", "--count", "2"]
        command += ["--duration", "4s", "--quiet", "--slo", "queue_p50<0.001ms,errors==0"]
        command += ["--report-json", str(tmp_path / "r.json"), "--report-html", str(tmp_path / "r.html")]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=15)
        if server.stdout is not None:
            server.stdout.close()
    assert run.returncode == 1, run.stderr
    assert "missed 1 SLO(s): queue_p50<0.001ms" in run.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["matchmaking"]["joins"] >= 2
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_reports_of_several_processes_merge():
    part = {
        "tick_rate": 30, "connections_opened": 2, "queue_attempts": 2, "joins": 2, "queue_seconds": [0.5, 1.0],
        "matches": ["a"], "refusals": {}, "resume_attempts": 1, "resumes_not_attempted": 0, "resumes": 1,
        "resumes_after_the_end": 0,
        "resume_seconds": [0.4], "resumes_refused": {}, "rtt_ms": [2.0], "input_ack_ms": [40.0], "inputs_sent": 10,
        "updates": 60, "bytes_received": 6000, "bot_rates": [30.0], "bot_bytes_per_second": [3000.0], "errors": {},
        "close_codes": {"1008": 1}, "chaos": {"drop": 1}, "timeline": [{"t": 1.0, "connected": 2, "updates": 60}],
    }  # fmt: skip
    other = {**part, "matches": ["a", "b"], "close_codes": {"1008": 2}}
    merged = merge_raw([part, other])
    assert merged["matches"] == ["a", "b"]
    assert merged["close_codes"] == {"1008": 3}
    assert merged["queue_seconds"] == [0.5, 1.0, 0.5, 1.0]
    assert merged["timeline"][0]["connected"] == 4


def _empty_report() -> dict:
    raw = merge_raw([])
    raw["timeline"] = []
    return build_report(raw, config={"count": 0, "mode": "ffa"}, seconds=0.0)


async def test_a_failed_connection_is_reported_with_what_its_attempts_met() -> None:
    # trio's own OSError says only that every attempt failed: the report names why (here: nothing listens)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # the port is free again, and nothing listens on it
    with pytest.raises(OSError) as failure:
        await trio.open_tcp_stream("127.0.0.1", port)
    assert _failure_kind(failure.value) == "OSError (ConnectionRefusedError)"
    assert _failure_kind(ConnectionResetError(104, "reset")) == "ConnectionResetError"
