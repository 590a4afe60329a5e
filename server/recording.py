"""Every match recorded as it runs, in a compact versioned file that re-simulates it exactly (server.replay).

Rules: a match's tick packs its record (the inputs that changed) into bytes at once, and every
`HASH_INTERVAL_TICKS` the state's hash too: a recorder holds bytes and nothing else. Packed at once, not later:
seconds of records held as objects (tuples, dicts, inputs, states) are what the garbage collector's young generation
would scan, tens of thousands of objects per collection on a full server, pausing every match. Every
`FLUSH_SECONDS` the server's one `ReplayWriter` takes every match's new records and hands them all, in one job, to a
thread of its own at the lowest CPU priority, which compresses and writes them (a zlib stream per file with a small
window, sync-flushed, so what is on disk always decompresses): a tick never waits on the disk or on the compression,
and a crash loses at most the last `FLUSH_SECONDS`. One job at the lowest priority, not a job per match in trio's
worker threads: those woke a dozen threads at once, which fought the ticks for the interpreter lock and the core
(docs/benchmarks.md, issue 15's tenth sitting). If the disk or the core falls so far behind that a match's
unwritten records pass `MAX_UNWRITTEN_BYTES`, that match's recording stops (its file ends where it was written; the
server says so). The file holds what `game.step` was given and nothing it can derive: the seed and rules, the joins
and leaves between ticks, and each player's input whenever it changes (an input holds until the next one), plus a
state hash every `HASH_INTERVAL_TICKS` ticks to check a replay against.

File format, version 2 (`<UTC start>_<match id>.arena-replay`): a zlib stream, flushed every few seconds, of msgpack
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

import contextlib
import logging
import os
import queue
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

import game
from game import MatchState, PlayerInput, Rules
from server.codec import pack_replay_record

logger = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT = "arena-replay"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SUFFIX = ".arena-replay"
HASH_INTERVAL_TICKS = 150
"""A state hash every 5 s at 30 ticks per second: a divergence is found to within 5 s of where it starts."""
FLUSH_SECONDS = 5.0
"""How often the records are compressed and written. Each write touches every file's zlib state, which has left the
CPU's caches since the last one: at 1,000 players, once a second cost the writer's thread 2.3% of a core, every 5
seconds 1.1%, with the small window 0.8% (docs/benchmarks.md, issue 15's eleventh sitting)."""
COMPRESSION_LEVEL = 1
"""zlib's fastest level: 8% more bytes than level 6 for a third less of the writer thread's time
(docs/benchmarks.md)."""
WINDOW_BITS = 13
MEMORY_LEVEL = 6
"""An 8 KiB window and a smaller hash table than zlib's defaults (a 32 KiB window, memLevel 8): a quarter of the
state a write touches, and replays as small (a tick's record repeats what the few ticks before it hold). Any zlib
reader reads them: a stream's header says its window."""
LOWEST_PRIORITY = 19
"""The nice value of the replay writer's thread."""
THREAD_IDLE_SECONDS = 10.0
"""How long the replay writer's thread waits for a job before it ends (the next job starts another)."""
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


MAX_UNWRITTEN_BYTES = 8 * 1024 * 1024
"""A match's records not yet written (about half an hour of an 8-player match) past which its recording stops: the
disk has not kept up, and the server's memory is not where a replay waits."""


@attrs.define(eq=False)
class MatchRecorder:
    """What one match has done since its start, as the records of its replay file waiting to be written (`take`)."""

    header: dict[str, Any]
    _records: list[bytes] = attrs.field(factory=list, init=False)
    _unwritten_bytes: int = attrs.field(default=0, init=False)
    _ops: list[list[Any]] = attrs.field(factory=list, init=False)
    _held: dict[int, PlayerInput | None] = attrs.field(factory=dict, init=False)
    ended: bool = attrs.field(default=False, init=False)
    overflowed: bool = attrs.field(default=False, init=False)
    """Its records went unwritten past `MAX_UNWRITTEN_BYTES`: it records nothing more (its file ends short)."""

    def __attrs_post_init__(self) -> None:
        self._add(pack_replay_record(self.header))

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
        """The match stepped to `tick` with `inputs`, giving `state`: its record, and every `HASH_INTERVAL_TICKS`
        the state's hash."""
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
        self._add(pack_replay_record(["t", tick, ops, changed]))
        if tick % HASH_INTERVAL_TICKS == 0:
            self._add(pack_replay_record(["hash", tick, game.state_hash(state)]))

    def end(self, state: MatchState, reason: str) -> None:
        """The match is over (or closed) in `state`: its final hash and the end record."""
        if not self.ended:
            self.ended = True
            if state.tick % HASH_INTERVAL_TICKS:
                self._add(pack_replay_record(["hash", state.tick, game.state_hash(state)]))
            self._add(pack_replay_record(["end", state.tick, reason]))

    def _add(self, record: bytes) -> None:
        if self.overflowed:
            return
        self._records.append(record)
        self._unwritten_bytes += len(record)
        if self._unwritten_bytes > MAX_UNWRITTEN_BYTES:
            self.overflowed = True
            self._records.clear()

    def take(self) -> list[bytes]:
        """The records made since the last call, to append to the replay file (`ReplayFile.write`)."""
        records, self._records = self._records, []
        self._unwritten_bytes = 0
        return records


_NOTHING: Any = object()


def new_compressor() -> zlib._Compress:
    """The zlib stream of a replay file."""
    return zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL)


