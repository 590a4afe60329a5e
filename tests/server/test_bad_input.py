"""Every kind of bad message closes the client that sent it, with the right code and a reason that says why,
and costs everyone else nothing: a bystander in a match keeps its deltas coming at the tick rate, and a new
client can still connect, join and move.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import attrs
import msgpack
import pytest
import trio
from trio_websocket import CloseReason, ConnectionClosed

from bots.client import ArenaClient, connect
from game import Delta
from server.app import ArenaServer
from server.messages import PROTOCOL_VERSION
from tests.conftest import make_token, ws_url
from tests.server.rawws import http_get


def packed(value: Any, **options: Any) -> bytes:
    return msgpack.packb(value, **options)


def input_message(**fields: Any) -> dict[str, Any]:
    """A valid input message, with `fields` changed (a field set to `...` is left out)."""
    message = {"t": "input", "seq": 1, "mx": 0, "my": 0, "aim": 0.0, "fire": False, "view": 0, **fields}
    return {key: value for key, value in message.items() if value is not ...}


RAW_TOKEN = make_token("raw-client")


def hello_message(**fields: Any) -> dict[str, Any]:
    message = {"t": "hello", "protocol": PROTOCOL_VERSION, "name": "bad", "token": RAW_TOKEN, **fields}
    return {key: value for key, value in message.items() if value is not ...}


HELLO = packed(hello_message())


@attrs.frozen
class BadInput:
    """One way to misbehave: what to send, and how the server must answer it."""

    id: str
    frames: tuple[bytes | str, ...]
    code: int
    hint: str
    """A word the close reason must contain (case-insensitive), to show that it names the actual problem."""
    hello_first: bool = True
    token_in_header: bool = False
    """Authenticate in the upgrade's Authorization header (then `hello` still has to come first)."""
    config: dict[str, Any] = attrs.field(factory=dict)


def bad(id: str, frames: bytes | str | tuple[bytes | str, ...], code: int, hint: str, **options: Any) -> BadInput:
    return BadInput(id=id, frames=frames if isinstance(frames, tuple) else (frames,), code=code, hint=hint, **options)


def _nested_arrays(depth: int) -> bytes:
    """A map whose "t" holds `depth` nested one-element arrays, written by hand (packb refuses to go this deep)."""
    return b"\x81\xa1t" + b"\x91" * depth + b"\xc0"


_JOIN = packed({"t": "join", "reservation": "not-a-real-one"})
_TOO_BIG = packed(
    {"t": "hello", "protocol": PROTOCOL_VERSION, "name": "x" * 4070}
)  # 4,096 + 1 bytes: see the assertion below
assert len(_TOO_BIG) == 4097, len(_TOO_BIG)


