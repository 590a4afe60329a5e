"""Skill ratings: every identity's rating, updated after each match it finished, with openskill's Weng-Lin
Plackett-Luce model, and stored in an embedded SQLite file.

Rules: only players are rated (server-side bots are not, and a match with fewer than two players changes no
rating: beating bots proves nothing). Ranks come from the match's final scoreboard (most kills, then fewest
deaths; equal lines share a rank). A guest is rated like anyone, by its token's subject, so a guest who loses its
token starts again. The store is read and written from worker threads: a tick never waits on the disk. A
rating is written in one transaction with its match count, so a crash loses none that was written.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio
from openskill.models import PlackettLuce

from game import ScoreLine

DEFAULT_MU = 25.0
DEFAULT_SIGMA = 25.0 / 3


@attrs.frozen
class Rating:
    subject: str
    name: str
    mu: float = DEFAULT_MU
    sigma: float = DEFAULT_SIGMA
    matches: int = 0

    @property
    def ordinal(self) -> float:
        """What the leaderboard sorts by: a conservative estimate, mu - 3 sigma (99.7% sure the skill is above)."""
        return self.mu - 3 * self.sigma

    def public(self) -> dict[str, Any]:
        return {
            "player": self.subject,
            "name": self.name,
            "rating": round(self.ordinal, 2),
            "mu": round(self.mu, 3),
            "sigma": round(self.sigma, 3),
            "matches": self.matches,
        }


class RatingStore(Protocol):
    """Where ratings live (an embedded SQLite file here; a shared store can implement the same)."""

    def get_many(self, subjects: Sequence[str]) -> dict[str, Rating]: ...

    def save(self, ratings: Sequence[Rating]) -> None: ...

    def leaderboard(self, limit: int) -> list[Rating]: ...


class RatingStoreError(Exception):
    """The rating store cannot be used; the message says what is wrong and what to do."""


class RatingStoreUnavailable(Exception):
    """A read or a write of ratings failed (a locked file, Redis unreachable); the message says why."""


class AsyncRatingStore(Protocol):
    """What the server uses: a rating store it awaits, so that no tick waits on it (SQLite here, read and written
    from worker threads; Redis in a fleet: server.fleet_ratings). Each method raises RatingStoreUnavailable."""

    async def get_many(self, subjects: Sequence[str]) -> dict[str, Rating]: ...

    async def save(self, ratings: Sequence[Rating]) -> None: ...

    async def leaderboard(self, limit: int) -> list[Rating]: ...

    def close(self) -> None: ...


@attrs.define(eq=False)
class ThreadedRatings:
    """A SqliteRatingStore awaited: each call runs in a worker thread."""

    store: SqliteRatingStore

    async def get_many(self, subjects: Sequence[str]) -> dict[str, Rating]:
        try:
            return await trio.to_thread.run_sync(self.store.get_many, list(subjects))
        except sqlite3.Error as error:
            raise RatingStoreUnavailable(f"the rating store: {error}") from None

    async def save(self, ratings: Sequence[Rating]) -> None:
        try:
            await trio.to_thread.run_sync(self.store.save, list(ratings))
        except sqlite3.Error as error:
            raise RatingStoreUnavailable(f"the rating store: {error}") from None

    async def leaderboard(self, limit: int) -> list[Rating]:
        try:
            return await trio.to_thread.run_sync(self.store.leaderboard, limit)
        except sqlite3.Error as error:
            raise RatingStoreUnavailable(f"the rating store: {error}") from None

    def close(self) -> None:
        self.store.close()


class SqliteRatingStore:
    """Ratings in one SQLite file (WAL mode), safe to use from several worker threads."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        """Open (or make) the store; `busy_timeout`: how long to wait for another process's lock."""
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ratings (subject TEXT PRIMARY KEY, name TEXT NOT NULL, mu REAL NOT NULL,"
                " sigma REAL NOT NULL, matches INTEGER NOT NULL, updated REAL NOT NULL)"
            )
            self._db.execute("SELECT subject, name, mu, sigma, matches FROM ratings LIMIT 1").fetchall()
            # a write lock, taken and given back at once: another process holding the file is found now, not
            # when the first match ends
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
        except sqlite3.DatabaseError as error:
            if hasattr(self, "_db"):
                self._db.close()
            raise RatingStoreError(
                f"cannot use the rating store {path}: {error}. If the file is damaged, move it away (a new one is "
                "made) or restore it from a backup; if it is locked, stop the other process using it"
            ) from None
        except OSError as error:
            raise RatingStoreError(
                f"cannot create the rating store {path}: {error.strerror} (see --data-dir)"
            ) from None

    def get_many(self, subjects: Sequence[str]) -> dict[str, Rating]:
        if not subjects:
            return {}
        marks = ",".join("?" * len(subjects))
        with self._lock:
            rows = self._db.execute(
                f"SELECT subject, name, mu, sigma, matches FROM ratings WHERE subject IN ({marks})", list(subjects)
            ).fetchall()
        return {row[0]: Rating(*row) for row in rows}

    def save(self, ratings: Sequence[Rating]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO ratings (subject, name, mu, sigma, matches, updated) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(subject) DO UPDATE SET name=excluded.name, mu=excluded.mu, sigma=excluded.sigma, "
                    "matches=excluded.matches, updated=excluded.updated",
                    [(r.subject, r.name, r.mu, r.sigma, r.matches, now) for r in ratings],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def leaderboard(self, limit: int) -> list[Rating]:
        with self._lock:
            rows = self._db.execute(
                "SELECT subject, name, mu, sigma, matches FROM ratings ORDER BY mu - 3 * sigma DESC, subject LIMIT ?",
                (limit,),
            ).fetchall()
        return [Rating(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def rate_match(
    model: PlackettLuce, scoreboard: Sequence[ScoreLine], subjects: dict[int, str], before: dict[str, Rating]
) -> list[tuple[Rating, Rating]]:
    """The (before, after) rating of every player of a finished match, from its final scoreboard.

    Args:
        scoreboard: best first (as in `match_end`).
        subjects: the identity of each player id that was a player at the end (bots are not in it).
        before: the stored ratings of those identities (missing ones start at the model's default).
    """
    lines = [line for line in scoreboard if line.player in subjects]
    if len(lines) < 2:
        return []
    ranks: list[float] = []
    rank, previous = 0.0, None
    for position, line in enumerate(lines, start=1):
        key = (line.kills, line.deaths)
        if key != previous:
            rank, previous = float(position), key
        ranks.append(rank)
    olds = [before.get(subjects[line.player]) or Rating(subjects[line.player], line.name) for line in lines]
    teams = [[model.rating(mu=old.mu, sigma=old.sigma)] for old in olds]
    rated = model.rate(teams, ranks=ranks)
    return [
        (old, attrs.evolve(old, name=line.name, mu=team[0].mu, sigma=team[0].sigma, matches=old.matches + 1))
        for old, line, team in zip(olds, lines, rated, strict=True)
    ]
