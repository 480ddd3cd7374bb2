"""The rival "sdk+aiolimiter": the openai SDK paced by `aiolimiter.AsyncLimiter`.

This is how aiolimiter is commonly put in front of OpenAI calls: one
``AsyncLimiter(rpm, 60)`` counting *requests per minute only* (tokens are not
metered; holding TPM too would take a second, token-weighted limiter acquired in
sequence, which few do), and the SDK's own retries (``max_retries=2``, with its
backoff and ``Retry-After`` handling) for the 429s that still happen. With several
keys it keeps one limiter and one client per key and round-robins over them.

Faithfulness: this *is* aiolimiter (the ``bench`` extra installs it) used exactly as
its README shows (``async with limiter:`` around the call); nothing is re-implemented.
Its bucket starts empty, so a full minute's worth of requests may go out at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import openai
from aiolimiter import AsyncLimiter

from ratelimit_llm.bench import Call, Contender, RunContext, perform
from ratelimit_llm.bench._contenders import sdk_clients

__all__ = ["SDKAioLimiter"]


class SDKAioLimiter(Contender):
    """``async with AsyncLimiter(told.rpm, 60): await client...create(...)``, per key."""

    name = "sdk+aiolimiter"

    def __init__(self) -> None:
        self._clients: list[openai.AsyncOpenAI] = []
        # ``None`` when no RPM is told: nothing to pace by, the SDK goes unpaced.
        self._lanes: Iterator[tuple[openai.AsyncOpenAI, AsyncLimiter | None]] = iter(())

    async def start(self, context: RunContext) -> None:
        # Built inside the running loop: an AsyncLimiter belongs to the loop that uses it.
        self._clients = sdk_clients(context, max_retries=2)
        rpm = context.told.rpm
        lanes = [
            (client, AsyncLimiter(rpm, 60) if rpm is not None else None) for client in self._clients
        ]
        self._lanes = itertools.cycle(lanes)

    async def call(self, call: Call) -> None:
        client, limiter = next(self._lanes)
        if limiter is None:
            await perform(client, call)
            return
        async with limiter:
            await perform(client, call)

    async def stop(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients = []
