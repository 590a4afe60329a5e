"""What a client may spend: frames per connection, connections per address, guest tokens per address.

Rules: every limit is a token bucket or a count with a fixed bound, so no client can make the server keep more
than a bounded amount for it; time is passed in (trio time), so the rules are tested without waiting. Addresses
are counted by `address_key`: an IPv4 address, or the /64 network of an IPv6 address (one subscriber's share).
Tables keyed by address forget an address as soon as it holds nothing, and never grow past their bound.
"""

from __future__ import annotations

import enum
import ipaddress
import math

import attrs


def address_key(address: str) -> str:
    """What a per-address limit counts by: the address itself (IPv4, or anything unparseable), or an IPv6
    address's /64 network, which one subscriber usually holds whole."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@attrs.define
class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; starts full."""

    rate: float
    burst: float
    tokens: float = attrs.field(init=False)
    updated: float = attrs.field(default=-math.inf, init=False)

    def __attrs_post_init__(self) -> None:
        self.tokens = self.burst

    def spend(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if there are that many at trio time `now`."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def seconds_until(self, now: float, cost: float = 1.0) -> float:
        """How long until `cost` tokens are there."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        return max(0.0, (cost - tokens) / self.rate) if self.rate > 0 else math.inf

    def is_full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class FrameKind(enum.Enum):
    DATA = "data"
    """A data or continuation frame."""
    PING = "ping"
    PONG = "pong"


@attrs.frozen(kw_only=True)
class FrameLimits:
    """The frame budget of one connection (see `FrameBudget`).

    Attributes:
        frames_per_second: every frame a client sends (data, continuation, ping, pong), averaged over
            `burst_seconds`, once it has sent `hello`.
        frames_before_hello, frames_per_second_before_hello: before `hello`, a connection may send this many
            frames at once, refilled at this rate (a client sends its `hello` and waits).
        pings_per_second, ping_burst: of those frames, pings (a browser never sends one; libraries ping every
            few seconds).
        burst_seconds: how deep the main bucket is, in seconds of `frames_per_second`.
    """

    frames_per_second: float = 120.0
    burst_seconds: float = 1.0
    frames_before_hello: float = 16.0
    frames_per_second_before_hello: float = 4.0
    pings_per_second: float = 1.0
    ping_burst: float = 5.0


@attrs.define
class FrameBudget:
    """Counts every frame a connection sends against its limits; a frame over them ends the connection.

    A connection starts with the tighter before-hello bucket and moves to the main one at `hello`.
    """

    limits: FrameLimits
    _frames: TokenBucket = attrs.field(init=False)
    _pings: TokenBucket = attrs.field(init=False)
    _before_hello: bool = attrs.field(default=True, init=False)

    def __attrs_post_init__(self) -> None:
        limits = self.limits
        self._frames = TokenBucket(rate=limits.frames_per_second_before_hello, burst=limits.frames_before_hello)
        self._pings = TokenBucket(rate=limits.pings_per_second, burst=limits.ping_burst)

    def authenticated(self, now: float) -> None:
        """The connection sent its `hello`: from now on the main budget applies."""
        if self._before_hello:
            self._before_hello = False
            limits = self.limits
            self._frames = TokenBucket(
                rate=limits.frames_per_second, burst=limits.frames_per_second * limits.burst_seconds
            )
            self._frames.updated = now

    def spend(self, kind: FrameKind, now: float) -> str | None:
        """Count one frame; None if it is within the budget, else why the connection must be closed."""
        if kind is FrameKind.PING and not self._pings.spend(now):
            return f"too many pings: the limit is {self.limits.pings_per_second:g} per second"
        if not self._frames.spend(now):
            if self._before_hello:
                return f"too many frames before hello: the limit is {self.limits.frames_before_hello:g}"
            return f"too many frames: the limit is {self.limits.frames_per_second:g} per second"
        return None


@attrs.define
class ConnectionCounter:
    """Open connections, in all and per address key, against their caps (0: no cap).

    A connection is counted in all when accepted; under its address key as soon as the key is known (at once
    for a direct client, after the request head for one behind a trusted proxy).
    """

    max_total: int
    max_per_address: int
    total: int = attrs.field(default=0, init=False)
    by_address: dict[str, int] = attrs.field(factory=dict, init=False)

    def refusal(self, key: str | None) -> tuple[int, str] | None:
        """Why a new connection (from `key`, if known) must be refused: an HTTP status and a reason; or None."""
        if self.max_total and self.total >= self.max_total:
            return 503, f"the server is full ({self.max_total} connections): try again shortly"
        return None if key is None else self.address_refusal(key)

    def address_refusal(self, key: str) -> tuple[int, str] | None:
        if self.max_per_address and self.by_address.get(key, 0) >= self.max_per_address:
            return 429, f"too many connections from your address (the limit is {self.max_per_address})"
        return None

    def add(self, key: str | None) -> None:
        self.total += 1
        if key is not None:
            self.assign(key)

    def remove(self, key: str | None) -> None:
        self.total -= 1
        if key is not None:
            self.unassign(key)

    def assign(self, key: str) -> None:
        """Count an accepted connection under its address key, once that is known."""
        self.by_address[key] = self.by_address.get(key, 0) + 1

    def unassign(self, key: str) -> None:
        left = self.by_address[key] - 1
        if left:
            self.by_address[key] = left
        else:
            del self.by_address[key]

    def busiest(self, count: int) -> list[tuple[str, int]]:
        """The `count` address keys holding the most connections, most first."""
        return sorted(self.by_address.items(), key=lambda item: (-item[1], item[0]))[:count]


@attrs.define
class AddressRateLimiter:
    """A token bucket per address key (guest tokens per address, say), holding at most `max_addresses` of them.

    Buckets that have refilled are forgotten when the table is full; if it is still full, every address is
    refused until some refill (the table is never allowed to grow without bound).
    """

    rate: float
    burst: float
    max_addresses: int = 100_000
    _buckets: dict[str, TokenBucket] = attrs.field(factory=dict, init=False)

    def __len__(self) -> int:
        return len(self._buckets)

    def spend(self, key: str, now: float) -> float | None:
        """Take a token for `key`; None if there was one, else the seconds until there is one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_addresses:
                self._forget_full_buckets(now)
                if len(self._buckets) >= self.max_addresses:
                    return 1.0 / self.rate
            bucket = self._buckets[key] = TokenBucket(rate=self.rate, burst=self.burst)
        if bucket.spend(now):
            return None
        return bucket.seconds_until(now)

    def _forget_full_buckets(self, now: float) -> None:
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if not bucket.is_full(now)}
