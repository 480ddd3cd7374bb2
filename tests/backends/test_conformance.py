"""One behaviour over every backend: the same tests run on memory and on a real Redis.

These run in real time (Redis keeps its own clock), so the quotas are small and fast:
waits are tens of milliseconds (slow start's grace is one second), and each bound leaves
room for a slow machine. A Redis limiter's corrections reach Redis in the background, so
a test awaits ``limiter.aclose()`` before it looks at their effect.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping

import anyio
import pytest
import pytest_asyncio

import ratelimit_llm
from ratelimit_llm import AcquireTimeoutError, CapacityExceededError, Cost, Limits, MemoryBackend
from ratelimit_llm._interface import AcquireCall
from ratelimit_llm.backends import Backend, RedisBackend
from ratelimit_llm.backends._redis import RedisRateLimiter, RedisReservation
from ratelimit_llm.backends._redis_limiter import _HeldReservation, _RedisAcquire
from ratelimit_llm.core import DEFAULT_LANES, Dimension, Limiter, Reservation
from ratelimit_llm.errors import ReservationError
from ratelimit_llm.providers import DimensionSnapshot, RateLimitSnapshot

pytestmark = pytest.mark.asyncio

MakeLimiter = Callable[[list[Dimension]], Limiter]

# 100 requests per second, 5 at once; 1,000 tokens per second, 50 at once.
REQUESTS = Dimension("requests/s", "requests", 100, 1.0, 5)
TOKENS = Dimension("tokens/s", "tokens", 1_000, 1.0, 50)
# Slow start: 100 a second, 50 at once once the depth is known, 5 until then.
SLOW = Dimension("requests/s", "requests", 100, 1.0, 50, opening=5)
# Calls in flight: two at once (counted in this process over Redis).
IN_FLIGHT = Dimension("concurrency", "concurrency", 2, math.inf)
# Plenty of rate, so that only the calls in flight make a caller wait.
PLENTY = Dimension("requests/s", "requests", 1_000, 1.0, 100)


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


MakeWithLanes = Callable[[list[Dimension] | Limits, Mapping[str, float]], Limiter]


@pytest.fixture
def make_with_lanes(backend: Backend) -> MakeWithLanes:
    def make(dims: list[Dimension] | Limits, lanes: Mapping[str, float]) -> Limiter:
        return backend.limiter(dims, scope=f"scope-{uuid.uuid4().hex[:8]}", lanes=lanes)

    return make


@pytest.fixture
def make_two(backend: Backend) -> Callable[[list[Dimension]], tuple[Limiter, Limiter]]:
    """Two limiters on one quota (one object in memory, two "processes" over Redis)."""

    def make_two(dims: list[Dimension]) -> tuple[Limiter, Limiter]:
        scope = f"scope-{uuid.uuid4().hex[:8]}"
        return backend.limiter(dims, scope=scope), backend.limiter(dims, scope=scope)

    return make_two


def _redis_conforms(
    backend: RedisBackend,
    limiter: RedisRateLimiter,
    reservation: RedisReservation,
    held: _HeldReservation,
    call: _RedisAcquire,
) -> tuple[Backend, Limiter, Reservation, Reservation, AcquireCall]:
    """Never called: mypy checks that each Redis class is what its protocol says (a
    method that drifts from ``ratelimit_llm._interface`` or ``Backend`` fails the check)."""
    return backend, limiter, reservation, held, call


async def test_every_limiter_part_is_what_the_interface_says(make: MakeLimiter) -> None:
    for dims in ([REQUESTS], [PLENTY, IN_FLIGHT]):
        limiter = make(dims)
        assert isinstance(limiter, Limiter)
        call = limiter.acquire()
        reservation = await call
        assert isinstance(reservation, Reservation)
        assert len(reservation.mark) == len(limiter.mark()) == len(limiter.dimensions)
        reservation.settle(Cost(requests=1))
        assert reservation.closed


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


async def test_a_limit_per_its_own_known_window_states_it_per_ours(make: MakeLimiter) -> None:
    """Together's 10 requests per *second* (the window known from its docs) is 600 per
    minute for a per-minute dimension: both backends read the readings' sixth field."""
    limiter = make([Dimension("requests/min", "requests", 60, 60.0)])
    per_second = DimensionSnapshot("requests", "", 10.0, 9.0, None, 1.0, window_known=True)
    assert limiter.observe_snapshot(RateLimitSnapshot(dimensions=(per_second,))) == ["requests/min"]
    await limiter.aclose()
    assert limiter.statistics().limits == {"requests/min": 600}
    # Not known, the same window says nothing about a per-minute limit of 10.
    guessed = DimensionSnapshot("requests", "", 10.0, 9.0, None, 1.0)
    assert limiter.observe_snapshot(RateLimitSnapshot(dimensions=(guessed,))) == []
    await limiter.aclose()
    assert limiter.statistics().limits == {"requests/min": 600}


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


