"""Snapshots (the visible state of a match) and deltas between them.

A snapshot maps entity kind -> entity id -> field -> value, with every value an int or a str: positions and
angles are quantised here, so what clients see is exactly what a delta carries. `apply(previous,
delta(previous, current)) == current` holds for every pair of snapshots.

Projectiles fly in straight lines, so a projectile's fields are where, when and in which direction it was
launched: they never change, and a delta mentions a projectile only when it appears or disappears.

A server makes each tick's delta with a `SnapshotBuilder`, in one pass over the entities that compares only those
that changed (a new immutable Player or Projectile, new extra fields), and the full snapshot only when someone
needs one; it equals `delta` of the two snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from game.arithmetic import nearest_int
from game.events import Event
from game.state import MatchState
from game.value_fields import DeltaFields
from game.values import Player, Projectile, Value

FieldValue = int | str
Fields = Mapping[str, FieldValue]
Entities = Mapping[str, Mapping[int, Fields]]

PLAYERS: Final = "players"
PROJECTILES: Final = "projectiles"
MATCH: Final = "match"
MATCH_ENTITY_ID: Final = 0


def _without_empty_kinds(entities: Entities) -> Entities:
    """One canonical form: a kind with no entities is left out."""
    return {kind: dict(by_id) for kind, by_id in entities.items() if by_id}


@attrs.frozen
class Snapshot:
    tick: int
    entities: Entities = attrs.field(converter=_without_empty_kinds)
    events: tuple[Event, ...] = ()

    def with_fields(self, kind: str, fields_by_id: Mapping[int, Fields]) -> Snapshot:
        """This snapshot with extra fields merged into existing entities of `kind` (ids it lacks are skipped)."""
        by_id = self.entities.get(kind, {})
        merged = {eid: {**fields, **fields_by_id.get(eid, {})} for eid, fields in by_id.items()}
        return attrs.evolve(self, entities={**self.entities, kind: merged})


class Delta(Value):
    """What turns the snapshot at `base_tick` into the one at `tick`.

    `added` holds whole entities (new ones, or ones whose set of fields changed), `changed` only the fields
    whose values changed, `removed` the ids that are gone.

    A plain class that mypyc compiles to a native one, with its attrs twin's fields (game.value_fields.DeltaFields),
    as game.values' classes: a server builds one per match per tick.
    """

    __attrs_attrs__: ClassVar[Any] = attrs.fields(DeltaFields)

    def __init__(
        self,
        tick: int,
        base_tick: int,
        added: Entities,
        changed: Entities,
        removed: Mapping[str, tuple[int, ...]],
        events: tuple[Event, ...] = (),
    ) -> None:
        self.tick: Final = tick
        self.base_tick: Final = base_tick
        self.added: Final = added
        self.changed: Final = changed
        self.removed: Final = removed
        self.events: Final = events

    def _values(self) -> tuple[Any, ...]:
        return (self.tick, self.base_tick, self.added, self.changed, self.removed, self.events)


attrs.resolve_types(DeltaFields, localns={"Entities": Entities, "Event": Event})  # names the twin cannot import


PLAYER_FIELDS: Final = ("name", "x", "y", "aim", "hp", "kills", "deaths", "respawn")
"""A player's fields in a snapshot, in order (`_player_fields` and `_CachedPlayer` give them in this order)."""


def _player_fields(p: Player) -> dict[str, FieldValue]:
    return {
        "name": p.name,
        "x": nearest_int(p.x),
        "y": nearest_int(p.y),
        "aim": p.aim_mrad,
        "hp": p.hp,
        "kills": p.kills,
        "deaths": p.deaths,
        "respawn": p.respawn_tick or 0,
    }


def _projectile_fields(p: Projectile) -> dict[str, FieldValue]:
    return {"owner": p.owner, "x": p.x0, "y": p.y0, "aim": p.aim_mrad, "tick": p.spawn_tick}


def snapshot(state: MatchState, events: tuple[Event, ...] = ()) -> Snapshot:
    """The visible state of a match, quantised to integers."""
    players: dict[int, Fields] = {p.id: _player_fields(p) for p in state.players.values()}
    projectiles: dict[int, Fields] = {p.id: _projectile_fields(p) for p in state.projectiles.values()}
    return _snapshot_of(state, players, projectiles, events)


def _match_fields(state: MatchState) -> dict[str, FieldValue]:
    return {"start": state.start_tick or 0, "end": state.end_tick or 0, "over": int(state.over)}


def _snapshot_of(
    state: MatchState, players: dict[int, Fields], projectiles: dict[int, Fields], events: tuple[Event, ...]
) -> Snapshot:
    return Snapshot(
        tick=state.tick,
        entities={PLAYERS: players, PROJECTILES: projectiles, MATCH: {MATCH_ENTITY_ID: _match_fields(state)}},
        events=events,
    )


