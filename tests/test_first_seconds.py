"""The first seconds of a cold limiter, and waits that must never strand a caller.

The real openai SDK goes through `wrap` to the mock server (in process, trio's virtual
clock), which enforces its limits the way the scenario says: over whole minutes, over
one- or two-second slices ("quantized"), with or without rate-limit headers. What is
asserted is what the *server* counted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, cast

import httpx2
import openai
import pytest
import trio
from _answers import completion

from ratelimit_llm import KeyRotation, Limits, transport_of, wrap
from ratelimit_llm._learner import MAX_HOLD
from ratelimit_llm.core import Limiter
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits, Profile, create_app

pytestmark = pytest.mark.anyio

KEY = "sk-test-firstsecondsfirstseconds01"
KEY_B = "sk-test-firstsecondsfirstseconds02"


def server(limits: MockLimits, *, profile: Profile | None = None) -> MockConfig:
    # A real-looking latency (time to first token, then output), compressed; seeded.
    latency = LatencyModel(ttft=0.3, tokens_per_second=300.0, jitter=0.2)
    return MockConfig(limits=limits, latency=latency, profile=profile or Profile.openai(), seed=3)


class Network(httpx2.AsyncBaseTransport):
    """The mock server as if across a network: each way takes ``one_way`` seconds.

    In process, a refusal would come back at once, and its "try again in" would stop a
    burst before the burst had even left; on a real network the whole opening burst is
    on its way before the first answer returns, which is what these tests must face.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, one_way: float = 0.04) -> None:
        self._inner = inner
        self._one_way = one_way

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await trio.sleep(self._one_way)
        response = await self._inner.handle_async_request(request)
        await trio.sleep(self._one_way)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def client_of(config: MockConfig) -> tuple[openai.AsyncOpenAI, Any]:
    app = create_app(config, clock=trio.current_time)
    http_client = httpx2.AsyncClient(transport=Network(httpx2.ASGITransport(app=app)))
    client = openai.AsyncOpenAI(api_key=KEY, base_url="http://mock/v1", http_client=http_client)
    return client, app


def chat_limiter(wrapped: openai.AsyncOpenAI) -> Limiter:
    """The bucket of the chat model (the model list has one of its own)."""
    chat: list[Limiter] = [
        limiter for (_, model), limiter in transport_of(wrapped).limiters().items() if model
    ]
    (limiter,) = chat
    return limiter


def stats(app: Any) -> dict[str, Any]:
    return cast(dict[str, Any], app.state.mock.stats())


def refused_in_first(seen: dict[str, Any], seconds: int) -> int:
    """How many requests the server refused in the run's first ``seconds``."""
    return sum(row["rejected"] for row in seen["timeline"] if row["second"] < seconds)


WORDS = ("rate", "limit", "token", "bucket", "quota", "request", "minute", "answer")


def prose(rng: random.Random, chars: int) -> str:
    """About ``chars`` characters of words (about four characters a token, as the
    server's estimate assumes)."""
    text = ""
    while len(text) < chars:
        text += rng.choice(WORDS) + " "
    return text[:chars]


async def mixed_calls(client: openai.AsyncOpenAI, count: int, seed: int = 1) -> list[float]:
    """``count`` chat calls of mixed sizes, all issued at once; their finish times.

    One call that names no model goes first (it has a bucket of its own): the SDK looks
    up the platform in a worker thread on a client's first call, and while 300 calls
    wait on that thread the virtual clock may jump, which would blur the first second.
    """
    await client.models.list()
    rng = random.Random(seed)
    start = trio.current_time()
    done: list[float] = []

    async def call(chars: int, max_tokens: int, rng: random.Random) -> None:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prose(rng, chars)}],
            max_tokens=max_tokens,
        )
        done.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(call, rng.randint(200, 1_600), rng.randint(50, 300), rng)
    return done


@pytest.mark.parametrize("slice_seconds", [1.0, 2.0])
async def test_a_quantized_server_refuses_almost_nothing_from_the_first_second(
    slice_seconds: float,
) -> None:
    # The case: 300 mixed calls at once, told rpm=1200, tpm=150_000, against a
    # server that enforces those per-minute limits over short slices. Before slow start,
    # about 37 % of all requests were refused, every one in the first 0.7 s.
    client, app = client_of(server(MockLimits(rpm=1_200, tpm=150_000, burst_seconds=slice_seconds)))
    wrapped = wrap(client, rpm=1_200, tpm=150_000)
    await mixed_calls(wrapped, 300)
    seen = stats(app)
    assert seen["accepted"] == 300
    # Nothing refused in the first five seconds, and at most 1 % in all. (Before the
    # snapshot discount counted the calls still on their way to the server, a refusal
    # came now and then at the exact limit, in some of trio's task orders.)
    assert refused_in_first(seen, 5) == 0
    assert seen["rejected"] <= 3


async def test_a_full_minute_server_is_opened_to_its_depth_by_the_first_answer() -> None:
    # The same burst against a server that allows the whole minute at once: slow start
    # must not cost it its burst. Only the opening allowance waits for the first answer.
    client, app = client_of(server(MockLimits(rpm=1_200, tpm=150_000)))
    wrapped = wrap(client, rpm=1_200, tpm=150_000)
    done = await mixed_calls(wrapped, 300)
    assert stats(app)["rejected"] == 0
    limiter = chat_limiter(wrapped)
    assert limiter.probing() == ()
    depths = limiter.statistics().depths
    assert depths == {
        "requests/min": pytest.approx(1_200, rel=0.01),
        "tokens/min": pytest.approx(150_000, rel=0.01),
    }
    # The whole burst fits the minute's 150,000 tokens: it is done within a few answers'
    # time (each takes 0.3 s plus up to a second of output), not paced at a second's worth.
    assert max(done) < 4.0