BAD_INPUTS = [
    # text frames
    bad("text frame", "hello", 1003, "text"),
    bad("text frame before hello", '{"t": "hello"}', 1003, "binary", hello_first=False),
    # not msgpack
    pytest.param(bad("reserved byte 0xc1", b"\xc1", 1007, "msgpack")),
    bad("empty frame", b"", 1007, "msgpack"),
    bad("truncated map", _JOIN[:-1], 1007, "msgpack"),
    bad("trailing bytes after the map", _JOIN + b"\x00", 1007, "msgpack"),
    bad("4096 bytes is not too big, only invalid", _JOIN + b"\xc0" * (4096 - len(_JOIN)), 1007, "msgpack"),
    bad("garbage before hello", b"\xde\xad\xbe\xef", 1007, "msgpack", hello_first=False),
    # not a map
    bad("an array", packed(["join"]), 1007, "map"),
    bad("a string", packed("join"), 1007, "map"),
    bad("an integer", packed(7), 1007, "map"),
    bad("nil", packed(None), 1007, "map"),
    bad("non-string map key", packed({1: "join"}), 1007, "key"),
    # unknown type
    bad("unknown type", packed({"t": "fly"}), 1007, "type"),
    # {"t": "join", "t": "leave"}: msgpack allows writing it, the protocol does not
    bad("the same key twice", b"\x82\xa1t\xa4join\xa1t\xa5leave", 1007, "same key"),
    bad("type that is not a string", packed({"t": 1}), 1007, "type"),
    bad("no type", packed({"seq": 1}), 1007, "type"),
    bad("server-only type", packed({"t": "welcome"}), 1007, "type"),
    # unknown or missing fields
    bad("unknown field", packed({"t": "join", "x": 1}), 1007, "'x'"),
    bad("unknown field in input", packed(input_message(speed=9)), 1007, "speed"),
    bad("long non-ascii unknown field", packed({"t": "join", "é" * 120: 1}), 1007, "unknown field"),
    bad("missing field", packed(input_message(fire=...)), 1007, "fire"),
    bad("hello without a token", packed(hello_message(token=...)), 1008, "token", hello_first=False),
    # wrong field types
    bad("mx as a string", packed(input_message(mx="1")), 1007, "mx"),
    bad("mx as a float", packed(input_message(mx=1.0)), 1007, "mx"),
    bad("seq as a bool", packed(input_message(seq=True)), 1007, "seq"),
    bad("seq as nil", packed(input_message(seq=None)), 1007, "seq"),
    bad("fire as an integer", packed(input_message(fire=1)), 1007, "fire"),
    bad("aim as a string", packed(input_message(aim="0")), 1007, "aim"),
    bad("aim as an array", packed(input_message(aim=[0.5])), 1007, "aim"),
    bad("name as an integer", packed(hello_message(name=5)), 1007, "name", hello_first=False),
    bad("protocol as a string", packed(hello_message(protocol="1")), 1007, "protocol", hello_first=False),
    # NaN and infinities
    bad("NaN aim", packed(input_message(aim=math.nan)), 1007, "aim"),
    bad("NaN aim as float32", packed(input_message(aim=math.nan), use_single_float=True), 1007, "aim"),
    bad("infinite aim", packed(input_message(aim=math.inf)), 1007, "aim"),
    bad("minus infinite aim", packed(input_message(aim=-math.inf)), 1007, "aim"),
    # out of range
    bad("negative seq", packed(input_message(seq=-1)), 1007, "seq"),
    bad("seq of 2**32", packed(input_message(seq=2**32)), 1007, "seq"),
    bad("seq of 2**64-1", packed(input_message(seq=2**64 - 1)), 1007, "seq"),
    bad("mx of 2", packed(input_message(mx=2)), 1007, "mx"),
    bad("my of -2", packed(input_message(my=-2)), 1007, "my"),
    bad("aim above pi", packed(input_message(aim=3.2)), 1007, "aim"),
    bad("aim below -pi", packed(input_message(aim=-3.15)), 1007, "aim"),
    bad("huge aim", packed(input_message(aim=1e308)), 1007, "aim"),
    bad("empty name", packed(hello_message(name="")), 1007, "name", hello_first=False),
    bad("blank name", packed(hello_message(name="   ")), 1007, "name", hello_first=False),
    bad("name of 25 characters", packed(hello_message(name="x" * 25)), 1007, "name", hello_first=False),
    bad("name with a control character", packed(hello_message(name="a\x00b")), 1007, "name", hello_first=False),
    bad("protocol above 2**16", packed(hello_message(protocol=2**16 + 1)), 1007, "protocol", hello_first=False),
    # bounds of the decoder
    bad(
        "string of 2049 bytes", packed({"t": "hello", "protocol": PROTOCOL_VERSION, "token": "a" * 2049}), 1007, "2049"
    ),
    bad("array of 17 entries", packed(input_message(aim=list(range(17)))), 1007, "17"),
    bad("map of 17 entries", packed({"t": "join", **{str(i): i for i in range(16)}}), 1007, "17"),
    # ext types and binary values
    bad("ext type", packed(hello_message(name=msgpack.ExtType(1, b"bot"))), 1007, "ext", hello_first=False),
    bad("timestamp ext", packed(hello_message(name=msgpack.Timestamp(0))), 1007, "ext", hello_first=False),
    bad("empty ext type", packed(hello_message(name=msgpack.ExtType(1, b""))), 1007, "name", hello_first=False),
    bad("ext type as the message", packed(msgpack.ExtType(5, b"\x00")), 1007, "ext"),
    bad("bin value", packed(hello_message(name=b"bot")), 1007, "bin", hello_first=False),
    bad("empty bin value", packed(hello_message(name=b"")), 1007, "name", hello_first=False),
    bad("bin key", packed({b"t": "join"}), 1007, "bin"),
    # nesting
    bad("nested arrays, 100 deep", _nested_arrays(100), 1007, "type"),
    pytest.param(bad("nested arrays, 3000 deep", _nested_arrays(3000), 1007, "msgpack")),
    # too big
    bad("message of 4097 bytes", _TOO_BIG, 1009, "4096"),
    bad("message of 4097 bytes before hello", _TOO_BIG, 1009, "4096", hello_first=False),
    bad("text frame of 5000 bytes", "x" * 5000, 1009, "4096"),
    # out of order, too slow, too fast
    bad("join before hello", _JOIN, 1008, "hello", hello_first=False),
    bad("input before hello", packed(input_message()), 1008, "hello", hello_first=False),
    bad(
        "input before hello, token in the header",
        packed(input_message()),
        1008,
        "hello",
        hello_first=False,
        token_in_header=True,
    ),
    bad("leave before hello", packed({"t": "leave"}), 1008, "hello", hello_first=False),
    bad("second hello", HELLO, 1008, "hello"),
    bad("no hello in time", (), 1008, "hello", hello_first=False, config={"hello_timeout": 0.5}),
    bad(
        "too many messages per second",
        tuple(packed(input_message(seq=seq)) for seq in range(1, 31)),
        1008,
        "too many",
        config={"max_frames_per_second": 10},
    ),
    # protocol version
    bad("protocol 1", packed(hello_message(protocol=1)), 4001, "protocol", hello_first=False),
    bad("protocol 0", packed(hello_message(protocol=0)), 4001, "protocol", hello_first=False),
]


