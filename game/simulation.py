"""How a match advances: `step(state, inputs)` returns the next state and what happened during the tick.

Rules of the step, in order: the match clock starts once `min_players` are present; dead players whose
respawn tick has come back at a free spawn point; each player's input is applied in player-id order (aim,
move, fire); projectiles fly, stop at walls and the arena's edge, expire, or hit the first living enemy they
touch; the match ends at the kill limit or when time runs out. A finished match no longer changes.

Lag compensation (favour the shooter, within bounds): a shot fired with an input whose `view_tick` is L ticks
old (at most `Rules.lag_compensation_ticks`; a view tick from the future counts as now) is launched as the
shooter saw it: its spawn tick is set L ticks back, and the stretch of flight it would have flown by now is
judged at once against where the other players were at each of those ticks (`MatchState.history`); a hit there
counts if the target is still alive now. From then on it flies in the present like any other projectile. Every
input of it is in `step`'s arguments, so a replay stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

from game.arithmetic import nearest_int
from game.events import Death, Event, Hit, MatchEnd, Respawn, ScoreLine
from game.rules import Rules
from game.state import HistoryFrame, MatchState, next_random
from game.values import Player, PlayerInput, Projectile

_DIAGONAL: Final = 1 / math.sqrt(2)
_MAX_AIM_MRAD: Final = 3142
_KEEP: Final = -1
"""`_changed`'s "leave respawn_tick as it is" (respawn ticks are never negative; None means none)."""


class _Wall:
    """A wall as (left, right, top, bottom), grown by a margin: where a centre stops (floats, as `Rect.contains`
    computes them)."""

    def __init__(self, left: float, right: float, top: float, bottom: float) -> None:
        self.left: Final = left
        self.right: Final = right
        self.top: Final = top
        self.bottom: Final = bottom


class _Stop:
    """A wall as a player moving along one axis meets it: it stands across `low`..`high` on the other axis, and
    stops the player's centre at `before` moving up the axis, at `after` moving down it."""

    def __init__(self, low: float, high: float, before: float, after: float) -> None:
        self.low: Final = low
        self.high: Final = high
        self.before: Final = before
        self.after: Final = after


class _Geometry:
    """What the step reads of a match's rules, worked out once per `Rules` object: numbers as plain fields (the
    rules' derived values are properties computed on each read) and each wall grown by the player's radius and by
    the projectile's. A plain class, which mypyc compiles to a C struct: the step reads these every tick."""

    def __init__(self, rules: Rules) -> None:
        self.width: Final = float(rules.width)  # exact: sizes are ints far below 2**53, compared with floats
        self.height: Final = float(rules.height)
        self.player_radius: Final = float(rules.player_radius)
        self.launch_offset: Final = float(rules.player_radius + rules.projectile_radius)
        player_walls = _grown_walls(rules, margin=rules.player_radius)
        self.stops_along_x: Final = tuple(_Stop(w.top, w.bottom, w.left, w.right) for w in player_walls)
        self.stops_along_y: Final = tuple(_Stop(w.left, w.right, w.top, w.bottom) for w in player_walls)
        self.max_x: Final = self.width - self.player_radius
        self.max_y: Final = self.height - self.player_radius
        """`max_x`, `max_y`: where a player's centre stops at the right and bottom edges (`player_radius` at the
        others)."""
        self.projectile_walls: Final = _grown_walls(rules, margin=rules.projectile_radius)
        self.reach_squared: Final = float((rules.player_radius + rules.projectile_radius) ** 2)
        """How close a projectile's centre comes to a player's before it hits: (player radius + its radius)²."""
        self.player_step: Final = rules.player_step
        self.projectile_step: Final = rules.projectile_step
        self.projectile_life_ticks: Final = rules.projectile_life_ticks
        self.fire_interval_ticks: Final = rules.fire_interval_ticks
        self.lag_compensation_ticks: Final = rules.lag_compensation_ticks
        self.respawn_ticks: Final = rules.respawn_ticks
        self.duration_ticks: Final = rules.duration_ticks
        self.min_players: Final = rules.min_players
        self.max_hp: Final = rules.max_hp
        self.damage: Final = rules.damage
        self.kill_limit: Final = rules.kill_limit