class _CachedPlayer:
    """A player as the last snapshot shows it: the Player and extra values it was made from, each of its fields'
    value (typed, so that a tick's comparisons are native ones), and its field map once a snapshot needed it."""

    def __init__(self, player: Player, extra_values: tuple[FieldValue, ...], names: tuple[str, ...]) -> None:
        self.player = player
        self.name = player.name
        self.x = nearest_int(player.x)
        self.y = nearest_int(player.y)
        self.aim = player.aim_mrad
        self.hp = player.hp
        self.kills = player.kills
        self.deaths = player.deaths
        self.respawn = player.respawn_tick or 0
        self.extra_values = extra_values
        self.names = names
        """`PLAYER_FIELDS` and the builder's extra field names (only as many as there are values)."""
        self.fields: Fields | None = None

    def fields_now(self) -> Fields:
        if self.fields is None:
            values = (self.name, self.x, self.y, self.aim, self.hp, self.kills, self.deaths, self.respawn)
            self.fields = dict(zip(self.names, values + self.extra_values, strict=False))
        return self.fields

    def update(self, player: Player, extra_values: tuple[FieldValue, ...]) -> dict[str, FieldValue]:
        """Show `player` with `extra_values` (as many as before) from now on; returns the fields whose values
        changed, in `PLAYER_FIELDS` order then the extra ones."""
        changed: dict[str, FieldValue] = {}
        if player.name != self.name:
            self.name = changed["name"] = player.name
        x, y = nearest_int(player.x), nearest_int(player.y)
        if x != self.x:
            self.x = changed["x"] = x
        if y != self.y:
            self.y = changed["y"] = y
        if player.aim_mrad != self.aim:
            self.aim = changed["aim"] = player.aim_mrad
        if player.hp != self.hp:
            self.hp = changed["hp"] = player.hp
        if player.kills != self.kills:
            self.kills = changed["kills"] = player.kills
        if player.deaths != self.deaths:
            self.deaths = changed["deaths"] = player.deaths
        respawn = player.respawn_tick or 0
        if respawn != self.respawn:
            self.respawn = changed["respawn"] = respawn
        old = self.extra_values
        if extra_values != old:
            for index, value in enumerate(extra_values):
                if old[index] != value:
                    changed[self.names[len(PLAYER_FIELDS) + index]] = value
            self.extra_values = extra_values
        self.player = player
        if changed:
            self.fields = None
        return changed


class SnapshotBuilder:
    """Snapshots of one match, tick after tick, and the deltas between them, made in one pass.

    `advance` gives what `delta(previous, current)` gives for the snapshots of the previous call and this one,
    where each snapshot is `snapshot(state, events).with_fields(PLAYERS, ...)`; `snapshot` gives that snapshot
    itself, made only when asked for. An entity that did not change since the previous call (the same immutable
    Player or Projectile, the same extra fields) keeps its very field map and costs one identity check; only the
    entities that changed are compared field by field.
    """

    def __init__(self, extra_player_fields: tuple[str, ...] = ()) -> None:
        """`extra_player_fields`: the names of the values `advance` is given per player, after the game's own."""
        self.extra_player_fields = extra_player_fields
        self._players: dict[int, _CachedPlayer] = {}
        self._projectiles: dict[int, tuple[Projectile, Fields]] = {}
        self._match: Fields = {}
        self._tick = 0
        self._events: tuple[Event, ...] = ()
        self._snapshot: Snapshot | None = None

    def start(self, state: MatchState) -> None:
        """Make `snapshot(state)` (no extra fields) the base of the next `advance`."""
        self.advance(state)

    def build(
        self,
        state: MatchState,
        events: tuple[Event, ...] = (),
        extra: dict[int, tuple[FieldValue, ...]] | None = None,
    ) -> Snapshot:
        """`advance`, then the snapshot of `state`."""
        self.advance(state, events, extra)
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        """The snapshot of the state last given to `advance`."""
        if self._snapshot is None:
            players = {player_id: cached.fields_now() for player_id, cached in self._players.items()}
            projectiles = {projectile_id: cached[1] for projectile_id, cached in self._projectiles.items()}
            self._snapshot = Snapshot(
                tick=self._tick,
                entities={PLAYERS: players, PROJECTILES: projectiles, MATCH: {MATCH_ENTITY_ID: self._match}},
                events=self._events,
            )
        return self._snapshot

    def advance(
        self,
        state: MatchState,
        events: tuple[Event, ...] = (),
        extra: dict[int, tuple[FieldValue, ...]] | None = None,
    ) -> Delta:
        """The delta from the previous call's snapshot to the snapshot of `state`; `extra` gives each player's
        values of `extra_player_fields` (players it lacks get none)."""
        all_names = PLAYER_FIELDS + self.extra_player_fields
        cached_players = self._players
        kept_players: dict[int, _CachedPlayer] = {}
        added_players: dict[int, Fields] = {}
        changed_players: dict[int, Fields] = {}
        for player_id, player in state.players.items():
            extra_values = extra.get(player_id, ()) if extra is not None else ()
            cached = cached_players.get(player_id)
            if cached is not None and cached.player is player and cached.extra_values == extra_values:
                kept_players[player_id] = cached
                continue
            if cached is None or len(cached.extra_values) != len(extra_values):  # new, or its set of fields changed
                entry = _CachedPlayer(player, extra_values, all_names)
                added_players[player_id] = entry.fields_now()
                kept_players[player_id] = entry
                continue
            changed_fields = cached.update(player, extra_values)  # a Player that looks the same: nothing to send
            if changed_fields:
                changed_players[player_id] = changed_fields
            kept_players[player_id] = cached
        removed_players = tuple(sorted(pid for pid in cached_players if pid not in kept_players))
        self._players = kept_players

        cached_projectiles = self._projectiles
        kept_projectiles: dict[int, tuple[Projectile, Fields]] = {}
        added_projectiles: dict[int, Fields] = {}
        changed_projectiles: dict[int, Fields] = {}
        for projectile_id, projectile in state.projectiles.items():
            known = cached_projectiles.get(projectile_id)
            if known is not None and known[0] is projectile:
                kept_projectiles[projectile_id] = known
                continue
            shown = _projectile_fields(projectile)
            kept_projectiles[projectile_id] = (projectile, shown)
            if known is None or known[1].keys() != shown.keys():
                added_projectiles[projectile_id] = shown
                continue
            before = known[1]
            diff = {name: value for name, value in shown.items() if before[name] != value}
            if diff:
                changed_projectiles[projectile_id] = diff
        removed_projectiles = tuple(sorted(pid for pid in cached_projectiles if pid not in kept_projectiles))
        self._projectiles = kept_projectiles

        match_fields = _match_fields(state)
        previous_match = self._match
        added: dict[str, dict[int, Fields]] = {}
        changed: dict[str, dict[int, Fields]] = {}
        removed: dict[str, tuple[int, ...]] = {}
        # kinds in sorted order, as `delta` lists them: match, players, projectiles
        if not previous_match:
            added[MATCH] = {MATCH_ENTITY_ID: match_fields}
            self._match = match_fields
        elif previous_match != match_fields:
            diff = {name: value for name, value in match_fields.items() if previous_match[name] != value}
            changed[MATCH] = {MATCH_ENTITY_ID: diff}
            self._match = match_fields
        for kind, kind_added, kind_changed, kind_removed in (
            (PLAYERS, added_players, changed_players, removed_players),
            (PROJECTILES, added_projectiles, changed_projectiles, removed_projectiles),
        ):
            if kind_removed:
                removed[kind] = kind_removed
            if kind_added:
                added[kind] = kind_added
            if kind_changed:
                changed[kind] = kind_changed
        change = Delta(
            tick=state.tick,
            base_tick=self._tick,
            added=added,
            changed=changed,
            removed=removed,
            events=events,
        )
        self._tick, self._events, self._snapshot = state.tick, events, None
        return change


