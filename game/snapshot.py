"""Snapshots (the visible state of a match) and deltas between them.

A snapshot maps entity kind -> entity id -> field -> value, with every value an int or a str: positions and
angles are quantised here, so what clients see is exactly what a delta carries. `apply(previous,
delta(previous, current)) == current` holds for every pair of snapshots.

Projectiles fly in straight lines, so a projectile's fields are where, when and in which direction it was
launched: they never change, and a delta mentions a projectile only when it appears or disappears.

A server builds a snapshot every tick with a `SnapshotBuilder`, which hands out the very same field map for an
entity that did not change (the same immutable Player or Projectile, the same extra fields): `delta` passes
over those by identity, without comparing fields.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from game.events import Event
from game.state import MatchState, Player, Projectile

FieldValue = int | str
Fields = Mapping[str, FieldValue]
Entities = Mapping[str, Mapping[int, Fields]]

PLAYERS = "players"
PROJECTILES = "projectiles"
MATCH = "match"
MATCH_ENTITY_ID = 0


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


@attrs.frozen
class Delta:
    """What turns the snapshot at `base_tick` into the one at `tick`.

    `added` holds whole entities (new ones, or ones whose set of fields changed), `changed` only the fields
    whose values changed, `removed` the ids that are gone.
    """

    tick: int
    base_tick: int
    added: Entities
    changed: Entities
    removed: Mapping[str, tuple[int, ...]]
    events: tuple[Event, ...] = ()


def _player_fields(p: Player) -> dict[str, FieldValue]:
    return {
        "name": p.name,
        "x": round(p.x),
        "y": round(p.y),
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


def _snapshot_of(
    state: MatchState, players: dict[int, Fields], projectiles: dict[int, Fields], events: tuple[Event, ...]
) -> Snapshot:
    match = {
        MATCH_ENTITY_ID: {
            "start": state.start_tick or 0,
            "end": state.end_tick or 0,
            "over": int(state.over),
        }
    }
    return Snapshot(
        tick=state.tick,
        entities={PLAYERS: players, PROJECTILES: projectiles, MATCH: match},
        events=events,
    )


class SnapshotBuilder:
    """Snapshots of one match, tick after tick, equal to `snapshot(state, events).with_fields(PLAYERS, ...)` but
    reusing the field map of every entity that did not change since the previous call (see the module's rules)."""

    def __init__(self, extra_player_fields: tuple[str, ...] = ()) -> None:
        """`extra_player_fields`: the names of the values `build` is given per player, after the game's own."""
        self.extra_player_fields = extra_player_fields
        self._players: dict[int, tuple[Player, tuple[FieldValue, ...], Fields]] = {}
        self._projectiles: dict[int, tuple[Projectile, Fields]] = {}

    def build(
        self,
        state: MatchState,
        events: tuple[Event, ...] = (),
        extra: Mapping[int, tuple[FieldValue, ...]] | None = None,
    ) -> Snapshot:
        """The snapshot of `state`; `extra` gives each player's values of `extra_player_fields` (players it lacks
        get none)."""
        names = self.extra_player_fields
        cached_players = self._players
        players: dict[int, Fields] = {}
        kept_players: dict[int, tuple[Player, tuple[FieldValue, ...], Fields]] = {}
        for player_id, player in state.players.items():
            values = extra.get(player_id, ()) if extra is not None else ()
            cached = cached_players.get(player_id)
            fields: Fields
            if cached is not None and cached[0] is player and cached[1] == values:
                fields = cached[2]
            else:
                made = _player_fields(player)
                if values:
                    made.update(zip(names, values, strict=True))
                fields = made
            players[player_id] = fields
            kept_players[player_id] = (player, values, fields)
        self._players = kept_players
        cached_projectiles = self._projectiles
        projectiles: dict[int, Fields] = {}
        kept_projectiles: dict[int, tuple[Projectile, Fields]] = {}
        for projectile_id, projectile in state.projectiles.items():
            known = cached_projectiles.get(projectile_id)
            shown = known[1] if known is not None and known[0] is projectile else _projectile_fields(projectile)
            projectiles[projectile_id] = shown
            kept_projectiles[projectile_id] = (projectile, shown)
        self._projectiles = kept_projectiles
        return _snapshot_of(state, players, projectiles, events)


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
