"""Each provider profile, read back by ratelimit-llm's own header reader and classifier.

The mock must sound like each provider (``docs/providers.md``, whose sources
``tests/test_dialects.py`` cites), and ratelimit-llm must understand it: every test drives
the mock (in process, trio's virtual clock) into success and refusal and asserts that
`parse_rate_limit_headers` and `classify_error` read what it sent into what the provider
means. The last tests run the real openai SDK through `wrap()` against the profiles
whose headers give it the means to converge, and count the refusals on the server.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import openai
import pytest
import trio
from starlette.applications import Starlette

from ratelimit_llm import Limits, wrap
from ratelimit_llm._classify import ErrorKind, classify_error
from ratelimit_llm._headers import parse_rate_limit_headers
from ratelimit_llm._providers import Provider, detect_provider
from ratelimit_llm._sse import UsageWatcher
from ratelimit_llm.mock import (
    FaultKind,
    FaultPlan,
    FaultRule,
    KeyConfig,
    LatencyModel,
    MockConfig,
    MockLimits,
    OutputModel,
    Profile,
    create_app,
)

pytestmark = pytest.mark.anyio

KEY = "sk-test-dialectsdialectsdial0001"
HELLO = [{"role": "user", "content": "Hello, world!"}]  # estimated at 4 prompt tokens
# A latency that keeps calls in flight for a while (virtual seconds).
SLOW = LatencyModel(ttft=1.0, per_prompt_token=0.0, tokens_per_second=20.0, jitter=0.0)


def app_of(
    profile: Profile,
    limits: MockLimits,
    *,
    latency: LatencyModel | None = None,
    output: OutputModel | None = None,
    **changes: Any,
) -> Starlette:
    """The mock with ``profile`` and ``limits``, on trio's (virtual) clock."""
    config = MockConfig(
        limits=limits,
        profile=profile,
        latency=latency or LatencyModel.instant(),
        output=output or OutputModel(),
        seed=5,
        **changes,
    )
    return create_app(config, clock=trio.current_time)


@asynccontextmanager
async def raw(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://mock.test") as http:
        yield http


async def chat(
    http: httpx2.AsyncClient,
    *,
    max_tokens: int = 20,
    content: str = "Hello, world!",
    stream: bool = False,
    key: str = KEY,
) -> httpx2.Response:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return await http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )


def info_of(response: httpx2.Response, provider: str | None = None) -> Any:
    info = classify_error(
        response.status_code, response.headers, response.content, provider=provider
    )
    assert info is not None, response.text
    return info


def stats(app: Starlette) -> dict[str, Any]:
    result: dict[str, Any] = app.state.mock.stats()
    return result


# -- Together ------------------------------------------------------------------------------


async def test_together_limits_read_per_second() -> None:
    app = app_of(Profile.together(), MockLimits(rps=10, tps=2_000))
    async with raw(app) as http:
        ok = await chat(http)
    assert ok.status_code == 200
    for provider in ("together", None):  # x-tokenlimit-* is Together's alone
        snapshot = parse_rate_limit_headers(ok.headers, provider=provider)
        assert snapshot.provider is Provider.TOGETHER
        requests, tokens = snapshot.get("requests"), snapshot.get("tokens")
        assert requests is not None and tokens is not None
        # One request of ten gone: a tenth of a second to full again.
        assert (requests.limit, requests.remaining, requests.reset) == (10.0, 9.0, 0.1)
        assert requests.window == 1.0 and requests.window_known and requests.adaptive
        # ceil(13 / 4) + 20 = 24 tokens charged.
        assert (tokens.limit, tokens.remaining, tokens.window) == (2_000.0, 1_976.0, 1.0)
        assert requests.rate == 10.0 and tokens.rate == 2_000.0
    assert not [name for name in ok.headers if name.startswith("openai-")]


