"""The game compiled with mypyc (server.compiled_game) plays exactly as the pure-Python game, and is used only when
it was built from today's sources. scripts/setup.sh builds it, so these tests expect it to be there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.request import urlopen

from server import compiled_game

# Eight players for 2,400 ticks: four bots at different levels and four players sending random inputs with view
# ticks up to the whole lag-compensation window back (walls, edges, rewound hits, deaths, respawns). Prints
# which build ran, then every tick's state hash and its delta.
PLAY = """
import random, sys
from server import compiled_game
print(compiled_game.use())
import game
from game import MatchState, PlayerInput, Rules
from game.snapshot import SnapshotBuilder
rules = Rules(duration_seconds=3600, kill_limit=1_000_000)
state = MatchState.initial(seed=11, rules=rules)
for player_id in range(1, 9):
    state = game.add_player(state, player_id, f"p{player_id}")
rng = random.Random(11)
held = {}
builder = SnapshotBuilder(("ping",))
previous = builder.build(state)
for tick in range(1, 2401):
    for player_id in range(1, 5):
        held[player_id] = game.bot_input(state, player_id, player_id)
    for player_id in range(5, 9):
        if (tick + player_id) % 3 == 0:
            held[player_id] = PlayerInput(
                seq=tick, move_x=rng.choice((-1, 0, 1)), move_y=rng.choice((-1, 0, 1)), aim=rng.uniform(-4, 4),
                fire=rng.random() < 0.5, view_tick=tick - rng.randint(0, 12),
            )
    state, events = game.step(state, held)
    current = builder.build(state, events, {player_id: (tick % 7,) for player_id in state.players})
    print(tick, game.state_hash(state), repr(game.delta(previous, current)))
    previous = current
"""


def _play(*, pure: bool) -> list[str]:
    environment = {**os.environ, compiled_game.PURE_PYTHON_VARIABLE: "1" if pure else ""}
    result = subprocess.run(
        [sys.executable, "-c", PLAY], capture_output=True, text=True, env=environment, timeout=300, check=True
    )
    return result.stdout.splitlines()


def test_the_compiled_game_plays_every_tick_as_the_pure_python_game() -> None:
    compiled, pure = _play(pure=False), _play(pure=True)
    assert compiled[0] == "compiled with mypyc", f"{compiled[0]}: scripts/setup.sh builds the compiled game"
    assert pure[0].startswith("pure Python")
    assert len(compiled) == len(pure) == 2401
    for compiled_tick, pure_tick in zip(compiled[1:], pure[1:], strict=True):
        assert compiled_tick == pure_tick  # the first tick that differs, with both states' hashes and deltas


def _use(build_dir: Path, sources: Path) -> str:
    program = "import sys; from pathlib import Path; from server import compiled_game\n"
    program += "print(compiled_game.use(Path(sys.argv[1]), Path(sys.argv[2])))\n"
    program += "import game.simulation; print(game.simulation.__spec__.origin)"
    environment = {**os.environ, compiled_game.PURE_PYTHON_VARIABLE: ""}
    result = subprocess.run(
        [sys.executable, "-c", program, str(build_dir), str(sources)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return result.stdout


def test_a_build_older_than_the_sources_is_not_used(tmp_path: Path) -> None:
    sources = tmp_path / "game"
    shutil.copytree(compiled_game.GAME_SOURCES, sources, ignore=shutil.ignore_patterns("__pycache__"))
    chosen, origin = _use(compiled_game.BUILD_DIR, sources).splitlines()
    assert chosen == "compiled with mypyc" and origin.endswith(".so")
    with (sources / "simulation.py").open("a") as simulation:
        simulation.write("\n# an edit the build has not seen\n")
    chosen, origin = _use(compiled_game.BUILD_DIR, sources).splitlines()
    assert "older than game/'s sources" in chosen and "scripts/setup.sh" in chosen
    assert origin.endswith("game/simulation.py") and str(compiled_game.BUILD_DIR) not in origin
    chosen, _ = _use(tmp_path / "nothing-built-here", sources).splitlines()
    assert "no compiled build" in chosen


def test_the_server_runs_the_compiled_game_and_says_so(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "server", "--port", "0", "--no-replays", "--data-dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if "Arena listening on" in line:
                    break
            assert any("the game runs compiled with mypyc" in line for line in lines), lines
            port = int(lines[-1].split("http://127.0.0.1:")[1].split(" ")[0])
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
                health = json.loads(response.read())
            assert health["game_build"] == "compiled"
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_a_compiled_player_cannot_be_changed() -> None:
    program = "from server import compiled_game; print(compiled_game.use())\n"
    program += "from game.values import Player\nplayer = Player(id=1, name='a', x=1.0, y=2.0)\n"
    program += "try:\n    player.x = 3.0\nexcept AttributeError as error:\n    print('refused:', error)\n"
    environment = {**os.environ, compiled_game.PURE_PYTHON_VARIABLE: ""}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=environment, check=True
    )
    chosen, outcome = result.stdout.splitlines()
    assert chosen == "compiled with mypyc" and outcome.startswith("refused:"), result.stdout


def test_the_compiled_steps_rounding_is_pythons_round() -> None:
    program = "import random, sys\nfrom server import compiled_game; print(compiled_game.use())\n"
    program += "from game.arithmetic import nearest_int\nrng = random.Random(3)\n"
    program += "values = [k / 2 for k in range(-4001, 4002)] + [rng.uniform(-1e6, 1e6) for _ in range(100_000)]\n"
    program += "values += [2.0**52 + 0.5, 2.0**53 + 1, -(2.0**52) - 0.5, 1e300, -1e300, 5e-324, -5e-324]\n"
    program += "values += [0.49999999999999994, -0.49999999999999994, 0.5000000000000001]\n"
    program += "print([value for value in values if nearest_int(value) != round(value)])"
    environment = {**os.environ, compiled_game.PURE_PYTHON_VARIABLE: ""}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=environment, check=True
    )
    assert result.stdout.splitlines() == ["compiled with mypyc", "[]"]
