"""The messages of Arena's wire protocol, version 1 (docs/protocol.md), as frozen values.

Messages from clients are untrusted: their classes validate every field on construction, and a value that
fails raises `ValueError` or `TypeError`, which the codec turns into a close with code 1007. Messages from the
server are built by the server and are not validated again.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs

from game import Delta, Snapshot

PROTOCOL_VERSION = 1
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


def _display_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise ValueError(f"'{attribute.name}' must be a string, got {type(value).__name__}")
    if not 1 <= len(value.strip()) <= MAX_NAME_LENGTH or len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"'{attribute.name}' must be 1 to {MAX_NAME_LENGTH} characters, not only spaces")
    if not value.isprintable():
        raise ValueError(f"'{attribute.name}' must contain only printable characters")


# Client -> server


@attrs.frozen
class Hello:
    """The client's first message: which protocol it speaks and the name to show for it."""

    tag: ClassVar[str] = "hello"
    protocol: int = attrs.field(validator=_integer(0, 2**16))
    name: str = attrs.field(validator=_display_name)


@attrs.frozen
class Join:
    """Join the first match with a free seat, or a new one (leaving the current match first, if any)."""

    tag: ClassVar[str] = "join"


@attrs.frozen
class Input:
    """The input the player holds from now on; the server applies the latest one at each tick."""

    tag: ClassVar[str] = "input"
    seq: int = attrs.field(validator=_integer(0, MAX_SEQUENCE))
    mx: int = attrs.field(validator=_integer(-1, 1))
    my: int = attrs.field(validator=_integer(-1, 1))
    aim: float = attrs.field(validator=_finite_number(-MAX_AIM, MAX_AIM))
    fire: bool = attrs.field(validator=_boolean)


@attrs.frozen
class Leave:
    """Leave the current match; the connection stays open and may join again."""

    tag: ClassVar[str] = "leave"


ClientMessage = Hello | Join | Input | Leave
CLIENT_MESSAGE_TYPES: dict[str, type[ClientMessage]] = {cls.tag: cls for cls in (Hello, Join, Input, Leave)}


# Server -> client


@attrs.frozen
class Welcome:
    """The server's first message, sent as soon as the WebSocket opens."""

    tag: ClassVar[str] = "welcome"
    protocol: int
    server: str
    tick_rate: int
    rules: dict[str, Any]
    limits: dict[str, Any]


@attrs.frozen
class Joined:
    """The client now plays in `match` as `player`; a full snapshot follows, then deltas."""

    tag: ClassVar[str] = "joined"
    match: str
    player: int


@attrs.frozen
class Left:
    """The client is no longer in a match (it asked to leave, or the match closed); it may join again."""

    tag: ClassVar[str] = "left"
    match: str
    reason: str


ServerMessage = Welcome | Joined | Left | Snapshot | Delta