async def test_together_refusals_name_the_dimension() -> None:
    app = app_of(Profile.together(), MockLimits(rps=2, tps=10_000))
    async with raw(app) as http:
        await chat(http)
        await chat(http)
        by_requests = await chat(http)
    assert by_requests.status_code == 429
    info = info_of(by_requests, "together")
    assert (info.kind, info.metric, info.type) == (
        ErrorKind.RATE_LIMIT,
        "requests",
        "dynamic_request_limited",
    )
    assert (info.limit, info.used, info.requested) == (2.0, 2.0, 1.0)
    assert stats(app)["rejected_by_reason"] == {"requests_per_sec": 1}

    app = app_of(Profile.together(), MockLimits(rps=100, tps=1_000))
    async with raw(app) as http:
        await chat(http, max_tokens=900)  # 904 of the second's 1,000 tokens
        by_tokens = await chat(http, max_tokens=200)
        too_large = await chat(http, max_tokens=2_000)  # more than a second ever holds
    info = info_of(by_tokens, "together")
    assert (info.kind, info.metric, info.type) == (
        ErrorKind.RATE_LIMIT,
        "tokens",
        "dynamic_token_limited",
    )
    assert (info.limit, info.used, info.requested) == (1_000.0, 904.0, 204.0)
    assert info_of(too_large, "together").kind is ErrorKind.REQUEST_TOO_LARGE


async def test_together_503_is_the_platforms_capacity() -> None:
    plan = FaultPlan((FaultRule(FaultKind.OVERLOADED, requests=(1, 1)),))
    app = app_of(Profile.together(), MockLimits(rps=10, tps=2_000), faults=plan)
    async with raw(app) as http:
        failed = await chat(http)
    assert failed.status_code == 503
    # Named, or recognised from its x-tokenlimit-* headers: not a server error but capacity.
    for provider in ("together", None):
        info = info_of(failed, provider)
        assert (info.kind, info.retryable) == (ErrorKind.OVERLOADED, True)
        assert info.provider is Provider.TOGETHER


# -- Fireworks -----------------------------------------------------------------------------


async def test_fireworks_prompt_and_generated_limits_are_stated_per_second() -> None:
    # Output charged as it is generated: 40 tokens drawn for a cap of 500.
    app = app_of(
        Profile.fireworks(),
        MockLimits(input_tpm=3_600_000, output_tpm=36_000),
        output=OutputModel(min_tokens=40),
    )
    async with raw(app) as http:
        ok = await chat(http, max_tokens=40)
    snapshot = parse_rate_limit_headers(ok.headers)
    assert snapshot.provider is Provider.FIREWORKS
    prompt, generated = snapshot.get("input_tokens"), snapshot.get("output_tokens")
    assert prompt is not None and generated is not None
    assert (prompt.limit, prompt.window, prompt.adaptive) == (60_000.0, 1.0, True)
    assert generated.limit == 600.0  # ~600 TPS, the documented starting limit
    assert generated.remaining == math.floor((36_000 - 40) / 60)
    assert snapshot.over_limit is False


async def test_fireworks_goes_over_the_limit_before_it_refuses() -> None:
    # 600 generated tokens a minute, 100 a call: six calls spend it; the soft 10 % (60
    # tokens) lets a seventh through "over the limit", the eighth is refused.
    plan = FaultPlan((FaultRule(FaultKind.OVERLOADED, requests=(9, 9)),))
    app = app_of(
        Profile.fireworks(),
        MockLimits(output_tpm=600),
        output=OutputModel(min_tokens=100),
        faults=plan,
    )
    async with raw(app) as http:
        answers = [await chat(http, max_tokens=100) for _ in range(7)]
        refused = await chat(http, max_tokens=100)
        await trio.sleep(60)  # refilled: the next call is admitted, and then shed
        shed = await chat(http, max_tokens=1)
    over = [parse_rate_limit_headers(a.headers, provider="fireworks").over_limit for a in answers]
    assert over == [False] * 6 + [True]
    assert [a.status_code for a in answers] == [200] * 7
    assert refused.status_code == 429
    info = info_of(refused, "fireworks")
    assert (info.kind, info.retryable) == (ErrorKind.RATE_LIMIT, True)
    assert parse_rate_limit_headers(refused.headers).over_limit is True
    assert shed.status_code == 503 and info_of(shed, "fireworks").kind is ErrorKind.OVERLOADED