@attrs.define(eq=False)
class Bystander:
    """A player in a match whose every message is read by a background task, which notes when deltas arrive."""

    client: ArenaClient
    delta_times: list[float] = attrs.field(factory=list)
    closed: ConnectionClosed | None = None
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def run(self) -> None:
        try:
            while True:
                message = await self.client.receive()
                if isinstance(message, Delta):
                    self.delta_times.append(trio.current_time())
                self._changed.set()
                self._changed = trio.Event()
        except ConnectionClosed as closed:
            self.closed = closed
            self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float) -> None:
        with trio.fail_after(timeout):
            while not condition():
                assert self.closed is None, f"the bystander was closed: {self.closed.reason}"
                await self._changed.wait()

    def deltas_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.delta_times if start <= t <= end)

    def longest_gap_since(self, start: float) -> float:
        times = [start, *(t for t in self.delta_times if t >= start), trio.current_time()]
        return max(b - a for a, b in itertools.pairwise(times))


async def misbehave(url: str, case: BadInput) -> tuple[CloseReason, float]:
    """Connect, say hello if the case wants it, send the case's frames, and wait to be closed.

    Returns:
        The server's close code and reason, and the seconds it took from connecting to being closed.
    """
    started = trio.current_time()
    token = RAW_TOKEN if case.token_in_header else None
    async with connect(url, name=None, token=token, authorization_header=case.token_in_header) as client:
        try:
            for data in (HELLO, *case.frames) if case.hello_first else case.frames:
                await client.ws.send_message(data)
            with trio.fail_after(3):
                while True:
                    await client.receive()
        except ConnectionClosed as closed:
            return closed.reason, trio.current_time() - started
    raise AssertionError("unreachable")


async def health(server: ArenaServer) -> dict[str, Any]:
    response = await http_get(server.port, "/healthz")
    assert response.status == 200
    result: dict[str, Any] = response.json()
    return result


