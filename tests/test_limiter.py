"""The async limiter, in virtual time.

Trio tests run under ``MockClock(autojump_threshold=0)`` (see conftest); asyncio tests
under ``looptime``. No test sleeps on the wall clock.
"""

from __future__ import annotations

import asyncio
import random

import anyio
import pytest
import trio
import trio.testing

from ratelimit_llm import AcquireTimeoutError, CapacityExceededError, Cost, Limits
from ratelimit_llm._limiter import RateLimiter
from ratelimit_llm.core import Dimension
from ratelimit_llm.errors import ReservationError, WouldBlock

pytestmark = pytest.mark.anyio


def per_second(rate: float, capacity: float = 1.0, metric: str = "requests") -> Dimension:
    return Dimension(f"{metric}/s", metric, rate, 1.0, capacity)


def units(n: float) -> Cost:
    return Cost(requests=n)


async def take(limiter: RateLimiter, cost: Cost) -> None:
    await limiter.acquire(cost)


async def test_uncontended_acquire_settle_and_statistics() -> None:
    limiter = RateLimiter(Limits(rpm=60, tpm=6_000, burst_seconds=60))
    async with limiter.acquire(Cost(requests=1, tokens=1_000)) as reservation:
        reservation.settle(Cost(requests=1, tokens=400))
    stats = limiter.statistics()
    assert stats.granted == 1
    assert stats.settled == 1
    assert stats.tasks_waiting == 0
    assert stats.estimated == {"requests/min": 1.0, "tokens/min": 1_000.0}
    assert stats.actual == {"requests/min": 1.0, "tokens/min": 400.0}
    assert stats.refunded == {"requests/min": 0.0, "tokens/min": 600.0}
    assert stats.levels == {"requests/min": 59.0, "tokens/min": 5_600.0}


async def test_await_form_and_default_cost() -> None:
    limiter = RateLimiter(Limits(rpm=2, burst_seconds=60))
    reservation = await limiter.acquire()
    assert reservation.cost == Cost(requests=1)
    assert limiter.statistics().levels["requests/min"] == 1.0


async def test_waits_exactly_as_long_as_refill_needs() -> None:
    limiter = RateLimiter([per_second(10, capacity=1)], initial_fill=0)
    start = trio.current_time()
    await limiter.acquire()
    assert trio.current_time() - start == pytest.approx(0.1)
    await limiter.acquire(units(0.5))
    assert trio.current_time() - start == pytest.approx(0.15)


async def test_reservation_closes_once() -> None:
    limiter = RateLimiter(Limits(rpm=60, burst_seconds=60))
    reservation = await limiter.acquire()
    reservation.release()
    assert reservation.closed
    with pytest.raises(ReservationError):
        reservation.settle(Cost())
    with pytest.raises(ReservationError):
        reservation.release()
    assert limiter.statistics().levels["requests/min"] == 60.0


