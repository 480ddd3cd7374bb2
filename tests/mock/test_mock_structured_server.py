"""Structured output, tools and the Responses helpers over a real loopback socket.

One case per feature against uvicorn on 127.0.0.1, with the SDK's default HTTP client:
what in-process tests cannot show is that the framing survives a real connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ratelimit_llm.mock import MockLimits, MockServer, Profile, serve

from ._support import KEY, FakeClock, instant
from .test_mock_structured import ASK, RESPONSE_TOOLS, TOOLS, GetWeather, Report


@asynccontextmanager
async def _served(**changes: object) -> AsyncIterator[MockServer]:
    clock = FakeClock()
    config = instant(limits=MockLimits(rpm=500, tpm=200_000), **changes)
    async with serve(config, host="127.0.0.1", port=0, clock=clock, sleep=clock.sleep) as server:
        yield server


@asynccontextmanager
async def _client() -> AsyncIterator[tuple[MockServer, openai.AsyncOpenAI]]:
    async with (
        _served() as server,
        openai.AsyncOpenAI(api_key=KEY, base_url=server.url, max_retries=0) as client,
    ):
        yield server, client


@pytest.mark.asyncio
async def test_parse_over_a_socket() -> None:
    async with _client() as (_, client):
        raw = await client.chat.completions.with_raw_response.parse(
            model="gpt-4o", messages=ASK, response_format=Report
        )
        assert raw.headers["x-ratelimit-remaining-requests"] == "499"
        assert isinstance(raw.parse().choices[0].message.parsed, Report)


@pytest.mark.asyncio
async def test_tool_round_trip_over_a_socket() -> None:
    async with _client() as (_, client):
        messages: list[ChatCompletionMessageParam] = list(ASK)
        first = await client.chat.completions.parse(model="gpt-4o", messages=messages, tools=TOOLS)
        (call,) = first.choices[0].message.tool_calls or []
        assert isinstance(call.function.parsed_arguments, GetWeather)
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
        second = await client.chat.completions.create(
            model="gpt-4o", messages=messages, tools=TOOLS
        )
        assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


@pytest.mark.asyncio
async def test_streamed_tool_call_over_a_socket() -> None:
    async with (
        _client() as (_, client),
        client.chat.completions.stream(model="gpt-4o", messages=ASK, tools=TOOLS) as stream,
    ):
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, GetWeather)


@pytest.mark.asyncio
async def test_responses_stream_and_parse_over_a_socket() -> None:
    async with _client() as (_, client):
        async with client.responses.stream(model="gpt-4o", input="Hello") as stream:
            deltas = [
                event.delta async for event in stream if event.type == "response.output_text.delta"
            ]
            final = await stream.get_final_response()
        assert final.status == "completed" and final.output_text == "".join(deltas)
        assert final.usage is not None and final.usage.output_tokens == len(deltas)
        parsed = await client.responses.parse(model="gpt-4o", input="Report", text_format=Report)
        assert isinstance(parsed.output_parsed, Report)
        called = await client.responses.create(
            model="gpt-4o", input="Weather?", tools=RESPONSE_TOOLS
        )
        assert called.output[0].type == "function_call"


@pytest.mark.asyncio
async def test_azure_responses_over_a_socket() -> None:
    async with (
        _served(profile=Profile.azure()) as server,
        openai.AsyncAzureOpenAI(
            api_key=KEY,
            azure_endpoint=server.origin,
            azure_deployment="gpt-4o",
            api_version="2025-04-01-preview",
            max_retries=0,
        ) as client,
    ):
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="Hi")
        assert raw.http_request.url.path == "/openai/responses"
        assert raw.headers["x-ratelimit-remaining-requests"] == "499"
        assert raw.parse().output_text
