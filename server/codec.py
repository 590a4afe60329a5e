"""The only place that knows how messages look on the wire: one msgpack map per binary WebSocket frame,
its key "t" naming the message type (docs/protocol.md).

Decoding a client's frame is bounded (the frame's size, and string, binary, array and map lengths; no ext
types) and strict: unknown types, unknown or missing fields, and out-of-range values all raise
`ProtocolError`, which carries the WebSocket close code to answer with.
"""

from __future__ import annotations

import enum
import threading
from typing import Any

import attrs
import msgpack

from game import Death, Delta, Event, Hit, MatchEnd, Notice, PlayerInput, Respawn, ScoreLine, Snapshot
from server.auth import MAX_TOKEN_BYTES
from server.messages import (
    CLIENT_MESSAGE_TYPES,
    MAX_AIM,
    MAX_SEQUENCE,
    Authenticated,
    Cancelled,
    ClientMessage,
    Joined,
    Left,
    Matches,
    Moved,
    Queued,
    Rated,
    Refused,
    Reserved,
    ServerMessage,
    Spectating,
    Welcome,
)

MAX_CLIENT_MESSAGE_BYTES = 4096
"""The largest frame a client may send; anything bigger is closed with 1009 (Colyseus and Nakama use 4 KiB)."""


MAX_CLOSE_REASON_BYTES = 123
"""A Close frame's payload is at most 125 bytes: a 2-byte code and a UTF-8 reason (RFC 6455 section 5.5)."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (RFC 6455 section 7.4, and 4000-4999 for Arena's own)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    UNSUPPORTED_PROTOCOL_VERSION = 4001
    REPLACED = 4002
    KICKED = 4003


class ProtocolError(Exception):
    """The remote end broke the protocol; close the connection with `code` and `reason`."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(f"{reason} (close code {int(code)})")
        self.code = code
        self.reason = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


_CLIENT_UNPACK_LIMITS: dict[str, Any] = {
    "max_str_len": MAX_TOKEN_BYTES,  # the longest string a client sends is a token; each field checks its own
    "max_bin_len": 0,
    "max_array_len": 16,
    "max_map_len": 16,
    "max_ext_len": 0,
}

_MSGPACK_ERROR_MEANINGS = {
    "FormatError": "a reserved or unknown type byte",
    "StackError": "nested too deeply",
    "ExtraData": "bytes left over after the first value",
}


def _map_without_duplicate_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, "a map has the same key twice")
    return result


def _unpack_flat_map(data: bytes) -> dict[Any, Any] | None:
    """A fixmap of scalars (every message a client sends), unpacked without a Python call per map; None for
    anything else, which the careful path unpacks. The duplicate-key check is the map's count against the keys
    that came out."""
    if not data or not FIXMAP_FIRST <= data[0] <= FIXMAP_LAST:
        return None
    wire = msgpack.unpackb(data, strict_map_key=True, **_CLIENT_UNPACK_LIMITS)
    if len(wire) != data[0] - FIXMAP_FIRST:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, "a map has the same key twice")
    for value in wire.values():
        if isinstance(value, dict | list):
            return None  # nested: checked by the careful path
    return wire  # type: ignore[no-any-return]


FIXMAP_FIRST, FIXMAP_LAST = 0x80, 0x8F
"""msgpack's type bytes of a map of 0 to 15 entries."""

_EVENT_TYPES: dict[str, type[Event]] = {cls.kind: cls for cls in (Hit, Death, Respawn, MatchEnd, Notice)}
_SERVER_MESSAGE_CLASSES = (
    Welcome,
    Authenticated,
    Queued,
    Cancelled,
    Reserved,
    Joined,
    Spectating,
    Left,
    Moved,
    Matches,
    Refused,
    Rated,
)
_SERVER_MESSAGE_TYPES: dict[str, type[ServerMessage]] = {cls.tag: cls for cls in _SERVER_MESSAGE_CLASSES}


def encode(message: ServerMessage | ClientMessage) -> bytes:
    """The frame payload for `message`."""
    return _pack(to_wire(message))


_packers = threading.local()


