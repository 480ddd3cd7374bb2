"""Structured output and tools, end to end with the real ``openai`` SDK, in-process.

What the framework recipes rely on: ``parse`` with pydantic models, tool-call round
trips that end, streamed tool calls the SDK's helpers assemble, the Responses API's
function calls and ``text.format``, and the same rate-limit accounting as prose.
"""

from __future__ import annotations

import enum
import json
import random
from typing import Any, Literal

import httpx2
import jsonschema
import openai
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.responses import Response, ResponseStreamEvent

from ratelimit_llm.costs import CostEstimator
from ratelimit_llm.mock import MockLimits, OutputModel, Profile, count_tokens, create_app
from ratelimit_llm.mock._errors import BadRequest
from ratelimit_llm.mock._generate import generate_choices
from ratelimit_llm.mock._render import chat_message, response_output
from ratelimit_llm.mock._requests import parse_chat, parse_responses

from ._support import KEY, instant, mock

# -- the models a recipe would use: enums, optionals, lists, nested models, $defs ----------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Reading(pydantic.BaseModel):
    city: str
    temperature: float = pydantic.Field(ge=-90, le=60)
    unit: Unit
    tags: list[str] = []


class Station(pydantic.BaseModel):
    code: str = pydantic.Field(pattern=r"^[A-Z]{4}$")
    elevation_m: int | None = None


class Report(pydantic.BaseModel):
    title: str = pydantic.Field(min_length=3, max_length=40)
    kind: Literal["daily", "weekly"]
    readings: list[Reading] = pydantic.Field(min_length=1, max_length=4)
    station: Station | None = None
    summary: str | None = None


class GetWeather(pydantic.BaseModel):
    """Look up the weather in a city."""

    city: str
    unit: Unit


class GetTime(pydantic.BaseModel):
    """Look up the local time in a city."""

    city: str


ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the weather?"}]
TOOLS = [openai.pydantic_function_tool(GetWeather), openai.pydantic_function_tool(GetTime)]
#: The strict schema the SDK's ``parse`` sends for ``Report``, and its Responses format.
STRICT_REPORT = openai.pydantic_function_tool(Report)["function"]["parameters"]
REPORT_FORMAT = {"type": "json_schema", "name": "Report", "schema": STRICT_REPORT, "strict": True}


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"}


def _assistant_calls(message: Any) -> ChatCompletionMessageParam:
    """The assistant turn to send back: its tool calls, as plain JSON."""
    return {
        "role": "assistant",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
        ],
    }


# -- chat: JSON schemas ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chat_parse_fills_a_nested_pydantic_model() -> None:
    assert "$defs" in Report.model_json_schema()
    async with mock() as m:
        seen: set[str] = set()
        for number in range(8):
            completion = await m.client.chat.completions.parse(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"Report number {number}"}],
                response_format=Report,
            )
            choice = completion.choices[0]
            assert choice.finish_reason == "stop"
            report = choice.message.parsed
            assert isinstance(report, Report)
            assert all(isinstance(reading.unit, Unit) for reading in report.readings)
            seen.add(report.model_dump_json())
            content = choice.message.content or ""
            assert completion.usage is not None
            assert completion.usage.completion_tokens == count_tokens(content)
        assert len(seen) == 8  # seeded by the request: different prompts, different reports


@pytest.mark.asyncio
async def test_same_request_same_json_and_raw_schema_validates() -> None:
    schema = {
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "integer", "minimum": 1}}},
        "required": ["ids"],
        "additionalProperties": False,
    }
    body = {
        "model": "gpt-4o",
        "messages": ASK,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "ids", "schema": schema, "strict": True},
        },
    }
    async with mock() as m:
        answers = []
        for _ in range(2):
            raw = await m.http.post("/v1/chat/completions", json=body, headers=_auth())
            assert raw.status_code == 200
            completion = ChatCompletion.model_validate(raw.json())
            answers.append(completion.choices[0].message.content or "")
        assert answers[0] == answers[1]
        jsonschema.validate(json.loads(answers[0]), schema)


