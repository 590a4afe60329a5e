"""Skill ratings in the fleet's Redis (`arena serve --redis`), so that a player has one rating on every server:
each identity's rating in a hash `arena:rating:<subject>` (name, mu, sigma, matches) and every ordinal in the
sorted set `arena:leaderboard`.

Rules: the store is awaited, never on a tick's path, each request bounded by REDIS_TIMEOUT_SECONDS; a match's
ratings are written in one MULTI/EXEC transaction (all of them or none). What Redis keeps across its own restarts
is Redis's persistence (docs/deploy.md: run it with appendonly). Failures raise RatingStoreUnavailable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import attrs
import coredis
import trio

from server.fleet import REDIS_FAILURES, REDIS_TIMEOUT_SECONDS
from server.ratings import DEFAULT_MU, DEFAULT_SIGMA, Rating, RatingStoreUnavailable

RATING_PREFIX = "arena:rating:"
LEADERBOARD_KEY = "arena:leaderboard"


@attrs.define(eq=False)
class RedisRatingStore:
    """Implements server.ratings.AsyncRatingStore; `run` holds its Redis client open."""

    url: str
    _client: coredis.Redis[str] | None = attrs.field(default=None, init=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        client: coredis.Redis[str] = coredis.Redis.from_url(self.url, decode_responses=True)
        with contextlib.suppress(*REDIS_FAILURES):  # closing connections to a Redis that is gone
            async with client:
                self._client = client
                task_status.started()
                await trio.sleep_forever()

    async def get_many(self, subjects: Sequence[str]) -> dict[str, Rating]:
        if not subjects:
            return {}
        async with self._request() as client, client.pipeline(transaction=False) as pipeline:
            for subject in subjects:
                pipeline.hgetall(RATING_PREFIX + subject)
        found = {}
        for subject, fields in zip(subjects, pipeline.results or (), strict=False):
            if fields:
                try:
                    found[subject] = Rating(
                        subject=subject,
                        name=str(fields.get("name", "")),
                        mu=float(fields.get("mu", DEFAULT_MU)),
                        sigma=float(fields.get("sigma", DEFAULT_SIGMA)),
                        matches=int(fields.get("matches", 0)),
                    )
                except ValueError:
                    continue  # not ours: the player starts afresh
        return found

    async def save(self, ratings: Sequence[Rating]) -> None:
        async with self._request() as client, client.pipeline(transaction=True) as transaction:
            for rating in ratings:
                fields = {"name": rating.name, "mu": repr(rating.mu), "sigma": repr(rating.sigma)}
                transaction.hset(RATING_PREFIX + rating.subject, {**fields, "matches": rating.matches})
                transaction.zadd(LEADERBOARD_KEY, {rating.subject: rating.ordinal})

    async def leaderboard(self, limit: int) -> list[Rating]:
        async with self._request() as client:
            subjects = [str(subject) for subject in await client.zrevrange(LEADERBOARD_KEY, 0, limit - 1)]
        found = await self.get_many(subjects)
        return [found[subject] for subject in subjects if subject in found]

    def close(self) -> None:
        """The client closes with `run`."""

    @contextlib.asynccontextmanager
    async def _request(self):  # type: ignore[no-untyped-def]
        """The client, with Redis's failures and slowness turned into RatingStoreUnavailable."""
        if self._client is None:
            raise RatingStoreUnavailable("the ratings in Redis are not open yet")
        try:
            with trio.fail_after(REDIS_TIMEOUT_SECONDS):
                yield self._client
        except trio.TooSlowError:
            raise RatingStoreUnavailable(f"Redis did not answer within {REDIS_TIMEOUT_SECONDS:g} s") from None
        except REDIS_FAILURES as error:
            raise RatingStoreUnavailable(f"Redis: {error or type(error).__name__}") from None