# -- OpenRouter ----------------------------------------------------------------------------


async def test_openrouter_sends_headers_only_on_its_own_429s() -> None:
    app = app_of(Profile.openrouter(), MockLimits(rpm=20))
    async with raw(app) as http:
        answers = [await chat(http) for _ in range(20)]
        refused = await chat(http)
    for answer in answers:
        snapshot = parse_rate_limit_headers(answer.headers, provider="openrouter")
        assert answer.status_code == 200 and snapshot.is_empty
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["code"] == 429  # an int, as OpenRouter sends it
    assert body["error"]["metadata"]["headers"]["X-RateLimit-Limit"] == "20"
    reset = int(refused.headers["x-ratelimit-reset"])
    assert reset > 1e12  # epoch milliseconds
    # Unnamed: the epoch-millisecond reset and the metadata give the dialect away.
    info = info_of(refused)
    assert info.provider is Provider.OPENROUTER
    assert (info.kind, info.metric, info.period, info.limit) == (
        ErrorKind.RATE_LIMIT,
        "requests",
        "minute",
        20.0,
    )
    # Until the cap lets one more request in: 3 s at 20 a minute.
    assert info.retry_after == pytest.approx(3.0, abs=0.5)


async def test_openrouter_in_flight_budget_is_a_402_wait() -> None:
    # Two calls of 24 tokens fit a budget of 50 tokens in flight; the third waits.
    app = app_of(
        Profile.openrouter(),
        MockLimits(in_flight_tokens=50),
        latency=SLOW,
        output=OutputModel(min_tokens=20),
    )
    async with raw(app) as http:
        answers: list[httpx2.Response] = []

        async def one() -> None:
            answers.append(await chat(http, max_tokens=20))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            nursery.start_soon(one)
            await trio.sleep(0.1)
            waiting = await chat(http, max_tokens=20)
            too_big = await chat(http, max_tokens=500)
    assert [a.status_code for a in answers] == [200, 200]
    assert waiting.status_code == 402
    info = info_of(waiting)
    assert info.provider is Provider.OPENROUTER
    assert (info.kind, info.retryable, info.code) == (ErrorKind.BUDGET_WAIT, True, "402")
    # The first calls end ~2 s after they began (1 s to the first token, then 20 tokens
    # at 20/s): Retry-After rounds the 1.9 s still to go up.
    assert waiting.headers["retry-after"] == "2" and info.retry_after == 2.0
    # A call larger than the whole budget can never fit.
    assert too_big.status_code == 402
    final = info_of(too_big, "openrouter")
    assert (final.kind, final.retryable) == (ErrorKind.REQUEST_TOO_LARGE, False)
    assert "retry-after" not in too_big.headers
    assert stats(app)["rejected_by_reason"] == {"in_flight_tokens": 2}


async def test_openrouter_spent_credits_are_final() -> None:
    app = app_of(
        Profile.openrouter(),
        MockLimits(rpm=20),
        keys={KEY: KeyConfig(insufficient_quota=True)},
    )
    async with raw(app) as http:
        refused = await chat(http)
    assert refused.status_code == 402
    info = info_of(refused, "openrouter")
    assert (info.kind, info.retryable) == (ErrorKind.INSUFFICIENT_QUOTA, False)


# -- Gemini --------------------------------------------------------------------------------


