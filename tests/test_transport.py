"""RateLimitedTransport with the real openai SDK over mock transports, in virtual time.

The SDK runs on trio here (anyio), under ``MockClock(autojump_threshold=0)``: waits for
the bucket and pauses before retries take no wall-clock time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import httpx2
import openai
import pytest
import respx
import trio
from _answers import completion as answer

from ratelimit_llm import Limits
from ratelimit_llm._credentials import Credential
from ratelimit_llm._exceptions import CapacityExceededError
from ratelimit_llm._pool import UNMETERED
from ratelimit_llm._strategy import Attempt, Decision, Strategy
from ratelimit_llm._telemetry import Event, Telemetry
from ratelimit_llm._transport import RateLimitedTransport
from ratelimit_llm.strategies import AdaptiveBackoff

pytestmark = pytest.mark.anyio

# The SDK leaves its SSE generators unfinished after "[DONE]"; trio warns when they are
# collected (asyncio finalizes them quietly), so streaming tests run on asyncio. They
# need no virtual time.
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", ["asyncio"])

KEY = "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa1111"
OTHER_KEY = "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb2222"
BASE = "https://api.test/v1"


def completion(prompt_tokens: int = 10, completion_tokens: int = 5) -> dict[str, Any]:
    return answer(prompt_tokens, completion_tokens, content="hi")


def rate_headers(limit: int, remaining: int, reset: str = "1s") -> dict[str, str]:
    return {
        "x-ratelimit-limit-tokens": str(limit),
        "x-ratelimit-remaining-tokens": str(remaining),
        "x-ratelimit-reset-tokens": reset,
    }


class Recorder:
    """A mock server: answers from a script and records what it was sent."""

    def __init__(self, *answers: httpx2.Response | Callable[[httpx2.Request], httpx2.Response]):
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


def client_for(
    handler: Callable[[httpx2.Request], Any],
    *,
    limits: Limits | None = None,
    strategy: Strategy | None = None,
    telemetry: Telemetry | None = None,
) -> tuple[openai.AsyncOpenAI, RateLimitedTransport]:
    transport = RateLimitedTransport(
        httpx2.MockTransport(handler),
        limits=limits or Limits(rpm=60, tpm=10_000, burst_seconds=60),
        strategy=strategy or no_retries(),
        telemetry=telemetry,
    )
    client = openai.AsyncOpenAI(
        api_key=KEY,
        base_url=BASE,
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=0,
    )
    return client, transport


async def chat(client: openai.AsyncOpenAI, content: str = "x" * 400, **kwargs: Any) -> Any:
    return await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": content}],
        max_tokens=kwargs.pop("max_tokens", 100),
        **kwargs,
    )


def legacy(transport: RateLimitedTransport) -> Any:
    """A legacy ``httpx`` client around the transport (openai 3.x accepts it at run time
    but types ``http_client`` as httpx2's, hence ``Any``)."""
    return httpx.AsyncClient(transport=cast(httpx.AsyncBaseTransport, transport))


def no_retries() -> Strategy:
    """A retry policy that never retries (so the transport adds no default one)."""
    return AdaptiveBackoff(max_attempts=1)


class RetryAfter(Strategy):
    """Retries every failure once per `pauses` entry, pausing that long."""

    decides_retries = True

    def __init__(self, *pauses: float) -> None:
        self.pauses = list(pauses)
        self.seen: list[tuple[int, int | None, str | None]] = []

    def after_response(self, attempt: Attempt) -> Decision | None:
        kind = attempt.error.kind.value if attempt.error else None
        self.seen.append((attempt.number, attempt.status, kind))
        if attempt.succeeded or not self.pauses:
            return None
        return Decision.retry(after=self.pauses.pop(0))


async def test_estimates_charges_and_settles_against_usage() -> None:
    server = Recorder(httpx2.Response(200, json=completion(120, 30)))
    client, transport = client_for(server)
    await chat(client)
    (limiter,) = transport.limiters().values()
    stats = limiter.statistics()
    # 400 characters / 4 + framing, plus 100 reserved output tokens, charged up front...
    assert stats.estimated["tokens/min"] > 200
    # ... and settled to the 150 the server reported.
    assert stats.actual["tokens/min"] == 150
    assert stats.levels["tokens/min"] == pytest.approx(10_000 - 150, abs=1)
    (route,) = transport.statistics()
    assert route.key == "sk-...1111"
    assert route.model == "gpt-4o-mini"
    assert (route.requests, route.succeeded, route.settled) == (1, 1, 1)
    assert route.tokens_actual == 150


async def test_headers_correct_the_bucket() -> None:
    server = Recorder(
        httpx2.Response(200, json=completion(), headers=rate_headers(10_000, 1_000, "54s"))
    )
    client, transport = client_for(server)
    await chat(client)
    (limiter,) = transport.limiters().values()
    assert limiter.statistics().levels["tokens/min"] == pytest.approx(1_000, abs=1)


async def test_server_limit_resizes_the_bucket() -> None:
    server = Recorder(
        httpx2.Response(200, json=completion(), headers=rate_headers(30_000, 29_800, "400ms"))
    )
    client, transport = client_for(server)
    await chat(client)
    (limiter,) = transport.limiters().values()
    assert limiter.statistics().limits["tokens/min"] == 30_000


async def test_calls_are_paced_by_the_bucket() -> None:
    server = Recorder(httpx2.Response(200, json=completion()))
    client, _ = client_for(server, limits=Limits(rpm=60, burst_seconds=1))
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(chat, client)
    # One request per second: at t = 0, 1, 2, 3, 4.
    assert sorted(server.times) == pytest.approx([0, 1, 2, 3, 4])


async def test_retry_waits_and_resends_the_same_body() -> None:
    server = Recorder(
        httpx2.Response(503, json={"error": {"message": "overloaded", "type": "server_error"}}),
        httpx2.Response(200, json=completion()),
    )
    strategy = RetryAfter(2.5)
    client, transport = client_for(server, strategy=strategy)
    response = await chat(client)
    assert response.choices[0].message.content == "hi"
    assert server.times == pytest.approx([0, 2.5])
    assert server.requests[0].content == server.requests[1].content
    assert strategy.seen == [(1, 503, "overloaded"), (2, 200, None)]
    (route,) = transport.statistics()
    assert route.retries == 1
    assert route.errors == {"overloaded": 1}


async def test_a_429_still_charges_the_request_but_not_the_tokens() -> None:
    body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min"
            " (TPM): Limit 10000, Used 9990, Requested 300. Please try again in 1.74s.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        }
    }
    server = Recorder(httpx2.Response(429, json=body))
    telemetry = Telemetry()
    client, transport = client_for(server, telemetry=telemetry)
    with pytest.raises(openai.RateLimitError):
        await chat(client)
    (limiter,) = transport.limiters().values()
    stats = limiter.statistics()
    assert stats.actual == {"requests/min": 1.0, "tokens/min": 0.0}
    (route,) = telemetry.statistics()
    assert route.rate_limited == {"rate_limit:tokens": 1}
    assert route.gave_up == 1


