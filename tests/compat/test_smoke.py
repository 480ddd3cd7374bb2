"""Smoke tests of `wrap` and `http_client` on every openai major the package supports.

``scripts/test-compat`` runs this folder in one venv per major: openai 1.x and 2.x (on
``httpx``, with no ``httpx2`` installed) and 3.x (on ``httpx2``); the main suite runs it
on whatever the dev venv holds. So it imports nothing but the project, its mock extra,
openai and pytest, and uses no SDK feature newer than the oldest openai the package
declares. The mock serves on 127.0.0.1 (real sockets, real time): the only waits are
the short ones the mock names, and each is asserted from below, which a slow machine
cannot break.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import openai
import pytest

from ratelimit_llm import AdaptiveBackoff, Limits, http_client, transport_of, wrap
from ratelimit_llm._clients import library_of_class
from ratelimit_llm.mock import (
    FaultKind,
    FaultPlan,
    FaultRule,
    LatencyModel,
    MockConfig,
    MockLimits,
    Profile,
)

from ._support import MockFactory, server_stats

KEY = "sk-test-compatcompatcompat0001"
MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something kind about rate limits."}]
# Fast retries, so that the suite's retry tests take milliseconds.
QUICK = AdaptiveBackoff(max_attempts=10, base=0.01, cap=0.05)


def quiet(**kwargs: Any) -> MockConfig:
    """A mock that answers at once, with OpenAI's headers unless told otherwise."""
    kwargs.setdefault("limits", MockLimits(rpm=600, tpm=1_000_000))
    return MockConfig(latency=LatencyModel.instant(), **kwargs)


def faults(kind: FaultKind, first: int, last: int) -> FaultPlan:
    return FaultPlan(rules=(FaultRule(kind, requests=(first, last)),))


def sdk_library_name() -> str:
    """``httpx`` or ``httpx2``: what this openai builds its own default client on."""
    module = library_of_class(openai.DefaultAsyncHttpxClient)
    assert module is not None
    return module.__name__


def sdk_retry_counts(server: Any) -> dict[str, int]:
    """How many requests carried each ``x-stainless-retry-count`` (the SDK's own retries)."""
    counts: dict[str, int] = server_stats(server)["retry_counts"]
    return counts


# -- the install ----------------------------------------------------------------------------


def test_the_core_and_the_mock_import_and_build_clients_without_httpx2() -> None:
    # A fresh interpreter in which httpx2 cannot be imported, as with openai 1.x / 2.x.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["httpx2"] = None  # makes `import httpx2` raise ImportError
        import ratelimit_llm, ratelimit_llm.mock, ratelimit_llm.strategies
        from ratelimit_llm import RateLimitedTransport, http_client, transport_of, wrap
        from ratelimit_llm._sync import SyncRateLimitedTransport
        ratelimit_llm.mock.create_app(ratelimit_llm.mock.MockConfig())
        try:
            import httpx
        except ImportError:  # openai 3.x's venv: neither library, nothing to build on
            print("ok")
            raise SystemExit
        client = http_client(rpm=60, library="httpx")
        assert isinstance(client, httpx.AsyncClient), type(client)
        sync = http_client(rpm=60, library="httpx", sync=True)
        assert isinstance(sync, httpx.Client), type(sync)
        assert isinstance(transport_of(client), RateLimitedTransport)
        assert isinstance(transport_of(sync), SyncRateLimitedTransport)
        try:
            import openai
        except ImportError:  # openai 3.x needs httpx2 itself
            print("ok")
            raise SystemExit
        import ratelimit_llm.batch
        wrapped = wrap(openai.AsyncOpenAI(api_key="sk-x", base_url="http://127.0.0.1:9"))
        assert isinstance(transport_of(wrapped), RateLimitedTransport)
        assert isinstance(http_client(), httpx.AsyncClient)  # the SDK's library
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_http_client_is_built_on_the_library_of_the_installed_sdk() -> None:
    name = sdk_library_name()
    for sync in (False, True):
        client = http_client(rpm=600, sync=sync)
        assert library_of_class(type(client)).__name__ == name  # type: ignore[union-attr]
        assert type(client).__name__ == ("Client" if sync else "AsyncClient")


