"""Sync clients: ``wrap(OpenAI())`` and ``http_client(sync=True)``, from many threads.

The sync pipeline runs on one loop thread (`SyncRateLimitedTransport`): every thread
waits in the same line for the same buckets. These tests use the wall clock (the loop
thread keeps real time), so they assert only bounds a slow machine cannot break: the
limit holds (never *faster* than the bucket allows), and generous upper bounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import httpx2
import openai
import pytest
from _answers import completion

from ratelimit_llm import Limits, transport_of, wrap
from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

KEY = "sk-test-syncsyncsyncsyncsync0001"


def say(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )


@pytest.mark.parametrize("lib", [httpx2, httpx], ids=["httpx2", "httpx"])
def test_many_threads_share_one_line_and_the_limit_holds(lib: Any) -> None:
    sent: list[float] = []
    lock = threading.Lock()

    def handler(request: Any) -> Any:
        with lock:
            sent.append(time.monotonic())
        return lib.Response(200, json=completion())

    client = openai.OpenAI(
        api_key=KEY,
        base_url="http://api.test/v1",
        http_client=lib.Client(transport=lib.MockTransport(handler)),
    )
    # 20 at once, then 20 a second: 64 calls from 8 threads need at least 2.2 s.
    wrapped = wrap(client, limits=Limits(rpm=1_200, burst_seconds=1))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: say(wrapped), range(64)))
    elapsed = time.monotonic() - start
    assert all(answer.choices[0].message.content == "ok" for answer in answers)
    assert len(sent) == 64
    assert elapsed >= 2.2 - 0.05
    assert elapsed < 60
    # Over any second, never more than the bucket allows: 20 at once + 20 refilled.
    sent.sort()
    for index, at in enumerate(sent):
        within = sum(1 for other in sent[index:] if other < at + 1.0)
        assert within <= 40 + 1, (index, within)
    (stats,) = transport_of(wrapped).statistics()
    assert (stats.requests, stats.succeeded, stats.settled) == (64, 64, 64)


def test_max_retries_on_a_sync_client_is_the_limiters_budget() -> None:
    sent: list[Any] = []

    def handler(request: Any) -> Any:
        sent.append(request)
        return httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})

    client = openai.OpenAI(
        api_key=KEY,
        base_url="http://api.test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    wrapped = wrap(client, limits=Limits(rpm=600, burst_seconds=60))
    with pytest.raises(openai.InternalServerError):
        say(wrapped.with_options(max_retries=1))
    assert len(sent) == 2


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    config = MockConfig(
        limits=MockLimits(rpm=600, tpm=1_000_000), latency=LatencyModel.instant(), seed=1
    )
    with mock_server_process(config) as url:
        yield url


def test_a_sync_client_against_the_mock_server_reads_headers_and_settles_streams(
    mock_url: str,
) -> None:
    wrapped = wrap(openai.OpenAI(api_key=KEY, base_url=mock_url), rpm=600, tpm=1_000_000)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: say(wrapped), range(12)))
    stream = wrapped.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count to five"}],
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk for chunk in stream]
    assert chunks and chunks[-1].usage is not None
    (limiter,) = [
        limiter for (_, model), limiter in transport_of(wrapped).limiters().items() if model
    ]
    stats = limiter.statistics()
    # The server's headers were read (slow start is over: the depth is known) and
    # every call, the stream included, was settled against its usage.
    assert stats.probing == ()
    assert stats.settled == 13
    assert stats.actual["tokens/min"] > 0
    wrapped.close()
