"""One behaviour over every backend: the same tests run on memory and on a real Redis.

These run in real time (Redis keeps its own clock), so the quotas are small and fast:
waits are tens of milliseconds, and each bound leaves room for a slow machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
import pytest_asyncio

from ratelimit_llm import (
    AcquireTimeoutError,
    CapacityExceededError,
    Cost,
    Dimension,
    Limiter,
    MemoryBackend,
    ReservationError,
)
from ratelimit_llm.backends import Backend, RedisBackend

pytestmark = pytest.mark.asyncio

MakeLimiter = Callable[[list[Dimension]], Limiter]

# 100 requests per second, 5 at once; 1,000 tokens per second, 50 at once.
REQUESTS = Dimension("requests/s", "requests", 100, 1.0, 5)
TOKENS = Dimension("tokens/s", "tokens", 1_000, 1.0, 50)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    redis = RedisBackend(redis_url, namespace=f"conf-{uuid.uuid4().hex[:10]}")
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def make(backend: Backend) -> MakeLimiter:
    def make(dims: list[Dimension]) -> Limiter:
        return backend.limiter(dims, scope=f"scope-{uuid.uuid4().hex[:8]}")

    return make


async def _elapsed_acquiring(limiter: Limiter, cost: Cost) -> float:
    start = time.monotonic()
    reservation = await limiter.acquire(cost)
    assert not reservation.closed
    return time.monotonic() - start


async def test_grants_within_capacity_at_once(make: MakeLimiter) -> None:
    limiter = make([REQUESTS])
    start = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - start < 0.5
    assert limiter.statistics().granted == 5


async def test_waits_for_refill_once_empty(make: MakeLimiter) -> None:
    limiter = make([REQUESTS])
    for _ in range(5):
        await limiter.acquire()
    # Five more at 100/s: the last one is granted about 50 ms after the bucket emptied.
    start = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert 0.035 <= time.monotonic() - start < 1.0


async def test_two_dimensions_at_once_the_tighter_one_decides(make: MakeLimiter) -> None:
    limiter = make([REQUESTS, TOKENS])
    await limiter.acquire(Cost(requests=1, tokens=50))
    # Tokens are empty (requests are not): 30 tokens take 30 ms to come back.
    assert 0.02 <= await _elapsed_acquiring(limiter, Cost(requests=1, tokens=30)) < 1.0


async def test_a_cost_that_can_never_fit_fails_at_once(make: MakeLimiter) -> None:
    limiter = make([REQUESTS, TOKENS])
    with pytest.raises(CapacityExceededError) as caught:
        await limiter.acquire(Cost(requests=1, tokens=51))
    assert caught.value.dimension == "tokens/s"


async def test_first_come_first_served_a_large_request_is_not_starved(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    await limiter.acquire(Cost(tokens=50))  # empty now
    order: list[str] = []

    async def take(name: str, tokens: int) -> None:
        await limiter.acquire(Cost(tokens=tokens))
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "large", 50)
        await anyio.sleep(0.005)  # the large one is in line first
        for i in range(10):
            tg.start_soon(take, f"small-{i}", 1)
            await anyio.sleep(0.001)
    assert order[0] == "large"


async def test_timeout_gives_up_and_takes_nothing(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    await limiter.acquire(Cost(tokens=50))
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(Cost(tokens=40), timeout=0.005)
    # What the timed-out call would have taken is still there: 10 tokens need 10 ms.
    assert await _elapsed_acquiring(limiter, Cost(tokens=10)) < 0.5
    assert limiter.statistics().timed_out == 1


async def test_timeout_zero_is_a_non_blocking_try(make: MakeLimiter) -> None:
    limiter = make([REQUESTS])
    for _ in range(5):
        await limiter.acquire(timeout=0)
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(timeout=0)


async def test_settle_refunds_what_was_not_spent(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    reservation = await limiter.acquire(Cost(tokens=50))
    reservation.settle(Cost(tokens=10))
    await limiter.aclose()
    # 40 came back: another 40 fits at once.
    assert await _elapsed_acquiring(limiter, Cost(tokens=40)) < 0.02
    with pytest.raises(ReservationError):
        reservation.settle(Cost(tokens=10))


async def test_settle_debits_what_was_spent_beyond_the_estimate(make: MakeLimiter) -> None:
    limiter = make([Dimension("tokens/s", "tokens", 1_000, 1.0, 100)])
    reservation = await limiter.acquire(Cost(tokens=10))
    reservation.settle(Cost(tokens=100))  # 90 tokens of debt: the level is at 0
    await limiter.aclose()
    assert await _elapsed_acquiring(limiter, Cost(tokens=50)) >= 0.035


async def test_release_gives_everything_back(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    reservation = await limiter.acquire(Cost(tokens=50))
    reservation.release()
    await limiter.aclose()
    assert await _elapsed_acquiring(limiter, Cost(tokens=50)) < 0.02
    assert limiter.statistics().released == 1


async def test_cancelled_waiter_leaves_its_capacity(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    await limiter.acquire(Cost(tokens=50))
    with anyio.move_on_after(0.005):
        await limiter.acquire(Cost(tokens=50))
    await limiter.aclose()
    # The cancelled 50 are not spent: 20 tokens fit after about 20 ms of refill.
    assert await _elapsed_acquiring(limiter, Cost(tokens=20)) < 0.04


async def test_server_remaining_lowers_the_level(make: MakeLimiter) -> None:
    limiter = make([REQUESTS, TOKENS])
    limiter.observe("tokens", remaining=0, window=1.0)
    await limiter.aclose()
    assert await _elapsed_acquiring(limiter, Cost(requests=1, tokens=30)) >= 0.02


async def test_server_remaining_never_raises_the_level(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    await limiter.acquire(Cost(tokens=50))
    limiter.observe("tokens", remaining=50, window=1.0)
    await limiter.aclose()
    assert await _elapsed_acquiring(limiter, Cost(tokens=30)) >= 0.02


async def test_hold_keeps_everyone_waiting(make: MakeLimiter) -> None:
    limiter = make([REQUESTS])
    limiter.hold(0.1)
    await limiter.aclose()
    assert 0.08 <= await _elapsed_acquiring(limiter, Cost(requests=1)) < 1.0


async def test_resize_changes_the_rate(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    limiter.resize("tokens/s", 100)  # 100/s, 5 at once, and what was used stays used
    await limiter.aclose()
    assert limiter.statistics().limits == {"tokens/s": 100}
    await limiter.acquire(Cost(tokens=5))
    assert 0.035 <= await _elapsed_acquiring(limiter, Cost(tokens=5)) < 1.0


async def test_set_level_puts_a_dimension_where_asked(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    limiter.set_level("tokens/s", -20)
    await limiter.aclose()
    assert await _elapsed_acquiring(limiter, Cost(tokens=10)) >= 0.02


async def test_limits_stay_what_they_were_configured(make: MakeLimiter) -> None:
    limiter = make([REQUESTS, TOKENS])
    await limiter.acquire(Cost(requests=1, tokens=1))
    stats = limiter.statistics()
    assert stats.limits == {"requests/s": 100, "tokens/s": 1_000}
    assert stats.levels["tokens/s"] <= 50


async def test_decorator_acquires_and_settles(make: MakeLimiter) -> None:
    limiter = make([TOKENS])

    @limiter.limit(cost=Cost(tokens=50), actual=lambda result: Cost(tokens=result))
    async def call() -> int:
        return 5

    assert await call() == 5
    await limiter.aclose()
    # 45 of the 50 came back.
    assert await _elapsed_acquiring(limiter, Cost(tokens=45)) < 0.02