@pytest.mark.asyncio
async def test_json_object_follows_a_schema_written_in_the_prompt() -> None:
    # instructor's JSON modes write the model's schema into the system message.
    system = (
        "Return JSON matching this json_schema:\n\n"
        + json.dumps(GetWeather.model_json_schema(), indent=2)
        + "\n\nMake sure to return an instance of the JSON, not the schema itself."
    )
    async with mock() as m:
        completion = await m.client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "system", "content": system}, *ASK],
            response_format={"type": "json_object"},
        )
        GetWeather.model_validate_json(completion.choices[0].message.content or "")
        # No schema anywhere: still a JSON object.
        plain = await m.client.chat.completions.create(
            model="gpt-4o", messages=ASK, response_format={"type": "json_object"}
        )
        answer = json.loads(plain.choices[0].message.content or "")
        assert isinstance(answer, dict) and isinstance(answer["answer"], str)


@pytest.mark.asyncio
async def test_an_explicit_cap_cuts_json_and_parse_reports_the_length() -> None:
    async with mock() as m:
        completion = await m.client.chat.completions.create(
            model="gpt-4o",
            messages=ASK,
            max_tokens=5,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "Report", "schema": STRICT_REPORT, "strict": True},
            },
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "length"
        assert count_tokens(choice.message.content or "") == 5
        with pytest.raises(openai.LengthFinishReasonError):
            await m.client.chat.completions.parse(
                model="gpt-4o", messages=ASK, max_tokens=5, response_format=Report
            )


