"""The input fast path (server.codec.decode_input) takes exactly the input messages the careful path
(decode_client) accepts, and reads them the same way; everything else it leaves to the careful path."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game import PlayerInput
from server.codec import ProtocolError, decode_client, decode_input, encode, pack_replay_record
from server.messages import MAX_SEQUENCE, Input

FIELDS = ("t", "seq", "mx", "my", "aim", "fire", "view")

EDGE_VALUES = [
    None, True, False, 0, 1, -1, 2, -2, 3, -3, 4, -4, MAX_SEQUENCE, MAX_SEQUENCE + 1, 2**64 - 1, -(2**63),
    0.0, -0.0, 1.0, -1.0, 0.5, math.pi, -math.pi, math.nextafter(math.pi, 4), math.nextafter(-math.pi, -4),
    math.inf, -math.inf, math.nan, "input", "Input", "hello", "", b"", [], [1], {}, {"t": "input"},
]  # fmt: skip
"""Values each field may be given: in range, just out of it, and of every other type."""

any_value = st.one_of(
    st.sampled_from(EDGE_VALUES),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)


def valid_input() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "t": st.just("input"),
            "seq": st.integers(0, MAX_SEQUENCE),
            "mx": st.integers(-1, 1),
            "my": st.integers(-1, 1),
            "aim": st.one_of(st.floats(-math.pi, math.pi), st.integers(-3, 3)),
            "fire": st.booleans(),
            "view": st.integers(0, MAX_SEQUENCE),
        }
    )


def pack_pairs(pairs: list[tuple[Any, Any]]) -> bytes:
    """A msgpack map of `pairs` as given: keys may repeat, which a dict cannot express."""
    packer = msgpack.Packer()
    return packer.pack_map_header(len(pairs)) + b"".join(packer.pack(key) + packer.pack(value) for key, value in pairs)


def careful(data: bytes) -> PlayerInput | None:
    """What the careful path makes of `data`: the server's PlayerInput if it is a valid input message."""
    try:
        message = decode_client(data)
    except ProtocolError:
        return None
    if not isinstance(message, Input):
        return None
    return message.player_input()


@settings(max_examples=400, deadline=None)  # values, not timing: a busy machine may take 200 ms on one
@given(message=valid_input())
def test_every_valid_input_takes_the_fast_path_and_reads_as_the_careful_path_reads_it(message: dict) -> None:
    data = msgpack.packb(message)
    fast = decode_input(data)
    assert fast is not None
    assert fast == careful(data)
    assert type(fast.aim) is float


@settings(max_examples=1500, deadline=None)
@given(
    message=valid_input(),
    changes=st.dictionaries(st.sampled_from([*FIELDS, "extra", "x"]), any_value, max_size=3),
    dropped=st.sets(st.sampled_from(FIELDS), max_size=2),
    repeated=st.one_of(st.none(), st.sampled_from(FIELDS)),
)
def test_the_fast_path_takes_nothing_the_careful_path_refuses(
    message: dict, changes: dict, dropped: set, repeated: str | None
) -> None:
    message = {key: value for key, value in {**message, **changes}.items() if key not in dropped}
    pairs = list(message.items())
    if repeated is not None and repeated in message:
        pairs.append((repeated, message[repeated]))  # the same key twice: a protocol error (1007)
    data = pack_pairs(pairs)
    fast = decode_input(data)
    expected = careful(data)
    if fast is None:
        assert expected is None, "a valid input left the fast path"
    else:
        assert fast == expected


def test_each_field_given_each_edge_value_reads_as_the_careful_path_reads_it() -> None:
    base = {"t": "input", "seq": 7, "mx": 1, "my": -1, "aim": -0.25, "fire": True, "view": 3}
    for field in FIELDS:
        for value in EDGE_VALUES:
            data = msgpack.packb({**base, field: value})
            assert decode_input(data) == careful(data), (field, value)


def test_what_is_not_a_single_input_map_is_left_to_the_careful_path() -> None:
    valid = msgpack.packb({"t": "input", "seq": 1, "mx": 0, "my": 0, "aim": 0.5, "fire": False, "view": 0})
    assert decode_input(valid) is not None
    int_key = pack_pairs([(1, 1), *list(msgpack.unpackb(valid).items())[1:]])  # seven entries, one key not a string
    nested = msgpack.packb({**msgpack.unpackb(valid), "seq": {"t": "input"}})
    too_big = msgpack.packb({**msgpack.unpackb(valid), "t": "x" * 5000})
    cases = (b"", valid[:-1], valid + b"\x00", b"\x87", msgpack.packb([valid]), valid.replace(b"input", b"INPUT"))
    for data in (*cases, int_key, nested, too_big):
        assert decode_input(data) is None
        assert careful(data) is None


def test_a_value_that_cannot_be_packed_leaves_nothing_behind_for_the_next() -> None:
    with pytest.raises(TypeError):
        pack_replay_record(["t", 1, [object()], {}])
    assert pack_replay_record(["t", 2, [], {}]) == msgpack.packb(["t", 2, [], {}])
    message = Input(seq=3, mx=1, my=0, aim=0.5, fire=True, view=9)
    assert encode(message) == msgpack.packb(
        {"t": "input", "seq": 3, "mx": 1, "my": 0, "aim": 0.5, "fire": True, "view": 9}
    )