# -- calls through wrap(), async and sync ---------------------------------------------------


@pytest.mark.asyncio
async def test_an_async_client_chats_plain_and_streamed_and_ends_slow_start(
    mock_server: MockFactory,
) -> None:
    server = mock_server(quiet())
    wrapped = wrap(openai.AsyncOpenAI(api_key=KEY, base_url=server.url))
    try:
        transport = transport_of(wrapped)
        answer = await wrapped.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert answer.choices[0].message.content
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        # The first answer's headers showed the bucket's depth: slow start is over, and
        # the limits are the server's.
        (limiter,) = transport.limiters().values()
        statistics = limiter.statistics()
        assert statistics.probing == ()
        assert statistics.limits["requests/min"] == 600
        assert statistics.limits["tokens/min"] == 1_000_000

        stream = await wrapped.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert "".join(pieces)
        (route,) = transport.statistics()
        assert (route.requests, route.succeeded, route.settled) == (2, 2, 2)
    finally:
        await wrapped.close()
    assert server_stats(server)["accepted"] == 2


def test_a_sync_client_chats_plain_and_streamed_and_ends_slow_start(
    mock_server: MockFactory,
) -> None:
    server = mock_server(quiet())
    wrapped = wrap(openai.OpenAI(api_key=KEY, base_url=server.url))
    try:
        transport = transport_of(wrapped)
        answer = wrapped.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert answer.choices[0].message.content
        (limiter,) = transport.limiters().values()
        assert limiter.statistics().probing == ()
        assert limiter.statistics().limits["requests/min"] == 600

        stream = wrapped.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
        assert "".join(pieces)
        (route,) = transport.statistics()
        assert (route.requests, route.succeeded, route.settled) == (2, 2, 2)
    finally:
        wrapped.close()
    assert server_stats(server)["accepted"] == 2


# -- retries: ours, never the SDK's on top ----------------------------------------------------


@pytest.mark.asyncio
async def test_with_options_max_retries_becomes_our_retry_budget(
    mock_server: MockFactory,
) -> None:
    # Requests 1 to 4 get a 500; the fifth is answered.
    server = mock_server(quiet(faults=faults(FaultKind.SERVER_ERROR, 1, 4)))
    wrapped = wrap(
        openai.AsyncOpenAI(api_key=KEY, base_url=server.url), rpm=600, tpm=1_000_000, strategy=QUICK
    )
    try:
        two = wrapped.with_options(max_retries=2)
        assert two.max_retries == 0  # the SDK's own retries stay off
        with pytest.raises(openai.InternalServerError):
            await two.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert server_stats(server)["requests"] == 3  # the first and two retries
        answer = await wrapped.with_options(max_retries=3).chat.completions.create(
            model=MODEL, messages=MESSAGES
        )
        assert answer.choices[0].message.content
    finally:
        await wrapped.close()
    stats = server_stats(server)
    assert stats["requests"] == 5
    assert stats["accepted"] == 1
    assert set(sdk_retry_counts(server)) <= {"0"}  # every retry was ours, none the SDK's


def framework_faults() -> MockConfig:
    """Requests 1 and 2 get a 500, 3 to 5 a reset connection; later ones are answered."""
    return quiet(
        faults=FaultPlan(
            rules=(
                FaultRule(FaultKind.SERVER_ERROR, requests=(1, 2)),
                FaultRule(FaultKind.CONNECTION_RESET, requests=(3, 5)),
            )
        )
    )


TWO_TRIES = AdaptiveBackoff(max_attempts=2, base=0.01, cap=0.05)


