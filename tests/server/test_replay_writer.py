"""The recorder's bytes and the server's replay writer: what is written decompresses up to the last record taken,
every match's new bytes go out in one job of the writer's thread every few seconds, and a recording the disk
cannot take stops on its own (with a warning) while its match and the others go on."""

from __future__ import annotations

import logging
import os
import threading
import zlib
from pathlib import Path

import pytest
import trio

import game
import server.recording
from game import MatchState, PlayerInput, Rules
from server.codec import unpack_replay_records
from server.recording import MatchRecorder, ReplayFile, ReplayWriter

RULES = Rules(duration_seconds=3600, kill_limit=1_000_000)


class _Match:
    """A recorded match of four players, ticked by hand."""

    def __init__(self, match_id: str) -> None:
        self.state = MatchState.initial(seed=7, rules=RULES)
        self.recorder = MatchRecorder.start(match_id=match_id, mode="ffa", seed=7, rules=RULES)
        for player_id in range(1, 5):
            self.state = game.add_player(self.state, player_id, f"p{player_id}")
            self.recorder.join(player_id, f"p{player_id}")

    def play(self, ticks: int) -> None:
        for _ in range(ticks):
            tick = self.state.tick + 1
            inputs = {
                pid: PlayerInput(seq=tick, move_x=(tick // 7 + pid) % 3 - 1, aim=tick / 9) for pid in (1, 2, 3, 4)
            }
            self.state, _ = game.step(self.state, inputs)
            self.recorder.tick(self.state.tick, inputs, self.state)


def _records(data: bytes) -> tuple[list[list], bool]:
    """The records in a replay file's bytes so far, and whether its zlib stream has ended."""
    decompressor = zlib.decompressobj()
    records = list(unpack_replay_records(decompressor.decompress(data)))
    return records, decompressor.eof


def test_what_is_written_decompresses_to_the_last_record_and_closing_ends_the_stream(tmp_path: Path) -> None:
    match = _Match("m")
    replay = ReplayFile(tmp_path / "m")
    for _ in range(3):
        match.play(30)
        replay.write(match.recorder.take())
        records, ended = _records(replay.path.read_bytes())
        assert records[0]["match"] == "m" and not ended
        assert records[-1][:2] == ["t", match.state.tick]  # nothing of what was recorded waits in the compressor
    assert match.recorder.take() == []
    match.play(120)  # through tick 150, which is hashed
    match.recorder.end(match.state, "match_closed")
    replay.write(match.recorder.take())
    replay.close()
    data = replay.path.read_bytes()
    assert data[0] >> 4 == server.recording.WINDOW_BITS - 8  # the stream says its small window, which readers use
    assert zlib.decompress(data) == zlib.decompressobj().decompress(data)  # any zlib reader reads it
    records, ended = _records(data)
    assert ended
    hashes = [record for record in records[1:] if record[0] == "hash"]
    assert [record[1] for record in hashes] == [150, match.state.tick]
    assert hashes[-1][2] == game.state_hash(match.state)
    assert records[-1] == ["end", match.state.tick, "match_closed"]


def test_a_recording_whose_records_go_unwritten_past_the_limit_stops(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(server.recording, "MAX_UNWRITTEN_BYTES", 5000)
    match = _Match("m")
    replay = ReplayFile(tmp_path / "m")
    replay.write(match.recorder.take())
    ticks = 0
    while not match.recorder.overflowed and ticks < 1000:
        match.play(1)
        ticks += 1
    assert 5000 / 200 < ticks < 5000 / 20  # records of 20 to 200 bytes
    match.play(30)  # recorded no more
    assert match.recorder.take() == []
    replay.close()
    records, ended = _records(replay.path.read_bytes())  # what was written still reads
    assert ended and len(records) == 1 and records[0]["match"] == "m"  # the header, written before


def test_the_unwritten_limit_holds_at_its_value_and_stops_one_byte_past(monkeypatch) -> None:
    header_bytes = len(MatchRecorder.start(match_id="m", mode="ffa", seed=7, rules=RULES).take()[0])
    monkeypatch.setattr(server.recording, "MAX_UNWRITTEN_BYTES", header_bytes)
    at_the_limit = MatchRecorder.start(match_id="m", mode="ffa", seed=7, rules=RULES)  # the header alone
    assert not at_the_limit.overflowed
    monkeypatch.setattr(server.recording, "MAX_UNWRITTEN_BYTES", header_bytes - 1)
    past_it = MatchRecorder.start(match_id="m", mode="ffa", seed=7, rules=RULES)
    assert past_it.overflowed and past_it.take() == []


async def test_every_match_is_written_in_one_job_a_second_and_closed_at_its_end(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(server.recording, "FLUSH_SECONDS", 0.05)
    jobs: list[list[Path]] = []
    write_all = server.recording._write_all

    def counted(batch):
        jobs.append([replay.path for replay, _, _ in batch])
        return write_all(batch)

    monkeypatch.setattr(server.recording, "_write_all", counted)
    matches = [_Match(f"m{number}") for number in range(3)]
    writer = ReplayWriter()
    replays = [ReplayFile(tmp_path / f"m{number}") for number in range(3)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        stopped = [
            writer.add(match.recorder.header["match"], match.recorder, replay)
            for match, replay in zip(matches, replays, strict=True)
        ]
        for _ in range(3):
            for match in matches:
                match.play(10)
            await trio.sleep(0.06)
        matches[0].recorder.end(matches[0].state, "match_over")
        with trio.fail_after(5):
            await stopped[0].wait()
        nursery.cancel_scope.cancel()
    assert all(sorted(job) == sorted(tmp_path / f"m{n}" for n in range(3)) for job in jobs[:2]), jobs
    records, ended = _records((tmp_path / "m0").read_bytes())
    assert ended and records[-1] == ["end", matches[0].state.tick, "match_over"]
    for number in (1, 2):
        assert not stopped[number].is_set()
        records, ended = _records((tmp_path / f"m{number}").read_bytes())
        assert not ended and records[-1][0] == "t"
        matches[number].play(5)
        await writer.close(replays[number])  # as when its match closes before its end, or the server stops
        records, ended = _records((tmp_path / f"m{number}").read_bytes())
        assert ended and records[-1][:2] == ["t", matches[number].state.tick]


async def test_a_file_that_cannot_be_written_stops_its_recording_with_a_warning(caplog, monkeypatch) -> None:
    monkeypatch.setattr(server.recording, "FLUSH_SECONDS", 0.05)
    full, fine = _Match("full"), _Match("fine")
    writer = ReplayWriter()
    caplog.set_level(logging.WARNING, logger="server.recording")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        stopped = writer.add("full", full.recorder, ReplayFile(Path("/dev/full")))
        null = ReplayFile(Path("/dev/null"))
        other = writer.add("fine", fine.recorder, null)
        full.play(10)
        fine.play(10)
        with trio.fail_after(5):
            await stopped.wait()
        await trio.sleep(0.15)
        assert not other.is_set()
        nursery.cancel_scope.cancel()
    await writer.close(null)
    assert any("match full: recording stopped: /dev/full: No space left on device" in r.message for r in caplog.records)
    assert not any("fine" in r.message for r in caplog.records)


@pytest.mark.parametrize("ended", [False, True])
async def test_closing_writes_what_is_left(tmp_path: Path, ended: bool) -> None:
    match = _Match("m")
    writer = ReplayWriter()
    replay = ReplayFile(tmp_path / "m")
    writer.add("m", match.recorder, replay)
    match.play(45)
    if ended:
        match.recorder.end(match.state, "match_closed")
    await writer.close(replay)
    records, finished = _records((tmp_path / "m").read_bytes())
    assert finished and replay.closed
    assert records[-1][:2] == (["end", 45] if ended else ["t", 45])
    await writer.close(replay)  # once closed, closing again does nothing


async def test_the_writer_thread_runs_at_the_lowest_cpu_priority() -> None:
    """The ticks take the core back from it whenever they fall due (see server.recording's rules)."""

    def its_priority(jobs: server.recording.Jobs) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert await ReplayWriter()._thread.run_sync(its_priority, []) == server.recording.LOWEST_PRIORITY
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # this thread's is its own
