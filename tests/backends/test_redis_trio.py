"""The Redis backend needs asyncio (redis.asyncio); under trio it says so, clearly."""

from __future__ import annotations

import pytest
import trio

from ratelimit_llm import Cost
from ratelimit_llm.backends import RedisBackend
from ratelimit_llm.core import Dimension


def test_under_trio_the_redis_backend_says_it_needs_asyncio() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0")
    limiter = backend.limiter([Dimension("tokens/s", "tokens", 100, 1.0)], scope="trio")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="asyncio"):
            await limiter.acquire(Cost(tokens=1))

    trio.run(main)