async def assert_it_cost_nobody_anything(server: ArenaServer, bystander: Bystander, *, since: float) -> dict[str, Any]:
    """The bystander is still connected and gets its deltas at the tick rate; a new client can join and move.

    Returns:
        The server's /healthz report, taken while the bystander and the new client are both connected.
    """
    # (a) the bystander: still connected, deltas all along and at the tick rate now
    window_start = trio.current_time()
    await trio.sleep(0.5)
    assert bystander.closed is None, bystander.closed.reason
    assert bystander.client.ws.closed is None
    received = bystander.deltas_between(window_start, trio.current_time())
    tick_rate = server.config.tick_rate
    assert received >= 0.5 * tick_rate * 2 / 3, f"only {received} deltas in 0.5 s at {tick_rate} ticks/s"
    assert bystander.longest_gap_since(since) < 0.3, "the bystander's deltas stalled"
    assert bystander.client.deltas_out_of_sync == 0
    assert bystander.client.snapshots_received == 1, "the bystander fell behind and was resynced"

    # (b) a new client connects, says hello, joins and moves; both it and the bystander see it move
    async with connect(ws_url(server), name="fresh") as fresh:
        joined = await fresh.join(timeout=2)
        me = fresh.me()
        assert me is not None
        x_before = int(me["x"])
        await fresh.send_input(mx=1)
        await fresh.receive_until(lambda m: True if int(fresh.me()["x"]) > x_before else None, timeout=2)

        def bystander_sees_fresh_move() -> bool:
            view = bystander.client.view
            player = view.entities.get("players", {}).get(joined.player) if view is not None else None
            return player is not None and int(player["x"]) > x_before

        await bystander.wait_until(bystander_sees_fresh_move, timeout=2)
        assert bystander.client.match == joined.match

        # /healthz, asked while both are connected
        report = await health(server)
        assert report["status"] == "ok"
        assert report["connections"] == 2
        assert report["players"] == 2
        return report


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: case.id)
async def test_bad_input_closes_only_the_client_that_sent_it(case: BadInput, server_factory):
    server: ArenaServer = await server_factory(**case.config)
    url = ws_url(server)
    async with connect(url, name="bystander") as bystander_client, trio.open_nursery() as nursery:
        await bystander_client.join()
        bystander = Bystander(bystander_client)
        nursery.start_soon(bystander.run)
        await bystander.wait_until(lambda: len(bystander.delta_times) >= 3, timeout=2)

        started = trio.current_time()
        reason, seconds = await misbehave(url, case)

        assert reason.code == case.code, reason
        assert isinstance(reason.reason, str), reason
        assert reason.reason.strip(), f"no reason given with {reason.code}"
        assert len(reason.reason.encode()) <= 123, "a close reason must fit in a control frame"
        assert case.hint.lower() in reason.reason.lower(), f"{reason.reason!r} does not mention {case.hint!r}"
        assert not reason.reason.rstrip().endswith(":"), f"{reason.reason!r} stops where the detail should be"
        if "hello_timeout" in case.config:
            assert case.config["hello_timeout"] <= seconds < case.config["hello_timeout"] + 1
        else:
            assert seconds < 1, f"closing a bad client took {seconds:.2f} s"

        report = await assert_it_cost_nobody_anything(server, bystander, since=started)
        assert report["close_codes"] == {str(case.code): 1}, report["close_codes"]
        nursery.cancel_scope.cancel()


async def test_inputs_at_the_edges_of_every_range_are_accepted(url):
    async with connect(url, name=None) as client:
        await client.ws.send_message(packed(hello_message(name="n" * 24)))
        await client.join()
        for message in (
            input_message(seq=0, mx=-1, my=-1, aim=-math.pi, fire=True),
            input_message(seq=1, mx=1, my=1, aim=math.pi, fire=False),
            input_message(seq=2, aim=3),  # an integer aim is a number too
            input_message(seq=3, aim=0.5, fire=True),
            input_message(seq=2**32 - 1, aim=-0.0),
        ):
            await client.ws.send_message(packed(message))
        await client.ws.send_message(packed(input_message(seq=5, aim=1.0), use_single_float=True))
        await client.receive_until(lambda m: True if client.me()["ack"] == 2**32 - 1 else None, timeout=2)
        assert client.me()["name"] == "n" * 24
        assert client.ws.closed is None
