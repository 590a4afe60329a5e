"""The messages of Arena's wire protocol, version 3 (docs/protocol.md), as frozen values.

Messages from clients are untrusted: their classes validate every field on construction, and a value that
fails raises `ValueError` or `TypeError`, which the codec turns into a close with code 1007. Messages from the
server are built by the server and are not validated again.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any, ClassVar

import attrs

from game import Delta, PlayerInput, Snapshot

PROTOCOL_VERSION = 3
MAX_NAME_LENGTH = 24
MAX_SEQUENCE = 2**32 - 1
MAX_AIM = math.pi


def _integer(low: int, high: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"'{attribute.name}' must be an integer from {low} to {high}, got {value!r}")

    return check


def _finite_number(low: float, high: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
        if type(value) not in (int, float):
            raise ValueError(f"'{attribute.name}' must be a number, got {type(value).__name__}")
        assert isinstance(value, int | float)
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"'{attribute.name}' must be a finite number from {low:.6g} to {high:.6g}, got {value!r}")

    return check


def _boolean(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if type(value) is not bool:
        raise ValueError(f"'{attribute.name}' must be true or false, got {value!r}")


JOINERS = frozenset("\u200c\u200d")
"""Zero-width non-joiner and joiner: invisible, but part of how Persian, Indic scripts and emoji are written."""


def validate_display_name(value: object) -> str:
    """A display name as given, if it is one: 1 to 24 characters (Unicode code points, counted in NFC) of any
    script, printable (joiners allowed; control, format and bidirectional override characters not), not only
    spaces.

    Raises:
        ValueError: saying what is wrong with it.
    """
    if type(value) is not str:
        raise ValueError(f"'name' must be a string, got {type(value).__name__}")
    composed = unicodedata.normalize("NFC", value)
    if not 1 <= len(composed.strip()) <= MAX_NAME_LENGTH or len(composed) > MAX_NAME_LENGTH:
        raise ValueError(f"'name' must be 1 to {MAX_NAME_LENGTH} characters, not only spaces")
    if not all(character.isprintable() or character in JOINERS for character in composed):
        raise ValueError("'name' must contain only printable characters")
    return value


def _display_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    validate_display_name(value)


# Client -> server


def _optional(validator: Any) -> Any:
    return attrs.validators.optional(validator)


def _string(max_length: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
        if type(value) is not str or not 1 <= len(value) <= max_length:
            raise ValueError(f"'{attribute.name}' must be a string of 1 to {max_length} characters")

    return check


@attrs.frozen
class Hello:
    """The client's first message: the protocol it speaks, its token (unless sent in the upgrade's
    Authorization header) and, optionally, the name to show (else the token's name)."""

    tag: ClassVar[str] = "hello"
    protocol: int = attrs.field(validator=_integer(0, 2**16))
    token: str | None = attrs.field(default=None, validator=_optional(_string(2048)))
    name: str | None = attrs.field(default=None, validator=_optional(_display_name))


@attrs.frozen
class Refresh:
    """A new token for the same player, before the current one expires."""

    tag: ClassVar[str] = "refresh"
    token: str = attrs.field(validator=_string(2048))


@attrs.frozen
class Queue:
    """Queue for a match of a mode ("duel", "ffa")."""

    tag: ClassVar[str] = "queue"
    mode: str = attrs.field(validator=_string(32))


@attrs.frozen
class Cancel:
    """Leave the queue."""

    tag: ClassVar[str] = "cancel"


@attrs.frozen
class Join:
    """Take the seat a reservation holds."""

    tag: ClassVar[str] = "join"
    reservation: str = attrs.field(validator=_string(64))


@attrs.frozen
class Resume:
    """Take back the seat held since this player's connection dropped."""

    tag: ClassVar[str] = "resume"
    token: str = attrs.field(validator=_string(64))


@attrs.frozen
class Spectate:
    """Watch a running match: snapshots and deltas, no inputs."""

    tag: ClassVar[str] = "spectate"
    match: str = attrs.field(validator=_string(64))


@attrs.frozen
class ListMatches:
    tag: ClassVar[str] = "list_matches"


@attrs.frozen
class Input:
    """The input the player holds from now on; the server applies the latest one at each tick."""

    tag: ClassVar[str] = "input"
    seq: int = attrs.field(validator=_integer(0, MAX_SEQUENCE))
    mx: int = attrs.field(validator=_integer(-1, 1))
    my: int = attrs.field(validator=_integer(-1, 1))
    aim: float = attrs.field(validator=_finite_number(-MAX_AIM, MAX_AIM))
    fire: bool = attrs.field(validator=_boolean)
    view: int = attrs.field(validator=_integer(0, MAX_SEQUENCE))
    """The tick the client was showing other players at (its interpolation view): shots are judged then."""

    def player_input(self) -> PlayerInput:
        """What the game applies for it."""
        return PlayerInput(
            seq=self.seq, move_x=self.mx, move_y=self.my, aim=float(self.aim), fire=self.fire, view_tick=self.view
        )


@attrs.frozen
class Leave:
    """Leave the current match (or stop watching it); the connection stays open and may queue again."""

    tag: ClassVar[str] = "leave"


ClientMessage = Hello | Refresh | Queue | Cancel | Join | Resume | Spectate | ListMatches | Input | Leave
CLIENT_MESSAGE_TYPES: dict[str, type[ClientMessage]] = {
    cls.tag: cls for cls in (Hello, Refresh, Queue, Cancel, Join, Resume, Spectate, ListMatches, Input, Leave)
}


# Server -> client


@attrs.frozen
class Welcome:
    """The server's first message, sent as soon as the WebSocket opens."""

    tag: ClassVar[str] = "welcome"
    protocol: int
    server: str
    tick_rate: int
    rules: dict[str, Any]
    modes: list[dict[str, Any]]
    limits: dict[str, Any]


@attrs.frozen
class Authenticated:
    """The server knows who the client is; `expires_in` is the token's remaining life in seconds."""

    tag: ClassVar[str] = "authenticated"
    player: str
    name: str
    expires_in: float


@attrs.frozen
class Queued:
    """The client waits in the queue of `mode` (sent on queueing, then every second)."""

    tag: ClassVar[str] = "queued"
    mode: str
    position: int
    waiting: int
    estimated_wait: float


@attrs.frozen
class Cancelled:
    """The client is out of the queue; `reason` is "cancelled" or why the server took it out."""

    tag: ClassVar[str] = "cancelled"
    reason: str


@attrs.frozen
class Reserved:
    """A seat waits in `match` until `expires_in` seconds have passed: send `join` with `reservation`, on this
    connection if `url` is None, else on a connection to `url` (the WebSocket URL of the server that hosts the
    match)."""

    tag: ClassVar[str] = "reserved"
    match: str
    mode: str
    reservation: str
    expires_in: float
    url: str | None = None


@attrs.frozen
class Joined:
    """The client plays in `match` as `player`; a full snapshot follows, then deltas. `resume` is the
    single-use token that takes the seat back after a dropped connection (a new one comes with every `joined`)."""

    tag: ClassVar[str] = "joined"
    match: str
    mode: str
    player: int
    resume: str
    resumed: bool
    resume_window: float


@attrs.frozen
class Spectating:
    tag: ClassVar[str] = "spectating"
    match: str
    mode: str
    delay: float
    """Seconds the spectator watches behind the players."""


@attrs.frozen
class Left:
    """The client is no longer in a match (it asked to leave, or the match closed); it may queue again."""

    tag: ClassVar[str] = "left"
    match: str
    reason: str


@attrs.frozen
class Moved:
    """The match goes on at another server of the fleet (this one is shutting down): connect to `url` and resume
    with the resume token held; the seat, player id and score are kept."""

    tag: ClassVar[str] = "moved"
    match: str
    url: str


@attrs.frozen
class Matches:
    """The matches this server runs: a list of {"id", "mode", "players", "bots", "spectators", "state",
    "time_left"}."""

    tag: ClassVar[str] = "matches"
    matches: list[dict[str, Any]]


@attrs.frozen
class Refused:
    """A request was refused (the connection stays open): `request` names it, `reason` says why."""

    tag: ClassVar[str] = "refused"
    request: str
    reason: str


@attrs.frozen
class Rated:
    """The player's skill rating after the match that just ended: `rating` (mu - 3 sigma) and its `change`."""

    tag: ClassVar[str] = "rated"
    match: str
    rating: float
    change: float
    matches: int


ServerMessage = (
    Welcome
    | Authenticated
    | Queued
    | Cancelled
    | Reserved
    | Joined
    | Spectating
    | Left
    | Moved
    | Matches
    | Refused
    | Snapshot
    | Delta
    | Rated
)
