"""The limits' rules with time passed in: token buckets, frame budgets, connection counts, per-address rates."""

from __future__ import annotations

import pytest

from server.limits import (
    AddressRateLimiter,
    ConnectionCounter,
    FrameBudget,
    FrameKind,
    FrameLimits,
    TokenBucket,
    address_key,
)


def test_address_key_is_the_ipv4_address_or_the_ipv6_slash_64():
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.1") == "198.51.100.1"
    assert address_key("not an address") == "not an address"


def test_a_token_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket(rate=2, burst=3)
    assert all(bucket.spend(10.0) for _ in range(3))
    assert not bucket.spend(10.0)
    assert bucket.seconds_until(10.0) == pytest.approx(0.5)
    assert bucket.spend(10.5)
    assert not bucket.spend(10.5)
    assert bucket.spend(20.0) and bucket.spend(20.0) and bucket.spend(20.0) and not bucket.spend(20.0)


def test_the_frame_budget_is_tighter_before_hello_and_counts_every_kind():
    limits = FrameLimits(frames_per_second=10, frames_before_hello=4, frames_per_second_before_hello=1, ping_burst=100)
    budget = FrameBudget(limits)
    for kind in (FrameKind.DATA, FrameKind.PONG, FrameKind.PING, FrameKind.DATA):
        assert budget.spend(kind, 0.0) is None
    assert "before hello" in (budget.spend(FrameKind.DATA, 0.0) or "")
    budget = FrameBudget(limits)
    budget.authenticated(0.0)
    assert all(budget.spend(FrameKind.PONG, 0.0) is None for _ in range(10))
    assert "10 per second" in (budget.spend(FrameKind.DATA, 0.0) or "")
    assert budget.spend(FrameKind.DATA, 0.2) is None  # two frames' worth refilled


def test_pings_have_their_own_small_budget():
    budget = FrameBudget(FrameLimits(pings_per_second=1, ping_burst=2))
    budget.authenticated(0.0)
    assert budget.spend(FrameKind.PING, 0.0) is None
    assert budget.spend(FrameKind.PING, 0.0) is None
    assert "too many pings" in (budget.spend(FrameKind.PING, 0.0) or "")
    assert budget.spend(FrameKind.DATA, 0.0) is None  # other frames are still within the main budget
    assert budget.spend(FrameKind.PING, 1.0) is None


def test_connections_are_capped_in_all_and_per_address_at_the_limit_and_past_it():
    counter = ConnectionCounter(max_total=3, max_per_address=2)
    counter.add("a")
    assert counter.refusal("a") is None
    counter.add("a")
    assert counter.refusal("a") == (429, "too many connections from your address (the limit is 2)")
    assert counter.refusal("b") is None
    counter.add(None)  # behind a proxy: its address is known later
    assert counter.refusal("b") is not None and counter.refusal("b")[0] == 503
    counter.remove("a")
    counter.remove(None)
    assert counter.refusal("a") is None
    counter.remove("a")
    assert counter.by_address == {} and counter.total == 0


def test_no_cap_when_the_limits_are_zero():
    counter = ConnectionCounter(max_total=0, max_per_address=0)
    for _ in range(10_000):
        counter.add("a")
    assert counter.refusal("a") is None
    assert counter.busiest(1) == [("a", 10_000)]


def test_per_address_rates_refuse_past_the_burst_and_say_when_to_retry():
    limiter = AddressRateLimiter(rate=1 / 6, burst=2)
    assert limiter.spend("a", 0.0) is None
    assert limiter.spend("a", 0.0) is None
    assert limiter.spend("a", 0.0) == pytest.approx(6.0)
    assert limiter.spend("b", 0.0) is None
    assert limiter.spend("a", 6.0) is None


def test_the_per_address_table_never_grows_past_its_bound():
    limiter = AddressRateLimiter(rate=1, burst=1, max_addresses=100)
    for index in range(100):
        assert limiter.spend(f"a{index}", 0.0) is None
    assert limiter.spend("newcomer", 0.0) is not None  # all buckets still refilling: the table is full
    assert len(limiter) == 100
    assert limiter.spend("newcomer", 5.0) is None  # refilled buckets were forgotten to make room
    assert len(limiter) == 1
