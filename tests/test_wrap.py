"""wrap() end to end: the real openai SDK, our transport, the bundled mock server.

In-process tests run the mock through an ASGI transport on trio's virtual clock, with the
mock's buckets on the same clock, so that "60 seconds of traffic" takes milliseconds.
One test goes over a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import time
from typing import Any, cast

import httpx
import httpx2
import openai
import pytest
import trio

import ratelimit_llm
from ratelimit_llm import AdaptiveBackoff, Cost, Limits, RateLimiter, transport_of, wrap
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits, Profile, create_app, serve
from ratelimit_llm.telemetry import Telemetry

pytestmark = pytest.mark.anyio

KEY = "sk-test-wrapwrapwrapwrapwrap0001"


def mock_client(config: MockConfig, *, legacy: bool = False) -> tuple[openai.AsyncOpenAI, Any]:
    app = create_app(config, clock=trio.current_time)
    if legacy:
        http_client: Any = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    else:
        http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    client = openai.AsyncOpenAI(api_key=KEY, base_url="http://mock/v1", http_client=http_client)
    return client, app


def quiet(rpm: int, tpm: int, **kwargs: Any) -> MockConfig:
    return MockConfig(limits=MockLimits(rpm=rpm, tpm=tpm), latency=LatencyModel.instant(), **kwargs)


async def chat(client: openai.AsyncOpenAI, max_tokens: int = 50) -> Any:
    return await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say something kind about rate limits. " * 5}],
        max_tokens=max_tokens,
    )


def server_stats(app: Any) -> dict[str, Any]:
    return cast(dict[str, Any], app.state.mock.stats())


async def run_many(client: openai.AsyncOpenAI, count: int, max_tokens: int = 50) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(chat, client, max_tokens)


async def test_wrap_returns_a_limited_copy_and_leaves_the_original_alone() -> None:
    client, _ = mock_client(quiet(600, 100_000))
    wrapped = wrap(client, rpm=600, tpm=100_000)
    assert wrapped is not client
    assert wrapped.max_retries == 0
    assert client.max_retries == 2
    assert not isinstance(client._client._transport, ratelimit_llm.RateLimitedTransport)
    transport = transport_of(wrapped)
    # Behind the limiter, requests go the way the original client sends them.
    assert cast(Any, transport)._inner._client is client._client
    response = await chat(wrapped)
    assert response.usage is not None
    (stats,) = transport.statistics()
    assert (stats.requests, stats.succeeded, stats.settled) == (1, 1, 1)
    with pytest.raises(TypeError):
        transport_of(client)


async def test_wrap_rejects_what_it_cannot_wrap() -> None:
    client, _ = mock_client(quiet(600, 100_000))
    with pytest.raises(TypeError, match="openai SDK"):
        wrap(object())
    with pytest.raises(TypeError, match="not both"):
        wrap(client, limits=Limits(rpm=1), rpm=5)
    with pytest.raises(TypeError, match="burst_seconds"):
        wrap(client, burst_seconds=1)


async def test_no_429_when_configured_right_and_a_minute_of_work_takes_a_minute() -> None:
    client, app = mock_client(quiet(120, 1_000_000))
    wrapped = wrap(client, rpm=120, tpm=1_000_000)
    start = trio.current_time()
    await run_many(wrapped, 240)
    stats = server_stats(app)
    assert stats["accepted"] == 240
    assert stats["rejected"] == 0
    # 120 at once (a full bucket), then 120 more at 2 per second.
    assert trio.current_time() - start == pytest.approx(60, abs=1)


async def test_limits_configured_twice_too_high_converge_on_the_headers() -> None:
    client, app = mock_client(quiet(60, 1_000_000))
    wrapped = wrap(client, rpm=120, tpm=2_000_000)
    await run_many(wrapped, 150)
    stats = server_stats(app)
    assert stats["accepted"] == 150
    # The first response resizes the bucket to the real 60 RPM: only the first burst,
    # sent before any answer came back, can be refused.
    assert stats["rejected"] <= 60
    (limiter,) = transport_of(wrapped).limiters().values()
    assert limiter.statistics().limits["requests/min"] == 60


async def test_auto_limits_are_learned_from_the_headers() -> None:
    client, app = mock_client(quiet(300, 50_000))
    wrapped = wrap(client, limits="auto")
    await run_many(wrapped, 100)
    (limiter,) = transport_of(wrapped).limiters().values()
    limits = limiter.statistics().limits
    assert limits == {"requests/min": 300, "tokens/min": 50_000}
    assert server_stats(app)["rejected"] == 0


async def test_a_quota_shared_with_an_unseen_client_converges() -> None:
    client, app = mock_client(quiet(100, 1_000_000))
    ours = wrap(client, rpm=100, tpm=1_000_000)
    # Someone else, with the same key but not through our limiter, spends half first.
    for _ in range(50):
        await chat(client.with_options(max_retries=0))
    await run_many(ours, 100)
    stats = server_stats(app)
    assert stats["accepted"] == 150
    assert stats["rejected"] <= 5


async def test_adaptive_backoff_is_the_default_and_recovers_from_429s() -> None:
    client, app = mock_client(quiet(30, 1_000_000))
    wrapped = wrap(client, rpm=1_000, tpm=10_000_000, follow_server_limits=False)
    await run_many(wrapped, 60)
    stats = server_stats(app)
    assert stats["accepted"] == 60  # every call got through in the end
    assert stats["rejected"] > 0  # because the configuration was wrong and ignored headers
    (route,) = transport_of(wrapped).statistics()
    assert route.retries == stats["rejected"]


async def test_without_retries_the_429_reaches_the_caller_as_the_sdk_error() -> None:
    client, _ = mock_client(quiet(1, 1_000_000))
    wrapped = wrap(
        client,
        rpm=100,
        tpm=1_000_000,
        follow_server_limits=False,
        strategy=AdaptiveBackoff(max_attempts=1),
    )
    await chat(wrapped)
    with pytest.raises(openai.RateLimitError) as info:
        await chat(wrapped)
    assert info.value.code == "rate_limit_exceeded"


async def test_legacy_httpx_client() -> None:
    client, app = mock_client(quiet(60, 100_000), legacy=True)
    wrapped = wrap(client, rpm=60, tpm=100_000)
    assert isinstance(wrapped._client, httpx.AsyncClient)
    await run_many(wrapped, 70)
    assert server_stats(app)["accepted"] == 70
    assert server_stats(app)["rejected"] == 0


async def test_azure_client_buckets_per_deployment() -> None:
    app = create_app(quiet(60, 100_000, profile=Profile.azure()), clock=trio.current_time)
    azure = openai.AsyncAzureOpenAI(
        api_key=KEY,
        api_version="2024-10-21",
        azure_endpoint="http://mock",
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)),
    )
    wrapped = wrap(azure, rpm=60, tpm=100_000)
    await wrapped.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}], max_tokens=10
    )
    assert [model for _, model in transport_of(wrapped).limiters()] == ["my-deployment"]
    assert server_stats(app)["accepted"] == 1


async def test_embeddings_and_responses_go_through_too() -> None:
    client, _ = mock_client(quiet(60, 100_000))
    wrapped = wrap(client, rpm=60, tpm=100_000)
    await wrapped.embeddings.create(model="text-embedding-3-small", input=["one", "two three"])
    await wrapped.responses.create(model="gpt-4o-mini", input="hello", max_output_tokens=20)
    models = sorted(str(model) for _, model in transport_of(wrapped).limiters())
    assert models == ["gpt-4o-mini", "text-embedding-3-small"]
    for stats in transport_of(wrapped).statistics():
        assert stats.settled == 1


async def test_telemetry_subscribers_see_events() -> None:
    client, _ = mock_client(quiet(60, 100_000))
    telemetry = Telemetry()
    kinds: list[str] = []
    unsubscribe = telemetry.subscribe(lambda event: kinds.append(event.kind))
    wrapped = wrap(client, rpm=60, tpm=100_000, telemetry=telemetry)
    await chat(wrapped)
    unsubscribe()
    await chat(wrapped)
    assert kinds == ["granted", "response", "settled"]


async def test_decorator_limits_any_coroutine_and_settles_from_usage() -> None:
    limiter = RateLimiter(Limits(rpm=60, tpm=10_000))
    client, _ = mock_client(quiet(600, 1_000_000))

    @limiter.limit(cost=lambda text: Cost(requests=1, tokens=len(text) // 4 + 100))
    async def ask(text: str) -> Any:
        return await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_tokens=100
        )

    response = await ask("hello there")
    stats = limiter.statistics()
    assert stats.settled == 1
    assert stats.actual["tokens/min"] == response.usage.total_tokens


async def test_decorator_paces_calls_and_accepts_a_fixed_cost() -> None:
    limiter = RateLimiter(Limits(rpm=60, burst_seconds=1))
    times: list[float] = []

    @limiter.limit(cost=Cost(requests=1))
    async def work() -> None:
        times.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(work)
    assert sorted(times) == pytest.approx([0, 1, 2])

    @limiter.limit(cost=lambda: "nope")  # type: ignore[arg-type, return-value]
    async def broken() -> None:
        return None

    with pytest.raises(TypeError, match="not a Cost"):
        await broken()
    with pytest.raises(TypeError, match="Cost or a callable"):
        limiter.limit(cost="nope")  # type: ignore[arg-type]


async def test_decorated_calls_open_slow_start_and_a_429_stops_it() -> None:
    # The decorator sees no headers: each call that returns lets the bucket go one step
    # deeper; one that raises a 429 gives the last step back.
    limiter = RateLimiter(Limits(rpm=600))  # opens at 10 at once
    refuse = False

    @limiter.limit(cost=Cost(requests=1))
    async def work() -> None:
        if refuse:
            raise openai.RateLimitError(
                "slow down",
                response=httpx2.Response(429, request=httpx2.Request("POST", "http://x")),
                body=None,
            )

    depths = []
    for _ in range(4):
        await work()
        depths.append(limiter.statistics().depths["requests/min"])
    assert depths == [11, 13, 17, 25]
    refuse = True
    with pytest.raises(openai.RateLimitError):
        await work()
    assert limiter.statistics().depths["requests/min"] == 17
    assert limiter.statistics().probing == ()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_over_a_real_loopback_server() -> None:
    config = quiet(6_000, 10_000_000)
    async with serve(config, host="127.0.0.1", port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.url)
        wrapped = wrap(client, rpm=6_000, tpm=10_000_000)
        started = time.monotonic()
        for _ in range(20):
            response = await wrapped.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            assert response.choices
        assert time.monotonic() - started < 30
        async with httpx2.AsyncClient() as http:
            stats = (await http.get(f"{server.origin}/mock/stats")).json()
        assert stats["accepted"] == 20
        await wrapped.close()


async def test_wrap_caps_calls_in_flight_at_the_pool_size() -> None:
    client = openai.AsyncOpenAI(api_key=KEY, base_url="http://mock/v1")
    assert transport_of(wrap(client, rpm=60)).max_in_flight == 1_000  # the SDK's pool
    assert transport_of(wrap(client, rpm=60, max_in_flight=None)).max_in_flight is None
    assert transport_of(wrap(client, rpm=60, max_in_flight=8)).max_in_flight == 8


# The SDK leaves its SSE generators unfinished after "[DONE]"; trio warns when they are
# collected, asyncio finalizes them quietly.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_stream_without_usage_is_settled_from_what_streamed() -> None:
    # LangChain's default with a custom client: stream=True without include_usage.
    app = create_app(quiet(600, 1_000_000))
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    client = openai.AsyncOpenAI(api_key=KEY, base_url="http://mock/v1", http_client=http)
    wrapped = wrap(client, rpm=600, tpm=1_000_000)
    stream = await wrapped.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say something kind about rate limits. " * 5}],
        max_tokens=400,
        stream=True,
    )
    text = ""
    async for chunk in stream:
        assert chunk.usage is None  # what the caller sees is untouched
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    (stats,) = transport_of(wrapped).statistics()
    assert (stats.settled, stats.settled_estimated) == (1, 1)
    # The estimate's prompt part plus the streamed text counted as the estimate counts
    # (characters / 4), not the 400-token output reservation kept whole.
    prompt = stats.tokens_estimated - 400
    assert stats.tokens_actual == prompt + -(-len(text) // 4)
    assert text
