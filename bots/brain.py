"""What a swarm bot does, decided from its view of the match alone (the snapshot a client holds).

A bot wanders to random points while no enemy is near; chases the nearest living enemy it sees within
`CHASE_RANGE`, keeping about `PREFERRED_DISTANCE` from it; aims at it and fires within `FIRING_RANGE`; and now
and then dodges sideways for a moment. The randomness comes from the bot's own seeded `random.Random`, so a
swarm run with the same seed makes the same choices given the same views.
"""

from __future__ import annotations

import math
import random

import attrs

from game import Snapshot

CHASE_RANGE = 900
FIRING_RANGE = 650
PREFERRED_DISTANCE = 280
DODGE_CHANCE_PER_DECISION = 0.02
DODGE_DECISIONS = 10
ARENA_SIZE = (1600, 900)
ARRIVED = 40


@attrs.frozen
class Intent:
    """An input to send: move direction per axis (-1, 0, 1), aim in radians, fire."""

    mx: int = 0
    my: int = 0
    aim: float = 0.0
    fire: bool = False


@attrs.define(eq=False)
class Brain:
    rng: random.Random
    arena_size: tuple[int, int] = ARENA_SIZE
    wander_to: tuple[float, float] | None = None
    dodge_left: int = 0
    dodge_side: int = 1

    def decide(self, view: Snapshot, me_id: int) -> Intent:
        """The bot's next input, given its current view of the match."""
        players = view.entities.get("players", {})
        me = players.get(me_id)
        if me is None or int(me.get("hp", 0)) <= 0:
            return Intent()
        x, y = float(me["x"]), float(me["y"])
        enemies = [
            (float(p["x"]), float(p["y"])) for pid, p in players.items() if pid != me_id and int(p.get("hp", 0)) > 0
        ]
        nearest = min(enemies, key=lambda e: (e[0] - x) ** 2 + (e[1] - y) ** 2, default=None)
        if nearest is not None and math.dist(nearest, (x, y)) <= CHASE_RANGE:
            return self._fight(x, y, nearest)
        return self._wander(x, y)

    def _fight(self, x: float, y: float, enemy: tuple[float, float]) -> Intent:
        dx, dy = enemy[0] - x, enemy[1] - y
        distance = math.hypot(dx, dy)
        aim = round(math.atan2(dy, dx), 2)
        approach = 1 if distance > PREFERRED_DISTANCE * 1.2 else -1 if distance < PREFERRED_DISTANCE * 0.8 else 0
        if self.dodge_left == 0 and self.rng.random() < DODGE_CHANCE_PER_DECISION:
            self.dodge_left, self.dodge_side = DODGE_DECISIONS, self.rng.choice((-1, 1))
        side = 0
        if self.dodge_left:
            self.dodge_left -= 1
            side = self.dodge_side
        move_x = _sign(approach * dx - side * dy)
        move_y = _sign(approach * dy + side * dx)
        return Intent(mx=move_x, my=move_y, aim=aim, fire=distance <= FIRING_RANGE)

    def _wander(self, x: float, y: float) -> Intent:
        if self.wander_to is None or math.dist(self.wander_to, (x, y)) < ARRIVED:
            width, height = self.arena_size
            self.wander_to = (self.rng.uniform(50, width - 50), self.rng.uniform(50, height - 50))
        dx, dy = self.wander_to[0] - x, self.wander_to[1] - y
        return Intent(mx=_sign(dx, dead_zone=10), my=_sign(dy, dead_zone=10), aim=round(math.atan2(dy, dx), 2))


def _sign(value: float, *, dead_zone: float = 1e-6) -> int:
    if abs(value) < dead_zone:
        return 0
    return 1 if value > 0 else -1
