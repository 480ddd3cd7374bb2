"""The OpenAI Agents SDK on a wrapped default client: every model call of a run paced."""

# mypy: disable-error-code="import-not-found, import-untyped, untyped-decorator"

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from ._support import Mock, assert_every_call_paced, close, need

need("agents")

from agents import (  # noqa: E402
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_default_openai_api,
)
from openai import AsyncOpenAI  # noqa: E402

import ratelimit_llm  # noqa: E402

from .recipes.openai_agents_client import use_rate_limited_client  # noqa: E402


class City(BaseModel):
    name: str
    population: int


@function_tool
def population_of(city: str) -> int:
    """The population of a city."""
    return 1_000


AGENT = Agent(
    name="geographer",
    instructions="Answer briefly.",
    model="gpt-4o-mini",
    tools=[population_of],
    output_type=City,
)


@pytest.fixture
def chat_completions_api() -> Iterator[None]:
    set_default_openai_api("chat_completions")
    yield
    set_default_openai_api("responses")


@pytest.mark.asyncio
async def test_a_run_with_a_tool_is_paced_on_the_responses_api(mock: Mock) -> None:
    client = use_rate_limited_client()
    try:
        results = [await Runner.run(AGENT, f"Describe city number {i}") for i in range(2)]
    finally:
        await close(client)

    assert all(isinstance(result.final_output, City) for result in results)
    calls = sum(len(result.raw_responses) for result in results)
    assert calls == 4  # each run: the tool call, then the answer
    assert_every_call_paced(mock, client, calls=calls)
    assert {entry["endpoint"] for entry in mock.stats()["log"]} == {"responses"}


@pytest.mark.asyncio
async def test_a_streamed_run_is_paced(mock: Mock) -> None:
    client = use_rate_limited_client()
    try:
        result = Runner.run_streamed(AGENT, "Describe a city")
        events = [event async for event in result.stream_events()]
    finally:
        await close(client)

    assert events and isinstance(result.final_output, City)
    assert_every_call_paced(mock, client, calls=len(result.raw_responses))
    assert len(result.raw_responses) == 2


@pytest.mark.asyncio
async def test_a_run_on_chat_completions_is_paced(mock: Mock, chat_completions_api: None) -> None:
    client = use_rate_limited_client()
    try:
        result = await Runner.run(AGENT, "Describe a city")
    finally:
        await close(client)

    assert isinstance(result.final_output, City)
    assert_every_call_paced(mock, client, calls=len(result.raw_responses))
    assert {entry["endpoint"] for entry in mock.stats()["log"]} == {"chat.completions"}


@pytest.mark.asyncio
async def test_an_agent_given_its_own_wrapped_client_is_paced(mock: Mock) -> None:
    wrapped = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)
    agents = [
        Agent(name="r", model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=wrapped)),
        Agent(
            name="c", model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=wrapped)
        ),
    ]
    try:
        results = [await Runner.run(agent, "Say hello") for agent in agents]
    finally:
        await close(wrapped)

    assert all(result.final_output for result in results)
    assert_every_call_paced(mock, wrapped, calls=2)
    assert sorted(entry["endpoint"] for entry in mock.stats()["log"]) == [
        "chat.completions",
        "responses",
    ]
