"""LiteLLM on a wrapped client, or on rate-limited sessions: every call paced."""

# mypy: disable-error-code="import-not-found, import-untyped"

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel

from ratelimit_llm.mock import FaultPlan, FaultRule

from ._support import Mock, assert_every_call_paced, close, generous, need

need("litellm")

import litellm  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

import ratelimit_llm  # noqa: E402

from .recipes.litellm_calls import ask, pace_every_litellm_call, rate_limited_client  # noqa: E402

MESSAGES = [{"role": "user", "content": "Describe a city"}]


class City(BaseModel):
    name: str
    population: int


@pytest.mark.asyncio
async def test_calls_through_a_wrapped_client_are_paced(mock: Mock) -> None:
    client = rate_limited_client()
    try:
        answers = [await ask(client, f"Question {i}") for i in range(3)]
    finally:
        await close(client)

    assert all(answers)
    assert_every_call_paced(mock, client, calls=3)
    assert client.max_retries == 0


@pytest_asyncio.fixture
async def sessions() -> AsyncIterator[tuple[Any, Any]]:
    pace_every_litellm_call()
    yield litellm.aclient_session, litellm.client_session
    await close(litellm.aclient_session, litellm.client_session)
    litellm.aclient_session = litellm.client_session = None


@pytest.mark.asyncio
async def test_every_call_is_paced_through_the_sessions(
    mock: Mock, sessions: tuple[Any, Any]
) -> None:
    async_session, sync_session = sessions
    plain = await litellm.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES)
    parsed = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=MESSAGES, response_format=City
    )
    stream = await litellm.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    sync = litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES)

    assert plain.choices[0].message.content and sync.choices[0].message.content
    assert City.model_validate_json(parsed.choices[0].message.content)
    assert chunks
    assert_every_call_paced(mock, async_session, sync_session, calls=4)
    assert ratelimit_llm.transport_of(sync_session).statistics()[0].requests == 1


@pytest.mark.asyncio
async def test_retries_left_on_in_litellm_double_nothing(start_mock: Any) -> None:
    # Six connection resets: the limiter's six attempts, then LiteLLM's client retries
    # (it set max_retries=2 on our client): that retry is sent once, not six more times.
    faults = FaultPlan((FaultRule.parse("connection_reset@1-6"),))
    mock = start_mock(dataclasses.replace(generous(), faults=faults))
    client = ratelimit_llm.wrap(
        AsyncOpenAI(),
        rpm=500,
        tpm=200_000,
        strategy=ratelimit_llm.AdaptiveBackoff(base=0.01, rng=random.Random(0)),
    )
    try:
        response = await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, client=client
        )
    finally:
        await close(client)

    assert response.choices[0].message.content
    stats = mock.stats()
    assert stats["requests"] == 7 == ratelimit_llm.transport_of(client).statistics()[0].requests
    assert stats["faults"] == {"connection_reset": 6}
    assert stats["retry_counts"] == {"0": 6, "1": 1}
