"""The Redis backend from a URL, through `wrap`, the decorator and the batch runner."""

from __future__ import annotations

import uuid
from pathlib import Path

import openai
import pytest

import ratelimit_llm
from ratelimit_llm import Cost, Limits, batch
from ratelimit_llm.backends import RedisBackend, RedisRateLimiter, backend_from
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits, serve

from ._state import quota_state

pytestmark = pytest.mark.asyncio

KEY = "sk-test-redis-integration-0007"


def _mock(rpm: int) -> MockConfig:
    return MockConfig(
        limits=MockLimits(rpm=rpm, tpm=100_000_000, burst_seconds=1),
        latency=LatencyModel.instant(),
        batch=BatchConfig(validation_seconds=0, finalizing_seconds=0, lines_per_second=100_000),
    )


async def test_two_wrapped_clients_share_one_quota_from_a_url(redis_url: str) -> None:
    """Two clients, each with its own Redis connection (as two processes would have)."""
    namespace = f"wrap-{uuid.uuid4().hex[:8]}"
    async with serve(_mock(rpm=1_200)) as server:  # 20 a second, 20 at once
        backends = [RedisBackend(redis_url, namespace=namespace) for _ in range(2)]
        clients = [
            ratelimit_llm.wrap(
                openai.AsyncOpenAI(api_key=KEY, base_url=server.url, max_retries=0),
                limits=Limits(rpm=1_200, tpm=100_000_000, burst_seconds=1),
                backend=backend,
            )
            for backend in backends
        ]
        try:
            for round_ in range(3):
                for client in clients:
                    for i in range(10):
                        await client.chat.completions.create(
                            model="gpt-4o-mini",
                            messages=[{"role": "user", "content": f"{round_}-{i}"}],
                            max_tokens=4,
                        )
            stats = (await clients[0]._client.get(f"{server.origin}/mock/stats")).json()
        finally:
            for client in clients:
                for limiter in ratelimit_llm.transport_of(client).limiters().values():
                    assert isinstance(limiter, RedisRateLimiter)
                await client.close()
            for backend in backends:
                await backend.aclose()
    # 60 calls against a 20-deep bucket: each client alone would have sent its 30 at once
    # and been refused; sharing, nobody was.
    assert stats["accepted"] == 60
    assert stats["rejected"] == 0


async def test_the_batch_runner_paces_its_calls_on_the_shared_quota(
    redis_url: str, tmp_path: Path
) -> None:
    backend = RedisBackend(redis_url, namespace=f"batch-{uuid.uuid4().hex[:8]}")
    async with serve(_mock(rpm=100_000)) as server:
        client = ratelimit_llm.wrap(
            openai.AsyncOpenAI(api_key=KEY, base_url=server.url),
            rpm=10_000,
            tpm=100_000_000,
            backend=backend,
        )
        bodies = (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{i}"}]}
            for i in range(120)
        )
        try:
            results = [
                result
                async for result in batch.run(
                    client,
                    bodies,
                    journal=tmp_path / "job.db",
                    endpoint="/v1/chat/completions",
                    limits=batch.BatchLimits(max_requests=50),
                    poll=batch.FixedPoll(0.01),
                    spool_dir=tmp_path,
                )
            ]
            limiters = ratelimit_llm.transport_of(client).limiters()
        finally:
            await client.close()
    try:
        assert len({r.custom_id for r in results}) == 120 and all(r.ok for r in results)
        # Uploads, creates and polls name no model: they went through their own shared
        # quota in Redis, and a second process would see what they spent.
        ((_, group),) = limiters
        assert group is None
        scope = next(iter(limiters.values())).scope  # type: ignore[attr-defined]
        spent = (await quota_state(backend, scope)).dims["requests/min"]["taken"]
        assert spent >= 3 + 3 + 3  # 3 batches: upload, create, poll
    finally:
        await backend.aclose()


async def test_a_decorated_coroutine_on_a_redis_quota(redis_url: str) -> None:
    backend = backend_from(redis_url, namespace=f"deco-{uuid.uuid4().hex[:8]}")
    limiter = backend.limiter(Limits(rpm=600, tpm=10_000), scope="summarize")
    calls: list[str] = []

    @limiter.limit(cost=lambda text: Cost(requests=1, tokens=len(text)))
    async def summarize(text: str) -> str:
        calls.append(text)
        return text[:3]

    try:
        assert [await summarize(t) for t in ("alpha", "beta")] == ["alp", "bet"]
        assert limiter.statistics().granted == 2
    finally:
        await limiter.aclose()
        assert isinstance(backend, RedisBackend)
        await backend.aclose()


async def test_closing_a_client_wrapped_with_a_url_flushes_and_closes_its_backend(
    redis_url: str,
) -> None:
    async with serve(_mock(rpm=1_200)) as server:
        client = ratelimit_llm.wrap(
            openai.AsyncOpenAI(api_key=KEY, base_url=server.url, max_retries=0),
            limits=Limits(rpm=1_200, tpm=100_000),
            backend=redis_url,
        )
        transport = ratelimit_llm.transport_of(client)
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=1_000
        )
        (limiter,) = transport.limiters().values()
        assert isinstance(limiter, RedisRateLimiter)
        await client.close()
    backend = transport.pool.backend
    assert isinstance(backend, RedisBackend)
    # The settle and the header correction were applied before the close...
    assert not limiter._pending
    check = RedisBackend(redis_url, namespace=backend.namespace)
    try:
        assert "tokens/min" in (await quota_state(check, limiter.scope)).dims
    finally:
        await check.aclose()
    # ...and the backend made from the URL closed its connections.
    pool = backend.client.connection_pool
    connections = [*pool._available_connections, *pool._in_use_connections]
    assert connections and not any(c.is_connected for c in connections)