@pytest.mark.asyncio
async def test_streamed_json_assembles_into_the_parsed_model() -> None:
    async with mock() as m:
        async with m.client.chat.completions.stream(
            model="gpt-4o", messages=ASK, response_format=Report
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
        assert isinstance(final.choices[0].message.parsed, Report)


# -- chat: tools -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_tool_call_round_trip_ends_in_a_text_answer() -> None:
    async with mock() as m:
        messages: list[ChatCompletionMessageParam] = list(ASK)
        first = await m.client.chat.completions.parse(
            model="gpt-4o", messages=messages, tools=TOOLS
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        (call,) = choice.message.tool_calls or []
        assert call.id.startswith("call_") and call.function.name == "GetWeather"
        assert isinstance(call.function.parsed_arguments, GetWeather)
        assert first.usage is not None
        assert first.usage.completion_tokens == count_tokens(call.function.arguments)

        messages.append(_assistant_calls(choice.message))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"})
        second = await m.client.chat.completions.create(
            model="gpt-4o", messages=messages, tools=TOOLS
        )
        answer = second.choices[0]
        assert answer.finish_reason == "stop"
        assert answer.message.tool_calls is None
        assert answer.message.content


@pytest.mark.asyncio
async def test_tool_choice_decides_whether_and_which_function_is_called() -> None:
    async with mock() as m:

        async def called(messages: list[ChatCompletionMessageParam], **options: Any) -> str | None:
            completion = await m.client.chat.completions.create(
                model="gpt-4o", messages=messages, tools=TOOLS, **options
            )
            calls = completion.choices[0].message.tool_calls
            return calls[0].function.name if calls else None

        assert await called(ASK) == "GetWeather"
        assert await called(ASK, tool_choice="none") is None
        named = {"type": "function", "function": {"name": "GetTime"}}
        assert await called(ASK, tool_choice=named) == "GetTime"
        allowed = {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "auto", "tools": [named]},
        }
        assert await called(ASK, tool_choice=allowed) == "GetTime"
        # After a tool result, "auto" answers in text; "required" calls the next function.
        first = await m.client.chat.completions.create(model="gpt-4o", messages=ASK, tools=TOOLS)
        call = (first.choices[0].message.tool_calls or [])[0]
        history: list[ChatCompletionMessageParam] = [
            *ASK,
            _assistant_calls(first.choices[0].message),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        assert await called(history) is None
        assert await called(history, tool_choice="required") == "GetTime"
        # Only a user turn asks for a call under "auto".
        assert await called([{"role": "system", "content": "Be brief."}]) is None


@pytest.mark.asyncio
async def test_every_choice_calls_and_arguments_are_valid_json() -> None:
    async with mock() as m:
        completion = await m.client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=TOOLS, n=3
        )
        ids = set()
        for choice in completion.choices:
            (call,) = choice.message.tool_calls or []
            GetWeather.model_validate_json(call.function.arguments)  # type: ignore[union-attr]
            ids.add(call.id)
        assert len(ids) == 3


@pytest.mark.asyncio
async def test_streamed_tool_call_is_assembled_by_the_sdk() -> None:
    async with mock() as m:
        async with m.client.chat.completions.stream(
            model="gpt-4o", messages=ASK, tools=TOOLS, stream_options={"include_usage": True}
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_completion()
        assert "tool_calls.function.arguments.delta" in kinds
        assert "tool_calls.function.arguments.done" in kinds
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert isinstance(call.function.parsed_arguments, GetWeather)
        assert final.usage is not None
        assert final.usage.completion_tokens == count_tokens(call.function.arguments)

        # The raw chunks: the first delta names the call, the rest carry argument pieces.
        raw = await m.client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=TOOLS, stream=True
        )
        chunks: list[ChatCompletionChunk] = [chunk async for chunk in raw]
        deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
        assert deltas[0].role == "assistant" and deltas[0].content is None
        opening = (deltas[1].tool_calls or [])[0]
        assert opening.id and opening.function and opening.function.name == "GetWeather"
        pieces = [
            (delta.tool_calls or [])[0].function.arguments or ""  # type: ignore[union-attr]
            for delta in deltas[1:]
            if delta.tool_calls
        ]
        GetWeather.model_validate_json("".join(pieces))
        assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_legacy_functions_get_a_function_call() -> None:
    functions = [{"name": "lookup", "parameters": GetWeather.model_json_schema()}]
    async with mock() as m:
        body = {"model": "gpt-4o", "messages": ASK, "functions": functions}
        raw = await m.http.post("/v1/chat/completions", json=body, headers=_auth())
        completion = ChatCompletion.model_validate(raw.json())
        choice = completion.choices[0]
        assert choice.finish_reason == "function_call"
        assert choice.message.function_call is not None
        assert choice.message.function_call.name == "lookup"
        GetWeather.model_validate_json(choice.message.function_call.arguments)

        streamed = await m.http.post(
            "/v1/chat/completions", json={**body, "stream": True}, headers=_auth()
        )
        chunks = [
            ChatCompletionChunk.model_validate_json(line[6:])
            for line in streamed.text.splitlines()
            if line.startswith("data: {")
        ]
        arguments = "".join(
            chunk.choices[0].delta.function_call.arguments or ""
            for chunk in chunks
            if chunk.choices and chunk.choices[0].delta.function_call
        )
        GetWeather.model_validate_json(arguments)
        assert chunks[0].choices[0].delta.content is None
        assert chunks[-1].choices[0].finish_reason == "function_call"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"tools": {"type": "function"}}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ],
)
async def test_malformed_tools_and_formats_are_refused(changes: dict[str, Any], param: str) -> None:
    async with mock() as m:
        body = {"model": "gpt-4o", "messages": ASK, **changes}
        raw = await m.http.post("/v1/chat/completions", json=body, headers=_auth())
        assert raw.status_code == 400
        error = raw.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param


# -- the Responses API -----------------------------------------------------------------------

RESPONSE_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "GetWeather",
        "description": "Look up the weather.",
        "parameters": openai.pydantic_function_tool(GetWeather)["function"]["parameters"],
        "strict": True,
    }
]