async def test_gives_up_by_handing_back_the_answer_for_the_sdk_to_raise() -> None:
    body = {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}
    server = Recorder(httpx2.Response(429, json=body))
    client, _ = client_for(server, strategy=RetryAfter())
    with pytest.raises(openai.RateLimitError) as info:
        await chat(client)
    assert info.value.code == "insufficient_quota"


async def test_a_give_up_decision_may_raise_its_own_error() -> None:
    class Stop(Strategy):
        decides_retries = True

        def after_response(self, attempt: Attempt) -> Decision | None:
            return None if attempt.succeeded else Decision.give_up(error=LookupError("stop"))

    server = Recorder(httpx2.Response(500, json={"error": {"message": "boom"}}))
    client, _ = client_for(server, strategy=Stop())
    with pytest.raises(LookupError, match="stop"):
        await chat(client)


async def test_connection_errors_are_retried_and_unsent_calls_refunded() -> None:
    calls = 0

    def flaky(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, json=completion(10, 5))

    client, transport = client_for(flaky, strategy=RetryAfter(1.0))
    await chat(client)
    (limiter,) = transport.limiters().values()
    stats = limiter.statistics()
    assert stats.granted == 2
    assert stats.released == 1  # the connect error never reached the server
    (route,) = transport.statistics()
    assert route.errors == {"connection": 1}


async def test_connection_error_given_up_reaches_the_sdk() -> None:
    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadError("reset by peer", request=request)

    client, _ = client_for(down)
    with pytest.raises(openai.APIConnectionError):
        await chat(client)


