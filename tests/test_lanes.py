"""Priority lanes: a high lane stays quick under a bulk backlog, and bulk keeps moving.

Virtual time (trio's MockClock, see conftest): every wait is exact and takes no real time.
"""

from __future__ import annotations

import itertools
import math
import random

import anyio
import pytest
import trio
import trio.testing

import ratelimit_llm
from ratelimit_llm import Cost, Limits
from ratelimit_llm._limiter import RateLimiter
from ratelimit_llm.core import Dimension

pytestmark = pytest.mark.anyio


def ten_a_second() -> list[Dimension]:
    return [Dimension("requests/s", "requests", 10, 1.0, 1.0)]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


async def test_an_interactive_call_does_not_wait_behind_a_bulk_backlog() -> None:
    limiter = RateLimiter(ten_a_second(), initial_fill=0)
    bulk_done: list[float] = []
    waits: list[float] = []

    async def bulk() -> None:
        await limiter.acquire(lane="bulk")
        bulk_done.append(trio.current_time())

    async def interactive() -> None:
        start = trio.current_time()
        with ratelimit_llm.lane("interactive"):
            await limiter.acquire()
        waits.append(trio.current_time() - start)

    start = trio.current_time()
    async with anyio.create_task_group() as tg:
        for _ in range(400):  # forty seconds of bulk work, all queued at once
            tg.start_soon(bulk)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(40):  # an interactive call every half second: 2 of the 10 a second
            tg.start_soon(interactive)
            await trio.sleep(0.5)
        tg.cancel_scope.cancel()
    assert len(waits) == 40
    # A slot comes every 0.1 s; an interactive call takes the next one.
    assert p95(waits) <= 0.1 + 1e-9
    # Bulk kept the rest: 8 of every 10 slots over the 20 seconds (one in flight at the end).
    bulk_in_run = [t for t in bulk_done if t - start <= 20.0]
    assert len(bulk_in_run) >= 0.8 * 10 * 20 - 2


async def test_busy_lanes_share_by_weight_and_bulk_always_progresses() -> None:
    limiter = RateLimiter(
        ten_a_second(), initial_fill=0, lanes={"interactive": 8, "default": 4, "bulk": 1}
    )
    served: dict[str, int] = {"interactive": 0, "bulk": 0}

    async def call(lane: str) -> None:
        await limiter.acquire(lane=lane)
        served[lane] += 1

    async with anyio.create_task_group() as tg:
        for _ in range(1_000):
            tg.start_soon(call, "interactive")
            tg.start_soon(call, "bulk")
        await trio.sleep(90.05)  # 900 slots, both lanes backlogged throughout
        tg.cancel_scope.cancel()
    assert served["interactive"] + served["bulk"] == 900
    assert served["bulk"] == pytest.approx(900 / 9, abs=2)  # weight 1 of 9: never starved
    assert served["interactive"] == pytest.approx(900 * 8 / 9, abs=2)


async def test_fifo_holds_within_a_lane() -> None:
    limiter = RateLimiter(ten_a_second(), initial_fill=0)
    order: dict[str, list[int]] = {"interactive": [], "bulk": []}

    async def call(lane: str, index: int) -> None:
        await limiter.acquire(lane=lane)
        order[lane].append(index)

    async with anyio.create_task_group() as tg:
        for index in range(30):
            tg.start_soon(call, "bulk", index)
            await trio.testing.wait_all_tasks_blocked()
            tg.start_soon(call, "interactive", index)
            await trio.testing.wait_all_tasks_blocked()
    assert order["bulk"] == list(range(30))
    assert order["interactive"] == list(range(30))


async def test_an_idle_lane_saves_up_no_burst() -> None:
    # A lane that waited for nothing an hour long starts at the line's present: it does
    # not jump every bulk waiter for an hour's worth.
    limiter = RateLimiter(ten_a_second(), initial_fill=0)
    served: list[str] = []

    async def call(lane: str) -> None:
        await limiter.acquire(lane=lane)
        served.append(lane)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(call, "bulk")
        await trio.sleep(3_600.0)
        for _ in range(20):
            tg.start_soon(call, "bulk")
        for _ in range(20):
            tg.start_soon(call, "interactive")
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(4.0)
        tg.cancel_scope.cancel()
    recent = served[50:]
    # In the last 4 s (40 slots) interactive took its 8-of-9 share, and bulk still went.
    assert recent.count("interactive") == 20
    assert recent.count("bulk") >= 2