async def test_statistics_count_this_process_calls(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    first = await limiter.acquire(Cost(requests=1, tokens=30))
    first.settle(Cost(requests=1, tokens=10))
    second = await limiter.acquire(Cost(requests=1, tokens=10))
    second.release()
    await limiter.aclose()
    stats = limiter.statistics()
    assert (stats.granted, stats.settled, stats.released) == (2, 1, 1)
    assert stats.estimated == {"tokens/s": 30}  # what was taken, less what went back whole
    assert stats.refunded == {"tokens/s": 30}  # 20 unspent, 10 released
    assert stats.actual == {"tokens/s": 10}
    assert stats.depths == {"tokens/s": 50} and stats.paces == {"tokens/s": 1_000}
    # A caller waiting for refill is counted as waiting while it waits.
    await limiter.acquire(Cost(tokens=50))
    waiter = anyio.Event()

    async def wait_for_refill() -> None:
        await limiter.acquire(Cost(tokens=40))
        waiter.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_refill)
        await anyio.sleep(0.01)
        assert limiter.statistics().tasks_waiting == 1
        await waiter.wait()
    assert limiter.statistics().tasks_waiting == 0


# -- slow start, depth and pace: what is inferred never refuses what is stated ----------


async def test_slow_start_grants_the_opening_then_waits_for_an_answer(make: MakeLimiter) -> None:
    limiter = make([SLOW])
    assert limiter.probing() == ("requests/s",)
    start = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - start < 0.5
    # Nothing refills before the server answers (or one second of grace passes): the
    # server may not even have seen the first call yet.
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(timeout=0.5)
    limiter.answered()
    await limiter.aclose()
    # Refill runs from the answer on: one request takes 10 ms.
    assert await _elapsed_acquiring(limiter, Cost(requests=1)) < 0.3


async def test_an_answer_wakes_the_callers_waiting_out_slow_starts_pause(
    make_two: Callable[[list[Dimension]], tuple[Limiter, Limiter]],
) -> None:
    """The callers that came during the pause are served once the answer comes, not at
    the end of the grace (over Redis: also those of another process)."""
    first, second = make_two([SLOW])
    for _ in range(5):
        await first.acquire()
    waited: list[float] = []

    async def take(limiter: Limiter) -> None:
        start = time.monotonic()
        await limiter.acquire()
        waited.append(time.monotonic() - start)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, first)
        tg.start_soon(take, second)
        await anyio.sleep(0.1)
        first.answered()
    # Answered at 0.1 s: two requests take 20 ms more (the grace would have been 1 s).
    assert len(waited) == 2 and max(waited) < 0.6


async def test_without_an_answer_refill_resumes_after_the_grace(make: MakeLimiter) -> None:
    limiter = make([SLOW])
    for _ in range(5):
        await limiter.acquire()
    assert 0.9 <= await _elapsed_acquiring(limiter, Cost(requests=1)) < 2.0


async def test_slow_start_is_shared_by_every_limiter_on_the_quota(
    make_two: Callable[[list[Dimension]], tuple[Limiter, Limiter]],
) -> None:
    first, second = make_two([SLOW])
    granted = 0
    for limiter in (first, second, first, second, first, second, first):
        try:
            await limiter.acquire(timeout=0)
            granted += 1
        except AcquireTimeoutError:
            pass
    assert granted == 5  # one opening for the quota, not one each
    # One answer, to either, ends the pause for both.
    first.answered()
    await first.aclose()
    assert await _elapsed_acquiring(second, Cost(requests=1)) < 0.3


