"""`arena replay FILE`: read a recorded match (server.recording's format) and re-simulate it; `--verify` checks
every recorded state hash and exits 1 at the first divergence, saying the tick.

Rules: a replay file may come from anywhere: it is read with bounded sizes, and a corrupt, truncated or foreign
file, an unknown version or rules this build cannot take get a clear error naming what is wrong, never a
traceback. Re-simulating uses exactly what the match used: `game.add_player`, `game.remove_player` and
`game.step`, in the recorded order.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

import game
from game import Delta, MatchState, PlayerInput, Rect, Rules, Snapshot
from game.snapshot import PLAYERS
from server.codec import unpack_replay_records
from server.recording import FORMAT, READABLE_VERSIONS, VERSION

MAX_REPLAY_BYTES = 256 * 1024 * 1024
"""The most a replay may decompress to (a 3-minute match is a few hundred kilobytes)."""


class ReplayError(Exception):
    """The file is not a replay this build can play; the message says why."""


@attrs.frozen
class Replay:
    header: dict[str, Any]
    rules: Rules
    records: list[Any]
    complete: bool
    """Whether the file ends with the match's end record (a crash leaves it without)."""


def read_replay(data: bytes) -> Replay:
    """A replay from a file's bytes.

    Raises:
        ReplayError: if it is corrupt, foreign, of another version, or holds rules this build does not know.
    """
    decompressor = zlib.decompressobj()
    try:
        raw = decompressor.decompress(data, MAX_REPLAY_BYTES)
    except zlib.error as error:
        raise ReplayError(f"not an Arena replay, or corrupt: it does not decompress ({error})") from None
    if decompressor.unconsumed_tail:
        raise ReplayError(f"the replay decompresses to more than {MAX_REPLAY_BYTES} bytes")
    try:
        records = unpack_replay_records(raw)
    except ValueError as error:
        raise ReplayError(f"corrupt replay: {error}") from None
    if not records or not isinstance(records[0], dict) or records[0].get("format") != FORMAT:
        raise ReplayError(f"not an Arena replay: the file does not start with an {FORMAT!r} header")
    header = records[0]
    if header.get("version") not in READABLE_VERSIONS:
        raise ReplayError(
            f"replay format version {header.get('version')!r}: this build reads versions "
            + " and ".join(map(str, READABLE_VERSIONS))
        )
    try:
        rules = rules_from_wire(header["rules"])
        int(header["seed"])
    except (KeyError, TypeError, ValueError) as error:
        raise ReplayError(f"the replay's header has rules or a seed this build cannot take: {error}") from None
    body = records[1:]
    complete = bool(body) and isinstance(body[-1], list) and body[-1][:1] == ["end"]
    return Replay(header=header, rules=rules, records=body, complete=complete)


def rules_from_wire(fields: dict[str, Any]) -> Rules:
    """Rules from a replay's header.

    Raises:
        TypeError, ValueError: for unknown fields or values of the wrong shape.
    """
    if not isinstance(fields, dict):
        raise TypeError("rules must be a map")
    known = {field.name for field in attrs.fields(Rules)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}")
    values = dict(fields)
    values["walls"] = tuple(Rect(*wall) for wall in fields.get("walls", ()))
    values["spawn_points"] = tuple(tuple(point) for point in fields.get("spawn_points", ()))
    return Rules(**values)


@attrs.frozen
class TickResult:
    tick: int
    state: MatchState
    events: tuple[game.Event, ...]
    expected_hash: str | None
    """The hash the recording holds for this tick, if it holds one."""


def simulate(replay: Replay) -> Iterator[TickResult]:
    """Re-simulate the recorded match tick by tick.

    Raises:
        ReplayError: if a record is malformed (naming its tick).
    """
    state = MatchState.initial(seed=int(replay.header["seed"]), rules=replay.rules)
    held: dict[int, PlayerInput | None] = {}
    records = replay.records
    for index, record in enumerate(records):
        if not isinstance(record, list) or not record or record[0] not in ("t", "hash", "end"):
            raise ReplayError(f"record {index + 1}: not a tick, hash or end record")
        if record[0] != "t":
            continue
        try:
            _, tick, ops, changed = record
            for op in ops:
                if op[0] == "join":
                    state = game.add_player(state, int(op[1]), str(op[2]))
                    held.setdefault(int(op[1]), None)
                elif op[0] == "leave":
                    state = game.remove_player(state, int(op[1]))
                    held.pop(int(op[1]), None)
                else:
                    raise ValueError(f"unknown operation {op[0]!r}")
            for player_id, wire in changed.items():
                held[int(player_id)] = None if wire is None else _input_from_wire(wire)
            inputs = {player_id: value for player_id, value in held.items() if value is not None}
            state, events = game.step(state, inputs)
        except (TypeError, ValueError, IndexError, KeyError, game.MatchFullError) as error:
            raise ReplayError(f"tick record {index + 1}: {error}") from None
        if state.tick != tick:
            raise ReplayError(f"the recording says tick {tick} where the simulation is at tick {state.tick}")
        following = records[index + 1] if index + 1 < len(records) else None
        expected = None
        if isinstance(following, list) and following[:2] == ["hash", tick] and len(following) == 3:
            expected = str(following[2])
        yield TickResult(tick=tick, state=state, events=events, expected_hash=expected)


