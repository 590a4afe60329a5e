"""Hit rate of shots aimed at a target exactly as the shooter's client displays it, with and without lag
compensation, at several round trips.

A model of the network around the real simulation (game.step, no sockets): the server ticks at 30 Hz; a client
sees the state one-way latency (half the round trip) late and draws other players a further 100 ms in the past
(interpolation, as the browser client does); its inputs reach the server one-way latency later and apply at the
next tick. The target walks up and down a clear lane at full speed; the shooter stands still and, 4 times a
second while the target it sees is in the middle of a leg (it will not turn for at least a second), aims where
that displayed target will be when the projectile gets there (leading it by the displayed velocity), and fires
with the input's view tick set to the tick it displays. Hits do no damage, so nobody dies.

Usage: .venv/bin/python bench/lag_compensation.py [--shots 400] [--rtt 0,50,100,150,200]
"""

from __future__ import annotations

import argparse
import json
import math

import attrs

from game import Hit, MatchState, PlayerInput, Rules, step
from game.simulation import add_player

INTERPOLATION_MS = 100
SHOOTER, TARGET = 1, 2
SHOOTER_AT = (300.0, 450.0)
LANE_X, LANE_TOP, LANE_BOTTOM = 800.0, 100.0, 800.0


def _lane_rules(compensate: bool) -> Rules:
    rules = Rules(walls=(), spawn_points=((100, 100), (1500, 800)), damage=0, duration_seconds=3600)
    return rules if compensate else attrs.evolve(rules, lag_compensation_seconds=0.0)


def hit_rate(*, rtt_ms: float, compensate: bool, shots: int) -> tuple[int, int]:
    """(hits, shots) for `shots` shots at a round trip of `rtt_ms`."""
    rules = _lane_rules(compensate)
    tick_ms = 1000 / rules.tick_rate
    one_way_ticks = rtt_ms / 2 / tick_ms
    display_lag = one_way_ticks + INTERPOLATION_MS / tick_ms  # how far behind the server the client draws others
    state = add_player(add_player(MatchState.initial(seed=1, rules=rules), SHOOTER, "shooter"), TARGET, "target")
    state = attrs.evolve(
        state,
        players={
            SHOOTER: attrs.evolve(state.players[SHOOTER], x=SHOOTER_AT[0], y=SHOOTER_AT[1]),
            TARGET: attrs.evolve(state.players[TARGET], x=LANE_X, y=LANE_TOP),
        },
    )
    target_y = {0: LANE_TOP}  # the target's y at each server tick
    pending: list[tuple[float, PlayerInput]] = []  # (server tick it applies at, input)
    direction, fired, hits, seq = 1, 0, 0, 0
    next_shot_tick = 10
    while fired < shots or pending:
        tick = state.tick + 1
        # the target turns at the ends of its lane
        y = state.players[TARGET].y
        if (direction > 0 and y >= LANE_BOTTOM) or (direction < 0 and y <= LANE_TOP):
            direction = -direction
        inputs = {TARGET: PlayerInput(seq=tick, move_y=direction)}
        due = [entry for entry in pending if entry[0] <= tick]
        if due:
            inputs[SHOOTER] = due[0][1]
            pending.remove(due[0])
        state, events = step(state, inputs)
        target_y[state.tick] = state.players[TARGET].y
        hits += sum(1 for event in events if isinstance(event, Hit) and event.shooter == SHOOTER)
        # the client, at this moment, displays the target as it was `display_lag` ticks ago
        shown = state.tick - display_lag
        shown_tick = math.floor(shown)
        if fired < shots and state.tick >= next_shot_tick and shown_tick - 1 in target_y:
            fraction = shown - shown_tick
            before, after = target_y[shown_tick - 1], target_y[shown_tick]
            y_shown = after + (target_y.get(shown_tick + 1, after) - after) * fraction
            velocity = (after - before) * rules.tick_rate  # units per second, as displayed
            if velocity and _steady(y_shown, velocity):
                aim = _lead(y_shown, velocity, rules)
                seq += 1
                shot = PlayerInput(seq=seq, aim=aim, fire=True, view_tick=round(shown))
                arrives = state.tick + 2 * one_way_ticks  # sent now: arrives one way later, applies next tick
                pending.append((math.ceil(arrives), shot))
                pending.append((math.ceil(arrives) + 1, PlayerInput(seq=seq + 1, aim=aim)))
                seq += 1
                fired += 1
                next_shot_tick = state.tick + rules.fire_interval_ticks
        if fired >= shots and not pending:
            for _ in range(rules.projectile_life_ticks + 1):  # let the last projectiles land
                state, events = step(state, {TARGET: PlayerInput(seq=state.tick + 1, move_y=direction)})
                hits += sum(1 for event in events if isinstance(event, Hit) and event.shooter == SHOOTER)
    return hits, fired


def _steady(y: float, velocity: float) -> bool:
    """The displayed target keeps its direction for at least a second more."""
    room = (LANE_BOTTOM - y) if velocity > 0 else (y - LANE_TOP)
    return room >= abs(velocity) * 1.0


def _lead(y: float, velocity: float, rules: Rules) -> float:
    """The aim angle that meets a target at (LANE_X, y) moving at `velocity` along y, from the shooter."""
    launch_offset = rules.player_radius + rules.projectile_radius
    flight = 0.0
    for _ in range(20):  # fixed-point iteration on the flight time
        aim_y = y + velocity * flight
        dx, dy = LANE_X - SHOOTER_AT[0], aim_y - SHOOTER_AT[1]
        flight = (math.hypot(dx, dy) - launch_offset) / rules.projectile_speed
    return math.atan2(dy, dx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=int, default=400)
    parser.add_argument("--rtt", default="0,50,100,150,200", help="round trips in ms (default %(default)s)")
    args = parser.parse_args()
    results = []
    print(f"{'round trip':>10} {'without lag compensation':>26} {'with (0.25 s of history)':>26}")
    for rtt in (float(value) for value in args.rtt.split(",")):
        row = {"rtt_ms": rtt}
        for compensate in (False, True):
            hits, shots = hit_rate(rtt_ms=rtt, compensate=compensate, shots=args.shots)
            row["with" if compensate else "without"] = round(hits / shots, 4)
        results.append(row)
        print(f"{rtt:>8.0f}ms {row['without']:>25.1%} {row['with']:>25.1%}")
    print(json.dumps({"bench": "lag_compensation", "shots": args.shots, "results": results}))


if __name__ == "__main__":
    main()
