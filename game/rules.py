"""The rules of Arena's default game, a top-down arena shooter; all of them are fixed per match.

Every duration is turned into whole ticks here, so that the simulation counts ticks and never reads a clock.
"""

from __future__ import annotations

import math

import attrs


@attrs.frozen
class Rect:
    """An axis-aligned rectangle in arena units: (x, y) is its top-left corner."""

    x: int
    y: int
    width: int
    height: int

    def contains(self, px: float, py: float, *, margin: float = 0.0) -> bool:
        """Whether the point lies inside the rectangle grown by `margin` on every side."""
        return (
            self.x - margin < px < self.x + self.width + margin and self.y - margin < py < self.y + self.height + margin
        )


DEFAULT_WALLS = (
    Rect(700, 375, 200, 150),
    Rect(300, 150, 40, 250),
    Rect(1260, 500, 40, 250),
    Rect(450, 650, 250, 40),
    Rect(900, 210, 250, 40),
)

DEFAULT_SPAWN_POINTS = (
    (100, 100),
    (1500, 800),
    (1500, 100),
    (100, 800),
    (800, 80),
    (800, 820),
    (220, 450),
    (1380, 450),
)


@attrs.frozen(kw_only=True)
class Rules:
    """The parameters of a match. Rates are per second; the `*_ticks` and `*_per_tick` views are what `step` uses."""

    tick_rate: int = 30
    width: int = 1600
    height: int = 900
    walls: tuple[Rect, ...] = DEFAULT_WALLS
    spawn_points: tuple[tuple[int, int], ...] = DEFAULT_SPAWN_POINTS
    min_players: int = 2
    max_players: int = 8
    player_radius: int = 20
    player_speed: int = 220
    projectile_speed: int = 600
    projectile_radius: int = 4
    shots_per_second: int = 4
    projectile_life_seconds: float = 1.5
    max_hp: int = 100
    damage: int = 25
    respawn_seconds: float = 2.0
    kill_limit: int = 10
    duration_seconds: int = 180
    spawn_clearance: int = 100
    lag_compensation_seconds: float = 0.25
    """How far back a shot may be judged (a client's round trip plus its interpolation delay); older claims are
    clamped to it."""

    @property
    def player_step(self) -> float:
        """Units a player moves in one tick along an axis."""
        return self.player_speed / self.tick_rate

    @property
    def projectile_step(self) -> float:
        """Units a projectile travels in one tick."""
        return self.projectile_speed / self.tick_rate

    @property
    def lag_compensation_ticks(self) -> int:
        """The most ticks a shot is judged in the past: `lag_compensation_seconds` in whole ticks."""
        return round(self.lag_compensation_seconds * self.tick_rate)

    @property
    def fire_interval_ticks(self) -> int:
        """Ticks between two shots: rounded up, so a player never fires faster than `shots_per_second`."""
        return math.ceil(self.tick_rate / self.shots_per_second)

    @property
    def projectile_life_ticks(self) -> int:
        return round(self.projectile_life_seconds * self.tick_rate)

    @property
    def respawn_ticks(self) -> int:
        return round(self.respawn_seconds * self.tick_rate)

    @property
    def duration_ticks(self) -> int:
        return self.duration_seconds * self.tick_rate