async def test_a_request_larger_than_the_bucket_fails_at_once() -> None:
    server = Recorder(httpx2.Response(200, json=completion()))
    client, _ = client_for(server, limits=Limits(rpm=60, tpm=1_000))
    with pytest.raises(CapacityExceededError, match="tokens/min"):
        await chat(client, max_tokens=5_000)
    assert server.requests == []


@ASYNCIO_ONLY
async def test_streams_pass_through_chunk_by_chunk_and_settle_at_the_end() -> None:
    produced: list[int] = []
    received: list[int] = []

    async def events() -> AsyncIterator[bytes]:
        for index in range(6):
            produced.append(index)
            # Nothing is buffered: the consumer has the early chunks before the late
            # ones are made (the SDK's decoder may read one event ahead).
            assert len(received) >= index - 1
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": f"w{index}"}}],
                "usage": None,
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        final = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
        yield f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=events())

    client, transport = client_for(handler)
    stream = await chat(client, stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        if chunk.choices:
            # Appended as each chunk arrives: the generator checks this as it goes.
            received.append(int(chunk.choices[0].delta.content[1:]))  # noqa: PERF401
    assert received == produced == [0, 1, 2, 3, 4, 5]
    (limiter,) = transport.limiters().values()
    assert limiter.statistics().actual["tokens/min"] == 10


@ASYNCIO_ONLY
async def test_an_interrupted_stream_keeps_the_estimate() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b'data: {"id":"c","object":"chat.completion.chunk","created":0,'
        yield b'"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        raise httpx2.ReadError("cut")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=events())

    client, transport = client_for(handler)
    stream = await chat(client, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    (limiter,) = transport.limiters().values()
    stats = limiter.statistics()
    assert stats.settled == 0
    assert stats.estimated["tokens/min"] > 100  # still charged


@ASYNCIO_ONLY
async def test_in_stream_errors_are_reported() -> None:
    payload = {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=f"data: {json.dumps(payload)}\n\n".encode(),
        )

    seen: list[Event] = []
    telemetry = Telemetry()
    telemetry.subscribe(seen.append)
    client, _ = client_for(handler, telemetry=telemetry)
    stream = await chat(client, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    errors = [event for event in seen if event.kind == "error"]
    assert errors and errors[0].error_kind == "rate_limit"
    assert errors[0].detail == "in-stream error"


async def test_calls_naming_no_model_use_a_bucket_of_their_own() -> None:
    # Files, batches and model lists are metered apart from every model's quota.
    server = Recorder(httpx2.Response(200, json={"object": "list", "data": []}))
    client, transport = client_for(server)
    await client.models.list()
    (((_key, group), limiter),) = transport.limiters().items()
    assert group is None
    assert limiter.statistics().estimated == {"requests/min": 1.0}
    assert limiter.statistics().limits == {"requests/min": UNMETERED.rpm}


async def test_a_strategy_can_send_with_another_credential() -> None:
    other = Credential(OTHER_KEY, organization="org-2", project="proj-2")

    class UseOther(Strategy):
        async def before_send(self, attempt: Attempt) -> None:
            attempt.credential = other

    server = Recorder(httpx2.Response(200, json=completion()))
    client, transport = client_for(server, strategy=UseOther())
    await chat(client)
    (sent,) = server.requests
    assert sent.headers["authorization"] == f"Bearer {OTHER_KEY}"
    assert sent.headers["openai-organization"] == "org-2"
    assert sent.headers["openai-project"] == "proj-2"
    assert [key for key, _ in transport.limiters()] == [other.name]


async def test_another_credential_can_have_another_base_url() -> None:
    other = Credential(OTHER_KEY, base_url="https://westeurope.example.test/v1")

    class UseOther(Strategy):
        async def before_send(self, attempt: Attempt) -> None:
            attempt.credential = other

    server = Recorder(httpx2.Response(200, json=completion()))
    client, _ = client_for(server, strategy=UseOther())
    await chat(client)
    (sent,) = server.requests
    assert str(sent.url) == "https://westeurope.example.test/v1/chat/completions"


async def test_keys_never_reach_events_or_statistics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    seen: list[Event] = []
    telemetry = Telemetry()
    telemetry.subscribe(seen.append)
    server = Recorder(
        httpx2.Response(429, json={"error": {"message": "Rate limit", "code": "x"}}),
        httpx2.Response(200, json=completion()),
    )
    client, transport = client_for(server, strategy=RetryAfter(0.1), telemetry=telemetry)
    await chat(client)
    text = " ".join(
        [caplog.text, repr(seen), repr(transport.statistics()), repr(transport.limiters())]
    )
    assert seen
    assert KEY not in text
    assert KEY[-12:] not in text


async def test_legacy_httpx_clients_work_too() -> None:
    """openai 1.x/2.x and other SDKs use `httpx`: the same transport serves them (respx)."""
    router = respx.Router(base_url=BASE)
    route = router.post("/chat/completions").mock(
        return_value=httpx.Response(
            200, json=completion(20, 5), headers=rate_headers(9_000, 8_000, "6.666s")
        )
    )
    transport = RateLimitedTransport(
        httpx.MockTransport(router.handler),
        limits=Limits(rpm=60, tpm=10_000),
        strategy=no_retries(),
    )
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url=BASE, http_client=legacy(transport), max_retries=0
    )
    response = await chat(client)
    assert response.usage is not None and response.usage.total_tokens == 25
    assert route.called
    (limiter,) = transport.limiters().values()
    stats = limiter.statistics()
    assert stats.limits["tokens/min"] == 9_000
    assert stats.actual["tokens/min"] == 25


@ASYNCIO_ONLY
async def test_legacy_httpx_streams_are_watched_too() -> None:
    final = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8},
    }
    router = respx.Router(base_url=BASE)
    router.post("/chat/completions").mock(
        return_value=httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode(),
        )
    )
    transport = RateLimitedTransport(
        httpx.MockTransport(router.handler),
        limits=Limits(rpm=60, tpm=10_000),
        strategy=no_retries(),
    )
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url=BASE, http_client=legacy(transport), max_retries=0
    )
    stream = await chat(client, stream=True, stream_options={"include_usage": True})
    async for _ in stream:
        pass
    (limiter,) = transport.limiters().values()
    assert limiter.statistics().actual["tokens/min"] == 8