def _input_from_wire(wire: list[Any]) -> PlayerInput:
    seq, move_x, move_y, aim, fire, view = wire
    return PlayerInput(
        seq=int(seq),
        move_x=int(move_x),
        move_y=int(move_y),
        aim=float(aim),
        fire=bool(fire),
        view_tick=None if view is None else int(view),
    )


def verify(replay: Replay) -> tuple[int, int, str | None]:
    """Re-simulate and check every recorded hash: (ticks simulated, hashes checked, the first divergence or None).

    Raises:
        ReplayError: for a version 1 file, whose hashes were taken of states this build no longer makes (see
            server.recording).
    """
    if replay.header.get("version") != VERSION:
        raise ReplayError(
            f"a version {replay.header.get('version')} replay: it replays, but its state hashes were taken the way "
            f"builds before version {VERSION} made states (positions against a wall as whole numbers) and cannot "
            "be checked by this build"
        )
    ticks = checked = 0
    for result in simulate(replay):
        ticks = result.tick
        if result.expected_hash is not None:
            actual = game.state_hash(result.state)
            if actual != result.expected_hash:
                return ticks, checked, f"diverged at tick {result.tick}: recorded {result.expected_hash}, got {actual}"
            checked += 1
    return ticks, checked, None


VIEW_KEYFRAME_TICKS = 30
MAX_VIEW_TICKS = 60 * 60 * 30
"""The longest replay the viewer is given (an hour at 30 ticks per second)."""


def frames_for_viewer(replay: Replay) -> list[Snapshot | Delta]:
    """The recorded match as the clients' wire messages: a full snapshot every second, a delta every other tick.

    The fields only a live server knows are filled in plainly: ping 0, ack the input's seq, status "bot" for
    server-side bots (named "bot N") and "playing" for everyone else.
    """
    frames: list[Snapshot | Delta] = []
    previous: Snapshot | None = None
    for result in simulate(replay):
        if result.tick > MAX_VIEW_TICKS:
            break
        fields = {
            player_id: {"ping": 0, "ack": 0, "status": "bot" if player.name.startswith("bot ") else "playing"}
            for player_id, player in result.state.players.items()
        }
        current = game.snapshot(result.state, result.events).with_fields(PLAYERS, fields)
        if previous is None or result.tick % VIEW_KEYFRAME_TICKS == 0:
            frames.append(current)
        else:
            frames.append(game.delta(previous, current))
        previous = current
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arena replay", description="Read a recorded match and re-simulate it.")
    parser.add_argument("file", help="a .arena-replay file (from --replay-dir, or GET /replays/{id})")
    parser.add_argument(
        "--verify", action="store_true", help="check every recorded state hash; exit 1 at the first mismatch"
    )
    args = parser.parse_args(argv)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as error:
        print(f"arena replay: cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2
    try:
        replay = read_replay(data)
        header = replay.header
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(header.get("started_at", 0))))
        print(f"match {header.get('match')} ({header.get('mode')}), seed {header['seed']}, started {started}")
        if not replay.complete:
            print("the recording has no end record: the server stopped while it ran (checking what is there)")
        if not args.verify:
            ticks = sum(1 for _ in simulate(replay))
            print(f"{ticks} ticks ({ticks / replay.rules.tick_rate:.1f} s)")
            return 0
        started_at = time.perf_counter()
        ticks, checked, divergence = verify(replay)
        elapsed = time.perf_counter() - started_at
    except ReplayError as error:
        print(f"arena replay: {path}: {error}", file=sys.stderr)
        return 1
    if divergence is not None:
        print(f"arena replay: {path}: {divergence}", file=sys.stderr)
        return 1
    print(f"verified: {ticks} ticks, {checked} state hashes match ({elapsed:.2f} s to re-simulate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
