"""The replay viewer's download is rendered by `python -m server.replay_view`, a process that runs at the lowest CPU
priority so that re-simulating a match never takes the core from the server's ticks (see its rules)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import game
from game import MatchState, Rules
from server.app import render_replay_view
from server.recording import MatchRecorder, ReplayFile
from server.replay_view import LOWEST_PRIORITY


def _a_replay(path: Path, ticks: int) -> bytes:
    rules = Rules(duration_seconds=3600, kill_limit=10_000)
    state = MatchState.initial(seed=11, rules=rules)
    recorder = MatchRecorder.start(match_id="view", mode="ffa", seed=11, rules=rules)
    for player_id in range(1, 5):
        state = game.add_player(state, player_id, f"bot {player_id}")
        recorder.join(player_id, f"bot {player_id}")
    for _ in range(ticks):
        inputs = {player_id: game.bot_input(state, player_id) for player_id in state.players}
        state, _ = game.step(state, inputs)
        recorder.tick(state.tick, inputs, state)
    recorder.end(state, "match_over")
    replay = ReplayFile(path)
    replay.write(recorder.take())
    replay.close()
    return path.read_bytes()


def test_the_view_process_gives_the_servers_rendering_at_the_lowest_priority(tmp_path: Path) -> None:
    data = _a_replay(tmp_path / "a.arena-replay", 6 * 30)
    child = subprocess.Popen(
        [sys.executable, "-m", "server.replay_view", str(tmp_path / "a.arena-replay")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    priorities = []
    deadline = time.monotonic() + 30
    while child.poll() is None and time.monotonic() < deadline:
        try:
            priorities.append(os.getpriority(os.PRIO_PROCESS, child.pid))
        except ProcessLookupError:
            break
        time.sleep(0.01)
    output, errors = child.communicate(timeout=60)
    assert child.returncode == 0, errors
    assert output == render_replay_view(data)
    assert priorities and priorities[-1] == LOWEST_PRIORITY  # it lowers its own at once, before its imports


def test_a_file_that_is_no_replay_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "b.arena-replay").write_bytes(b"\x78\x9c" + bytes(100))
    result = subprocess.run(
        [sys.executable, "-m", "server.replay_view", str(tmp_path / "b.arena-replay")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "corrupt" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
