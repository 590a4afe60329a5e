"""Chaos a swarm can cause, each kind switchable and rated.

A rate is a probability per bot per second (storm: per second, for the whole swarm):
- drop: cut the connection with no close handshake (a TCP reset), then resume with the resume token after
  0.2 to 3 s;
- leave: leave the match and queue again;
- burst: send a burst of inputs at once (10, well under the server's message rate limit);
- silent: stop reading for 1 to 5 s (the server's backlog for the bot fills; it may be resynced or closed);
- storm: a quarter of the bots in matches drop at the same moment, and all resume.
"""

from __future__ import annotations

import attrs

CHAOS_KINDS = ("drop", "leave", "burst", "silent", "storm")
DEFAULT_CHAOS = "drop=0.01,leave=0.005,burst=0.01,silent=0.002,storm=0.01"
DROP_DELAY_SECONDS = (0.2, 3.0)
SILENT_SECONDS = (1.0, 5.0)
BURST_INPUTS = 10
STORM_SHARE = 0.25


class ChaosSyntaxError(ValueError):
    """A --chaos value that cannot be read; the message says what to write instead."""


@attrs.frozen
class Chaos:
    drop: float = 0.0
    leave: float = 0.0
    burst: float = 0.0
    silent: float = 0.0
    storm: float = 0.0

    @property
    def enabled(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in CHAOS_KINDS)

    def as_dict(self) -> dict[str, float]:
        return attrs.asdict(self)


def parse_chaos(text: str) -> Chaos:
    """Read "off", "default" or "kind=rate,..." (kinds: drop, leave, burst, silent, storm).

    Raises:
        ChaosSyntaxError: if a kind is unknown or a rate is not a number from 0 to 1.
    """
    text = text.strip()
    if text in ("", "off", "none"):
        return Chaos()
    if text == "default":
        text = DEFAULT_CHAOS
    rates: dict[str, float] = {}
    for item in text.split(","):
        kind, equals, value = item.strip().partition("=")
        if kind not in CHAOS_KINDS or not equals:
            raise ChaosSyntaxError(
                f"--chaos: {item.strip()!r} is not kind=rate; kinds are {', '.join(CHAOS_KINDS)} "
                f"(e.g. --chaos drop=0.02,leave=0.01), or write --chaos default / --chaos off"
            )
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not 0 <= rate <= 1:
            raise ChaosSyntaxError(f"--chaos: the rate of {kind} must be a probability from 0 to 1, got {value!r}")
        rates[kind] = rate
    return Chaos(**rates)
