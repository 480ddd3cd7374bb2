"""LangChain's ChatOpenAI on rate-limited HTTP clients: every call, sync and async, paced."""

# mypy: disable-error-code="import-not-found, import-untyped, untyped-decorator"

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal

import pytest
import pytest_asyncio

from ._support import Mock, assert_every_call_paced, close, close_now, limiter_requests, need

need("langchain_openai")

from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

import ratelimit_llm  # noqa: E402

from .recipes.langchain_chat import rate_limited_chat  # noqa: E402


class City(BaseModel):
    name: str
    population: int


Method = Literal["json_schema", "function_calling", "json_mode"]


@tool
def population_of(city: str) -> int:
    """The population of a city."""
    return 1_000


@pytest_asyncio.fixture
async def llm(mock: Mock) -> AsyncIterator[ChatOpenAI]:
    llm = rate_limited_chat()
    yield llm
    await close(llm.http_client, llm.http_async_client)


def test_sync_calls_go_through_the_sync_limiter(mock: Mock) -> None:
    llm = rate_limited_chat()
    try:
        assert isinstance(llm.invoke("Say hello").content, str)
        assert len(llm.batch(["One", "Two", "Three"])) == 3
        assert "".join(str(chunk.content) for chunk in llm.stream("Stream a sentence"))
    finally:
        close_now(llm.http_client)

    assert_every_call_paced(mock, llm.http_client, calls=5)
    assert limiter_requests(llm.http_async_client) == 0


@pytest.mark.asyncio
async def test_async_calls_go_through_the_async_limiter(mock: Mock, llm: ChatOpenAI) -> None:
    assert isinstance((await llm.ainvoke("Say hello")).content, str)
    assert len(await llm.abatch(["One", "Two", "Three"])) == 3
    assert [chunk async for chunk in llm.astream("Stream a sentence")]

    assert_every_call_paced(mock, llm.http_async_client, calls=5)
    assert limiter_requests(llm.http_client) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
async def test_structured_output_is_paced(mock: Mock, llm: ChatOpenAI, method: Method) -> None:
    structured = llm.with_structured_output(City, method=method)
    # json_mode sends no schema: the prompt carries it, as it must on the real API.
    prompt = f"Name a city. Answer in JSON with this schema: {json.dumps(City.model_json_schema())}"
    cities = [await structured.ainvoke(prompt) for _ in range(3)]

    assert all(isinstance(city, City) for city in cities)
    assert_every_call_paced(mock, llm.http_async_client, calls=3)


@pytest.mark.asyncio
async def test_tool_calls_and_their_streams_are_paced(mock: Mock, llm: ChatOpenAI) -> None:
    with_tools = llm.bind_tools([population_of])
    message = await with_tools.ainvoke("How many people live in Lyon?")
    assert message.tool_calls[0]["name"] == "population_of"
    chunks = [chunk async for chunk in with_tools.astream("And in Lille?")]
    assert sum(chunks[1:], chunks[0]).tool_calls[0]["name"] == "population_of"

    assert_every_call_paced(mock, llm.http_async_client, calls=2)


@pytest.mark.asyncio
async def test_a_wrapped_root_async_client_alone_is_bypassed(mock: Mock) -> None:
    # The pitfall the doc warns of: LangChain builds an AsyncOpenAI of its own anyway.
    wrapped = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)
    llm = ChatOpenAI(model="gpt-4o-mini", root_async_client=wrapped, max_retries=0)
    try:
        await llm.ainvoke("Say hello")
    finally:
        await close(wrapped, llm.root_async_client, llm.root_client)

    assert limiter_requests(wrapped) == 0
    assert mock.stats()["requests"] == 1


@pytest.mark.asyncio
async def test_a_wrapped_client_given_as_async_client_too_is_paced(mock: Mock) -> None:
    # The other way in: LangChain builds no client of its own when async_client is given.
    wrapped = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)
    llm = ChatOpenAI(
        model="gpt-4o-mini", async_client=wrapped.chat.completions, root_async_client=wrapped
    )
    try:
        await llm.ainvoke("Say hello")
        await llm.with_structured_output(City).ainvoke("Name a city")  # root_async_client
    finally:
        await close(wrapped, llm.root_client)

    assert_every_call_paced(mock, wrapped, calls=2)
