"""A real `redis-server` (Debian's package) for the fleet tests, on a unix socket of its own: started, stopped
and started again on the same socket, so a test can take Redis away from running servers and give it back."""

from __future__ import annotations

import attrs

from server.workers import PrivateRedis


@attrs.define(eq=False)
class RedisServer(PrivateRedis):
    """`stop()` kills it, as a crash would: nothing is saved, and running servers lose their connections."""

    def stop(self, *, graceful: bool = False) -> None:
        super().stop(graceful=graceful)