async def test_headers_open_slow_start_to_the_depth_they_show(make: MakeLimiter) -> None:
    limiter = make([SLOW])
    reservation = await limiter.acquire()
    # 49 left of 50, full again in 10 ms: the bucket is 50 deep.
    name = limiter.observe(
        "requests", limit=100, remaining=49, window=1.0, reset=0.01, reservation=reservation
    )
    assert name == "requests/s"
    await limiter.aclose()
    assert limiter.probing() == ()
    assert limiter.statistics().depths == {"requests/s": 50}
    start = time.monotonic()
    for _ in range(40):
        await limiter.acquire()
    assert time.monotonic() - start < 0.3


async def test_answers_without_headers_grow_the_depth_and_a_refusal_gives_it_back(
    make: MakeLimiter,
) -> None:
    limiter = make([SLOW])
    reservation = await limiter.acquire()
    assert limiter.grow(reservation) == ("requests/s",)
    await limiter.aclose()
    assert limiter.statistics().depths == {"requests/s": 6}  # one call deeper
    assert limiter.probing() == ("requests/s",)
    assert limiter.fall_back("requests") == ("requests/s",)
    await limiter.aclose()
    assert limiter.statistics().depths == {"requests/s": 5}
    assert limiter.probing() == ()


async def test_a_call_above_the_inferred_depth_goes_when_the_bucket_is_full(
    make: MakeLimiter,
) -> None:
    limiter = make([SLOW])
    # 20 is above the opening (5) but within the stated capacity (50): it goes, in debt.
    assert await _elapsed_acquiring(limiter, Cost(requests=20)) < 0.5
    assert limiter.statistics().levels["requests/s"] == pytest.approx(-15, abs=0.5)
    with pytest.raises(CapacityExceededError):
        await limiter.acquire(Cost(requests=51))


async def test_a_hold_is_measured_against_the_depth_in_force(make: MakeLimiter) -> None:
    limiter = make([SLOW])
    # "Try again in 100 ms" for a 40-request call: at a depth of 5, that is a level of
    # 5 - 10, not 40 - 10.
    limiter.hold(0.1, cost=Cost(requests=40))
    await limiter.aclose()
    assert 0.08 <= await _elapsed_acquiring(limiter, Cost(requests=5)) < 0.6


async def test_an_inferred_pace_slows_refill_not_the_largest_call(make: MakeLimiter) -> None:
    limiter = make([TOKENS])
    limiter.set_pace("tokens/s", 100)
    await limiter.aclose()
    assert limiter.paces() == {"tokens/s": 100}
    assert limiter.statistics().limits == {"tokens/s": 1_000}
    await limiter.acquire(Cost(tokens=50))  # the stated capacity still fits
    assert 0.08 <= await _elapsed_acquiring(limiter, Cost(tokens=10)) < 1.0


async def test_a_shrunken_stated_limit_fails_a_waiter_at_once_and_the_line_goes_on(
    make: MakeLimiter,
) -> None:
    limiter = make([TOKENS])
    await limiter.acquire(Cost(tokens=50))
    outcome: dict[str, float | str] = {}

    async def take(name: str, tokens: int) -> None:
        start = time.monotonic()
        try:
            await limiter.acquire(Cost(tokens=tokens))
            outcome[name] = time.monotonic() - start
        except CapacityExceededError:
            outcome[name] = "failed"
            outcome[f"{name} after"] = time.monotonic() - start

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "large", 40)
        await anyio.sleep(0.005)
        tg.start_soon(take, "small", 5)
        await anyio.sleep(0.005)
        limiter.resize("tokens/s", 500)  # 25 at once now: 40 can never fit
    assert outcome["large"] == "failed"
    assert isinstance(outcome["large after"], float) and outcome["large after"] < 0.04
    assert isinstance(outcome["small"], float) and outcome["small"] < 1.0


