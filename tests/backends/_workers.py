"""A worker process for the multi-process tests: one wrapped client on a shared quota.

Module-level, so that multiprocessing's spawn can import it in the child.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai

from ratelimit_llm import Limits, wrap
from ratelimit_llm.backends import RedisBackend

API_KEY = "sk-test-shared-quota-0001"
NAMESPACE = "multiprocess"


def run_worker(
    origin: str, redis_url: str, limits: Limits, calls: int, start_at: float, queue: Any
) -> None:
    """Make ``calls`` chat calls through a client sharing ``limits`` over Redis."""
    queue.put(asyncio.run(_work(origin, redis_url, limits, calls, start_at)))


async def _work(
    origin: str, redis_url: str, limits: Limits, calls: int, start_at: float
) -> dict[str, Any]:
    # A generous timeout: on a shared machine a starved process may read a reply late,
    # and outages are tested elsewhere (test_redis_faults.py).
    backend = RedisBackend(redis_url, namespace=NAMESPACE, timeout=5.0)
    client = wrap(
        openai.AsyncOpenAI(api_key=API_KEY, base_url=f"{origin}/v1", max_retries=0),
        limits=limits,
        backend=backend,
    )
    ok = failed = 0
    gate = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        nonlocal ok, failed
        async with gate:
            try:
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"say hello {i}"}],
                    max_tokens=8,
                )
                ok += 1
            except openai.OpenAIError:
                failed += 1

    # A long-running worker has warm connections; a cold start would open dozens at the
    # first burst, and calls granted together would reach the server spread out.
    await asyncio.gather(*(client.models.list() for _ in range(16)))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(calls))), 120)
        finished_at = time.time()
    finally:
        await client.close()  # the last settles reach Redis first
        await backend.aclose()
    return {"ok": ok, "failed": failed, "finished_at": finished_at}