_geometries: dict[int, tuple[Rules, _Geometry]] = {}
"""By the id of a Rules object (hashing Rules by value costs more than the geometry saves), with the object itself,
so that an id reused by a new object is never taken for the old one's."""
GEOMETRIES_KEPT: Final = 4096
"""Rules objects whose geometry is kept: a server makes one per match, and runs a few hundred matches at most at
once. Past this many, all are forgotten (and the running matches' made again, once each)."""


def _geometry(rules: Rules) -> _Geometry:
    cached = _geometries.get(id(rules))
    if cached is not None and cached[0] is rules:
        return cached[1]
    geometry = _Geometry(rules)
    if len(_geometries) >= GEOMETRIES_KEPT:
        _geometries.clear()
    _geometries[id(rules)] = (rules, geometry)
    return geometry


class MatchFullError(Exception):
    """The match already holds `Rules.max_players` players."""


def add_player(state: MatchState, player_id: int, name: str) -> MatchState:
    """Put a new player at a free spawn point.

    Raises:
        MatchFullError: if the match has no free seat.
        ValueError: if `player_id` is already in the match.
    """
    if state.full:
        raise MatchFullError(f"match is full ({state.rules.max_players} players)")
    if player_id in state.players:
        raise ValueError(f"player {player_id} is already in the match")
    rng_state, (x, y) = _pick_spawn_point(state.rng_state, state.rules, state.players.values())
    player = Player(id=player_id, name=name, x=x, y=y, hp=state.rules.max_hp)
    return state.with_entities({**state.players, player_id: player}, rng_state=rng_state)


def remove_player(state: MatchState, player_id: int) -> MatchState:
    """Take a player out of the match; their projectiles keep flying."""
    players = {pid: p for pid, p in state.players.items() if pid != player_id}
    return state.with_entities(players)


