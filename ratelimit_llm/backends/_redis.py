"""One quota shared by many processes and hosts, kept in Redis.

Two halves: the connection side (`RedisBackend`: the client, the scripts, the gate,
outages and errors; ``_redis_connection.py``) and the limiter side (`RedisRateLimiter`,
`RedisReservation`: the `Limiter` interface on a quota kept in Redis;
``_redis_limiter.py``). This module gathers them under one name.
"""

from __future__ import annotations

from ._redis_connection import OutagePolicy, RedisBackend
from ._redis_limiter import MAX_CLOCK_STEP, RedisRateLimiter, RedisReservation

__all__ = ["MAX_CLOCK_STEP", "OutagePolicy", "RedisBackend", "RedisRateLimiter", "RedisReservation"]