@pytest.mark.asyncio
async def test_responses_function_call_round_trip() -> None:
    async with mock() as m:
        first = await m.client.responses.parse(
            model="gpt-4o", input="What is the weather?", tools=RESPONSE_TOOLS
        )
        (item,) = first.output
        assert item.type == "function_call"
        assert item.id and item.id.startswith("fc_") and item.call_id.startswith("call_")
        GetWeather.model_validate(item.parsed_arguments)  # strict tools: parsed as JSON
        assert first.tools[0].type == "function"  # the request's tools are echoed
        assert first.usage is not None
        assert first.usage.output_tokens == count_tokens(item.arguments)
        Response.model_validate(first.model_dump())

        second = await m.client.responses.create(
            model="gpt-4o",
            input=[
                {"role": "user", "content": "What is the weather?"},
                {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                },
                {"type": "function_call_output", "call_id": item.call_id, "output": "sunny"},
            ],
            tools=RESPONSE_TOOLS,
        )
        assert [output.type for output in second.output] == ["message"]
        assert second.output_text


@pytest.mark.asyncio
async def test_responses_parse_with_a_pydantic_text_format() -> None:
    async with mock() as m:
        response = await m.client.responses.parse(
            model="gpt-4o", input="A weekly report, please.", text_format=Report
        )
        assert isinstance(response.output_parsed, Report)
        assert response.text is not None and response.text.format is not None
        assert response.text.format.type == "json_schema"  # echoed


@pytest.mark.asyncio
async def test_responses_stream_to_the_final_response() -> None:
    async with mock() as m:
        async with m.client.responses.stream(model="gpt-4o", input="Hello there") as stream:
            events: list[ResponseStreamEvent] = [event async for event in stream]
            final = await stream.get_final_response()
        kinds = [event.type for event in events]
        assert kinds[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert kinds[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert [event.sequence_number for event in events] == list(range(len(events)))
        deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
        assert final.status == "completed" and final.output_text == "".join(deltas)
        assert final.usage is not None and final.usage.output_tokens == len(deltas)

        # Structured and streamed: parsed on the way, and in the final response.
        async with m.client.responses.stream(
            model="gpt-4o", input="Report", text_format=Report
        ) as stream:
            async for _ in stream:
                pass
            parsed = await stream.get_final_response()
        assert isinstance(parsed.output_parsed, Report)


@pytest.mark.asyncio
async def test_responses_stream_of_a_function_call() -> None:
    async with mock() as m:
        async with m.client.responses.stream(
            model="gpt-4o", input="Weather?", tools=RESPONSE_TOOLS
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        assert kinds[2] == "response.output_item.added"
        assert "response.function_call_arguments.delta" in kinds
        assert kinds[-3:] == [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
        (item,) = final.output
        assert item.type == "function_call"
        GetWeather.model_validate(item.parsed_arguments)  # strict tools: parsed as JSON


# -- accounting and the Azure paths ------------------------------------------------------


def _remaining_tokens(raw: httpx2.Response) -> int:
    return int(raw.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o",
                "messages": [
                    *ASK,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "GetWeather", "arguments": '{"city":"Oslo"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
                ],
                "tools": TOOLS,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "r", "schema": Report.model_json_schema()},
                },
            },
        ),
        (
            "/v1/responses",
            {
                "model": "gpt-4o",
                "instructions": "Be brief.",
                "input": [
                    {"role": "user", "content": "Weather?"},
                    {
                        "type": "function_call",
                        "call_id": "c",
                        "name": "GetWeather",
                        "arguments": "{}",
                    },
                    {"type": "function_call_output", "call_id": "c", "output": "cold"},
                ],
                "tools": RESPONSE_TOOLS,
                "text": {
                    "format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}
                },
            },
        ),
    ],
)
async def test_tools_and_schemas_are_charged_as_the_estimate_counts_them(
    path: str, body: dict[str, Any]
) -> None:
    limits = MockLimits(rpm=500, tpm=200_000)
    async with mock(limits=limits) as m:
        raw = await m.http.post(path, json=body, headers=_auth())
        assert raw.status_code == 200
        charged = 200_000 - _remaining_tokens(raw)
        # The estimate with no per-message framing is exactly the server's chars/4 rule.
        estimator = CostEstimator(default_max_output_tokens=256, tokens_per_message=0)
        assert charged == estimator.estimate(body, endpoint=path).tokens
        # The tools and the schema are really in it: without them the request costs less.
        bare = {
            key: value
            for key, value in body.items()
            if key not in ("tools", "text", "response_format")
        }
        plain = await m.http.post(path, json=bare, headers=_auth())
        plain_charge = _remaining_tokens(raw) - _remaining_tokens(plain)
        assert plain_charge == estimator.estimate(bare, endpoint=path).tokens
        tools_chars = len(json.dumps(body["tools"], separators=(",", ":")))
        assert charged - plain_charge >= tools_chars // 4