def step(state: MatchState, inputs: Mapping[int, PlayerInput]) -> tuple[MatchState, tuple[Event, ...]]:
    """Advance the match by one tick.

    Args:
        state: the match before the tick.
        inputs: the input each player holds for this tick; players without one stand still and hold fire.

    Returns:
        The match after the tick and the events of the tick, in the order they happened.
    """
    if state.over:
        return state, ()
    rules = state.rules
    geometry = _geometry(rules)
    tick = state.tick + 1
    events: list[Event] = []
    start_tick, end_tick = state.start_tick, state.end_tick
    if start_tick is None and len(state.players) >= geometry.min_players:
        start_tick, end_tick = tick, tick + geometry.duration_ticks

    rng_state = state.rng_state
    players = dict(state.players)
    player_ids = sorted(players)  # the step changes players, never which ones there are
    held: dict[int, PlayerInput] = inputs if isinstance(inputs, dict) else dict(inputs)  # compiled: dict's own get
    for pid in player_ids:
        player = players[pid]
        if player.hp <= 0 and player.respawn_tick is not None and player.respawn_tick <= tick:
            others = [p for p in players.values() if p.id != pid]
            rng_state, (x, y) = _pick_spawn_point(rng_state, rules, others)
            players[pid] = _changed(player, x=x, y=y, hp=geometry.max_hp, respawn_tick=None)
            events.append(Respawn(player=pid, x=nearest_int(x), y=nearest_int(y)))

    projectiles = dict(state.projectiles)
    next_projectile_id = state.next_projectile_id
    blockers = geometry.projectile_walls
    for pid in player_ids:
        player_input = held.get(pid)
        if player_input is None:
            continue
        player = players[pid]
        fires = player_input.fire and player.hp > 0 and tick >= player.next_fire_tick
        next_fire_tick = tick + geometry.fire_interval_ticks if fires else player.next_fire_tick
        players[pid] = player = _apply_input(player, player_input, geometry, next_fire_tick)
        if fires:
            lag = _lag(player_input.view_tick, tick, geometry.lag_compensation_ticks)
            projectile = _launch(player, next_projectile_id, tick - lag, geometry)
            next_projectile_id += 1
            if not lag or not _rewound_flight_hit(projectile, tick, state.history, players, events, geometry):
                projectiles[projectile.id] = projectile

    # Living players in id order and where projectiles can hit them (nobody moves while projectiles fly).
    targets = [(pid, player.x, player.y) for pid in player_ids if (player := players[pid]).hp > 0]
    keep = geometry.lag_compensation_ticks
    history = (*state.history, (tick, tuple(targets)))[-keep:] if keep else ()
    life_ticks = geometry.projectile_life_ticks
    projectile_step = geometry.projectile_step
    for projectile_id in sorted(projectiles):
        projectile = projectiles[projectile_id]
        age = tick - projectile.spawn_tick
        if age > life_ticks:
            del projectiles[projectile_id]
            continue
        x, y = _position(projectile, tick, projectile_step)
        if _blocked(x, y, geometry, blockers):
            del projectiles[projectile_id]
            continue
        target_id = _first_target(projectile.owner, x, y, targets, geometry.reach_squared)
        if target_id is None:
            continue
        del projectiles[projectile_id]
        if _hit(players, events, projectile.owner, target_id, tick, geometry):
            targets = [entry for entry in targets if entry[0] != target_id]

    over = False
    if start_tick is not None:
        reason = None
        if any(p.kills >= geometry.kill_limit for p in players.values()):
            reason = "kill_limit"
        elif end_tick is not None and tick >= end_tick:
            reason = "time_limit"
        if reason is not None:
            over = True
            events.append(_match_end(reason, players))

    next_state = MatchState(
        rules=rules,
        tick=tick,
        rng_state=rng_state,
        players=players,
        projectiles=projectiles,
        next_projectile_id=next_projectile_id,
        start_tick=start_tick,
        end_tick=end_tick,
        over=over,
        history=history,
    )
    return next_state, tuple(events)


def _lag(view_tick: int | None, tick: int, lag_compensation_ticks: int) -> int:
    """How many ticks back a shot made at `view_tick` is judged: none for no view or one from the future, at most
    `lag_compensation_ticks` for an older one."""
    if view_tick is None or view_tick >= tick:
        return 0
    return min(tick - view_tick, lag_compensation_ticks)


def _rewound_flight_hit(
    projectile: Projectile,
    tick: int,
    history: tuple[HistoryFrame, ...],
    players: dict[int, Player],
    events: list[Event],
    geometry: _Geometry,
) -> bool:
    """Fly a lag-compensated projectile from its (earlier) spawn tick up to `tick`, judged at each of those ticks
    against where players were then. True if it ended there (a wall, the edge, or a hit on a player still alive)."""
    spawn_tick, owner, reach_squared = projectile.spawn_tick, projectile.owner, geometry.reach_squared
    first_frame_tick = tick - len(history)  # each step adds one frame: history[i] is that tick's + i
    for past in range(spawn_tick + 1, tick):
        x, y = _position(projectile, past, geometry.projectile_step)
        if _blocked(x, y, geometry, geometry.projectile_walls):
            return True
        index = past - first_frame_tick
        if 0 <= index < len(history) and history[index][0] == past:
            entries = history[index][1]
        else:  # not there (older than the history), or frames not one per tick: look for it
            entries = next((frame[1] for frame in history if frame[0] == past), ())
        for target_id, target_x, target_y in entries:  # the first in reach who is alive now
            dx, dy = target_x - x, target_y - y
            if target_id != owner and dx * dx + dy * dy <= reach_squared:
                target = players.get(target_id)
                if target is not None and target.hp > 0:
                    _hit(players, events, owner, target_id, tick, geometry)
                    return True
    return False


