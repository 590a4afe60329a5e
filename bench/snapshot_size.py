"""How many bytes a client receives per tick: a full snapshot versus a delta from the previous tick.

Simulates an 8-player match in which every player wanders and shoots at the nearest enemy, adds the per-player
fields the server sends ("ping", which changes rarely, and "ack", the last input sequence, which changes every
tick), and encodes each tick both ways with msgpack in the wire form of docs/protocol.md:

    {"t": "snapshot", "tick": int, "entities": {kind: {id: fields}}, "events": [...]}
    {"t": "delta", "tick": int, "base": int, "add": ..., "change": ..., "remove": {kind: [ids]}, "events": [...]}

with a delta's empty sections left out and each event a map {"e": kind, **fields}. Every client is assumed to
have acknowledged the previous tick, so all clients receive the same message and bytes per tick per client are
the size of that one message.

Run: .venv/bin/python bench/snapshot_size.py [--seconds 60] [--seed 1]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import msgpack

from game import Delta, MatchState, PlayerInput, Rules, Snapshot, add_player, apply, delta, snapshot, step
from game.snapshot import MATCH, PLAYERS, PROJECTILES
from server.codec import to_wire

PLAYER_COUNT = 8
REQUIRED_RATIO = 3.0
DIRECTIONS = tuple((x, y) for x in (-1, 0, 1) for y in (-1, 0, 1) if x or y)


def snapshot_message(snap: Snapshot) -> dict[str, Any]:
    """The snapshot as the server sends it (server/codec.py)."""
    return to_wire(snap)


def delta_message(change: Delta) -> dict[str, Any]:
    """The delta as the server sends it (server/codec.py)."""
    return to_wire(change)


def packed_size(value: Any) -> int:
    return len(msgpack.packb(value))


@attrs.define(eq=False)
class Bots:
    """Headless players: each aims at the nearest living enemy (with jitter), fires, and wanders.

    A wanderer keeps one of the eight directions for a random while and picks another as soon as a wall or the
    arena's edge stops it, so that everyone alive keeps moving.
    """

    rng: random.Random
    wander: dict[int, tuple[int, int, int]] = attrs.Factory(dict)
    last_position: dict[int, tuple[float, float]] = attrs.Factory(dict)
    seq: dict[int, int] = attrs.Factory(dict)

    def inputs(self, state: MatchState) -> dict[int, PlayerInput]:
        inputs = {}
        living = [p for p in state.players.values() if p.alive]
        for pid in sorted(state.players):
            me = state.players[pid]
            enemies = [p for p in living if p.id != pid]
            aim = self.rng.uniform(-math.pi, math.pi)
            if enemies:
                target = min(enemies, key=lambda p: ((p.x - me.x) ** 2 + (p.y - me.y) ** 2, p.id))
                aim = math.atan2(target.y - me.y, target.x - me.x) + self.rng.uniform(-0.05, 0.05)
            move_x, move_y, left = self.wander.get(pid, (0, 0, 0))
            stuck = self.last_position.get(pid) == (me.x, me.y)
            if left <= 0 or stuck:
                move_x, move_y = self.rng.choice(DIRECTIONS)
                left = self.rng.randint(5, 40)
            self.wander[pid] = (move_x, move_y, left - 1)
            self.last_position[pid] = (me.x, me.y)
            self.seq[pid] = self.seq.get(pid, 0) + 1
            inputs[pid] = PlayerInput(seq=self.seq[pid], move_x=move_x, move_y=move_y, aim=aim, fire=bool(enemies))
        return inputs


@attrs.define(eq=False)
class ServerFields:
    """The server's own per-player fields: "ping" re-measured every 2 s, "ack" every tick, "status" never."""

    rng: random.Random
    base_ping: dict[int, int] = attrs.Factory(dict)
    ping: dict[int, int] = attrs.Factory(dict)

    def fields(self, state: MatchState, acks: Mapping[int, int]) -> dict[int, dict[str, int]]:
        for pid in state.players:
            if pid not in self.base_ping:
                self.base_ping[pid] = self.rng.randint(20, 150)
                self.ping[pid] = self.base_ping[pid]
            if (state.tick + 7 * pid) % (2 * state.rules.tick_rate) == 0:
                self.ping[pid] = max(1, self.base_ping[pid] + self.rng.randint(-8, 8))
        return {pid: {"ping": self.ping[pid], "ack": acks.get(pid, 0), "status": "playing"} for pid in state.players}


