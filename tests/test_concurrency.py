"""Calls in flight as a limit: stated, honoured with cancellations, and learned.

Virtual time (trio's MockClock): a "server" here is a MockTransport handler that sleeps
for its latency and counts the calls it holds at once.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import httpx2
import openai
import pytest
import trio
import trio.testing

from ratelimit_llm import Cost, Limits, transport_of, wrap
from ratelimit_llm._limiter import RateLimiter

pytestmark = pytest.mark.anyio

KEY = "sk-test-concurrencyconcurrency01"


async def test_never_more_than_the_cap_in_flight_with_cancellations_anywhere() -> None:
    rng = random.Random(11)
    limiter = RateLimiter(Limits(rpm=60_000, concurrency=3, burst_seconds=60))
    held = peak = finished = 0

    async def call(scope: anyio.CancelScope) -> None:
        nonlocal held, peak, finished
        with scope:
            reservation = await limiter.acquire(Cost(requests=1))
            held += 1
            peak = max(peak, held)
            try:
                await trio.sleep(rng.uniform(0.01, 0.5))  # the call, cancellable too
            finally:
                held -= 1
                reservation.finish()
                finished += 1

    async with anyio.create_task_group() as tg:
        scopes = []
        for _ in range(300):
            scope = anyio.CancelScope()
            scopes.append(scope)
            tg.start_soon(call, scope)
        for scope in rng.sample(scopes, 120):  # in line, or in flight, at random moments
            await trio.sleep(rng.uniform(0.0, 0.2))
            scope.cancel()
    assert peak == 3
    assert limiter.in_flight() == (0.0, 3.0)
    assert limiter.statistics().tasks_waiting == 0


async def test_finish_settle_and_release_each_give_a_place_back_once() -> None:
    limiter = RateLimiter(Limits(rpm=60, tpm=6_000, concurrency=2, burst_seconds=60))
    first = await limiter.acquire(Cost(requests=1, tokens=100))
    second = await limiter.acquire(Cost(requests=1, tokens=100))
    assert limiter.in_flight() == (2.0, 2.0)
    first.finish()
    first.finish()  # idempotent
    first.settle(Cost(requests=1, tokens=40))  # a settle after it returns no second place
    assert limiter.in_flight() == (1.0, 2.0)
    second.finish()
    second.release()  # the rest comes back, not the place a second time
    assert limiter.in_flight() == (0.0, 2.0)
    stats = limiter.statistics()
    assert stats.levels["tokens/min"] == pytest.approx(6_000 - 40)
    third = await limiter.acquire()
    third.settle(Cost(requests=1))  # a settle alone is the end of the call
    assert limiter.in_flight() == (0.0, 2.0)


async def test_a_probe_given_back_keeps_what_is_in_flight_in_flight() -> None:
    # A refusal of the probe past the cap: the cap falls back by the probe, and the calls
    # still in flight (one more than the new cap) keep counting until they are over. Losing
    # one would let a call too many go out later and be refused for it.
    limiter = RateLimiter(Limits(rpm=60_000, concurrency="auto", burst_seconds=60))
    held = [await limiter.acquire(Cost(requests=1)) for _ in range(16)]
    assert limiter.in_flight() == (16.0, 16.0)
    assert limiter.grow(held[0]) == ("concurrency",)
    held.append(await limiter.acquire(Cost(requests=1)))
    assert limiter.in_flight() == (17.0, 17.0)
    assert limiter.fall_back("concurrency") == ("concurrency",)
    assert limiter.in_flight() == (17.0, 16.0)
    held.pop().finish()  # the refused probe is over
    assert limiter.in_flight() == (16.0, 16.0)
    with anyio.move_on_after(1):
        await limiter.acquire(Cost(requests=1))
        pytest.fail("granted a call past the cap")
    for reservation in held:
        reservation.finish()
    assert limiter.in_flight() == (0.0, 16.0)


def reply() -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "deepseek-chat",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }


class Server:
    """Holds each call ``latency(n)`` seconds, ``n`` the calls it holds; refuses past ``cap``."""

    def __init__(self, cap: int | None, latency: Any) -> None:
        self.cap = cap
        self.latency = latency
        self.holding = self.peak = self.refused = self.served = 0

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if self.cap is not None and self.holding >= self.cap:
            self.refused += 1
            body = {"error": {"message": "Rate Limit Reached", "type": "rate_limit_reached_error"}}
            return httpx2.Response(429, json=body)
        self.holding += 1
        self.peak = max(self.peak, self.holding)
        try:
            await trio.sleep(self.latency(self.holding))
        finally:
            self.holding -= 1
        self.served += 1
        return httpx2.Response(200, json=reply())


def client_on(server: Server, base_url: str) -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(server))
    return openai.AsyncOpenAI(api_key=KEY, base_url=base_url, http_client=http)


async def calls(client: Any, count: int) -> None:
    """``count`` calls at once, after one alone.

    The SDK looks its platform up in a worker thread on a client's first calls; while
    hundreds of calls wait on that thread, the virtual clock jumps and lets them through
    a few at a time. One call first gets it out of the way.
    """

    async def one() -> None:
        await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )

    await one()
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)


async def test_a_deepseek_cap_is_learned_from_its_refusals_without_a_storm() -> None:
    # DeepSeek caps calls in flight per account and says so only by refusing; recognised
    # from its host, the bucket learns the cap (Limits name no concurrency).
    server = Server(cap=12, latency=lambda n: 2.0)
    client = wrap(
        client_on(server, "https://api.deepseek.com/v1"), limits=Limits(rpm=6_000, burst_seconds=60)
    )
    await calls(client, 300)
    assert server.served == 301  # and the one alone first
    assert server.refused <= 12  # a probe or two over the cap, not a storm
    (limiter,) = transport_of(client).limiters().values()
    state = limiter.in_flight()
    assert state is not None
    assert state[0] == 0.0
    assert 6 <= state[1] <= 13  # the cap in force sits at the server's, not far below


async def test_a_server_that_only_queues_is_found_by_its_latency() -> None:
    # vLLM refuses nothing: past 8 calls at once, each waits its turn. The cap settles
    # where latency starts to climb instead of growing to a thousand calls in flight.
    server = Server(cap=None, latency=lambda n: 1.0 * max(1.0, n / 8))
    client = wrap(
        client_on(server, "http://vllm.internal:8000/v1"),
        limits=Limits(rpm=60_000, concurrency="auto", burst_seconds=60),
    )
    await calls(client, 400)
    assert server.refused == 0 and server.served == 401
    (limiter,) = transport_of(client).limiters().values()
    state = limiter.in_flight()
    assert state is not None and state[1] <= 32
    assert server.peak <= 40


async def test_a_stated_cap_holds_for_streams_until_their_end() -> None:
    server = Server(cap=None, latency=lambda n: 0.5)
    client = wrap(
        client_on(server, "http://api.test/v1"),
        limits=Limits(rpm=60_000, concurrency=4, burst_seconds=60),
    )
    await calls(client, 40)
    assert server.peak == 4
    (limiter,) = transport_of(client).limiters().values()
    assert limiter.in_flight() == (0.0, 4.0)


def test_concurrency_is_checked_at_the_door() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Limits(concurrency=0)
    with pytest.raises(TypeError, match="concurrency"):
        Limits(concurrency=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="concurrency"):
        Limits(concurrency="lots")  # type: ignore[arg-type]
    assert Limits(concurrency=4).dimensions()[-1].holding