def _hit(
    players: dict[int, Player], events: list[Event], shooter_id: int, target_id: int, tick: int, geometry: _Geometry
) -> bool:
    """A projectile of `shooter_id` hits `target_id` at `tick`: damage, and a kill at 0 hp. True if it killed."""
    target = players[target_id]
    hp = max(0, target.hp - geometry.damage)
    events.append(Hit(shooter=shooter_id, target=target_id, damage=target.hp - hp, hp=hp))
    if hp > 0:
        players[target_id] = _changed(target, hp=hp)
        return False
    players[target_id] = _changed(target, hp=0, deaths=target.deaths + 1, respawn_tick=tick + geometry.respawn_ticks)
    shooter = players.get(shooter_id)
    if shooter is not None:
        players[shooter_id] = _changed(shooter, kills=shooter.kills + 1)
    events.append(Death(victim=target_id, killer=shooter_id))
    return True


def projectile_position(projectile: Projectile, tick: int, rules: Rules) -> tuple[float, float]:
    """Where a projectile is at `tick`: it flies straight from its launch point at constant speed."""
    return _position(projectile, tick, rules.projectile_step)


def _position(projectile: Projectile, tick: int, projectile_step: float) -> tuple[float, float]:
    distance = (tick - projectile.spawn_tick) * projectile_step
    angle = projectile.aim_mrad / 1000
    return projectile.x0 + math.cos(angle) * distance, projectile.y0 + math.sin(angle) * distance


def _apply_input(player: Player, player_input: PlayerInput, geometry: _Geometry, next_fire_tick: int) -> Player:
    """The player after its input's move and aim, with `next_fire_tick` (moved on when it fires this tick)."""
    aim_mrad = max(-_MAX_AIM_MRAD, min(_MAX_AIM_MRAD, nearest_int(player_input.aim * 1000)))
    if player.hp <= 0:
        return _changed(player, aim_mrad=aim_mrad)
    speed = geometry.player_step
    if player_input.move_x and player_input.move_y:
        speed *= _DIAGONAL
    x, y = player.x, player.y
    if player_input.move_x:
        x = _slide(x, y, player_input.move_x * speed, geometry.player_radius, geometry.max_x, geometry.stops_along_x)
    if player_input.move_y:
        y = _slide(y, x, player_input.move_y * speed, geometry.player_radius, geometry.max_y, geometry.stops_along_y)
    if x == player.x and y == player.y and aim_mrad == player.aim_mrad and next_fire_tick == player.next_fire_tick:
        return player
    return _changed(player, x=x, y=y, aim_mrad=aim_mrad, next_fire_tick=next_fire_tick)


def _changed(
    player: Player,
    *,
    x: float | None = None,
    y: float | None = None,
    aim_mrad: int | None = None,
    hp: int | None = None,
    kills: int | None = None,
    deaths: int | None = None,
    respawn_tick: int | None = _KEEP,
    next_fire_tick: int | None = None,
) -> Player:
    """The player with the fields given changed (`attrs.evolve(player, ...)` at a fraction of its cost: every
    moving player, every tick); None keeps a field, except `respawn_tick`, which None clears (`_KEEP` keeps)."""
    return Player(
        id=player.id,
        name=player.name,
        x=player.x if x is None else x,
        y=player.y if y is None else y,
        aim_mrad=player.aim_mrad if aim_mrad is None else aim_mrad,
        hp=player.hp if hp is None else hp,
        kills=player.kills if kills is None else kills,
        deaths=player.deaths if deaths is None else deaths,
        respawn_tick=player.respawn_tick if respawn_tick == _KEEP else respawn_tick,
        next_fire_tick=player.next_fire_tick if next_fire_tick is None else next_fire_tick,
    )


