"""A server tick's own work, in one process and without sockets: where a match's CPU goes between two sends.

An 8-player match played as bench/whole_game.py's players play it (a new random input ten times a second: walk,
aim, fire half the time, view 0 so every shot is judged the full lag-compensation window back) goes through what
server.match.Match.tick does, phase by phase: step, the recorder, the delta with the server's fields
(SnapshotBuilder.advance), and encoding it into one frame. Prints microseconds per tick for each phase (CPU
time, best of --repeat runs, since this machine is shared), and with --profile the functions cProfile finds the
most time in.

With --matches N the ticks of N matches run in turn, as a server runs them, and with --paced thirty rounds a
second, idle between them: what the same work costs once each match's data have left the CPU's caches between two
of its ticks (docs/benchmarks.md, issue 15's eighth sitting).

Usage: .venv/bin/python bench/tick_work.py [--ticks 9000] [--players 8] [--repeat 3] [--profile]
       .venv/bin/python bench/tick_work.py --matches 94 --paced --ticks 300 --repeat 1
"""

# ruff: noqa: E402 - the game's build is chosen (server.compiled_game) before anything imports game
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import time

from server import compiled_game

compiled_game.use()  # the game as the server runs it (ARENA_PURE_PYTHON=1: pure Python)

import game
from game import MatchState, PlayerInput, Rules
from game.snapshot import SnapshotBuilder
from server.codec import encode
from server.match import SERVER_PLAYER_FIELDS
from server.outbox import binary_frame
from server.recording import MatchRecorder

PHASES = ("step", "record", "delta", "encode")


class _Match:
    """One match of the bench: its state, recorder, snapshot builder and its players' held inputs."""

    def __init__(self, players: int, seed: int) -> None:
        rules = Rules(duration_seconds=3600, kill_limit=1_000_000)
        self.state = MatchState.initial(seed=seed, rules=rules)
        self.recorder = MatchRecorder.start(match_id="bench", mode="ffa", seed=seed, rules=rules)
        for player_id in range(1, players + 1):
            self.state = game.add_player(self.state, player_id, f"player{player_id}")
            self.recorder.join(player_id, f"player{player_id}")
        self.rng = random.Random(seed)
        self.held: dict[int, PlayerInput] = {}
        self.seq = 0
        self.snapshots = SnapshotBuilder(SERVER_PLAYER_FIELDS)  # as server.match.Match builds them
        self.snapshots.start(self.state)

    def tick(self, tick: int, spent: dict[str, float]) -> None:
        """Play one tick, adding the CPU seconds of each phase to `spent`."""
        rng, held, clock = self.rng, self.held, time.process_time
        for player_id in self.state.players:
            if (tick + player_id) % 3 == 0:  # ten inputs a second at 30 ticks a second
                self.seq += 1
                held[player_id] = PlayerInput(
                    seq=self.seq,
                    move_x=rng.choice((-1, 0, 1)),
                    move_y=rng.choice((-1, 0, 1)),
                    aim=rng.uniform(-3, 3),
                    fire=rng.random() < 0.5,
                    view_tick=0,
                )
        t0 = clock()
        self.state, events = game.step(self.state, held)
        t1 = clock()
        self.recorder.tick(self.state.tick, held, self.state)
        if tick % self.state.rules.tick_rate == 0:
            self.recorder.take()  # the replay writer takes the records once a second (its thread compresses them)
        t2 = clock()
        server_fields = {pid: (20, held[pid].seq if pid in held else 0, "playing") for pid in self.state.players}
        change = self.snapshots.advance(self.state, events, server_fields)
        t3 = clock()
        binary_frame(encode(change))
        t4 = clock()
        spent["step"] += t1 - t0
        spent["record"] += t2 - t1
        spent["delta"] += t3 - t2
        spent["encode"] += t4 - t3


def play(ticks: int, players: int, seed: int, matches: int = 1, paced: bool = False) -> dict[str, float]:
    """CPU seconds spent in each phase over `ticks` ticks of each of `matches` matches, played round robin (a
    server's matches tick in turn); `paced`: a round every 1/30 s, idle between rounds, as a server's ticks come."""
    games = [_Match(players, seed + index) for index in range(matches)]
    spent = dict.fromkeys(PHASES, 0.0)
    started = time.monotonic()
    for tick in range(1, ticks + 1):
        for match in games:
            match.tick(tick, spent)
        if paced:
            time.sleep(max(0.0, started + tick / games[0].state.rules.tick_rate - time.monotonic()))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=9000)
    parser.add_argument("--players", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    parser.add_argument("--matches", type=int, default=1, help="matches ticking in turn, as on a server (default 1)")
    parser.add_argument("--paced", action="store_true", help="30 rounds a second, idle between them, as a server")
    args = parser.parse_args()
    if not 1 <= args.players <= 8 or not 100 <= args.ticks <= 1_000_000 or not 1 <= args.repeat <= 20:
        parser.error("--players 1..8, --ticks 100..1000000, --repeat 1..20")
    if not 1 <= args.matches <= 500 or (args.paced and args.ticks > 60 * Rules().tick_rate):
        parser.error("--matches 1..500; with --paced, --ticks at most 1800 (a minute)")
    best: dict[str, float] | None = None
    ticks = args.ticks * args.matches
    for run in range(args.repeat):
        spent = play(args.ticks, args.players, seed=7, matches=args.matches, paced=args.paced)
        total = sum(spent.values())
        print(f"  run {run + 1}/{args.repeat}: {1e6 * total / ticks:.1f} us per tick", flush=True)
        if best is None or total < sum(best.values()):
            best = spent
    assert best is not None
    per_tick = {phase: round(1e6 * seconds / ticks, 2) for phase, seconds in best.items()}
    total = round(sum(per_tick.values()), 2)
    how = f"{args.matches} matches in turn{', paced at 30 Hz' if args.paced else ''}"
    print(
        f"{args.players} players, {how}, the game {compiled_game.status}: {total} us per tick = "
        f"{total / args.players:.2f} us per player-tick; "
        + ", ".join(f"{phase} {value}" for phase, value in per_tick.items())
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(play, args.ticks, args.players, 7)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    print(
        json.dumps(
            {
                "bench": "tick_work",
                "game": compiled_game.status,
                "players": args.players,
                "matches": args.matches,
                "paced": args.paced,
                "us_per_tick": total,
                "phases": per_tick,
            }
        )
    )


if __name__ == "__main__":
    main()
