"""token-throttle's Redis mode on one hot bucket, for ``benchmarks/redis_hot_bucket.py``.

Run by the interpreter of ``benchmarks/.venv-token-throttle`` (token-throttle needs
Python >= 3.12; ``benchmarks/setup_token_throttle.sh`` installs it with ``redis``). It
imports only the standard library, ``redis`` and ``token_throttle``.

Protocol. stdin carries one JSON job::

    {"redis_url": "redis://127.0.0.1:PORT/0", "key_prefix": "...", "workers": 1000,
     "seconds": 10.0, "grace": 10.0, "loads": [{"name": "paced", "rate": 2000}, ...],
     "round_trip_calls": 300, "round_trip_seconds": 3.0}

stdout carries one JSON line: ``{"round_trip_us": ..., "loads": [{"name", "rate",
"acquires", "seconds", "latencies_ms": [...], "errors": {...}, "unfinished"}, ...]}``.

The loops are those of ``redis_hot_bucket.py`` (same pacing, same bounds, same timing):
each of ``workers`` tasks acquires ``{"requests": 1, "tokens": 1000}`` and refunds to
``{"requests": 1, "tokens": 700}``, on one quota far above the load, until ``seconds``
have passed (or its count bound is reached); only ``acquire_capacity`` is timed. Tasks
still running ``grace`` seconds after that are cancelled and counted as unfinished.
The Redis client has a ``BlockingConnectionPool`` of 64 connections, as token-throttle's
docs advise for bounded deployments (and as ratelimit-llm's backend uses).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from token_throttle import (  # type: ignore[import-not-found]
    PerModelConfig,
    Quota,
    RateLimiter,
    RedisBackendBuilder,
    UsageQuotas,
)

MODEL = "gpt-4o-mini"
COST = {"requests": 1, "tokens": 1_000}
ACTUAL = {"requests": 1, "tokens": 700}
#: Far above any load this machine can offer: nobody waits for refill.
AMPLE = {"requests": 600_000_000.0, "tokens": 600_000_000_000.0}
#: Each task's count bound when unpaced (the wall-clock bound ends runs long before).
UNPACED_CAP = 100_000


def make_limiter(client: aioredis.Redis, key_prefix: str) -> Any:
    quotas = UsageQuotas(
        [Quota(metric=metric, limit=limit, per_seconds=60) for metric, limit in AMPLE.items()]
    )
    backend = RedisBackendBuilder(client, key_prefix=key_prefix)
    return RateLimiter(PerModelConfig(quotas=quotas), backend=backend)


async def round_trip(limiter: Any, calls: int, seconds: float) -> float:
    """Mean microseconds of one ``acquire_capacity`` alone (its refund untimed)."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    for _ in range(calls):
        if time.monotonic() >= deadline:
            break
        began = time.perf_counter()
        reservation = await limiter.acquire_capacity(COST, model=MODEL)
        samples.append(time.perf_counter() - began)
        await limiter.refund_capacity(ACTUAL, reservation)
    return sum(samples) / len(samples) * 1e6 if samples else math.nan


async def drive(
    limiter: Any, workers: int, seconds: float, rate: float, grace: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    interval = workers / rate if rate > 0 else 0.0
    cap = math.ceil(seconds / interval) + 1 if interval else UNPACED_CAP
    start = loop.time()
    deadline = start + seconds
    ended = start

    async def worker(number: int) -> None:
        nonlocal ended
        due = start + interval * number / workers
        for _ in range(cap):
            if interval:
                if due >= deadline:
                    break
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                due += interval
            else:
                await asyncio.sleep(0)  # let the other tasks run, as a real call would
            if loop.time() >= deadline:
                break
            began = time.perf_counter()
            try:
                reservation = await limiter.acquire_capacity(COST, model=MODEL)
            except Exception as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - began)
            try:
                await limiter.refund_capacity(ACTUAL, reservation)
            except Exception as error:
                name = f"refund:{type(error).__name__}"
                errors[name] = errors.get(name, 0) + 1
        ended = max(ended, loop.time())

    tasks = [asyncio.ensure_future(worker(n)) for n in range(workers)]
    try:
        async with asyncio.timeout(seconds + grace):
            await asyncio.gather(*tasks)
    except TimeoutError:
        pass
    finally:
        unfinished = sum(1 for task in tasks if not task.done())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if unfinished:
        ended = loop.time()
    return {
        "acquires": len(latencies),
        "seconds": ended - start,
        "latencies_ms": [round(value * 1e3, 4) for value in latencies],
        "errors": errors,
        "unfinished": unfinished,
    }


async def main() -> None:
    job = json.loads(sys.stdin.readline())
    pool = aioredis.BlockingConnectionPool.from_url(
        job["redis_url"], max_connections=64, timeout=None
    )
    client = aioredis.Redis.from_pool(pool)
    output: dict[str, Any] = {"loads": []}
    try:
        prefix = job["key_prefix"]
        limiter = make_limiter(client, f"{prefix}-rt")
        output["round_trip_us"] = await round_trip(
            limiter, int(job["round_trip_calls"]), float(job["round_trip_seconds"])
        )
        await limiter.aclose()
        for number, load in enumerate(job["loads"]):
            # A quota of its own per load, so each starts on a fresh, full bucket.
            limiter = make_limiter(client, f"{prefix}-{number}")
            result = await drive(
                limiter,
                int(job["workers"]),
                float(job["seconds"]),
                float(load["rate"]),
                float(job["grace"]),
            )
            await limiter.aclose()
            output["loads"].append({"name": load["name"], "rate": load["rate"], **result})
    finally:
        await client.aclose()
    sys.stdout.write(json.dumps(output) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