async def test_a_server_without_headers_is_opened_round_by_round_without_refusals() -> None:
    # vLLM, Gemini's and DeepSeek's endpoints, OpenRouter's successes: no headers at all.
    client, app = client_of(server(MockLimits(rpm=600, tpm=1_000_000), profile=Profile.none()))
    wrapped = wrap(client, rpm=600, tpm=1_000_000)
    done = await mixed_calls(wrapped, 400, seed=2)
    assert stats(app)["rejected"] == 0
    limiter = chat_limiter(wrapped)
    assert limiter.statistics().depths["requests/min"] == pytest.approx(600)
    assert "requests/min" not in limiter.probing()
    # 400 of a minute's 600 at once: opened in a few round trips, not at 10 a second.
    assert max(done) < 15.0


async def test_a_server_without_headers_that_is_quantized_converges_without_a_storm() -> None:
    config = server(MockLimits(rpm=600, tpm=1_000_000, burst_seconds=1.0), profile=Profile.none())
    client, app = client_of(config)
    wrapped = wrap(client, rpm=600, tpm=1_000_000)
    await mixed_calls(wrapped, 200, seed=3)
    seen = stats(app)
    assert seen["accepted"] == 200
    assert refused_in_first(seen, 1) == 0  # the opening itself is never refused
    # Probing costs at most the one refused step of slow start, not the half of the
    # opening burst a full-minute start would lose. The server holds 10 calls and the
    # opening is those 10; the depth then grows by 1, 2, 4 and 8 a round trip, and which
    # step crosses the server's depth depends on its refill in between: 2 to 5 refusals
    # over 60 workloads and trio's task orders, never the 8 of the largest step.
    assert seen["rejected"] <= 8


async def test_configured_twice_too_high_converges_from_the_first_answer() -> None:
    client, app = client_of(server(MockLimits(rpm=300, tpm=1_000_000)))
    wrapped = wrap(client, rpm=600, tpm=2_000_000)
    await mixed_calls(wrapped, 400, seed=4)
    seen = stats(app)
    assert seen["accepted"] == 400
    assert seen["rejected"] == 0  # the opening is a second of 600 RPM: 10 calls


# -- KeyRotation alone, and waits no server may impose ------------------------------------


def scripted(*answers: httpx2.Response) -> tuple[openai.AsyncOpenAI, list[tuple[float, str]]]:
    """A client on a server that answers from a script; records (time, key) per request."""
    sent: list[tuple[float, str]] = []
    queue = list(answers)

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append((trio.current_time(), request.headers["authorization"][-2:]))
        return queue.pop(0) if len(queue) > 1 else queue[0]

    http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    client = openai.AsyncOpenAI(api_key=KEY, base_url="http://mock/v1", http_client=http_client)
    return client, sent


def tpm_429(wait: str) -> httpx2.Response:
    message = (
        "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): "
        f"Limit 200000, Used 200000, Requested 300. Please try again in {wait}."
    )
    body = {"error": {"message": message, "type": "tokens", "code": "rate_limit_exceeded"}}
    return httpx2.Response(429, json=body)


async def say(client: openai.AsyncOpenAI) -> Any:
    return await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=10
    )


async def test_key_rotation_alone_honours_the_named_wait_and_retries() -> None:
    client, sent = scripted(
        tpm_429("1.5s"), tpm_429("1.5s"), httpx2.Response(200, json=completion())
    )
    wrapped = wrap(
        client,
        limits=Limits(rpm=500, tpm=200_000, burst_seconds=60),
        strategy=KeyRotation([KEY, KEY_B]),
    )
    start = trio.current_time()
    response = await say(wrapped)
    assert response.choices[0].message.content == "ok"
    times = [at - start for at, _ in sent]
    # The first 429 moves the call to the other key at once; the second leaves no key
    # free: the retry waits the named 1.5 s (held on the bucket) and then goes.
    assert [key for _, key in sent[:2]] == ["01", "02"]
    assert times == pytest.approx([0.0, 0.0, 1.5])


Absurd = Callable[[], httpx2.Response]


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "999999999"},
        {"retry-after-ms": "1e11"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
    ],
)
async def test_an_absurd_wait_gives_the_call_up_at_once_and_holds_the_bucket_at_most_the_bound(
    headers: dict[str, str],
) -> None:
    refusal = httpx2.Response(
        429, json={"error": {"message": "slow down", "type": "requests"}}, headers=headers
    )
    client, sent = scripted(refusal, httpx2.Response(200, json=completion()))
    wrapped = wrap(client, limits=Limits(rpm=500, tpm=200_000, burst_seconds=60))
    start = trio.current_time()
    with pytest.raises(openai.RateLimitError):
        await say(wrapped)
    assert trio.current_time() - start == pytest.approx(0.0)  # the server's error, at once
    await say(wrapped)  # the next call waits out the bounded hold, not years
    assert sent[-1][0] - start == pytest.approx(MAX_HOLD)