def delta(previous: Snapshot, current: Snapshot) -> Delta:
    """Only what changed from `previous` to `current`, plus the events of `current`."""
    added: dict[str, dict[int, Fields]] = {}
    changed: dict[str, dict[int, Fields]] = {}
    removed: dict[str, tuple[int, ...]] = {}
    for kind in sorted(previous.entities.keys() | current.entities.keys()):
        before = previous.entities.get(kind, {})
        after = current.entities.get(kind, {})
        gone = tuple(sorted(eid for eid in before if eid not in after))
        if gone:
            removed[kind] = gone
        for eid, fields in after.items():
            old = before.get(eid)
            if old is fields or old == fields:
                continue
            if old is None or old.keys() != fields.keys():
                added.setdefault(kind, {})[eid] = fields
                continue
            diff = {name: value for name, value in fields.items() if old[name] != value}
            if diff:
                changed.setdefault(kind, {})[eid] = diff
    return Delta(
        tick=current.tick,
        base_tick=previous.tick,
        added=added,
        changed=changed,
        removed=removed,
        events=current.events,
    )


class DeltaBaseError(ValueError):
    """A delta was applied to a snapshot other than the one it was made from."""


def apply(previous: Snapshot, change: Delta) -> Snapshot:
    """The snapshot that `change` turns `previous` into.

    Raises:
        DeltaBaseError: if `change` was not made from a snapshot at `previous.tick`, or changes an entity
            that `previous` lacks.
    """
    if change.base_tick != previous.tick:
        raise DeltaBaseError(f"delta from tick {change.base_tick} cannot apply to tick {previous.tick}")
    entities = {kind: dict(by_id) for kind, by_id in previous.entities.items()}
    for kind, ids in change.removed.items():
        for eid in ids:
            entities.get(kind, {}).pop(eid, None)
    for kind, by_id in change.added.items():
        entities.setdefault(kind, {}).update(by_id)
    for kind, by_id in change.changed.items():
        for eid, fields in by_id.items():
            existing = entities.get(kind, {}).get(eid)
            if existing is None:
                raise DeltaBaseError(f"delta changes {kind} {eid}, which the snapshot at tick {previous.tick} lacks")
            entities[kind][eid] = {**existing, **fields}
    return Snapshot(tick=change.tick, entities=entities, events=change.events)