def test_a_framework_clients_own_retries_never_double_ours(mock_server: MockFactory) -> None:
    # A framework builds OpenAI(max_retries=1) around our http_client(). A 500 we gave
    # up on comes back with x-should-retry: false, which the SDK obeys; a connection
    # error it retries anyway, and that retry (x-stainless-retry-count: 1) is sent once.
    server = mock_server(framework_faults())
    limited = http_client(rpm=600, tpm=1_000_000, strategy=TWO_TRIES, sync=True)
    client = openai.OpenAI(api_key=KEY, base_url=server.url, http_client=limited, max_retries=1)
    try:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert server_stats(server)["requests"] == 2  # ours; not the SDK's
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    finally:
        client.close()
    # Two attempts of ours, then the SDK's one retry, sent once: 2 + 2 + 1.
    assert server_stats(server)["requests"] == 5
    assert sdk_retry_counts(server).get("1") == 1


@pytest.mark.asyncio
async def test_an_async_framework_clients_own_retries_never_double_ours(
    mock_server: MockFactory,
) -> None:
    server = mock_server(framework_faults())
    limited = http_client(rpm=600, tpm=1_000_000, strategy=TWO_TRIES)
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url=server.url, http_client=limited, max_retries=1
    )
    try:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert server_stats(server)["requests"] == 2
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    finally:
        await client.close()
    # As above, except that AsyncOpenAI before 1.52.1 never retries a connection error on
    # its own (its check reads the retries taken, not those left): then no SDK retry.
    sdk_retries = sdk_retry_counts(server).get("1", 0)
    assert sdk_retries <= 1  # had we granted it our two attempts, both would say "1"
    assert server_stats(server)["requests"] == 4 + sdk_retries


@pytest.mark.asyncio
async def test_our_http_client_is_accepted_by_the_sdk_and_limits_its_calls(
    mock_server: MockFactory,
) -> None:
    server = mock_server(quiet())
    limited = http_client(limits=Limits(rpm=600, tpm=1_000_000))
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.url, http_client=limited)
    try:
        await asyncio.gather(
            *(client.chat.completions.create(model=MODEL, messages=MESSAGES) for _ in range(3))
        )
    finally:
        await client.close()
    (route,) = transport_of(limited).statistics()
    assert (route.requests, route.succeeded) == (3, 3)
    assert server_stats(server)["accepted"] == 3


# -- a 429 that names its wait ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_429_is_retried_after_the_wait_its_message_names(
    mock_server: MockFactory,
) -> None:
    # No rate-limit headers and no Retry-After: the 429's text alone names the wait. The
    # server holds one request and refills one per 200 ms; we think we may send far more,
    # so the second of two calls sent together is refused.
    server = mock_server(
        quiet(limits=MockLimits(rpm=300, tpm=10_000_000, burst_seconds=0.2), profile=Profile.none())
    )
    wrapped = wrap(
        openai.AsyncOpenAI(api_key=KEY, base_url=server.url),
        rpm=60_000,
        tpm=10_000_000,
        strategy=QUICK,
    )
    try:
        answers = await asyncio.gather(
            *(wrapped.chat.completions.create(model=MODEL, messages=MESSAGES) for _ in range(2))
        )
    finally:
        await wrapped.close()
    assert all(answer.choices[0].message.content for answer in answers)
    stats = server_stats(server)
    first, refused, retry, *rest = sorted(stats["log"], key=lambda entry: entry["t"])
    assert (first["status"], refused["status"]) == (200, 429)
    # The message named the moment the bucket refills, first + 200 ms, truncated to the
    # millisecond as OpenAI writes it. Our backoff alone would have retried within 50 ms.
    assert retry["t"] >= first["t"] + 0.199
    # That truncation may cost one more refusal of a millisecond or less, never more.
    assert stats["accepted"] == 2 and stats["rejected"] == 1 + len(rest)
    assert len(rest) <= 1
    (route,) = transport_of(wrapped).statistics()
    assert route.retries == 1 + len(rest)