def _slide(
    position: float, across: float, delta: float, lowest: float, highest: float, stops: tuple[_Stop, ...]
) -> float:
    """Move a player's centre along one axis from `position` (at `across` on the other) by `delta`, stopping flush
    against the arena's edge (`lowest`, `highest`) or the first wall in the way.

    Players collide as squares of side 2 * radius, which keeps the sliding exact and cheap: `stops` are the walls
    grown by the radius, where the player's centre stops. Positions stay floats, also where one stops flush.
    """
    target = min(max(position + delta, lowest), highest)
    for stop in stops:
        if stop.low < across < stop.high:
            if delta > 0 and position <= stop.before < target:
                target = stop.before
            elif delta < 0 and target < stop.after <= position:
                target = stop.after
    return target


def _launch(player: Player, projectile_id: int, tick: int, geometry: _Geometry) -> Projectile:
    """A projectile leaving the player's edge in the aim direction; its start is rounded to whole units."""
    angle = player.aim_mrad / 1000
    offset = geometry.launch_offset
    return Projectile(
        id=projectile_id,
        owner=player.id,
        x0=nearest_int(player.x + math.cos(angle) * offset),
        y0=nearest_int(player.y + math.sin(angle) * offset),
        aim_mrad=player.aim_mrad,
        spawn_tick=tick,
    )


def _grown_walls(rules: Rules, *, margin: float) -> tuple[_Wall, ...]:
    """Each wall grown by `margin`, computed as `Rect.contains` does, as floats: a player stopped flush against a
    wall stands at a float, as everywhere else."""
    return tuple(
        _Wall(
            float(wall.x - margin),
            float(wall.x + wall.width + margin),
            float(wall.y - margin),
            float(wall.y + wall.height + margin),
        )
        for wall in rules.walls
    )


def _blocked(x: float, y: float, geometry: _Geometry, grown_walls: tuple[_Wall, ...]) -> bool:
    if not (0 <= x <= geometry.width and 0 <= y <= geometry.height):
        return True
    for wall in grown_walls:  # noqa: SIM110 - a loop: any() and a generator cost twice as much
        if wall.left < x < wall.right and wall.top < y < wall.bottom:
            return True
    return False


def _first_target(
    owner: int, x: float, y: float, targets: list[tuple[int, float, float]], reach_squared: float
) -> int | None:
    """The first living player (in id order) other than the shooter `owner` within reach of (x, y)."""
    for pid, player_x, player_y in targets:
        dx, dy = player_x - x, player_y - y
        if pid != owner and dx * dx + dy * dy <= reach_squared:  # products, not ** 2: libm's pow need not round alike
            return pid
    return None


def _pick_spawn_point(rng_state: int, rules: Rules, others: Iterable[Player]) -> tuple[int, tuple[float, float]]:
    """A random spawn point with no living player within `spawn_clearance`; any spawn point if none is free."""
    living = [p for p in others if p.alive]
    clearance_squared = rules.spawn_clearance**2
    free = [
        point
        for point in rules.spawn_points
        if all(
            (p.x - point[0]) * (p.x - point[0]) + (p.y - point[1]) * (p.y - point[1]) > clearance_squared
            for p in living
        )
    ]
    candidates = free or list(rules.spawn_points)
    rng_state, value = next_random(rng_state)
    x, y = candidates[value % len(candidates)]
    return rng_state, (float(x), float(y))


def _match_end(reason: str, players: Mapping[int, Player]) -> MatchEnd:
    ranked = sorted(players.values(), key=lambda p: (-p.kills, p.deaths, p.id))
    scoreboard = tuple(ScoreLine(player=p.id, name=p.name, kills=p.kills, deaths=p.deaths) for p in ranked)
    tied_at_the_top = len(ranked) > 1 and (ranked[0].kills, ranked[0].deaths) == (ranked[1].kills, ranked[1].deaths)
    winner = None if not ranked or tied_at_the_top else ranked[0].id
    return MatchEnd(reason=reason, winner=winner, scoreboard=scoreboard)
