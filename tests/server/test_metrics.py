"""GET /metrics: the Prometheus text format, read back with prometheus-client's own parser, whose numbers move
as players play; and who may read it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bots.client import RefusedError, connect
from server.metrics import TICK_BUCKETS, TickHistogram
from tests.conftest import ws_url
from tests.server.rawws import http_exchange, http_get, upgrade_request

ADMIN_TOKEN = "admin-token-for-tests-0123456789"


async def scrape(port: int, *, extra: str = "") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http_get(port, "/metrics", extra=extra)
    assert response.status == 200, response
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_as_players_play(server):
    before = await scrape(server.port)
    assert value(before, "arena_sessions", state="playing") == 0
    async with connect(ws_url(server), name="alice") as alice, connect(ws_url(server), name="bob") as bob:
        await alice.join()
        await bob.join()
        for step in range(20):
            await alice.send_input(mx=1, fire=step % 2 == 0)
            await bob.send_input(my=1)
            await trio.sleep(0.05)
        during = await scrape(server.port)
        assert value(during, "arena_sessions", state="playing") == 2
        assert value(during, "arena_matches", mode="ffa", state="playing") == 1
        assert value(during, "arena_players", mode="ffa", status="playing") == 2
        assert value(during, "arena_matches_formed_total", mode="ffa") >= 1
        assert value(during, "arena_queue_wait_seconds_count", mode="ffa") == 2
        assert value(during, "arena_received_messages_total") >= 2 + 2 + 40  # hellos, queues/joins, inputs
        assert value(during, "arena_sent_frames_total") > value(before, "arena_sent_frames_total") + 20
        assert value(during, "arena_sent_bytes_total") > value(before, "arena_sent_bytes_total")
        assert value(during, "arena_tick_lateness_seconds_count") > 10
        assert value(during, "arena_tick_duration_seconds_count") == value(during, "arena_tick_lateness_seconds_count")
        costs = [v for (name, _), v in during.items() if name == "arena_match_tick_cost_seconds"]
        assert len(costs) == 1 and 0 < costs[0] < 0.1
        assert value(during, "arena_guest_tokens_total") == 2
    with trio.fail_after(3):
        while True:
            after = await scrape(server.port)
            if value(after, "arena_closes_total", code="1000") == 2:
                break
            await trio.sleep(0.05)
    assert value(after, "arena_sessions", state="playing") == 0
    assert value(after, "arena_received_messages_total") >= value(during, "arena_received_messages_total")


async def test_limit_hits_and_refusals_are_counted(server):
    async with connect(ws_url(server), name="carol") as carol:
        with pytest.raises(RefusedError, match="unknown resume token"):
            await carol.resume("not-a-token")
        samples = await scrape(server.port)
    assert value(samples, "arena_resume_refusals_total", reason="unknown_token") == 1
    response = await http_exchange(server.port, upgrade_request(server.port, key=b"short"))
    assert response.status == 400
    samples = await scrape(server.port)
    assert value(samples, "arena_limit_hits_total", limit="handshake") == 1


async def test_metrics_are_open_to_the_configured_networks_and_the_admin_token(server_factory):
    server = await server_factory(metrics_from=("10.0.0.0/8",), admin_token=ADMIN_TOKEN)
    refused = await http_get(server.port, "/metrics")
    assert refused.status == 403
    assert b"--metrics-from" in refused.body
    samples = await scrape(server.port, extra=f"Authorization: Bearer {ADMIN_TOKEN}\r\n")
    assert value(samples, "arena_tcp_connections") >= 1


async def test_every_metric_the_docs_and_the_dashboard_name_is_exported(server):
    root = Path(__file__).resolve().parents[2]
    named = set(re.findall(r"\barena_[a-z_]+", (root / "docs" / "grafana-dashboard.json").read_text()))
    named |= set(re.findall(r"`(arena_[a-z_]+)`", (root / "docs" / "operations.md").read_text()))
    response = await http_get(server.port, "/metrics")
    exported = {
        sample.name for family in text_string_to_metric_families(response.body.decode()) for sample in family.samples
    }
    exported |= {family.name for family in text_string_to_metric_families(response.body.decode())}
    missing = sorted(name for name in named if name not in exported)
    assert not missing, f"named in the docs or the dashboard but not exported: {missing}"


async def test_the_process_cpu_is_exported_and_its_share_of_a_core_shown_in_healthz(server):
    samples = await scrape(server.port)
    assert value(samples, "process_cpu_seconds_total") > 0  # Prometheus' own name, for its usual alerts
    assert value(samples, "process_open_fds") > 0
    spent = time.process_time()
    while time.process_time() - spent < 0.3:  # keep this process busy (the server shares it in this test)
        pass
    with trio.fail_after(5):
        while server.health()["load"]["cpu"] < 0.05:
            await trio.sleep(0.2)
    assert 0.05 <= server.health()["load"]["cpu"] <= 1.5


@given(st.lists(st.lists(st.sampled_from([*TICK_BUCKETS, 0.0]) | st.floats(0, 2, allow_nan=False), max_size=40)))
def test_tick_histograms_say_what_prometheus_clients_own_histogram_says(seconds: list[list[float]]) -> None:
    # the tick histograms are counted a second at a time with numpy; scraped, they must read exactly as
    # prometheus-client's Histogram fed the same values one by one (bounds included: a value on a bound is in it)
    registry = CollectorRegistry()
    reference = Histogram("arena_tick_lateness_seconds", "ticks", buckets=TICK_BUCKETS, registry=registry)
    ours = TickHistogram("arena_tick_lateness_seconds", "ticks")
    *over, pending = seconds or [[]]
    for second in over:
        ours.observe_all(numpy.array(second, dtype=numpy.float64))
    for value in (value for second in seconds for value in second):
        reference.observe(value)

    def samples(families: list[Metric]) -> dict[tuple[str, str], float]:
        return {(s.name, s.labels.get("le", "")): s.value for family in families for s in family.samples}

    expected, got = samples(list(registry.collect())), samples([ours.family(numpy.array(pending, dtype=numpy.float64))])
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
