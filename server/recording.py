"""Every match recorded as it runs, in a compact versioned file that re-simulates it exactly (server.replay).

Rules: a match's tick packs its record (the inputs that changed) into bytes at once and appends them to a list (its
recorder), and every `HASH_INTERVAL_TICKS` the state itself (states are immutable); a task hands them to a worker
thread once a second, which hashes the states, compresses and writes, so a tick never waits on the disk and a crash
loses at most the last second. Packed at once, not later: a second of records held as objects (tuples, dicts,
inputs) is what the garbage collector's young generation would scan, tens of thousands of objects per collection on
a full server, pausing every match. The file holds what `game.step` was given and nothing it can derive: the seed
and rules, the joins and leaves between ticks, and each player's input whenever it changes (an input holds until
the next one), plus a state hash every `HASH_INTERVAL_TICKS` ticks to check a replay against.

File format, version 2 (`<UTC start>_<match id>.arena-replay`): a zlib stream, flushed once a second, of msgpack
records:
- first, the header: {"format": "arena-replay", "version": 1, "match", "mode", "seed", "rules": {Rules' fields},
  "started_at": Unix time, "hash_interval": N};
- then per tick, in order: ["t", tick, ops, inputs] where ops are the joins and leaves since the previous tick,
  in the order they happened (["join", player id, name] or ["leave", player id]), and inputs map each player id
  whose input changed to [seq, mx, my, aim, fire, view] (view nil when absent) or nil (no input);
- ["hash", tick, hex digest of the state after that tick] every N ticks, and for the last tick;
- last, ["end", tick, reason] when the match is over or closed.
Version 1 had the same records; its hashes were taken of states in which a player stopped flush against a wall
or an edge stood at a whole number (an int), where version 2's states hold floats everywhere (the compiled game,
server.compiled_game, cannot hold an int there): version 1 files replay, but their hashes cannot be checked.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

import game
from game import MatchState, PlayerInput, Rules
from server.codec import pack_replay_record

logger = logging.getLogger(__name__)

FORMAT = "arena-replay"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SUFFIX = ".arena-replay"
HASH_INTERVAL_TICKS = 150
"""A state hash every 5 s at 30 ticks per second: a divergence is found to within 5 s of where it starts."""
FLUSH_SECONDS = 1.0
COMPRESSION_LEVEL = 1
"""zlib's fastest level: 8% more bytes than level 6 for a third less of the writer thread's time
(docs/benchmarks.md)."""
REPLAY_ID = re.compile(r"^[0-9]{8}T[0-9]{6}_[A-Za-z0-9_-]{1,64}$")
"""What a replay's id (its file name without the suffix) looks like; anything else is not one of ours."""


def rules_to_wire(rules: Rules) -> dict[str, Any]:
    fields = attrs.asdict(rules, recurse=True)
    fields["walls"] = [[wall["x"], wall["y"], wall["width"], wall["height"]] for wall in fields["walls"]]
    fields["spawn_points"] = [list(point) for point in rules.spawn_points]
    return fields


def input_to_wire(player_input: PlayerInput | None) -> list[Any] | None:
    if player_input is None:
        return None
    i = player_input
    return [i.seq, i.move_x, i.move_y, i.aim, i.fire, i.view_tick]


PendingRecord = bytes | tuple[str, int, MatchState]
"""A record packed already, or ("hash", tick, state): hashed by the writer thread."""


