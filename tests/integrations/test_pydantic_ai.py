"""A pydantic-ai agent on a wrapped client: every request of its loop paced."""

# mypy: disable-error-code="import-not-found, import-untyped, untyped-decorator"

from __future__ import annotations

from typing import cast

import pytest

from ._support import Mock, assert_every_call_paced, close, need

need("pydantic_ai")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel  # noqa: E402

from .recipes.pydantic_ai_agent import City, city_agent, rate_limited_provider  # noqa: E402


@pytest.mark.asyncio
async def test_structured_output_and_tool_calls_are_paced(mock: Mock) -> None:
    agent = city_agent()
    looked_up: list[str] = []

    @agent.tool_plain
    def population_of(city: str) -> int:
        """The population of a city."""
        looked_up.append(city)
        return 1_000

    client = cast(OpenAIChatModel, agent.model).client
    try:
        results = [await agent.run(f"Describe city number {i}") for i in range(2)]
    finally:
        await close(client)

    assert all(isinstance(result.output, City) for result in results)
    assert len(looked_up) == 2  # each run: a call to the tool, then to the output tool
    calls = sum(result.usage.requests for result in results)
    assert calls == 4
    assert_every_call_paced(mock, client, calls=calls)


@pytest.mark.asyncio
async def test_the_responses_api_and_its_streams_are_paced(mock: Mock) -> None:
    provider = rate_limited_provider()
    agent = Agent(OpenAIResponsesModel("gpt-4o-mini", provider=provider))
    try:
        answer = await agent.run("Say hello")
        async with agent.run_stream("Stream a sentence") as streamed:
            text = await streamed.get_output()
    finally:
        await close(provider.client)

    assert answer.output and text
    assert_every_call_paced(mock, provider.client, calls=2)