@pytest.mark.parametrize("array", [False, True])
async def test_gemini_per_minute_and_per_day_quotas(array: bool) -> None:
    minute_app = app_of(Profile.gemini(array=array), MockLimits(rpm=2))
    day_app = app_of(Profile.gemini(array=array), MockLimits(rpd=2))
    async with raw(minute_app) as http:
        ok = await chat(http)
        await chat(http)
        per_minute = await chat(http)
    async with raw(day_app) as http:
        await chat(http)
        await chat(http)
        per_day = await chat(http)
    assert parse_rate_limit_headers(ok.headers, provider="gemini").is_empty
    assert not [name for name in ok.headers if name.startswith(("x-ratelimit", "retry-after"))]
    for refused in (per_minute, per_day):
        assert refused.status_code == 429
        body = json.loads(refused.content)
        assert isinstance(body, list) is array
        envelope = (body[0] if array else body)["error"]
        assert envelope["status"] == "RESOURCE_EXHAUSTED"
    # Unnamed: RESOURCE_EXHAUSTED and the google.rpc details say whose it is. "You
    # exceeded your current quota" is a rate limit here, not billing.
    minute = info_of(per_minute)
    assert minute.provider is Provider.GEMINI
    assert (minute.kind, minute.retryable) == (ErrorKind.RATE_LIMIT, True)
    assert (minute.metric, minute.period, minute.limit) == ("requests", "minute", 2.0)
    assert minute.retry_after == 30.0  # one request at 2 a minute
    day = info_of(per_day, "gemini")
    assert (day.kind, day.metric, day.period, day.limit) == (
        ErrorKind.RATE_LIMIT,
        "requests",
        "day",
        2.0,
    )
    assert day.retry_after == 43_200.0  # half a day: the day's wait, not a minute's


async def test_gemini_input_token_quota() -> None:
    app = app_of(Profile.gemini(), MockLimits(input_tpm=100))
    async with raw(app) as http:
        ok = await chat(http, content="x" * 360)  # 90 of the 100 input tokens
        refused = await chat(http, content="x" * 80)
    assert ok.status_code == 200 and refused.status_code == 429
    info = info_of(refused)
    assert (info.metric, info.period, info.limit) == ("input_tokens", "minute", 100.0)
    # 20 input tokens, 10 left: 10 more at 100 a minute is 6 s.
    assert info.retry_after == pytest.approx(6.0)


async def test_gemini_refusal_reaches_the_sdk_as_a_rate_limit_error() -> None:
    app = app_of(Profile.gemini(array=True), MockLimits(rpm=1))
    transport = httpx2.ASGITransport(app=app)
    async with openai.AsyncOpenAI(
        api_key=KEY,
        base_url="http://mock.test/v1",
        http_client=openai.DefaultAsyncHttpx2Client(transport=transport),
        max_retries=0,
    ) as client:
        await client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)  # type: ignore[arg-type]


# -- Anthropic ------------------------------------------------------------------------------


async def test_anthropic_headers_input_and_output_apart_with_rfc3339_resets() -> None:
    app = app_of(
        Profile.anthropic(),
        MockLimits(rpm=50, input_tpm=20_000, output_tpm=8_000),
        output=OutputModel(min_tokens=30),
    )
    async with raw(app) as http:
        streamed = await chat(http, max_tokens=1_000, stream=True)
        usage = json.loads(
            [line for line in streamed.text.splitlines() if '"usage":{' in line][-1][6:]
        )["usage"]
        after = await chat(http, max_tokens=30)
        wall = time.time()
    # A stream's headers are a snapshot at its start: max_tokens is charged up front.
    opened = parse_rate_limit_headers(streamed.headers, wall_time=wall)
    assert opened.provider is Provider.ANTHROPIC
    output = opened.get("output_tokens")
    assert output is not None and (output.limit, output.remaining) == (8_000.0, 7_000.0)
    assert output.window == 60.0 and output.window_known
    # Once it ended, the reservation was settled to what it really wrote.
    settled = parse_rate_limit_headers(after.headers, wall_time=wall)
    written = usage["completion_tokens"] + after.json()["usage"]["completion_tokens"]
    output = settled.get("output_tokens")
    assert output is not None and output.remaining == 8_000 - written
    inputs = settled.get("input_tokens")
    assert inputs is not None and inputs.remaining == 20_000 - 2 * 4
    # RFC 3339 resets, whole seconds rounded up: until the bucket is full again.
    assert output.reset is not None
    assert 0 <= output.reset - written * 60 / 8_000 <= 1.5
    assert after.headers["anthropic-ratelimit-output-tokens-reset"].endswith("Z")
    tokens = settled.get("tokens")  # the tightest of the two: output, 9 % spent
    assert tokens is not None and (tokens.limit, tokens.remaining) == (8_000.0, 8_000 - written)