def summary(sizes: Sequence[int]) -> dict[str, float]:
    ordered = sorted(sizes)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "mean": round(statistics.fmean(ordered), 1),
        "p50": statistics.median(ordered),
        "p99": p99,
        "max": ordered[-1],
    }


def delta_breakdown(wire: Mapping[str, Any]) -> dict[str, int]:
    """Bytes of each part of one delta message (each part encoded on its own, so a little over the total)."""
    parts = {"header": packed_size({k: wire[k] for k in ("t", "tick", "base")})}
    for section in ("add", "change", "remove"):
        for kind, by_id in wire.get(section, {}).items():
            parts[f"{section}.{kind}"] = packed_size(by_id)
    if "events" in wire:
        parts["events"] = packed_size(wire["events"])
    return parts


def snapshot_breakdown(wire: Mapping[str, Any]) -> dict[str, int]:
    """Bytes of each part of one full snapshot message (each part encoded on its own)."""
    parts = {"header": packed_size({k: wire[k] for k in ("t", "tick")}), "events": packed_size(wire["events"])}
    for kind in (PLAYERS, PROJECTILES, MATCH):
        parts[kind] = packed_size(wire["entities"].get(kind, {}))
    return parts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds of play (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the match and of the bots (default 1)")
    args = parser.parse_args(argv)

    # The kill limit is lifted so that the match is played for the whole measurement.
    rules = Rules(kill_limit=1_000_000, duration_seconds=max(args.seconds + 1, 180))
    ticks = args.seconds * rules.tick_rate
    print(
        f"snapshot_size: {PLAYER_COUNT} players, {args.seconds} s at {rules.tick_rate} Hz = {ticks} ticks, "
        f"seed {args.seed}, msgpack {'.'.join(map(str, msgpack.version))}, Python {sys.version.split()[0]}",
        flush=True,
    )

    state = MatchState.initial(seed=args.seed, rules=rules)
    for pid in range(1, PLAYER_COUNT + 1):
        state = add_player(state, pid, f"player {pid}")
    bots = Bots(random.Random(args.seed))
    server_fields = ServerFields(random.Random(args.seed + 1))
    previous = snapshot(state).with_fields(PLAYERS, server_fields.fields(state, {}))

    full_sizes: list[int] = []
    delta_sizes: list[int] = []
    parts_total: collections.Counter[str] = collections.Counter()
    full_parts_total: collections.Counter[str] = collections.Counter()
    field_changes: collections.Counter[str] = collections.Counter()
    field_bytes: collections.Counter[str] = collections.Counter()
    event_counts: collections.Counter[str] = collections.Counter()
    projectile_counts: list[int] = []
    alive_counts: list[int] = []
    started = time.perf_counter()

    for _ in range(ticks):
        inputs = bots.inputs(state)
        state, events = step(state, inputs)
        acks = {pid: player_input.seq for pid, player_input in inputs.items()}
        current = snapshot(state, events).with_fields(PLAYERS, server_fields.fields(state, acks))
        change = delta(previous, current)
        if apply(previous, change) != current:
            raise AssertionError(f"the delta of tick {state.tick} does not rebuild its snapshot")

        full_wire, delta_wire = snapshot_message(current), delta_message(change)
        full_sizes.append(packed_size(full_wire))
        delta_sizes.append(packed_size(delta_wire))
        parts_total.update(delta_breakdown(delta_wire))
        full_parts_total.update(snapshot_breakdown(full_wire))
        for eid, fields in change.changed.get(PLAYERS, {}).items():
            field_changes.update(fields.keys())
            costs = {name: packed_size(name) + packed_size(value) for name, value in fields.items()}
            field_bytes.update(costs)
            field_bytes["(ids, map headers)"] += packed_size(eid) + packed_size(fields) - sum(costs.values())
        event_counts.update(type(e).__name__ for e in events)
        projectile_counts.append(len(state.projectiles))
        alive_counts.append(sum(p.alive for p in state.players.values()))
        previous = current

        if state.tick % (10 * rules.tick_rate) == 0:
            print(
                f"  t={state.tick // rules.tick_rate:3d}s  tick {state.tick:5d}  "
                f"projectiles {len(state.projectiles):2d}  "
                f"hits {event_counts['Hit']:4d}  deaths {event_counts['Death']:3d}  "
                f"full mean {statistics.fmean(full_sizes):7.1f} B  delta mean {statistics.fmean(delta_sizes):6.1f} B",
                flush=True,
            )

    elapsed = time.perf_counter() - started
    full, small = summary(full_sizes), summary(delta_sizes)
    ratio_mean = full["mean"] / small["mean"]
    ratio_p50 = full["p50"] / small["p50"]
    kbps = {
        name: round(stats["mean"] * rules.tick_rate * 8 / 1000, 1) for name, stats in (("full", full), ("delta", small))
    }

    print()
    print(f"bytes per tick per client over {ticks} ticks ({elapsed:.1f} s to simulate and encode):")
    print(f"  {'':6} {'mean':>8} {'p50':>8} {'p99':>8} {'max':>8} {'kbit/s':>8}")
    for name, stats in (("full", full), ("delta", small)):
        print(
            f"  {name:6} {stats['mean']:8.1f} {stats['p50']:8.1f} {stats['p99']:8d} {stats['max']:8d} {kbps[name]:8.1f}"
        )
    print(f"  ratio full/delta: {ratio_mean:.2f}x by mean, {ratio_p50:.2f}x by p50")
    print(f"  projectiles in flight: mean {statistics.fmean(projectile_counts):.1f}, max {max(projectile_counts)}")
    print(f"  players alive: mean {statistics.fmean(alive_counts):.2f} of {PLAYER_COUNT}")
    print(f"  events: {dict(sorted(event_counts.items()))}")
    print("what a full snapshot is made of (mean bytes per tick, parts encoded separately):")
    for part, total in full_parts_total.most_common():
        print(f"  {part:22} {total / ticks:7.1f}")
    print("what a delta is made of (mean bytes per tick, parts encoded separately):")
    for part, total in parts_total.most_common():
        print(f"  {part:22} {total / ticks:7.1f}")
    print("changed player fields per tick: mean number of players, mean bytes (name and value):")
    for name, total in field_bytes.most_common():
        changes = f"{field_changes[name] / ticks:5.2f}" if name in field_changes else " " * 5
        print(f"  {name:20} {changes} {total / ticks:7.1f}")
    verdict = ratio_mean >= REQUIRED_RATIO
    print(
        f"delta is {ratio_mean:.2f}x smaller than the full snapshot by mean: "
        f"{'OK' if verdict else 'NOT OK'} (required: {REQUIRED_RATIO:g}x)"
    )

    figures = {
        "bench": "snapshot_size",
        "players": PLAYER_COUNT,
        "seconds": args.seconds,
        "tick_rate": rules.tick_rate,
        "ticks": ticks,
        "seed": args.seed,
        "full_bytes": full,
        "delta_bytes": small,
        "ratio_mean": round(ratio_mean, 2),
        "ratio_p50": round(ratio_p50, 2),
        "kbit_per_s_per_client": kbps,
        "full_parts_mean_bytes": {part: round(total / ticks, 1) for part, total in full_parts_total.most_common()},
        "delta_parts_mean_bytes": {part: round(total / ticks, 1) for part, total in parts_total.most_common()},
        "delta_player_field_mean_bytes": {name: round(total / ticks, 1) for name, total in field_bytes.most_common()},
        "events": dict(sorted(event_counts.items())),
        "delta_at_least_3x_smaller": verdict,
    }
    print(json.dumps(figures, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