# -- lanes: checked alike; Redis grants the rate FIFO, lanes order calls in flight ------


async def test_an_unknown_lane_is_a_value_error_naming_it(make: MakeLimiter) -> None:
    limiter = make([REQUESTS])
    with pytest.raises(ValueError, match="no lane 'urgent'"):
        await limiter.acquire(lane="urgent")
    with pytest.raises(ValueError, match="no lane 'urgent'"):
        async with limiter.acquire(lane="urgent"):
            pass  # pragma: no cover - never entered
    with pytest.raises(TypeError, match="lane"):
        limiter.acquire(lane=3)  # type: ignore[arg-type]
    # Refused at the door: nothing was taken, nobody waits.
    stats = limiter.statistics()
    assert (stats.granted, stats.tasks_waiting) == (0, 0)
    assert stats.levels == {"requests/s": 5}


async def test_the_lane_of_a_surrounding_block_is_checked_too(make: MakeLimiter) -> None:
    limiter = make([REQUESTS])
    with ratelimit_llm.lane("urgent"), pytest.raises(ValueError, match="urgent"):
        await limiter.acquire()
    with ratelimit_llm.lane("urgent"), pytest.raises(ValueError, match="urgent"):
        async with limiter.acquire():
            pass  # pragma: no cover - never entered
    with ratelimit_llm.lane("bulk"):
        await limiter.acquire()
    assert limiter.statistics().granted == 1


async def test_a_limiter_has_the_lanes_it_was_given(make_with_lanes: MakeWithLanes) -> None:
    limiter = make_with_lanes([REQUESTS], {"default": 1.0, "fast": 4.0})
    await limiter.acquire(lane="fast")
    await limiter.acquire(lane="default")
    with pytest.raises(ValueError, match="no lane 'bulk'"):
        await limiter.acquire(lane="bulk")
    with pytest.raises(ValueError, match="'default'"):
        make_with_lanes([REQUESTS], {"fast": 4.0})


async def test_a_lane_of_more_weight_is_served_first_for_a_place_in_flight(
    make: MakeLimiter,
) -> None:
    """Waiting for a place in flight goes by lane on both backends (over Redis, among
    this process's callers); the lane comes from the surrounding block."""
    limiter = make([PLENTY, Dimension("concurrency", "concurrency", 1, math.inf)])
    first = await limiter.acquire()
    order: list[str] = []

    async def take(name: str, lane: str) -> None:
        with ratelimit_llm.lane(lane):
            reservation = await limiter.acquire()
        order.append(name)
        reservation.settle(Cost(requests=1))

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(take, f"bulk-{i}", "bulk")
            await anyio.sleep(0.002)
        tg.start_soon(take, "interactive", "interactive")
        await anyio.sleep(0.01)
        assert order == []  # all five wait for the one place
        first.finish()
    assert len(order) == 5
    assert order.index("interactive") <= 1, order  # not behind the bulk backlog


async def test_lanes_share_the_places_in_flight_by_weight_not_by_their_order(
    make_with_lanes: MakeWithLanes,
) -> None:
    """A lane of four times the weight, named second, still gets the second place: the
    waits for a place are weighed (over Redis, the places are all this process counts)."""
    limiter = make_with_lanes(
        [PLENTY, Dimension("concurrency", "concurrency", 1, math.inf)],
        {"default": 1.0, "fast": 4.0},
    )
    first = await limiter.acquire()
    order: list[str] = []

    async def take(name: str, lane: str) -> None:
        reservation = await limiter.acquire(lane=lane)
        order.append(name)
        reservation.finish()

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(take, f"default-{i}", "default")
            await anyio.sleep(0.002)
        tg.start_soon(take, "fast", "fast")
        await anyio.sleep(0.01)
        first.finish()
    assert len(order) == 5
    assert order.index("fast") <= 1, order


# -- calls in flight: counted (over Redis, per process) and always given back -----------