def _pack(value: Any) -> bytes:
    """`msgpack.packb(value)` with a Packer kept per thread: packb makes a new one, buffer and all, on every call
    (a quarter of the cost of packing a tick's delta). A Packer forgets a failed value (it resets its buffer)."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer()
    packed: bytes = packer.pack(value)
    return packed


def to_wire(message: ServerMessage | ClientMessage) -> dict[str, Any]:
    """The msgpack-ready map a message is sent as."""
    if isinstance(message, Snapshot):
        return {
            "t": "snapshot",
            "tick": message.tick,
            "entities": message.entities,
            "events": [_event_to_wire(e) for e in message.events],
        }
    if isinstance(message, Delta):
        wire: dict[str, Any] = {"t": "delta", "tick": message.tick, "base": message.base_tick}
        for key, section in (("add", message.added), ("change", message.changed), ("remove", message.removed)):
            if section:
                wire[key] = section
        if message.events:
            wire["events"] = [_event_to_wire(e) for e in message.events]
        return wire
    return {"t": message.tag, **attrs.asdict(message)}


def _event_to_wire(event: Event) -> dict[str, Any]:
    return {"e": event.kind, **attrs.asdict(event)}


_CLIENT_MESSAGE_FIELDS: dict[type[ClientMessage], tuple[frozenset[str], frozenset[str]]] = {
    message_type: (
        frozenset(field.name for field in attrs.fields(message_type)),
        frozenset(field.name for field in attrs.fields(message_type) if field.default is attrs.NOTHING),
    )
    for message_type in CLIENT_MESSAGE_TYPES.values()
}
"""For each client message: the fields it may have, and those it must have."""


def decode_client(data: bytes) -> ClientMessage:
    """Parse and validate one frame from a client.

    Raises:
        ProtocolError: with 1009 if the frame is too big, 1007 if it is not one valid message.
    """
    if len(data) > MAX_CLIENT_MESSAGE_BYTES:
        limit = MAX_CLIENT_MESSAGE_BYTES
        raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, f"message of {len(data)} bytes is over the {limit}-byte limit")
    try:
        wire = _unpack_flat_map(data)
        if wire is None:
            wire = msgpack.unpackb(
                data, strict_map_key=True, object_pairs_hook=_map_without_duplicate_keys, **_CLIENT_UNPACK_LIMITS
            )
    except ProtocolError:
        raise
    except Exception as error:  # msgpack raises ValueError subclasses, TypeError (unhashable keys), StackError
        detail = str(error) or _MSGPACK_ERROR_MEANINGS.get(type(error).__name__, type(error).__name__)
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"not a valid msgpack value: {detail}") from None
    if not isinstance(wire, dict):
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"a message must be a msgpack map, got {type(wire).__name__}")
    tag = wire.pop("t", None)
    message_type = CLIENT_MESSAGE_TYPES.get(tag) if isinstance(tag, str) else None
    if message_type is None:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"unknown message type {tag!r}"[:100])
    known, required = _CLIENT_MESSAGE_FIELDS[message_type]
    unknown = wire.keys() - known
    if unknown:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"unknown field {sorted(unknown)[0]!r} in {tag}"[:100])
    missing = required - wire.keys()
    if missing:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"missing field {sorted(missing)[0]!r} in {tag}")
    try:
        return message_type(**wire)
    except (TypeError, ValueError) as error:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"{tag}: {error}"[:120]) from None


_INPUT_FIELDS = frozenset(("t", "seq", "mx", "my", "aim", "fire", "view"))
_INPUT_MAP_BYTE = FIXMAP_FIRST + len(_INPUT_FIELDS)


def decode_input(data: bytes) -> PlayerInput | None:
    """The game's input from a client's `input` message: the message a playing client sends many times a second,
    read without building the `Input` message in between. Takes only a valid input message, exactly as docs/
    protocol.md has it (its seven fields, each in range, no key twice): for anything else it returns None, and
    `decode_client` parses the frame and says what is wrong with it. The checks are `Input`'s own (the range of
    `aim` also refuses NaN and the infinities)."""
    if not data or data[0] != _INPUT_MAP_BYTE or len(data) > MAX_CLIENT_MESSAGE_BYTES:
        return None
    try:  # msgpack's own limits, each the frame's length, bound what 4 KiB can make; every value is checked below
        wire = msgpack.unpackb(data)
    except Exception:  # the careful path reports it
        return None
    if len(wire) != len(_INPUT_FIELDS) or wire.keys() != _INPUT_FIELDS or wire["t"] != "input":
        return None
    seq, move_x, move_y, aim, fire, view = wire["seq"], wire["mx"], wire["my"], wire["aim"], wire["fire"], wire["view"]
    if (
        type(seq) is int
        and 0 <= seq <= MAX_SEQUENCE
        and type(move_x) is int
        and -1 <= move_x <= 1
        and type(move_y) is int
        and -1 <= move_y <= 1
        and (type(aim) is float or type(aim) is int)
        and -MAX_AIM <= aim <= MAX_AIM
        and type(fire) is bool
        and type(view) is int
        and 0 <= view <= MAX_SEQUENCE
    ):
        return PlayerInput(seq, move_x, move_y, float(aim), fire, view)  # positional: a third of the cost, compiled
    return None


REPLAY_LIMITS: dict[str, Any] = {
    "max_buffer_size": 16 * 1024 * 1024,
    "max_str_len": 4096,
    "max_bin_len": 0,
    "max_array_len": 4096,
    "max_map_len": 4096,
    "max_ext_len": 0,
}
"""Bounds for reading a replay file, which may come from anywhere."""


def encode_replay_view(header: dict[str, Any], rules: dict[str, Any], frames: list[Snapshot | Delta]) -> bytes:
    """What the replay viewer downloads: the match's header, its rules (as in `welcome`) and every tick's wire
    message (snapshots and deltas, as a live client gets them)."""
    packed: bytes = msgpack.packb(
        {
            "t": "replay",
            "match": header.get("match"),
            "mode": header.get("mode"),
            "started_at": header.get("started_at"),
            "rules": rules,
            "frames": [to_wire(frame) for frame in frames],
        }
    )
    return packed


def pack_replay_record(record: Any) -> bytes:
    """One record of a replay file (server.recording), as msgpack."""
    return _pack(record)


def unpack_replay_records(data: bytes) -> list[Any]:
    """The records in decompressed replay bytes, in order; a record cut off at the end is left out.

    Raises:
        ValueError: if the bytes are not msgpack records (a foreign or corrupt file).
    """
    unpacker = msgpack.Unpacker(strict_map_key=False, raw=False, **REPLAY_LIMITS)
    unpacker.feed(data)
    records = []
    try:
        for record in unpacker:
            records.append(record)
    except msgpack.OutOfData:
        pass
    except Exception as error:
        raise ValueError(f"not a replay record after {len(records)} records: {error or type(error).__name__}") from None
    return records


def decode_server(data: bytes) -> ServerMessage:
    """Parse one frame from a server (for clients such as the bots).

    Raises:
        ProtocolError: with 1007 if the frame is not a message this protocol version knows.
    """
    try:
        wire = msgpack.unpackb(data, strict_map_key=False)
        return _server_message_from_wire(wire)
    except ProtocolError:
        raise
    except Exception as error:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"bad message from server: {error!r}"[:120]) from None


def _server_message_from_wire(wire: dict[str, Any]) -> ServerMessage:
    tag = wire.pop("t")
    if tag == "snapshot":
        return Snapshot(tick=wire["tick"], entities=wire["entities"], events=_events_from_wire(wire["events"]))
    if tag == "delta":
        return Delta(
            tick=wire["tick"],
            base_tick=wire["base"],
            added=wire.get("add", {}),
            changed=wire.get("change", {}),
            removed={kind: tuple(ids) for kind, ids in wire.get("remove", {}).items()},
            events=_events_from_wire(wire.get("events", ())),
        )
    message_type = _SERVER_MESSAGE_TYPES.get(tag)
    if message_type is None:
        raise ProtocolError(CloseCode.INVALID_PAYLOAD, f"unknown message type {tag!r} from server")
    return message_type(**wire)


def _events_from_wire(wires: list[dict[str, Any]]) -> tuple[Event, ...]:
    """The events a client knows; kinds it does not know are ignored (docs/protocol.md)."""
    return tuple(_event_from_wire(wire) for wire in wires if wire.get("e") in _EVENT_TYPES)


def _event_from_wire(wire: dict[str, Any]) -> Event:
    event_type = _EVENT_TYPES[wire.pop("e")]
    if event_type is MatchEnd:
        wire["scoreboard"] = tuple(ScoreLine(**line) for line in wire["scoreboard"])
    return event_type(**wire)