async def test_transport_needs_limits_or_a_pool() -> None:
    with pytest.raises(TypeError):
        RateLimitedTransport(httpx2.MockTransport(lambda r: httpx2.Response(200)))


async def test_max_in_flight_caps_calls_waiting_for_an_answer() -> None:
    in_flight = 0
    peak = 0

    async def slow(request: httpx2.Request) -> httpx2.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await trio.sleep(1)
        in_flight -= 1
        return httpx2.Response(200, json=completion())

    transport = RateLimitedTransport(
        httpx2.MockTransport(slow),
        limits=Limits(rpm=600, tpm=1_000_000, burst_seconds=60),
        strategy=no_retries(),
        max_in_flight=3,
    )
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url=BASE, http_client=httpx2.AsyncClient(transport=transport)
    )
    # The SDK reads the platform once, in a worker thread; with the virtual clock's
    # autojump, that thread let time jump while the third call was still on its way
    # (peak 2, now and then). One call first gets it out of the way.
    await chat(client)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(9):
            nursery.start_soon(chat, client)
    assert peak == 3
    # Nine one-second calls, three at a time: at least three seconds.
    assert trio.current_time() - start >= 3.0
    with pytest.raises(ValueError, match="max_in_flight"):
        RateLimitedTransport(httpx2.MockTransport(slow), limits=Limits(rpm=1), max_in_flight=0)


def _batch_object() -> dict[str, Any]:
    return {
        "id": "batch_1",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "status": "validating",
        "created_at": 0,
    }


async def _create_batch(client: openai.AsyncOpenAI) -> Any:
    return await client.batches.create(
        input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h"
    )


class _RetryAll(Strategy):
    """Retries every failure at once: only the transport's own rules can stop it."""

    decides_retries = True

    def after_response(self, attempt: Attempt) -> Decision | None:
        return None if attempt.succeeded else Decision.retry(after=0.0)


async def test_a_batch_creation_is_not_sent_twice_after_a_5xx() -> None:
    # The job may exist although the answer was an error: the caller looks it up.
    server = Recorder(
        httpx2.Response(500, json={"error": {"message": "oops", "type": "server_error"}}),
        httpx2.Response(200, json=_batch_object()),
    )
    client, _ = client_for(server, strategy=_RetryAll())
    with pytest.raises(openai.InternalServerError):
        await _create_batch(client)
    assert len(server.requests) == 1