async def test_cancelled_waiters_in_lanes_leave_no_trace() -> None:
    """2,000 waiters in three lanes, 1,500 cancelled at random moments: the other 500
    are served one slot each, and the bucket ends as if the cancelled never came."""
    rng = random.Random(7)
    limiter = RateLimiter(ten_a_second(), initial_fill=0)
    served: list[float] = []

    async def waiter(lane: str, scope: anyio.CancelScope) -> None:
        with scope:
            await limiter.acquire(lane=lane)
            served.append(trio.current_time())

    start = trio.current_time()
    async with anyio.create_task_group() as tg:
        scopes = []
        for _ in range(2_000):
            scope = anyio.CancelScope()
            scopes.append(scope)
            tg.start_soon(waiter, rng.choice(["interactive", "default", "bulk"]), scope)
        await trio.testing.wait_all_tasks_blocked()
        doomed = rng.sample(scopes, 1_500)
        for scope in doomed[:1_400]:
            scope.cancel()
        for scope in doomed[1_400:]:  # a hundred more while the line is moving
            await trio.sleep(rng.random() / 20)
            scope.cancel()
    # Every survivor (and those served before their cancel came) got exactly one slot.
    assert len(served) >= 500
    assert served == sorted(served)
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(served))
    assert limiter.statistics().tasks_waiting == 0
    assert limiter._line.head() is None
    # The last grant took the last unit: full again 0.1 s later, as if alone.
    end = max(served)
    await trio.sleep(end + 0.1 - trio.current_time())
    assert limiter.statistics().levels["requests/s"] == pytest.approx(1.0)
    assert end - start == pytest.approx(0.1 * len(served))


async def test_lanes_are_checked_at_the_door() -> None:
    limiter = RateLimiter(Limits(rpm=60, burst_seconds=60))
    with pytest.raises(ValueError, match="no lane 'urgent'"):
        await limiter.acquire(lane="urgent")
    with ratelimit_llm.lane("urgent"), pytest.raises(ValueError, match="urgent"):
        await limiter.acquire()
    with pytest.raises(ValueError, match="default"):
        RateLimiter(Limits(rpm=60), lanes={"fast": 2})
    with pytest.raises(ValueError, match="fast"):
        RateLimiter(Limits(rpm=60), lanes={"default": 1, "fast": 0})
    with pytest.raises(TypeError, match="lane"), ratelimit_llm.lane(3):  # type: ignore[arg-type]
        pass


async def test_the_lane_is_the_innermost_blocks_and_tasks_inherit_it() -> None:
    seen: list[str | None] = []

    async def child() -> None:
        seen.append(ratelimit_llm.core.current_lane())

    assert ratelimit_llm.core.current_lane() is None
    with ratelimit_llm.lane("bulk"):
        with ratelimit_llm.lane("interactive"):
            seen.append(ratelimit_llm.core.current_lane())
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
    assert seen == ["interactive", "bulk"]
    assert ratelimit_llm.core.current_lane() is None


def test_cost_used_by_the_line_is_seconds_of_refill() -> None:
    limiter = RateLimiter(Limits(rpm=60, tpm=6_000, burst_seconds=60), clock=lambda: 0.0)
    # One request (1 s at 1/s) against 500 tokens (5 s at 100/s): the tokens bind.
    assert limiter._size((1.0, 500.0)) == pytest.approx(5.0)
    assert limiter._size(limiter.bucket.amounts(Cost(requests=1))) == 1.0


# -- through wrap: the lane of a call, and nothing of it reaches the server ---------------


def _client(seen: list[dict[str, str]]) -> object:
    import httpx2
    import openai

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(dict(request.headers))
        body = {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return httpx2.Response(200, json=body)

    return openai.AsyncOpenAI(
        api_key="sk-test-laneslaneslaneslanes0001",
        base_url="http://api.test/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


async def test_a_wrapped_clients_interactive_calls_pass_its_bulk_backlog() -> None:
    seen: list[dict[str, str]] = []
    client = ratelimit_llm.wrap(_client(seen), limits=Limits(rpm=600, burst_seconds=1))
    messages = [{"role": "user", "content": "hi"}]
    waits: dict[str, float] = {}

    async def call(name: str, how: str) -> None:
        start = trio.current_time()
        if how == "block":
            with ratelimit_llm.lane("interactive"):
                await client.chat.completions.create(model="m", messages=messages, max_tokens=1)  # type: ignore[attr-defined]
        else:
            await client.chat.completions.create(  # type: ignore[attr-defined]
                model="m",
                messages=messages,
                max_tokens=1,
                extra_headers={"x-ratelimit-llm-lane": how},
            )
        waits[name] = trio.current_time() - start

    async with anyio.create_task_group() as tg:
        for index in range(100):  # ten seconds of bulk work
            tg.start_soon(call, f"bulk-{index}", "bulk")
        await trio.sleep(2.0)
        tg.start_soon(call, "by-block", "block")
        tg.start_soon(call, "by-header", "interactive")
    assert waits["by-block"] <= 0.2 + 1e-9
    assert waits["by-header"] <= 0.2 + 1e-9
    assert max(waits.values()) >= 9.0  # the bulk backlog itself took its ten seconds
    assert all("x-ratelimit-llm-lane" not in headers for headers in seen)