@pytest.mark.asyncio
async def test_a_tool_call_is_rate_limited_like_any_request() -> None:
    async with mock(limits=MockLimits(rpm=1, tpm=200_000)) as m:
        first = await m.client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=ASK, tools=TOOLS
        )
        assert first.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as caught:
            await m.client.chat.completions.parse(model="gpt-4o", messages=ASK, tools=TOOLS)
        assert "requests per min (RPM)" in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("deployment", [None, "gpt-4o-deployment"])
async def test_azure_responses_paths_the_sdk_uses(deployment: str | None) -> None:
    app = create_app(instant(limits=MockLimits(rpm=2, tpm=200_000), profile=Profile.azure()))
    transport = httpx2.ASGITransport(app=app)
    async with openai.AsyncAzureOpenAI(
        api_key=KEY,
        azure_endpoint="http://mock.test",
        azure_deployment=deployment,
        api_version="2025-04-01-preview",
        http_client=openai.DefaultAsyncHttpx2Client(transport=transport),
        max_retries=0,
    ) as client:
        raw = await client.responses.with_raw_response.create(
            model="gpt-4o-deployment", input="Hi", tools=RESPONSE_TOOLS
        )
        assert raw.http_request.url.path == "/openai/responses"
        assert raw.headers["x-ratelimit-remaining-requests"] == "1"
        assert raw.parse().output[0].type == "function_call"
        async with client.responses.stream(model="gpt-4o-deployment", input="Hi") as stream:
            async for _ in stream:
                pass
            assert (await stream.get_final_response()).status == "completed"
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model="gpt-4o-deployment", input="Hi")
        assert "Responses_Create Operation" in str(caught.value)
        assert caught.value.response.url.path == "/openai/responses"


@pytest.mark.asyncio
async def test_batch_lines_get_tool_calls_and_json_too() -> None:
    chat = {"model": "gpt-4o", "messages": ASK, "tools": TOOLS}
    responses = {"model": "gpt-4o", "input": "Report", "text": {"format": REPORT_FORMAT}}
    lines: list[dict[str, Any]] = [
        {"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": chat},
        {"custom_id": "resp", "method": "POST", "url": "/v1/responses", "body": responses},
    ]
    async with mock() as m:
        results: dict[str, Any] = {}
        for line in lines:
            data = (json.dumps(line) + "\n").encode()
            upload = await m.client.files.create(file=("in.jsonl", data), purpose="batch")
            batch = await m.client.batches.create(
                input_file_id=upload.id,
                endpoint=line["url"],
                completion_window="24h",
            )
            m.clock.advance(5)
            batch = await m.client.batches.retrieve(batch.id)
            assert batch.status == "completed" and batch.output_file_id is not None
            content = await m.client.files.content(batch.output_file_id)
            results[line["custom_id"]] = json.loads(content.text)["response"]["body"]
    completion = ChatCompletion.model_validate(results["chat"])
    assert completion.choices[0].finish_reason == "tool_calls"
    (call,) = completion.choices[0].message.tool_calls or []
    GetWeather.model_validate_json(call.function.arguments)  # type: ignore[union-attr]
    response = Response.model_validate(results["resp"])
    Report.model_validate_json(response.output_text)