class ReplayFile:
    """A replay being written: a zlib stream flushed at every `write`, so what is on disk always decompresses.
    Used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._compressor = new_compressor()

    def write(self, records: list[bytes]) -> None:
        """Append `records`, flushed."""
        self._file.write(self._compressor.compress(b"".join(records)) + self._compressor.flush(zlib.Z_SYNC_FLUSH))
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self, *, finish: bool = True) -> None:
        """End the zlib stream (unless not `finish`: a write failed) and close the file."""
        try:
            if finish:
                self._file.write(self._compressor.flush(zlib.Z_FINISH))
        finally:
            self._file.close()


@attrs.define(eq=False)
class _Recording:
    recorder: MatchRecorder
    replay: ReplayFile
    match_id: str
    on_stop: Callable[[], None]
    """Told once its file is closed: written to its end, or stopped by an error or by `MAX_UNWRITTEN_BYTES`."""


Jobs = list[tuple["ReplayFile", list[bytes], bool]]
"""What the replay writer's thread is given to do: records to append to a file, and whether to close it then."""


class _BackgroundThread:
    """A thread of its own at the lowest CPU priority (nice 19), running one job at a time: it gets the core when
    the ticks leave it idle, and a tick that falls due takes the core back from it at once. trio's worker threads
    run at the ticks' priority: a job compressing a second of every match's records held the core for 5-8 ms at a
    time (the scheduler gives a thread that has slept its turn), and the ticks due meanwhile were late."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def _submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.put(work)
            if not self._running:
                self._running = True
                threading.Thread(target=self._serve, name=self._name, daemon=True).start()

    def _serve(self) -> None:
        try:
            if sys.platform == "linux":  # where a thread's id names the thread alone, not a process
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
        except OSError as error:
            logger.warning("the replay writer runs at the ticks' CPU priority: cannot lower it: %s", error.strerror)
        while True:
            try:
                work = self._jobs.get(timeout=THREAD_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():  # nothing came meanwhile: the next job starts a new thread
                        self._running = False
                        return
                continue
            work()

    async def run_sync(self, job: Callable[[Jobs], T], jobs: Jobs) -> T:
        """Run `job(jobs)` in the thread and return what it returns (or raise what it raises). Not cancellable: it
        runs to its end (it writes files)."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        returned: list[T] = []
        raised: list[BaseException] = []

        def work() -> None:
            try:
                returned.append(job(jobs))
            except BaseException as error:
                raised.append(error)
            with contextlib.suppress(trio.RunFinishedError):  # the server is gone: nobody waits for it any more
                token.run_sync_soon(done.set)

        self._submit(work)
        with trio.CancelScope(shield=True):
            await done.wait()
        if raised:
            raise raised[0]
        return returned[0]