async def test_a_batch_creation_is_not_sent_twice_after_a_broken_connection() -> None:
    sent: list[httpx2.Request] = []

    def cut(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        raise httpx2.ReadError("reset after sending", request=request)

    client, _ = client_for(cut, strategy=_RetryAll())
    with pytest.raises(openai.APIConnectionError):
        await _create_batch(client)
    assert len(sent) == 1


async def test_a_batch_creation_refused_with_429_is_sent_again() -> None:
    server = Recorder(
        httpx2.Response(429, json={"error": {"message": "slow down", "type": "requests"}}),
        httpx2.Response(200, json=_batch_object()),
    )
    client, _ = client_for(server, strategy=_RetryAll())
    batch = await _create_batch(client)
    assert batch.id == "batch_1"
    assert len(server.requests) == 2


async def test_inference_calls_are_still_retried_after_a_5xx() -> None:
    server = Recorder(
        httpx2.Response(500, json={"error": {"message": "oops", "type": "server_error"}}),
        httpx2.Response(200, json=completion()),
    )
    client, _ = client_for(server, strategy=_RetryAll())
    await chat(client)
    assert len(server.requests) == 2


def test_a_snapshots_send_cut_off_is_placed_by_the_quickest_recent_trip() -> None:
    transport = RateLimitedTransport(
        httpx2.MockTransport(lambda request: httpx2.Response(200)), limits=Limits(rpm=60)
    )

    def answer(processing_ms: str | None) -> httpx2.Response:
        headers = {} if processing_ms is None else {"openai-processing-ms": processing_ms}
        return httpx2.Response(200, headers=headers)

    # A quick call: 200 ms there and back, the snapshot taken halfway; what it counts
    # is what had arrived by then, so what left a whole trip before the answer.
    assert transport._produced_at(answer("50"), 10.0, 10.25) == pytest.approx(10.05)
    # A call that queued here for two seconds before it left: the network's trip is
    # still 200 ms (the quickest of the last minute), so the cut-off is near the
    # answer, not two seconds before it.
    assert transport._produced_at(answer("50"), 20.0, 22.05) == pytest.approx(22.05 - 0.2)
    # Hundreds of answers read in a row, each seconds late behind a busy event loop:
    # the cut-off stays one quick trip before each (a floor that crept up per answer
    # had reached their seconds, and discounted calls the server had already counted).
    for i in range(500):
        at = 23.0 + i * 0.01
        assert transport._produced_at(answer("50"), at - 3.0, at) == pytest.approx(at - 0.2)
    # A network that really slowed is followed once the quick trips are a minute old.
    assert transport._produced_at(answer("50"), 89.0, 90.05) == pytest.approx(90.05 - 1.0)
    # No server time: the answer's arrival.
    assert transport._produced_at(answer(None), 30.0, 31.0) == 31.0
    assert transport._produced_at(answer("soon"), 30.0, 31.0) == 31.0


async def test_a_final_answer_on_the_first_attempt_is_not_reported_as_giving_up() -> None:
    """A 400 (or a spent quota) is the answer, not a failure of the retry policy: no
    WARNING "gave_up" for it; a retried failure that runs out of attempts is one."""
    seen: list[Event] = []
    telemetry = Telemetry()
    telemetry.subscribe(seen.append)
    bad = httpx2.Response(400, json={"error": {"message": "Invalid 'messages'"}})
    client, _ = client_for(Recorder(bad), strategy=AdaptiveBackoff(), telemetry=telemetry)
    with pytest.raises(openai.BadRequestError):
        await chat(client)
    assert [event.kind for event in seen if event.kind == "gave_up"] == []
    seen.clear()
    boom = httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
    strategy = AdaptiveBackoff(max_attempts=2, base=0.1)
    client, _ = client_for(Recorder(boom), strategy=strategy, telemetry=telemetry)
    with pytest.raises(openai.InternalServerError):
        await chat(client)
    assert [event.kind for event in seen if event.kind == "gave_up"] == ["gave_up"]


async def test_retries_are_counted_by_the_budget_they_draw_on() -> None:
    server = Recorder(
        httpx2.Response(503, json={"error": {"message": "overloaded", "type": "server_error"}}),
        httpx2.Response(
            429,
            json={
                "error": {
                    "message": "Rate limit reached. Please try again in 1s.",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        httpx2.Response(200, json=completion()),
    )
    client, transport = client_for(server, strategy=AdaptiveBackoff(base=0.1))
    await chat(client)
    (route,) = transport.statistics()
    assert route.retries == 2
    assert route.retries_by_kind == {"overload": 1, "throttling": 1}