async def test_anthropic_429s_say_which_bucket() -> None:
    plan = FaultPlan((FaultRule(FaultKind.OVERLOADED, requests=(4, 4)),))
    # Output as long as max_tokens, so that settling gives nothing back.
    app = app_of(
        Profile.anthropic(),
        MockLimits(rpm=50, input_tpm=1_000, output_tpm=500),
        output=OutputModel(min_tokens=1_000),
        faults=plan,
    )
    async with raw(app) as http:
        by_input = await chat(http, content="x" * 4_000)  # 1,000 input tokens: all of it
        by_input = await chat(http, content="x" * 40)
        too_large = await chat(http, max_tokens=600)  # more than the bucket: never fits
        await trio.sleep(60)
        overloaded = await chat(http)
        await chat(http, max_tokens=450)
        by_output = await chat(http, max_tokens=100)
    assert by_input.status_code == 429
    error = by_input.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit_error")
    info = info_of(by_input)
    assert info.provider is Provider.ANTHROPIC
    assert (info.kind, info.metric, info.period, info.limit) == (
        ErrorKind.RATE_LIMIT,
        "input_tokens",
        "minute",
        1_000.0,
    )
    assert info.retry_after == float(by_input.headers["retry-after"]) == 1.0
    assert info_of(too_large).kind is ErrorKind.REQUEST_TOO_LARGE
    assert by_output.status_code == 429  # 450 of 500 spent, 100 asked
    output = info_of(by_output, "anthropic")
    assert (output.kind, output.metric, output.limit) == (
        ErrorKind.RATE_LIMIT,
        "output_tokens",
        500.0,
    )
    assert overloaded.status_code == 529
    assert info_of(overloaded, "anthropic").kind is ErrorKind.OVERLOADED


# -- Azure provisioned (PTU) ------------------------------------------------------------------


async def test_azure_ptu_utilization_rises_with_load_and_is_only_a_hint() -> None:
    app = app_of(Profile.azure_ptu(), MockLimits(tpm=1_000))
    async with raw(app) as http:
        answers = [await chat(http, max_tokens=96) for _ in range(10)]  # 100 tokens each
        refused = await chat(http, max_tokens=96)
    readings = [parse_rate_limit_headers(a.headers) for a in answers]
    assert all(r.provider is Provider.AZURE and r.dimensions == () for r in readings)
    assert [r.utilization for r in readings] == pytest.approx([n / 10 for n in range(1, 11)])
    assert refused.status_code == 429
    info = info_of(refused, "azure")
    assert (info.kind, info.metric) == (ErrorKind.RATE_LIMIT, "tokens")
    assert refused.headers["retry-after-ms"] == "6000" and info.retry_after == 6.0


# -- DeepSeek --------------------------------------------------------------------------------


async def test_deepseek_refuses_past_its_calls_in_flight() -> None:
    app = app_of(Profile.deepseek(), MockLimits(concurrency=2), latency=SLOW)
    async with raw(app) as http:
        answers: list[httpx2.Response] = []

        async def one() -> None:
            answers.append(await chat(http))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            nursery.start_soon(one)
            await trio.sleep(0.1)
            refused = await chat(http)
        after = await chat(http)
    assert [a.status_code for a in answers] == [200, 200] and after.status_code == 200
    assert refused.status_code == 429
    assert not [n for n in refused.headers if n.startswith(("x-ratelimit", "retry", "openai-"))]
    # DeepSeek sends no header that names it: only the message says what this is.
    assert detect_provider("http://127.0.0.1:8000/v1", refused.headers) is Provider.UNKNOWN
    for provider in ("deepseek", None):
        info = info_of(refused, provider)
        assert (info.kind, info.retryable) == (ErrorKind.CONCURRENCY, True)
        assert (info.limit, info.used, info.metric) == (2.0, 3.0, None)
    assert stats(app)["rejected_by_reason"] == {"concurrency": 1}