@attrs.define(eq=False)
class MatchRecorder:
    """What one match has done since its start, as records waiting to be written (see `encode_records`)."""

    header: dict[str, Any]
    _records: list[PendingRecord] = attrs.field(factory=list, init=False)
    _ops: list[list[Any]] = attrs.field(factory=list, init=False)
    _held: dict[int, PlayerInput | None] = attrs.field(factory=dict, init=False)
    ended: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self._records.append(pack_replay_record(self.header))

    @classmethod
    def start(cls, *, match_id: str, mode: str, seed: int, rules: Rules) -> MatchRecorder:
        return cls(
            header={
                "format": FORMAT,
                "version": VERSION,
                "match": match_id,
                "mode": mode,
                "seed": seed,
                "rules": rules_to_wire(rules),
                "started_at": time.time(),
                "hash_interval": HASH_INTERVAL_TICKS,
            }
        )

    def join(self, player_id: int, name: str) -> None:
        self._ops.append(["join", player_id, name])

    def leave(self, player_id: int) -> None:
        self._ops.append(["leave", player_id])
        self._held.pop(player_id, None)

    def tick(self, tick: int, inputs: Mapping[int, PlayerInput], state: MatchState) -> None:
        """The match stepped to `tick` with `inputs`, giving `state`. Packs the tick's record; the hashing happens
        later, in `encode_records`."""
        changed: dict[int, list[Any] | None] = {}
        held = self._held
        for player_id in state.players:
            player_input = inputs.get(player_id)
            before = held.get(player_id, _NOTHING)
            if before is not player_input and before != player_input:
                held[player_id] = player_input
                changed[player_id] = input_to_wire(player_input)
        ops = self._ops
        if ops:
            self._ops = []
        self._records.append(pack_replay_record(["t", tick, ops, changed]))
        if tick % HASH_INTERVAL_TICKS == 0:
            self._records.append(("hash", tick, state))

    def end(self, state: MatchState, reason: str) -> None:
        """The match is over (or closed) in `state`: its final hash and the end record."""
        if not self.ended:
            self.ended = True
            if state.tick % HASH_INTERVAL_TICKS:
                self._records.append(("hash", state.tick, state))
            self._records.append(pack_replay_record(["end", state.tick, reason]))

    def take(self) -> list[PendingRecord]:
        """The records made since the last call (hand them to `encode_records`, off the tick's path)."""
        records, self._records = self._records, []
        return records


_NOTHING: Any = object()


def encode_records(records: list[PendingRecord]) -> bytes:
    """Records as the replay file holds them (msgpack, end to end), hashing the states: for a worker thread."""
    return b"".join(
        record if isinstance(record, bytes) else pack_replay_record(["hash", record[1], game.state_hash(record[2])])
        for record in records
    )


class ReplayFile:
    """A replay being written: a zlib stream flushed at every `write`, so what is on disk always decompresses.
    Used from one worker thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._compressor = zlib.compressobj(level=COMPRESSION_LEVEL)

    def write(self, records: list[PendingRecord]) -> None:
        """Encode `records` and append them, flushed (a worker thread's work)."""
        data = encode_records(records)
        self._file.write(self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH))
        self._file.flush()

    def close(self) -> None:
        self._file.write(self._compressor.flush(zlib.Z_FINISH))
        self._file.close()


def replay_path(directory: Path, header: Mapping[str, Any]) -> Path:
    started = time.strftime("%Y%m%dT%H%M%S", time.gmtime(header["started_at"]))
    return directory / f"{started}_{header['match']}{SUFFIX}"


def list_replays(directory: Path) -> list[dict[str, Any]]:
    """The replays in `directory`, newest first: id, match, start time, size."""
    replays = []
    for path in directory.glob(f"*{SUFFIX}"):
        replay_id = path.name[: -len(SUFFIX)]
        if not REPLAY_ID.match(replay_id):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        started, _, match = replay_id.partition("_")
        replays.append(
            {
                "id": replay_id,
                "match": match,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(started, "%Y%m%dT%H%M%S")),
                "bytes": stat.st_size,
                "url": f"/replays/{replay_id}",
            }
        )
    return sorted(replays, key=lambda replay: replay["id"], reverse=True)


def prune(directory: Path, *, keep: int, max_age_seconds: float) -> int:
    """Delete the oldest replays beyond `keep` and any older than `max_age_seconds`; returns how many."""
    paths = sorted(directory.glob(f"*{SUFFIX}"), key=lambda path: path.name, reverse=True)
    now = time.time()
    removed = 0
    for index, path in enumerate(paths):
        try:
            too_old = now - path.stat().st_mtime > max_age_seconds
            if index >= keep or too_old:
                os.remove(path)
                removed += 1
        except FileNotFoundError:
            pass  # another match's ending pruned it first (they end together when the server stops)
        except OSError as error:
            logger.warning("could not remove the old replay %s: %s", path, error.strerror)
    return removed