@attrs.define(eq=False)
class ReplayWriter:
    """Writes every recording's new records every `FLUSH_SECONDS`, all in one job of a background thread (see the
    module's rules). `run` it in a task for as long as matches are recorded."""

    _recordings: dict[ReplayFile, _Recording] = attrs.field(factory=dict, init=False)
    _writing: set[ReplayFile] = attrs.field(factory=set, init=False)
    """The files the job in flight writes to: nothing else may touch them until it is done."""
    _written: trio.Event = attrs.field(factory=trio.Event, init=False)
    """Set when the job in flight is done."""
    _thread: _BackgroundThread = attrs.field(factory=lambda: _BackgroundThread("arena replay writer"), init=False)

    def add(self, match_id: str, recorder: MatchRecorder, replay: ReplayFile) -> trio.Event:
        """Write `recorder`'s bytes to `replay` from now on; the event is set once the file is closed (the
        recorder has ended, or its recording has stopped)."""
        stopped = trio.Event()
        self._recordings[replay] = _Recording(recorder, replay, match_id, stopped.set)
        return stopped

    async def close(self, replay: ReplayFile) -> None:
        """Write what is left for `replay` and close it now, if that has not happened yet (its match closed
        before its recorder ended, or the server is stopping)."""
        recording = self._recordings.pop(replay, None)
        if recording is None:
            return
        while replay in self._writing:
            await self._written.wait()
        if replay.closed:  # by the job that was in flight, which reported it
            return
        failures = await self._thread.run_sync(_write_all, [(replay, recording.recorder.take(), True)])
        self._report(recording, failures)

    async def run(self) -> None:
        while True:
            await trio.sleep(FLUSH_SECONDS)
            jobs: Jobs = []
            ending: list[_Recording] = []
            recordings = dict(self._recordings)  # as they are now: `close` may take one off meanwhile
            for replay, recording in recordings.items():
                recorder = recording.recorder
                done = recorder.ended or recorder.overflowed
                records = recorder.take()
                if records or done:
                    jobs.append((replay, records, done))
                if done:
                    ending.append(recording)
            if not jobs:
                continue
            self._writing = {replay for replay, _, _ in jobs}
            try:
                failures = await self._thread.run_sync(_write_all, jobs)
            finally:
                self._writing = set()
                self._written.set()
                self._written = trio.Event()
            ending += [recordings[replay] for replay in failures if recordings[replay] not in ending]
            for recording in ending:
                self._recordings.pop(recording.replay, None)
                self._report(recording, failures)

    @staticmethod
    def _report(recording: _Recording, failures: dict[ReplayFile, OSError]) -> None:
        error = failures.get(recording.replay)
        path = recording.replay.path
        if error is not None:
            logger.warning("match %s: recording stopped: %s: %s", recording.match_id, path, error.strerror)
        elif recording.recorder.overflowed:
            logger.warning(
                "match %s: recording stopped: more than %d bytes of it went unwritten (is the disk of %s too slow?)",
                recording.match_id,
                MAX_UNWRITTEN_BYTES,
                path.parent,
            )
        recording.on_stop()


def _write_all(jobs: Jobs) -> dict[ReplayFile, OSError]:
    """Append each job's records to its file, and close the file if the job says so or its write failed: a worker
    thread's job. Returns the files whose write failed, with the error."""
    failures: dict[ReplayFile, OSError] = {}
    for replay, records, close in jobs:
        try:
            if records:
                replay.write(records)
        except OSError as error:
            failures[replay] = error
        if close or replay in failures:
            try:
                replay.close(finish=replay not in failures)
            except OSError as error:
                failures.setdefault(replay, error)
    return failures


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