async def test_deepseek_keeps_waiting_calls_alive() -> None:
    # 2 s before the first token: a stream gets ": keep-alive" comments meanwhile, a
    # plain answer blank lines before its JSON; the SDK reads both as usual.
    latency = LatencyModel(ttft=2.0, per_prompt_token=0.0, tokens_per_second=100.0, jitter=0.0)
    app = app_of(Profile.deepseek(), MockLimits(concurrency=4), latency=latency)
    async with raw(app) as http:
        streamed = await chat(http, stream=True)
        plain = await chat(http)
    assert streamed.text.startswith(": keep-alive\n\n: keep-alive\n\n: keep-alive\n\n")
    assert streamed.text.rstrip().endswith("data: [DONE]")
    # Blank lines every half second of the 2.2 s it takes, then the JSON.
    assert plain.content.startswith(b"\n\n\n\n{") and plain.json()["usage"]["total_tokens"] > 0
    transport = httpx2.ASGITransport(app=app)
    async with openai.AsyncOpenAI(
        api_key=KEY,
        base_url="http://mock.test/v1",
        http_client=openai.DefaultAsyncHttpx2Client(transport=transport),
        max_retries=0,
    ) as client:
        completion = await client.chat.completions.create(model="deepseek-chat", messages=HELLO)  # type: ignore[arg-type]
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    # The stream, comments and all, is read by ratelimit-llm's own stream watcher.
    watcher = UsageWatcher()
    watcher.feed(streamed.content)
    watcher.close()
    assert watcher.error is None
    assert watcher.usage is not None and watcher.usage["total_tokens"] > 0


async def test_deepseek_spent_balance_is_a_final_402() -> None:
    app = app_of(
        Profile.deepseek(),
        MockLimits(concurrency=4),
        keys={KEY: KeyConfig(insufficient_quota=True)},
    )
    async with raw(app) as http:
        refused = await chat(http)
    assert refused.status_code == 402
    info = info_of(refused, "deepseek")
    assert (info.kind, info.retryable) == (ErrorKind.INSUFFICIENT_QUOTA, False)


# -- TGI and vLLM ------------------------------------------------------------------------------


async def test_tgi_is_overloaded_past_max_concurrent_requests() -> None:
    app = app_of(Profile.tgi(), MockLimits(concurrency=1), latency=SLOW)
    async with raw(app) as http, trio.open_nursery() as nursery:
        nursery.start_soon(chat, http)
        await trio.sleep(0.1)
        refused = await chat(http)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
    # x-compute-type gives TGI away, and its overloaded answer is about calls in flight.
    assert parse_rate_limit_headers(refused.headers).provider is Provider.TGI
    info = info_of(refused)
    assert (info.kind, info.retryable, info.provider) == (
        ErrorKind.CONCURRENCY,
        True,
        Provider.TGI,
    )


async def test_vllm_never_refuses_and_slows_down_as_calls_pile_up() -> None:
    # Limits that would refuse almost everything elsewhere: vLLM has no limiter.
    app = app_of(
        Profile.vllm(queue_slots=4),
        MockLimits(rpm=1, concurrency=1),
        latency=SLOW,
        output=OutputModel(min_tokens=20),
    )
    async with raw(app) as http:
        start = trio.current_time()
        alone = await chat(http)
        alone_took = trio.current_time() - start
        took: list[float] = []
        answers: list[httpx2.Response] = []

        async def one() -> None:
            began = trio.current_time()
            answers.append(await chat(http))
            took.append(trio.current_time() - began)

        async with trio.open_nursery() as nursery:
            for _ in range(16):
                nursery.start_soon(one)
    assert alone.status_code == 200 and alone_took == pytest.approx(2.0)
    assert [a.status_code for a in answers] == [200] * 16
    assert stats(app)["rejected"] == 0
    # The 16th call in flight takes four times as long as a call alone (16 / 4 slots).
    assert max(took) == pytest.approx(4 * alone_took)
    assert min(took) == pytest.approx(alone_took)
    assert not parse_rate_limit_headers(alone.headers).dimensions


