"""What recording matches costs: bytes per minute of replay, recording time per tick against the rest of a
tick's work, and the time `arena replay --verify` takes per minute of match.

An 8-player match of server-side bots (game.bot_input, which moves, aims and fires) runs for --minutes through
the same steps as a server's tick (step, snapshot, delta, encode) with a MatchRecorder beside it (which packs each
tick's record, and hashes the state every 150 ticks); the records are compressed as the server's replay writer
does (a zlib sync flush every `server.recording.FLUSH_SECONDS`), then read back and verified.

Usage: .venv/bin/python bench/recording.py [--minutes 3] [--players 8]
"""

from __future__ import annotations

import argparse
import json
import time
import zlib

import game
from game import MatchState, Rules
from server.codec import encode
from server.recording import FLUSH_SECONDS, MatchRecorder, new_compressor
from server.replay import read_replay, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--players", type=int, default=8)
    args = parser.parse_args()
    rules = Rules(duration_seconds=3600, kill_limit=10_000)
    state = MatchState.initial(seed=42, rules=rules)
    recorder = MatchRecorder.start(match_id="bench", mode="ffa", seed=42, rules=rules)
    for player_id in range(1, args.players + 1):
        state = game.add_player(state, player_id, f"bot {player_id}")
        recorder.join(player_id, f"bot {player_id}")
    compressor = new_compressor()
    compressed = bytearray()
    ticks = round(args.minutes * 60 * rules.tick_rate)
    tick_seconds = recording_seconds = writer_seconds = 0.0
    previous = game.snapshot(state)
    for _ in range(ticks):
        started = time.perf_counter()
        inputs = {player_id: game.bot_input(state, player_id) for player_id in state.players}
        state, events = game.step(state, inputs)
        current = game.snapshot(state, events)
        encode(game.delta(previous, current))
        previous = current
        recorded = time.perf_counter()
        recorder.tick(state.tick, inputs, state)
        done = time.perf_counter()
        tick_seconds += recorded - started
        recording_seconds += done - recorded
        if state.tick % round(FLUSH_SECONDS * rules.tick_rate) == 0:  # as the server's writer thread does
            written = time.perf_counter()
            compressed += compressor.compress(b"".join(recorder.take())) + compressor.flush(zlib.Z_SYNC_FLUSH)
            writer_seconds += time.perf_counter() - written
    recorder.end(state, "bench")
    compressed += compressor.compress(b"".join(recorder.take())) + compressor.flush(zlib.Z_FINISH)
    started = time.perf_counter()
    simulated, checked, divergence = verify(read_replay(bytes(compressed)))
    verify_seconds = time.perf_counter() - started
    assert divergence is None and simulated == ticks, divergence
    minutes = ticks / rules.tick_rate / 60
    figures = {
        "bench": "recording",
        "players": args.players,
        "minutes": round(minutes, 2),
        "replay_bytes_per_minute": round(len(compressed) / minutes),
        "tick_us": round(tick_seconds / ticks * 1e6, 1),
        "recording_us_per_tick": round(recording_seconds / ticks * 1e6, 2),
        "recording_share_of_tick": round(recording_seconds / tick_seconds, 4),
        "writer_us_per_tick": round(writer_seconds / ticks * 1e6, 2),
        "verify_seconds_per_minute": round(verify_seconds / minutes, 3),
        "hashes_checked": checked,
    }
    print(
        f"{args.players} players, {minutes:.1f} min: replay {figures['replay_bytes_per_minute'] / 1024:.1f} KiB per "
        f"minute; recording {figures['recording_us_per_tick']} us per tick = "
        f"{100 * figures['recording_share_of_tick']:.2f}% of the tick's own work ({figures['tick_us']} us: step, "
        f"snapshot, delta, encode); the writer thread {figures['writer_us_per_tick']} us per tick "
        f"(join, compress); verify {figures['verify_seconds_per_minute']} s per minute of match "
        f"({checked} hashes)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