async def test_oversized_cost_fails_at_once() -> None:
    limiter = RateLimiter(Limits(tpm=1_000))
    with pytest.raises(CapacityExceededError, match="tokens/min"):
        await limiter.acquire(Cost(tokens=1_001))
    with pytest.raises(CapacityExceededError):
        limiter.acquire_nowait(Cost(tokens=1_001))
    # Even when others are queued (it must not hang behind them).
    limiter = RateLimiter(Limits(tpm=1_000), initial_fill=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(take, limiter, Cost(tokens=10))
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(CapacityExceededError):
            await limiter.acquire(Cost(tokens=5_000))
        tg.cancel_scope.cancel()


async def test_acquire_nowait() -> None:
    limiter = RateLimiter([per_second(1, capacity=2)])
    limiter.acquire_nowait()
    limiter.acquire_nowait()
    with pytest.raises(WouldBlock):
        limiter.acquire_nowait()
    assert isinstance(WouldBlock(), anyio.WouldBlock)


async def test_acquire_nowait_does_not_barge_past_waiters() -> None:
    limiter = RateLimiter([per_second(1, capacity=5)], initial_fill=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(take, limiter, units(5))
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(1)  # one unit is back, but a waiter wants five
        with pytest.raises(WouldBlock):
            limiter.acquire_nowait(units(1))
    assert limiter.statistics().granted == 1


async def test_fifo_order_with_mixed_sizes() -> None:
    limiter = RateLimiter([per_second(10, capacity=10)], initial_fill=0)
    order: list[int] = []
    sizes = [5, 1, 1, 7, 1, 3, 10, 1]

    async def take_in_order(index: int, amount: int) -> None:
        await limiter.acquire(units(amount))
        order.append(index)

    async with anyio.create_task_group() as tg:
        for index, amount in enumerate(sizes):
            tg.start_soon(take_in_order, index, amount)
            await trio.testing.wait_all_tasks_blocked()
    assert order == list(range(len(sizes)))
    assert trio.current_time() == pytest.approx(sum(sizes) / 10)


async def test_large_request_is_not_starved_by_a_stream_of_small_ones() -> None:
    """A 5-unit waiter among 1-unit arrivals at 110% of the refill rate is served in
    the time its place in line implies (aiolimiter and token-throttle starve it)."""
    rate = 10.0
    limiter = RateLimiter([per_second(rate, capacity=5)], initial_fill=0)
    arrivals = 0
    big_done_at: float | None = None

    async def small() -> None:
        await limiter.acquire(units(1))

    async def big() -> None:
        nonlocal big_done_at
        await limiter.acquire(units(5))
        big_done_at = trio.current_time()

    async with anyio.create_task_group() as tg:
        interval = 1 / (rate * 1.1)
        for _ in range(30):
            tg.start_soon(small)
            arrivals += 1
            await trio.sleep(interval)
        big_started = trio.current_time()
        tg.start_soon(big)
        await trio.testing.wait_all_tasks_blocked()
        ahead = limiter.statistics().tasks_waiting - 1  # small ones queued ahead of it
        for _ in range(200):  # keep the pressure on after it joined
            tg.start_soon(small)
            await trio.sleep(interval)
            if big_done_at is not None:
                break
    assert big_done_at is not None
    # Everyone ahead of it (at most `ahead` units) plus its own 5 units, at the refill rate.
    assert big_done_at - big_started <= (ahead + 5) / rate + 1e-6


async def test_drain_5000_waiters_in_one_second() -> None:
    limiter = RateLimiter([per_second(5_000, capacity=1)], initial_fill=0)
    start = trio.current_time()
    async with anyio.create_task_group() as tg:
        for _ in range(5_000):
            tg.start_soon(take, limiter, units(1))
    elapsed = trio.current_time() - start
    assert elapsed == pytest.approx(1.0, rel=0.01)
    assert limiter.statistics().granted == 5_000


async def test_timeout_releases_the_place_in_line() -> None:
    limiter = RateLimiter([per_second(1, capacity=10)], initial_fill=0)
    results: list[str] = []

    async def first() -> None:
        await limiter.acquire(units(10))
        results.append("big")

    async def impatient() -> None:
        try:
            await limiter.acquire(units(1), timeout=2)
        except AcquireTimeoutError as error:
            assert error.timeout == 2
            results.append(f"timeout@{trio.current_time():.1f}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        tg.start_soon(impatient)
    assert results == ["timeout@2.0", "big"]
    stats = limiter.statistics()
    assert stats.timed_out == 1
    assert stats.tasks_waiting == 0
    assert trio.current_time() == pytest.approx(10.0)


async def test_timeout_of_the_head_lets_the_next_one_through() -> None:
    limiter = RateLimiter([per_second(1, capacity=10)], initial_fill=0)
    served: list[float] = []

    async def head() -> None:
        with pytest.raises(AcquireTimeoutError):
            await limiter.acquire(units(10), timeout=1)

    async def behind() -> None:
        await limiter.acquire(units(2))
        served.append(trio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(head)
        await trio.testing.wait_all_tasks_blocked()
        tg.start_soon(behind)
    assert served == [pytest.approx(2.0)]


async def test_zero_timeout_fails_without_queueing() -> None:
    limiter = RateLimiter([per_second(1, capacity=1)], initial_fill=0)
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(timeout=0)
    assert limiter.statistics().tasks_waiting == 0
    with pytest.raises(ValueError, match="timeout"):
        limiter.acquire(timeout=-1)


async def test_refund_wakes_the_head_early() -> None:
    limiter = RateLimiter([per_second(1, capacity=10)])
    first = await limiter.acquire(units(10))
    served_at: list[float] = []

    async def waiter() -> None:
        await limiter.acquire(units(8))
        served_at.append(trio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await trio.sleep(1)
        first.settle(units(2))  # 8 units come back: the waiter fits at once
    assert served_at == [pytest.approx(1.0)]


async def test_server_limit_change_wakes_the_head() -> None:
    limiter = RateLimiter([per_second(1, capacity=10)], initial_fill=0)
    served_at: list[float] = []

    async def waiter() -> None:
        await limiter.acquire(units(5))
        served_at.append(trio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await trio.sleep(1)
        # The server says the limit is really 10/s: capacity 100, and 90 of it unused.
        assert limiter.observe("requests", limit=10, window=1.0) == "requests/s"
    assert served_at == [pytest.approx(1.0)]


async def test_observe_discounts_calls_sent_after_the_snapshot() -> None:
    limiter = RateLimiter(Limits(tpm=10_000, burst_seconds=60))
    first = await limiter.acquire(Cost(tokens=1_000))
    await limiter.acquire(Cost(tokens=3_000))
    limiter.observe("tokens", limit=10_000, remaining=5_000, window=60, reservation=first)
    assert limiter.statistics().levels["tokens/min"] == 2_000.0
    limiter.resize("tokens/min", 20_000)
    assert limiter.statistics().limits["tokens/min"] == 20_000.0


async def test_a_snapshot_is_discounted_by_calls_granted_before_it_but_sent_after() -> None:
    # Ten calls granted at once; five leave at once, five wait (behind a cap on calls in
    # flight, say) and leave two seconds later. A snapshot taken at one second counts
    # only the first five: the other five are still to come on top of its figure.
    limiter = RateLimiter(Limits(tpm=10_000, burst_seconds=60))
    reservations = [await limiter.acquire(Cost(tokens=100)) for _ in range(10)]
    start = trio.current_time()
    for reservation in reservations[:5]:
        reservation.sent()
    await trio.sleep(2)
    for reservation in reservations[5:]:
        reservation.sent()
        reservation.sent()  # a second call changes nothing
    limiter.observe("tokens", remaining=9_000, window=60, since=start + 1)
    level = limiter.statistics().levels["tokens/min"]
    # 9,000 left at the snapshot, minus the 500 sent after it (plus two seconds of refill
    # at 10,000 a minute, which the bucket's own view caps anyway).
    assert level == pytest.approx(9_000 - 500)


async def test_without_sends_recorded_a_snapshot_is_discounted_by_later_grants() -> None:
    limiter = RateLimiter(Limits(tpm=10_000, burst_seconds=60))
    for _ in range(5):
        await limiter.acquire(Cost(tokens=100))
    start = trio.current_time()
    await trio.sleep(2)
    for _ in range(5):
        await limiter.acquire(Cost(tokens=100))
    limiter.observe("tokens", remaining=9_000, window=60, since=start + 1)
    assert limiter.statistics().levels["tokens/min"] == pytest.approx(9_000 - 500)


async def test_cancelled_waiters_leave_no_trace() -> None:
    """10,000 waiters cancelled at random moments: the bucket ends exactly where it
    would be had they never come, and the survivors are served in order."""
    rng = random.Random(1234)
    dims = [per_second(100, capacity=10, metric="requests"), per_second(1_000, 50, "tokens")]
    limiter = RateLimiter(dims)
    reference = RateLimiter(dims)
    served: list[int] = []
    enqueued: list[int] = []

    async def waiter(index: int, cost: Cost, scope: anyio.CancelScope) -> None:
        with scope:
            enqueued.append(index)  # no checkpoint between this and joining the line
            reservation = await limiter.acquire(cost)
            served.append(index)
            reservation.release()

    scopes: list[tuple[float, anyio.CancelScope]] = []
    async with anyio.create_task_group() as tg:
        for index in range(10_000):
            scope = anyio.CancelScope()
            cost = Cost(requests=rng.choice([1, 2, 5]), tokens=rng.randint(0, 50))
            tg.start_soon(waiter, index, cost, scope)
            scopes.append((rng.uniform(0, 5), scope))
        scopes.sort(key=lambda item: item[0])
        for at, scope in scopes:
            await trio.sleep_until(at)
            scope.cancel()
    position = {index: place for place, index in enumerate(enqueued)}
    assert [position[i] for i in served] == sorted(position[i] for i in served)
    assert len(served) > 100  # the test means something only if many were served
    stats = limiter.statistics()
    assert stats.tasks_waiting == 0
    now_levels = stats.levels
    assert now_levels == pytest.approx(reference.statistics().levels, abs=1e-6)
    assert stats.granted + stats.abandoned >= 10_000 - len(served)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancel_right_after_being_served_gives_the_capacity_back() -> None:
    """asyncio can deliver a cancellation to a task whose wait already succeeded: the
    capacity it was granted must go back, not vanish."""
    limiter = RateLimiter([per_second(1, capacity=10)])
    held = await limiter.acquire(units(10))
    head = asyncio.ensure_future(limiter.acquire(units(5)))
    behind = asyncio.ensure_future(limiter.acquire(units(1)))
    await asyncio.sleep(0.5)
    assert limiter.statistics().tasks_waiting == 2
    held.release()  # wakes the head, which serves itself and the one behind it
    for _ in range(20):
        await asyncio.sleep(0)
        if limiter.statistics().tasks_waiting == 0:
            break
    assert not behind.done()  # granted, but it has not run yet
    behind.cancel()
    with pytest.raises(asyncio.CancelledError):
        await behind
    await head
    stats = limiter.statistics()
    assert stats.abandoned == 1
    assert stats.levels["requests/s"] == pytest.approx(5.0)


async def test_works_with_more_waiters_than_capacity_per_tick() -> None:
    limiter = RateLimiter(Limits(rpm=600, tpm=60_000, burst_seconds=1), initial_fill=0)
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(take, limiter, Cost(requests=1, tokens=100))
    assert trio.current_time() == pytest.approx(10.0)


def test_needs_an_event_loop_or_a_clock() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        RateLimiter(Limits(rpm=1)).acquire_nowait()
    ticks = iter(range(100))
    limiter = RateLimiter(Limits(rpm=60), clock=lambda: float(next(ticks)))
    assert limiter.acquire_nowait().cost == Cost()


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="fill"):
        RateLimiter(Limits(rpm=1), initial_fill=2)


# -- asyncio, in looptime's virtual time ---------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_asyncio_fifo_and_drain() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter([per_second(1_000, capacity=3)], initial_fill=0)
    order: list[int] = []

    async def take(index: int) -> None:
        await limiter.acquire(units(1 + index % 3))
        order.append(index)

    start = loop.time()
    async with asyncio.TaskGroup() as tg:
        for index in range(600):
            tg.create_task(take(index))
    assert order == list(range(600))
    expected = sum(1 + i % 3 for i in range(600)) / 1_000
    assert loop.time() - start == pytest.approx(expected, rel=0.01)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_asyncio_timeout_and_cancellation() -> None:
    limiter = RateLimiter([per_second(1, capacity=5)], initial_fill=0)
    with pytest.raises(AcquireTimeoutError):
        await limiter.acquire(units(5), timeout=1)
    task = asyncio.ensure_future(limiter.acquire(units(5)))
    await asyncio.sleep(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(3)
    assert limiter.acquire_nowait(units(5)).cost == units(5)


async def test_hold_delays_everyone_until_the_named_time() -> None:
    limiter = RateLimiter([per_second(10, capacity=10)])
    limiter.hold(2.0, cost=units(3))
    start = trio.current_time()
    await limiter.acquire(units(3))
    assert trio.current_time() - start == pytest.approx(2.0)
    limiter.hold(0)  # nothing to hold
    limiter.hold(1.0, metric="tokens")  # no such dimension: nothing changes
    assert limiter.statistics().levels["requests/s"] == pytest.approx(0.0)


async def test_expected_wait_counts_the_line_ahead() -> None:
    limiter = RateLimiter([per_second(10, capacity=10)], initial_fill=0)
    assert limiter.expected_wait(units(5)) == pytest.approx(0.5)
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(take, limiter, units(10))
        await trio.testing.wait_all_tasks_blocked()
        # 30 units queued ahead (more than the capacity), then 5 more: 3.5 s of refill.
        assert limiter.expected_wait(units(5)) == pytest.approx(3.5)
        assert limiter.expected_wait(units(11)) == float("inf")
        tg.cancel_scope.cancel()
    assert limiter.expected_wait(units(5)) == pytest.approx(0.5)


# -- nothing strands a caller ------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 2])
async def test_a_stated_limit_shrinking_below_a_waiting_call_fails_it_and_the_line_goes_on(
    position: int,
) -> None:
    """A resize below a queued call's cost: that call fails at once, whoever it is in
    line; the calls around it are still served."""
    limiter = RateLimiter([per_second(10, capacity=10, metric="tokens")], initial_fill=0)
    sizes = [4.0, 4.0, 4.0]
    sizes[position] = 9.0
    outcome: dict[int, object] = {}

    async def call(index: int) -> None:
        try:
            await limiter.acquire(Cost(requests=0, tokens=sizes[index]))
            outcome[index] = trio.current_time()
        except CapacityExceededError as error:
            outcome[index] = error

    start = trio.current_time()
    async with anyio.create_task_group() as tg:
        for index in range(3):
            tg.start_soon(call, index)
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(0.05)
        limiter.resize("tokens/s", 5)  # capacity 10 -> 5: the 9-token call can never go
        with anyio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked()
    failed = outcome[position]
    assert isinstance(failed, CapacityExceededError)
    assert failed.dimension == "tokens/s"
    # It failed when the limit changed, not after a wait of its own.
    others = [outcome[i] for i in range(3) if i != position]
    assert all(isinstance(t, float) for t in others)
    assert limiter.statistics().tasks_waiting == 0
    assert float(others[-1]) - start < 3.0  # type: ignore[arg-type]


async def test_headers_that_shrink_the_limit_fail_only_the_calls_that_no_longer_fit() -> None:
    # limits="auto" style: the bucket follows the server; the server then states a
    # limit below one queued call's cost.
    limiter = RateLimiter(Limits(tpm=60_000, burst_seconds=60), initial_fill=0)
    results: list[object] = []

    async def call(tokens: float) -> None:
        try:
            await limiter.acquire(Cost(requests=0, tokens=tokens))
            results.append(tokens)
        except CapacityExceededError:
            results.append("too large")

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 50_000)
        await trio.testing.wait_all_tasks_blocked()
        tg.start_soon(call, 1_000)
        await trio.testing.wait_all_tasks_blocked()
        limiter.observe("tokens", limit=30_000, remaining=0, window=60.0)
    assert results == ["too large", 1_000]


async def test_a_call_above_an_inferred_depth_waits_for_a_full_bucket_and_goes() -> None:
    # Headers show a depth of one second's worth (quantized); a call twice that size,
    # within the stated limit, is not refused for an estimate: it goes when full.
    limiter = RateLimiter(Limits(tpm=60_000))
    limiter.observe("tokens", limit=60_000, remaining=0, reset=1.0, window=1.0)
    assert limiter.statistics().depths["tokens/min"] == pytest.approx(1_000)
    start = trio.current_time()
    await limiter.acquire(Cost(requests=0, tokens=2_000))
    assert trio.current_time() - start == pytest.approx(1.0)
    assert limiter.statistics().levels["tokens/min"] == pytest.approx(-1_000)


async def test_slow_start_grants_the_opening_then_waits_for_an_answer() -> None:
    limiter = RateLimiter(Limits(rpm=600))  # 10 a second until the server shows more
    start = trio.current_time()
    granted: list[float] = []

    async def call() -> None:
        reservation = await limiter.acquire()
        granted.append(trio.current_time() - start)
        reservation.sent()

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(call)
        await trio.sleep(0.3)
        assert granted == [0.0] * 10
        # The first answer: it ends the wait for refill at once.
        limiter.answered()
    assert granted[10:] == pytest.approx([0.3 + 0.1, 0.3 + 0.2])
    assert limiter.statistics().probing == ("requests/min",)