@pytest.mark.asyncio
@pytest.mark.parametrize("cap", [None, 4])
async def test_every_event_of_a_function_call_stream_validates(cap: int | None) -> None:
    adapter: pydantic.TypeAdapter[ResponseStreamEvent] = pydantic.TypeAdapter(ResponseStreamEvent)
    body: dict[str, Any] = {"model": "gpt-4o", "input": "Weather?", "tools": RESPONSE_TOOLS}
    if cap is not None:
        body["max_output_tokens"] = cap
    async with mock() as m:
        raw = await m.http.post("/v1/responses", json={**body, "stream": True}, headers=_auth())
    data = [line[6:] for line in raw.text.splitlines() if line.startswith("data: ")]
    events = [adapter.validate_json(item, strict=False) for item in data]
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names == [event.type for event in events]
    final = events[-1]
    assert final.type == ("response.completed" if cap is None else "response.incomplete")
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == len(deltas)
    (item,) = final.response.output
    assert item.type == "function_call" and item.arguments == "".join(deltas)
    if cap is None:
        GetWeather.model_validate_json(item.arguments)
    else:
        assert len(deltas) == cap and item.status == "incomplete"


@pytest.mark.asyncio
async def test_a_body_nested_too_deep_to_decode_is_a_400() -> None:
    async with mock() as m:
        body = '{"model": "gpt-4o", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
        raw = await m.http.post(
            "/v1/chat/completions",
            content=body,
            headers={**_auth(), "content-type": "application/json"},
        )
        assert raw.status_code == 400
        assert "could not parse the JSON body" in raw.json()["error"]["message"]


_KEYS = [
    "type",
    "name",
    "function",
    "parameters",
    "schema",
    "json_schema",
    "format",
    "mode",
    "tools",
    "properties",
    "required",
    "items",
    "$ref",
    "anyOf",
    "enum",
    "minimum",
]
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=5)
    ),
    max_leaves=20,
)
_FIELD_VALUES = _JSON | st.sampled_from(["auto", "none", "required", "json_object"])


@settings(max_examples=300, deadline=None)
@given(
    endpoint=st.sampled_from(["chat.completions", "responses"]),
    fields=st.dictionaries(
        st.sampled_from(
            ["tools", "tool_choice", "functions", "function_call", "response_format", "text"]
        ),
        _FIELD_VALUES,
        max_size=4,
    ),
    history=st.lists(_JSON, max_size=3),
)
def test_any_tools_and_formats_get_an_answer_or_a_400(
    endpoint: str, fields: dict[str, Any], history: list[Any]
) -> None:
    """Whatever shape these fields take, the request parses (or is a 400) and renders."""
    if endpoint == "chat.completions":
        messages = [{"role": "assistant", "tool_calls": item} for item in history]
        body = {"model": "m", "messages": [*messages, {"role": "user", "content": "hi"}]}
    else:
        body = {"model": "m", "input": [*history, {"role": "user", "content": "hi"}]}
    body.update(fields)
    try:
        parsed = (parse_chat if endpoint == "chat.completions" else parse_responses)(body)
    except BadRequest as exc:
        assert exc.body()["error"]["type"] == "invalid_request_error"
        return
    choices = generate_choices(parsed, OutputModel(), random.Random(0))
    for choice in choices:
        json.dumps(chat_message(choice))
        json.dumps(response_output("fc_1", choice, "completed"))
        for call in choice.tool_calls:
            json.loads(call.arguments)
