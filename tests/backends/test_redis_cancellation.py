"""A caller that leaves, at any await point, leaves nothing taken from a Redis quota.

The ledger is exact: the quota refills so slowly that the whole test refills less than
one unit, so a single leaked (or doubly returned) reservation shows in Redis's level
and in its running total taken.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from ratelimit_llm import AcquireTimeoutError, Cost
from ratelimit_llm.backends import RedisBackend, RedisRateLimiter
from ratelimit_llm.core import Dimension

from ._state import quota_state

pytestmark = pytest.mark.asyncio

# 0.01 requests and 0.1 tokens a second: a few seconds refill well under one unit.
REQUESTS = Dimension("requests/h", "requests", 36, 3600.0, 3_000)
TOKENS = Dimension("tokens/h", "tokens", 360, 3600.0, 200_000)


async def test_thousands_of_random_cancellations_leave_an_exact_ledger(
    redis_backend: RedisBackend,
) -> None:
    rng = random.Random(1234)
    limiter = redis_backend.limiter([REQUESTS, TOKENS], scope="ledger")
    assert isinstance(limiter, RedisRateLimiter)
    loop = asyncio.get_running_loop()
    start = loop.time()
    # What the survivors hold: charged to the level, and counted as taken.
    charged = [0.0, 0.0]
    taken = [0.0, 0.0]
    outcomes = {"kept": 0, "settled": 0, "released": 0, "timed_out": 0}

    async def caller(cost: Cost, patience: float | None, fate: str) -> None:
        try:
            reservation = await limiter.acquire(cost, timeout=patience)
        except AcquireTimeoutError:
            outcomes["timed_out"] += 1
            return
        # No await from here on: a cancellation cannot come between these lines.
        if fate == "release":
            reservation.release()
            outcomes["released"] += 1
            return
        taken[0] += cost.requests
        taken[1] += cost.tokens
        if fate == "settle":
            actual = Cost(requests=cost.requests, tokens=cost.tokens // 2)
            reservation.settle(actual)
            charged[0] += actual.requests
            charged[1] += actual.tokens
            outcomes["settled"] += 1
        else:
            charged[0] += cost.requests
            charged[1] += cost.tokens
            outcomes["kept"] += 1

    tasks: list[asyncio.Task[None]] = []

    def launch(cost: Cost, timeout: float | None, fate: str, cancel_after: float | None) -> None:
        task = loop.create_task(caller(cost, timeout, fate))
        tasks.append(task)
        if cancel_after is not None:
            loop.call_later(cancel_after, task.cancel)

    # 4,000 callers over two seconds; most are cancelled a few milliseconds after they
    # start (queued, on the wire, just granted, asleep), some time out, the rest stay.
    # The requests dimension runs dry after about a third of them: the rest sleep (for
    # hours) until they are cancelled.
    for _ in range(4_000):
        cost = Cost(requests=rng.choice([1, 2, 3]), tokens=rng.randint(0, 60))
        timeout = rng.choice([None, None, None, rng.uniform(0.0, 0.004)])
        fate = rng.choice(["keep", "settle", "release"])
        cancel_after = rng.choice([None, rng.expovariate(1 / 0.002), rng.uniform(0, 0.5)])
        loop.call_at(start + rng.uniform(0, 2.0), launch, cost, timeout, fate, cancel_after)
    await asyncio.sleep(2.6)
    for task in tasks:
        task.cancel()  # the sleepers that nobody cancelled yet
    await asyncio.gather(*tasks, return_exceptions=True)
    assert len(tasks) == 4_000
    await limiter.aclose()
    elapsed = loop.time() - start

    stats = limiter.statistics()
    assert stats.tasks_waiting == 0
    # The test means something only if every kind of leaving happened often.
    assert outcomes["kept"] > 100 and outcomes["released"] > 100 and outcomes["timed_out"] > 10
    assert stats.abandoned > 1_000
    assert limiter._undone > 20  # granted by Redis after (or as) the caller left

    stored = (await quota_state(redis_backend, limiter.scope)).dims
    # The running total taken counts exactly the reservations someone still holds.
    assert stored["requests/h"]["taken"] == taken[0]
    assert stored["tokens/h"]["taken"] == taken[1]
    # The level is the capacity less what the survivors hold, plus at most the refill.
    for dim, spent in ((REQUESTS, charged[0]), (TOKENS, charged[1])):
        level = stored[dim.name]["level"]
        expected = dim.capacity - spent
        assert expected - 1e-6 <= level <= expected + dim.rate * elapsed + 1e-6, dim.name
    assert dict(stats.estimated) == {"requests/h": taken[0], "tokens/h": taken[1]}