# -- wrap() against the dialects -------------------------------------------------------------


class Network(httpx2.AsyncBaseTransport):
    """The mock as if across a network (40 ms each way), so that an opening burst is on
    its way before the first answer comes back, as it would be for real."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await trio.sleep(0.04)
        response = await self._inner.handle_async_request(request)
        await trio.sleep(0.04)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def run_wrapped(
    profile: Profile, limits: MockLimits, told: Limits, provider: str, count: int
) -> tuple[int, int, dict[str, Any]]:
    """``count`` mixed calls at once through ``wrap(..., provider=...)``: (completed,
    failed, the server's stats)."""
    latency = LatencyModel(ttft=0.3, tokens_per_second=300.0, jitter=0.2)
    app = app_of(profile, limits, latency=latency)
    base = openai.AsyncOpenAI(
        api_key=KEY,
        base_url="http://127.0.0.1:8000/v1",  # as a local mock's URL: it names nobody
        http_client=httpx2.AsyncClient(transport=Network(httpx2.ASGITransport(app=app))),
    )
    client = wrap(base, limits=told, provider=provider)
    # The SDK looks its platform up in a worker thread on a client's first call; do it
    # first, so that the virtual clock does not jump while the burst waits on it.
    await client.models.list()
    rng = random.Random(4)
    outcomes: list[bool] = []

    async def one(chars: int, max_tokens: int) -> None:
        try:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "word " * (chars // 5)}],
                max_tokens=max_tokens,
            )
        except openai.APIError:
            outcomes.append(False)
        else:
            outcomes.append(True)

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one, rng.randint(200, 800), rng.randint(20, 150))
    await client.close()
    return outcomes.count(True), outcomes.count(False), stats(app)


async def test_wrap_converges_on_togethers_per_second_limits() -> None:
    # Told the per-minute equivalents, it learns the per-second depth from the headers.
    done, failed, seen = await run_wrapped(
        Profile.together(),
        MockLimits(rps=10, tps=2_000),
        Limits(rpm=600, tpm=120_000),
        "together",
        100,
    )
    assert (done, failed) == (100, 0)
    assert seen["rejected"] <= 5, seen["rejected_by_reason"]
    # The per-second buckets bound: it took (about) the seconds the limits ask for.
    assert seen["elapsed_seconds"] >= 5


async def test_wrap_converges_on_anthropics_input_and_output_limits() -> None:
    done, failed, seen = await run_wrapped(
        Profile.anthropic(),
        MockLimits(rpm=600, input_tpm=20_000, output_tpm=4_000),
        Limits(rpm=600, input_tpm=20_000, output_tpm=4_000),
        "anthropic",
        100,
    )
    assert (done, failed) == (100, 0)
    assert seen["rejected"] <= 5, seen["rejected_by_reason"]


async def test_wrap_converges_on_fireworks_adaptive_limits() -> None:
    done, failed, seen = await run_wrapped(
        Profile.fireworks(),
        MockLimits(input_tpm=30_000, output_tpm=3_000),
        Limits(input_tpm=30_000, output_tpm=3_000),
        "fireworks",
        60,
    )
    assert (done, failed) == (60, 0)
    assert seen["rejected"] <= 3, seen["rejected_by_reason"]


@pytest.mark.parametrize("name", ["openrouter", "gemini"])
async def test_wrap_waits_out_the_refusals_of_headerless_dialects(name: str) -> None:
    # No headers on success: the opening may be refused, but every refusal names its wait
    # (OpenRouter's reset, Gemini's retryDelay) and every call gets through.
    done, failed, seen = await run_wrapped(
        Profile.named(name), MockLimits(rpm=60), Limits(rpm=60), name, 80
    )
    assert (done, failed) == (80, 0)
    assert seen["accepted"] == 80
    assert seen["rejected"] <= 40, seen["rejected_by_reason"]
