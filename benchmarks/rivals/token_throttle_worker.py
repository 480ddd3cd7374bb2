"""Drive one benchmark scenario through token-throttle, in an interpreter that has it.

token-throttle needs Python >= 3.12 while ratelimit-llm (and so the benchmark harness)
runs on 3.11, so `benchmarks/rivals/_token_throttle.py` runs this script with the
interpreter of ``benchmarks/.venv-token-throttle`` (made by
``benchmarks/setup_token_throttle.sh``). It imports only the standard library,
``openai`` and ``token_throttle``: never ratelimit_llm, which need not be installed here.

Protocol. stdin carries one JSON job on its first line::

    {"base_url": ..., "keys": [...], "rpm": 600 or null, "tpm": 60000 or null,
     "max_seconds": 120.0, "calls": [{"index", "at", "endpoint", "body"}, ...]}

and optionally ``"burst_seconds": 1`` (the quotas become ``limit x burst / 60`` per
``burst`` seconds: the same rate, a burst-second capacity), ``"redis_url"`` with
``"key_prefix"`` (token-throttle's Redis backend instead of the memory one, so that
several workers share one quota), and ``"wait_for_go": true`` (after "ready", wait for
a line ``go`` on stdin before starting the clock, so that several workers start
together; end of input without it means stop).

stdout carries JSON lines: ``{"event": "ready"}`` once set up (the run's clock starts
then, or at "go"), one ``{"event": "call", "index", "ok", "error", "latency", "estimated",
"actual"}`` per finished call, and a final ``{"event": "summary", ...}`` with the
latency list, counts, errors by name, the CPU seconds this process spent on the run
(``time.process_time``) and the token totals.

Each call is started at its arrival time (seconds after "ready") and goes through
token-throttle as its README shows: a `RateLimiter` over the memory backend with
quotas for requests and tokens per 60 s, per model family; ``reserve()`` an estimate
(prompt characters / 4 + ``n x max_tokens``; tiktoken is not used because it downloads
its tables at run time), make the call with the SDK's default retries, then
``set_actual_usage`` from ``response.usage``. A call that fails keeps its whole
reservation (token-throttle's default). With several keys, calls are dealt
round-robin to one limiter and client per key. The run stops at ``max_seconds``.

With ``redis_url``, the limiter's backend is ``RedisBackendBuilder`` over a
``redis.asyncio`` client with a ``BlockingConnectionPool`` of 64 connections (as
token-throttle's docs advise), keys under ``key_prefix``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import openai
from chars_estimate import (  # type: ignore[import-not-found]  # this script's folder
    estimate_tokens,
)
from token_throttle import (  # type: ignore[import-not-found]
    MemoryBackendBuilder,
    PerModelConfig,
    Quota,
    RateLimiter,
    RedisBackendBuilder,
    UsageQuotas,
    openai_model_family_getter,
)

#: As the harness: no single call takes anywhere near this; a hung call fails instead.
CALL_TIMEOUT = 60.0


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def estimate(endpoint: str, body: dict[str, Any]) -> int:
    """Prompt characters / 4 (rounded up) + ``n x max_tokens`` (nothing when absent)."""
    tokens: int = estimate_tokens(endpoint, body, None)
    return tokens


def error_name(error: BaseException) -> str:
    """Named as the harness names errors, so tables read the same for every contender."""
    if isinstance(error, openai.APIStatusError):
        return f"{type(error).__name__}({error.status_code})"
    return type(error).__name__


async def perform(client: openai.AsyncOpenAI, endpoint: str, body: dict[str, Any]) -> int:
    """Send one call; returns the tokens the server reported using."""
    if endpoint == "embeddings":
        embedding = await client.embeddings.create(**body)
        return int(embedding.usage.total_tokens)
    if body.get("stream"):
        used = 0
        stream = await client.chat.completions.create(**body)
        async for chunk in stream:
            if chunk.usage is not None:
                used = chunk.usage.total_tokens
        return used
    completion = await client.chat.completions.create(**body)
    return completion.usage.total_tokens if completion.usage else 0


def make_limiter(rpm: float | None, tpm: float | None, burst: int = 60, backend: Any = None) -> Any:
    quotas = [
        Quota(metric=metric, limit=limit * burst / 60, per_seconds=burst)
        for metric, limit in (("requests", rpm), ("tokens", tpm))
        if limit is not None
    ]
    usage_quotas = UsageQuotas(quotas) if quotas else UsageQuotas.unlimited()
    configs: dict[str, Any] = {}

    def config(model: str) -> Any:
        # Dated snapshots of a model share one family's buckets, as on OpenAI. Built once
        # per model name, as a user would.
        if model not in configs:
            family = openai_model_family_getter(model)
            configs[model] = PerModelConfig(quotas=usage_quotas, model_family=family)
        return configs[model]

    return RateLimiter(config, backend=backend or MemoryBackendBuilder())


class Run:
    def __init__(self, job: dict[str, Any]) -> None:
        self.rpm: float | None = job.get("rpm")
        self.tpm: float | None = job.get("tpm")
        self.max_seconds = float(job.get("max_seconds", 120.0))
        burst = job.get("burst_seconds")
        self.burst = 60 if burst is None else max(1, round(float(burst)))
        self.redis_url: str | None = job.get("redis_url")
        self.key_prefix = str(job.get("key_prefix", "token-throttle-bench"))
        self.wait_for_go = bool(job.get("wait_for_go", False))
        self.redis: Any = None
        self.calls: list[dict[str, Any]] = sorted(job["calls"], key=lambda c: float(c["at"]))
        self.clients = [
            openai.AsyncOpenAI(
                api_key=key, base_url=job["base_url"], timeout=CALL_TIMEOUT
            )  # default max_retries (2)
            for key in job["keys"]
        ]
        self.limiters: list[Any] = []
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.estimated = 0.0
        self.actual = 0.0
        self.start = 0.0

    def usage(self, tokens: float) -> dict[str, float]:
        """A usage mapping over exactly the metrics that have quotas."""
        usage: dict[str, float] = {}
        if self.rpm is not None:
            usage["requests"] = 1
        if self.tpm is not None:
            usage["tokens"] = tokens
        return usage

    def backend(self, lane: int) -> Any:
        """Memory (the default), or Redis with one key prefix per key (lane)."""
        if self.redis is None:
            return None
        return RedisBackendBuilder(self.redis, key_prefix=f"{self.key_prefix}-{lane}")

    async def close(self) -> None:
        for limiter in self.limiters:
            await limiter.aclose()
        for client in self.clients:
            await client.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def one(self, call: dict[str, Any], lane: int) -> None:
        loop = asyncio.get_running_loop()
        endpoint: str = call["endpoint"]
        body: dict[str, Any] = call["body"]
        cost = estimate(endpoint, body)
        began = loop.time()
        try:
            limiter = self.limiters[lane]
            async with limiter.reserve(self.usage(cost), model=body["model"]) as handle:
                used = await perform(self.clients[lane], endpoint, body)
                handle.set_actual_usage(self.usage(used))
        except Exception as error:
            name = error_name(error)
            self.errors[name] = self.errors.get(name, 0) + 1
            emit(
                {
                    "event": "call",
                    "index": call["index"],
                    "ok": False,
                    "error": name,
                    "latency": loop.time() - began,
                    "estimated": 0,
                    "actual": 0,
                }
            )
        else:
            latency = loop.time() - began
            self.latencies.append(latency)
            self.estimated += cost
            self.actual += used
            emit(
                {
                    "event": "call",
                    "index": call["index"],
                    "ok": True,
                    "error": None,
                    "latency": latency,
                    "estimated": cost,
                    "actual": used,
                }
            )

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        # Limiters belong to the loop they are built in.
        if self.redis_url is not None:
            import redis.asyncio as aioredis  # only in Redis mode

            pool = aioredis.BlockingConnectionPool.from_url(
                self.redis_url, max_connections=64, timeout=None
            )
            self.redis = aioredis.Redis.from_pool(pool)
        self.limiters = [
            make_limiter(self.rpm, self.tpm, self.burst, self.backend(lane))
            for lane in range(len(self.clients))
        ]
        emit({"event": "ready"})
        if self.wait_for_go:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() != "go":
                await self.close()
                return {"event": "summary", "calls": len(self.calls), "aborted": True}
        cpu_start = time.process_time()
        self.start = loop.time()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(self.max_seconds):
                for position, call in enumerate(self.calls):
                    delay = self.start + float(call["at"]) - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    lane = position % len(self.clients)
                    tasks.append(asyncio.ensure_future(self.one(call, lane)))
                await asyncio.gather(*tasks)
        except TimeoutError:
            pass
        finally:
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        wall = loop.time() - self.start
        await self.close()
        return {
            "event": "summary",
            "calls": len(self.calls),
            "completed": len(self.latencies),
            "failed": sum(self.errors.values()),
            "unfinished": len(self.calls) - len(tasks) + len(unfinished),
            "errors": self.errors,
            "latencies": self.latencies,
            "wall_seconds": wall,
            "cpu_seconds": time.process_time() - cpu_start,
            "tokens_estimated": self.estimated,
            "tokens_actual": self.actual,
        }


async def main() -> None:
    job = json.loads(sys.stdin.readline())
    emit(await Run(job).run())


if __name__ == "__main__":
    asyncio.run(main())
