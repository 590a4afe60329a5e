"""What happened during a tick, reported alongside the state so clients can show effects and a kill feed."""

from __future__ import annotations

from typing import ClassVar

import attrs


@attrs.frozen
class Hit:
    """A projectile of `shooter` hit `target`, leaving it with `hp`."""

    kind: ClassVar[str] = "hit"
    shooter: int
    target: int
    damage: int
    hp: int


@attrs.frozen
class Death:
    """`victim` died; `killer` scored the kill."""

    kind: ClassVar[str] = "death"
    victim: int
    killer: int


@attrs.frozen
class Respawn:
    kind: ClassVar[str] = "respawn"
    player: int
    x: int
    y: int


@attrs.frozen
class ScoreLine:
    player: int
    name: str
    kills: int
    deaths: int


@attrs.frozen
class MatchEnd:
    """The match is over; `reason` is "kill_limit" or "time_limit"; the scoreboard is sorted best first."""

    kind: ClassVar[str] = "match_end"
    reason: str
    winner: int | None
    scoreboard: tuple[ScoreLine, ...]


@attrs.frozen
class Notice:
    """Someone arrived in or left the match, or a server-side bot took over a seat (for the kill feed).

    `what` is "join", "leave" or "takeover"; `name` is the player's name (for a takeover, whose seat it was).
    Not made by `step`: the server adds notices to the tick they happened before.
    """

    kind: ClassVar[str] = "notice"
    what: str
    player: int
    name: str


Event = Hit | Death | Respawn | MatchEnd | Notice