async def test_calls_in_flight_are_counted_and_come_back_when_finished(
    make: MakeLimiter,
) -> None:
    limiter = make([PLENTY, IN_FLIGHT])
    assert limiter.in_flight() == (0, 2)
    assert [d.name for d in limiter.dimensions] == ["requests/s", "concurrency"]
    first = await limiter.acquire()
    second = await limiter.acquire()
    assert limiter.in_flight() == (2, 2)
    assert len(first.mark) == len(limiter.mark()) == len(limiter.dimensions)
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(timeout=0.02)
    assert limiter.in_flight() == (2, 2)  # the timed-out call took no place
    first.finish()
    first.finish()  # idempotent
    assert limiter.in_flight() == (1, 2)
    third = await limiter.acquire(timeout=0.5)
    second.settle(Cost(requests=1))  # a settle finishes too
    third.release()
    assert limiter.in_flight() == (0, 2)
    first.settle(Cost(requests=1))  # finished before: nothing comes back twice
    assert limiter.in_flight() == (0, 2)
    stats = limiter.statistics()
    assert stats.limits == {"requests/s": 1_000, "concurrency": 2}
    assert stats.levels["concurrency"] == 2
    assert stats.timed_out == 1


async def test_a_cancelled_wait_for_a_place_in_flight_leaks_nothing(make: MakeLimiter) -> None:
    limiter = make([PLENTY, IN_FLIGHT])
    held = [await limiter.acquire(), await limiter.acquire()]
    with anyio.move_on_after(0.02) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    for reservation in held:
        reservation.finish()
    assert limiter.in_flight() == (0, 2)
    await limiter.acquire(timeout=0.5)
    await limiter.acquire(timeout=0.5)
    assert limiter.in_flight() == (2, 2)


async def test_a_call_that_times_out_or_is_cancelled_waiting_for_the_rate_keeps_no_place(
    make: MakeLimiter,
) -> None:
    """A place in flight is free, the rate is not: giving up gives both parts back."""
    limiter = make([REQUESTS, Dimension("concurrency", "concurrency", 10, math.inf)])
    for _ in range(5):
        await limiter.acquire()  # the 5 requests of capacity, 5 places in flight
    assert limiter.in_flight() == (5, 10)
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(Cost(requests=5), timeout=0.01)  # 50 ms of refill
    assert limiter.in_flight() == (5, 10)
    with anyio.move_on_after(0.01):
        await limiter.acquire(Cost(requests=5))
    await limiter.aclose()
    assert limiter.in_flight() == (5, 10)


async def test_set_concurrency_caps_the_calls_in_flight_from_now(make: MakeLimiter) -> None:
    limiter = make([PLENTY, Dimension("concurrency", "concurrency", 4, math.inf)])
    limiter.set_concurrency(2)
    assert limiter.in_flight() == (0, 2)
    held = [await limiter.acquire(), await limiter.acquire()]
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(timeout=0.02)
    limiter.set_concurrency(3)
    held.append(await limiter.acquire(timeout=0.5))
    assert limiter.in_flight() == (3, 3)
    limiter.set_concurrency(8)  # never above the stated cap
    assert limiter.in_flight() == (3, 4)
    for reservation in held:
        reservation.finish()
    assert limiter.in_flight() == (0, 4)


async def test_without_a_concurrency_limit_nothing_counts_calls_in_flight(
    make: MakeLimiter,
) -> None:
    limiter = make([REQUESTS])
    reservation = await limiter.acquire()
    reservation.finish()  # harmless
    assert limiter.in_flight() is None
    limiter.set_concurrency(3)  # nothing to cap
    assert limiter.in_flight() is None
    reservation.settle(Cost(requests=1))


async def test_automatic_concurrency_probes_and_falls_back(
    make_with_lanes: MakeWithLanes,
) -> None:
    limiter = make_with_lanes(Limits(rpm=60_000, concurrency="auto"), DEFAULT_LANES)
    assert "concurrency" in limiter.probing()
    in_flight = limiter.in_flight()
    assert in_flight is not None and in_flight[1] == 16  # where probing starts
    reservation = await limiter.acquire()
    assert limiter.in_flight() == (1, 16)
    assert "concurrency" in limiter.fall_back("concurrency")
    assert "concurrency" not in limiter.probing()
    reservation.settle(Cost(requests=1))
    assert limiter.in_flight() == (0, 16)
