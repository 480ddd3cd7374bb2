"""FixedDelay, in virtual time: spacing per request and per batch, with concurrent callers.

Async tests run on trio under ``MockClock(autojump_threshold=0)`` (see conftest), so a
pause of seconds costs nothing; nothing here sleeps on the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import pytest
import trio

from ratelimit_llm import Cost, Limits
from ratelimit_llm._pool import LimiterPool
from ratelimit_llm._strategy import Attempt, Strategy
from ratelimit_llm._telemetry import Telemetry
from ratelimit_llm.strategies import FixedDelay


def make_attempt(
    clock: Callable[[], float] = trio.current_time, limits: Limits | None = None
) -> Attempt:
    return Attempt(
        model="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        cost=Cost(requests=1, tokens=100),
        started=clock(),
        clock=clock,
        pool=LimiterPool(limits or Limits(rpm=10_000, tpm=10_000_000), clock=clock),
        telemetry=Telemetry(),
    )


async def send_times(strategy: Strategy, callers: int) -> list[tuple[int, float]]:
    """Start ``callers`` tasks at once; return (arrival order, send time) for each."""
    start = trio.current_time()
    sent: list[tuple[int, float]] = []
    arrivals = 0

    async def caller() -> None:
        nonlocal arrivals
        order = arrivals
        arrivals += 1
        await strategy.before_send(make_attempt())
        sent.append((order, trio.current_time() - start))

    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(caller)
    return sorted(sent)


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "every"),
    [(-0.1, 1), (math.inf, 1), (math.nan, 1), (1.0, 0), (1.0, -3)],
)
def test_rejects_bad_values(seconds: float, every: int) -> None:
    with pytest.raises(ValueError):
        FixedDelay(seconds, every=every)


@pytest.mark.parametrize(("seconds", "every"), [("1", 1), (True, 1), (1.0, 2.0), (1.0, True)])
def test_rejects_bad_types(seconds: object, every: object) -> None:
    with pytest.raises(TypeError):
        FixedDelay(seconds, every=every)  # type: ignore[arg-type]


def test_properties_and_repr() -> None:
    assert repr(FixedDelay(0.12)) == "FixedDelay(0.12)"
    strategy = FixedDelay(2, every=20)
    assert repr(strategy) == "FixedDelay(2, every=20)"
    assert (strategy.seconds, strategy.every) == (2.0, 20)


def test_zero_seconds_never_delays() -> None:
    strategy = FixedDelay(0)
    assert [strategy.reserve_slot(5.0) for _ in range(3)] == [5.0, 5.0, 5.0]


# -- the schedule, on a plain clock --------------------------------------------------------


def test_every_one_spaces_consecutive_sends() -> None:
    strategy = FixedDelay(1.0)
    assert [strategy.reserve_slot(0.0) for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    # Arriving while the line still stretches ahead: after the last slot handed out.
    assert strategy.reserve_slot(2.5) == 4.0
    # After a quiet spell nothing waits, and spacing counts from the new send.
    assert strategy.reserve_slot(10.0) == 10.0
    assert strategy.reserve_slot(10.4) == 11.0


def test_every_n_sends_batches_then_pauses() -> None:
    strategy = FixedDelay(2.0, every=3)
    slots = [strategy.reserve_slot(0.0) for _ in range(8)]
    assert slots == [0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 4.0, 4.0]


def test_a_quiet_spell_starts_a_fresh_batch() -> None:
    strategy = FixedDelay(2.0, every=3)
    assert strategy.reserve_slot(0.0) == 0.0
    # Two seconds of quiet are the pause: the batch starts again, full size.
    assert [strategy.reserve_slot(5.0) for _ in range(4)] == [5.0, 5.0, 5.0, 7.0]
    # A late member of a batch that is not full yet joins it without waiting...
    assert strategy.reserve_slot(8.0) == 8.0
    # ...and the pause then counts from the latest send of that batch.
    assert strategy.reserve_slot(8.0) == 8.0
    assert strategy.reserve_slot(8.0) == 10.0


def test_injected_clock_is_used_instead_of_the_attempts() -> None:
    now = [100.0]
    strategy = FixedDelay(1.0, clock=lambda: now[0])
    assert strategy.reserve_slot(now[0]) == 100.0
    assert strategy.reserve_slot(now[0]) == 101.0


# -- in virtual time, with concurrent callers ----------------------------------------------


@pytest.mark.anyio
async def test_concurrent_callers_every_one_first_come_first_served() -> None:
    sent = await send_times(FixedDelay(0.5), 6)
    # Whoever asked first goes first, and no two sends are closer than the pause.
    assert [order for order, _ in sent] == list(range(6))
    assert [time for _, time in sent] == pytest.approx([0.5 * i for i in range(6)])


@pytest.mark.anyio
async def test_concurrent_callers_in_batches() -> None:
    sent = await send_times(FixedDelay(3.0, every=4), 10)
    times = [time for _, time in sent]
    assert times == pytest.approx([0, 0, 0, 0, 3, 3, 3, 3, 6, 6])


@pytest.mark.anyio
async def test_the_attempts_clock_is_the_default() -> None:
    strategy = FixedDelay(2.0)
    start = trio.current_time()
    await strategy.before_send(make_attempt())
    await strategy.before_send(make_attempt())
    assert trio.current_time() - start == pytest.approx(2.0)


@pytest.mark.anyio
async def test_retries_take_slots_too() -> None:
    strategy = FixedDelay(1.5)
    attempt = make_attempt()
    start = trio.current_time()
    times = []
    for _ in range(3):  # the first attempt and two retries of one call
        attempt.number += 1
        await strategy.before_send(attempt)
        times.append(trio.current_time() - start)
    assert times == pytest.approx([0.0, 1.5, 3.0])


@pytest.mark.anyio
async def test_the_bucket_wait_comes_on_top() -> None:
    # Two requests a minute: the pause spaces the first two, the bucket then holds the
    # third until a request's worth has refilled (30 s after the start).
    strategy = FixedDelay(1.0)
    pool = LimiterPool(Limits(rpm=2, burst_seconds=60), clock=trio.current_time)
    start = trio.current_time()
    times = []
    for _ in range(3):
        attempt = make_attempt()
        attempt.pool = pool
        await strategy.before_send(attempt)
        await attempt.limiter_for(None).acquire(attempt.cost)
        times.append(trio.current_time() - start)
    assert times == pytest.approx([0.0, 1.0, 30.0])


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_its_slot_unused() -> None:
    strategy = FixedDelay(1.0)
    start = trio.current_time()
    await strategy.before_send(make_attempt())  # slot 0
    with anyio.move_on_after(0.5):
        await strategy.before_send(make_attempt())  # slot 1, given up at 0.5
    await strategy.before_send(make_attempt())  # slot 2: never closer than the pause
    assert trio.current_time() - start == pytest.approx(2.0)
