"""Contenders: the ways of driving the same workload that a benchmark compares.

A contender gets the server's URL, the keys and the limits it is told, and then makes
one logical call at a time as the runner hands them out (the runner owns arrival times
and measures latency, so every contender is timed the same way). Rival libraries are
contenders too; they live in ``benchmarks/`` because their libraries come from the
``bench`` extra, and nothing in this package imports them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import openai

from .._line import lane
from .._strategy import Strategy
from .._types import Limits
from .._wrap import transport_of, wrap
from ._workload import Call, Scenario

__all__ = ["BareSDK", "Contender", "RateLimitLLM", "RunContext", "builtin_contenders", "perform"]

#: No single call of the workloads takes anywhere near this; a hung call fails instead.
CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunContext:
    """What a contender knows when a run starts."""

    base_url: str
    keys: tuple[str, ...]
    #: The limits it is told, per key.
    told: Limits
    scenario: Scenario


class Contender:
    """Base class: override `start`, `call` and, if needed, `stop`."""

    #: Short name shown in tables and plots.
    name: str = "contender"

    def skip_reason(self, scenario: Scenario) -> str | None:
        """Why this contender sits a scenario out, or ``None`` to run it."""
        return None

    async def start(self, context: RunContext) -> None:
        """Build clients and limiters for one run."""

    async def call(self, call: Call) -> None:
        """Make one logical call (retries included); raise if it finally failed."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Release what `start` built."""

    def token_accounting(self) -> tuple[float, float] | None:
        """Tokens this contender estimated vs what the calls really used, if it knows."""
        return None

    def extra_cpu_seconds(self) -> float:
        """CPU spent for this run outside the benchmark's process (asked after `stop`).

        A contender that drives its calls from a worker process reports the worker's
        CPU here, so that "client CPU per 1,000 calls" compares like with like.
        """
        return 0.0


async def perform(client: openai.AsyncOpenAI, call: Call) -> int:
    """Send ``call`` through ``client``; returns the tokens the server reported using."""
    if call.endpoint == "embeddings":
        embedding = await client.embeddings.create(**call.body)
        return embedding.usage.total_tokens
    if call.body.get("stream"):
        used = 0
        stream = await client.chat.completions.create(**call.body)
        async for chunk in stream:
            if chunk.usage is not None:
                used = chunk.usage.total_tokens
        return used
    completion = await client.chat.completions.create(**call.body)
    return completion.usage.total_tokens if completion.usage else 0


def sdk_clients(context: RunContext, *, max_retries: int = 2) -> list[openai.AsyncOpenAI]:
    """One plain SDK client per key."""
    return [
        openai.AsyncOpenAI(
            api_key=key, base_url=context.base_url, max_retries=max_retries, timeout=CALL_TIMEOUT
        )
        for key in context.keys
    ]


class BareSDK(Contender):
    """The openai SDK as it comes: no pacing, its default retries (2, with backoff).

    With several keys it round-robins over one client per key, as users often do.
    """

    name = "openai-sdk"

    def __init__(self) -> None:
        self._clients: list[openai.AsyncOpenAI] = []
        self._next: Callable[[], openai.AsyncOpenAI] = lambda: self._clients[0]

    async def start(self, context: RunContext) -> None:
        self._clients = sdk_clients(context)
        cycle = itertools.cycle(self._clients)
        self._next = lambda: next(cycle)

    async def call(self, call: Call) -> None:
        await perform(self._next(), call)

    async def stop(self) -> None:
        for client in self._clients:
            await client.close()


class RateLimitLLM(Contender):
    """This library: ``wrap(AsyncOpenAI(...), limits=told, strategy=...)``.

    With several keys the strategy gets a ``KeyRotation`` over them in front. When the
    scenario says whose dialect the server speaks (`Scenario.provider`), ``wrap`` is
    told, as a user would name the provider of a proxy or a local server.
    """

    def __init__(
        self,
        name: str,
        strategy: Callable[[RunContext], Strategy | None] = lambda context: None,
        *,
        skip: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self._strategy = strategy
        self._skip = dict(skip or {})
        self._client: openai.AsyncOpenAI | None = None

    def skip_reason(self, scenario: Scenario) -> str | None:
        return self._skip.get(scenario.name)

    async def start(self, context: RunContext) -> None:
        from ..strategies import AdaptiveBackoff, KeyRotation

        strategy = self._strategy(context)
        if len(context.keys) > 1:
            rotation = KeyRotation(list(context.keys))
            strategy = rotation + (strategy or AdaptiveBackoff())
        base = openai.AsyncOpenAI(
            api_key=context.keys[0], base_url=context.base_url, timeout=CALL_TIMEOUT
        )
        self._client = wrap(
            base, limits=context.told, strategy=strategy, provider=context.scenario.provider
        )

    async def call(self, call: Call) -> None:
        assert self._client is not None
        if call.lane is None:
            await perform(self._client, call)
            return
        with lane(call.lane):
            await perform(self._client, call)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()

    def token_accounting(self) -> tuple[float, float] | None:
        if self._client is None:
            return None
        stats = transport_of(self._client).statistics()
        estimated = sum(s.tokens_estimated for s in stats)
        actual = sum(s.tokens_actual for s in stats)
        return estimated, actual


def builtin_contenders() -> list[Contender]:
    """The contenders that need nothing beyond this package."""
    from ..strategies import AdaptiveBackoff, FixedDelay

    def fixed(context: RunContext) -> Strategy:
        # The seed article's batch_delay: calls spaced at the request rate, on top of
        # the bucket (which still holds TPM).
        rpm = (context.told.rpm or 60.0) * len(context.keys)
        return FixedDelay(60.0 / rpm) + AdaptiveBackoff()

    return [
        BareSDK(),
        RateLimitLLM("ratelimit-llm"),
        RateLimitLLM(
            "ratelimit-llm+fixed-delay",
            fixed,
            skip={"burst": "a fixed pause is not meant for thousands of calls at once"},
        ),
    ]
