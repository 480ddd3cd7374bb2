"""Every endpoint answers in shapes the real ``openai`` SDK parses, with honest ``usage``."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import openai
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

from ratelimit_llm.mock import KeyConfig, MockLimits, OutputModel, count_tokens

from ._support import KEY, instant, mock

PROMPT_TEXT = "Hello, world! Tell me about extraordinary buckets."
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT_TEXT}]


def _sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.asyncio
async def test_chat_completion_parses_strictly_and_usage_matches_text() -> None:
    async with mock() as m:
        raw = await m.http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": PROMPT, "max_tokens": 40, "n": 3},
            headers={"authorization": f"Bearer {KEY}"},
        )
        assert raw.status_code == 200
        completion = ChatCompletion.model_validate(raw.json(), strict=False)
        assert completion.object == "chat.completion"
        assert [c.index for c in completion.choices] == [0, 1, 2]
        assert completion.usage is not None
        emitted = sum(count_tokens(c.message.content or "") for c in completion.choices)
        assert completion.usage.completion_tokens == emitted
        assert completion.usage.total_tokens == completion.usage.prompt_tokens + emitted
        for choice in completion.choices:
            assert 8 <= count_tokens(choice.message.content or "") <= 40
            length = count_tokens(choice.message.content or "")
            assert choice.finish_reason == ("length" if length == 40 else "stop")
        # The tokenizer is not chars/4: the reported prompt differs from the estimate.
        chars = len(PROMPT_TEXT)
        assert completion.usage.prompt_tokens != math.ceil(chars / 4)
        assert completion.usage.prompt_tokens == count_tokens(PROMPT_TEXT) + 3 + 3


@pytest.mark.asyncio
async def test_same_seed_and_request_give_same_text_and_other_seed_differs() -> None:
    texts: list[str] = []
    for seed in (1, 1, 2):
        async with mock(instant(seed=seed)) as m:
            completion = await m.client.chat.completions.create(model="gpt-4o", messages=PROMPT)
            texts.append(completion.choices[0].message.content or "")
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


@pytest.mark.asyncio
async def test_output_length_defaults_to_the_configured_cap() -> None:
    config = instant(output=OutputModel(min_tokens=5, default_max_tokens=6))
    async with mock(config) as m:
        for _ in range(5):
            completion = await m.client.chat.completions.create(model="gpt-4o", messages=PROMPT)
            assert completion.usage is not None
            assert 5 <= completion.usage.completion_tokens <= 6
            assert completion.choices[0].finish_reason == "stop"


@pytest.mark.asyncio
async def test_chat_stream_without_usage() -> None:
    async with mock() as m:
        stream = await m.client.chat.completions.create(
            model="gpt-4o-mini",
            messages=PROMPT,
            max_tokens=12,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert 8 <= count_tokens(text) <= 12


@pytest.mark.asyncio
async def test_chat_stream_with_include_usage_and_n() -> None:
    async with mock() as m:
        raw = await m.http.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "messages": PROMPT,
                "max_completion_tokens": 10,
                "n": 2,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert raw.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert raw.headers["x-ratelimit-remaining-requests"] == "499"
    data = _sse_data(raw.text)
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(item)) for item in data[:-1]]
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(chunk.usage is None for chunk in body)
    assert '"usage":null' in data[0]
    texts = {0: "", 1: ""}
    for chunk in body:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert last.usage.completion_tokens == count_tokens(texts[0]) + count_tokens(texts[1])
    assert last.usage.prompt_tokens == count_tokens(PROMPT_TEXT) + 6
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert len(finishes) == 2


@pytest.mark.asyncio
async def test_responses_plain_and_incomplete() -> None:
    async with mock() as m:
        raw = await m.client.responses.with_raw_response.create(
            model="gpt-4o",
            input="Say something short.",
            instructions="Be terse.",
            max_output_tokens=30,
        )
        response = raw.parse()
        Response.model_validate(json.loads(raw.http_response.text))
        assert raw.headers["x-ratelimit-remaining-requests"] == "499"
        assert response.usage is not None
        assert response.usage.output_tokens == count_tokens(response.output_text)
        assert (
            response.usage.input_tokens
            == count_tokens("Say something short.") + count_tokens("Be terse.") + 9
        )
        assert response.status in ("completed", "incomplete")
        capped = await m.client.responses.create(
            model="gpt-4o", input=[{"role": "user", "content": "x"}], max_output_tokens=3
        )
        assert capped.status == "incomplete"
        assert capped.incomplete_details is not None
        assert capped.incomplete_details.reason == "max_output_tokens"
        assert capped.usage is not None and capped.usage.output_tokens == 3


@pytest.mark.asyncio
async def test_responses_stream_events_and_usage() -> None:
    async with mock() as m:
        stream = await m.client.responses.create(
            model="gpt-4o", input="Stream please", max_output_tokens=50, stream=True
        )
        events = [event async for event in stream]
    names = [event.type for event in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if isinstance(event, ResponseTextDeltaEvent))
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == count_tokens(text)
    assert completed.response.output_text == text


@pytest.mark.asyncio
async def test_embeddings_sdk_default_base64_and_explicit_float() -> None:
    async with mock() as m:
        # The SDK asks for base64 unless told otherwise, and decodes it.
        decoded = await m.client.embeddings.create(
            model="text-embedding-3-small", input=["one two", "three"]
        )
        assert [len(item.embedding) for item in decoded.data] == [1536, 1536]
        assert decoded.usage.prompt_tokens == 3
        norm = math.sqrt(sum(x * x for x in decoded.data[0].embedding))
        assert norm == pytest.approx(1.0, abs=1e-5)
        raw = await m.http.post(
            "/v1/embeddings",
            json={
                "model": "text-embedding-3-small",
                "input": "one two",
                "dimensions": 8,
                "encoding_format": "float",
            },
            headers={"authorization": f"Bearer {KEY}"},
        )
        floats = CreateEmbeddingResponse.model_validate(raw.json())
        assert len(floats.data[0].embedding) == 8
        packed = await m.http.post(
            "/v1/embeddings",
            json={
                "model": "text-embedding-3-small",
                "input": "one two",
                "dimensions": 8,
                "encoding_format": "base64",
            },
            headers={"authorization": f"Bearer {KEY}"},
        )
        vector = struct.unpack("<8f", base64.b64decode(packed.json()["data"][0]["embedding"]))
        assert vector == pytest.approx(floats.data[0].embedding, abs=1e-6)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payload", "prompt_tokens", "vectors"),
    [([1, 2, 3, 4], 4, 1), ([[1, 2], [3, 4, 5]], 5, 2), ("a b c", 3, 1), (["a", "b c"], 3, 2)],
)
async def test_embedding_input_forms(payload: Any, prompt_tokens: int, vectors: int) -> None:
    async with mock() as m:
        result = await m.client.embeddings.create(
            model="text-embedding-3-large", input=payload, encoding_format="float"
        )
        assert result.usage.prompt_tokens == prompt_tokens
        assert len(result.data) == vectors


@pytest.mark.asyncio
async def test_models_list_and_retrieve() -> None:
    async with mock() as m:
        models = [model async for model in m.client.models.list()]
        assert "gpt-4o-mini" in {model.id for model in models}
        assert all(isinstance(model, Model) for model in models)
        one = await m.client.models.retrieve("gpt-4o")
        assert one.id == "gpt-4o" and one.object == "model"
        with pytest.raises(openai.NotFoundError) as caught:
            await m.client.models.retrieve("no-such-model")
        assert caught.value.code == "model_not_found"


@pytest.mark.asyncio
async def test_errors_not_found_bad_json_and_auth() -> None:
    async with mock(instant(require_known_keys=True, keys={KEY: KeyConfig()})) as m:
        auth = {"authorization": f"Bearer {KEY}"}
        missing = await m.http.post("/v1/nothing", json={}, headers=auth)
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {
                "message": "Invalid URL (POST /v1/nothing)",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
        wrong_method = await m.http.get("/v1/chat/completions", headers=auth)
        assert wrong_method.status_code == 404
        bad = await m.http.post("/v1/chat/completions", content=b"{not json", headers=auth)
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        assert bad.json()["error"]["message"].startswith(
            "We could not parse the JSON body of your request."
        )
        unauthenticated = await m.http.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": PROMPT}
        )
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["message"].startswith(
            "You didn't provide an API key."
        )
        assert unauthenticated.headers["x-request-id"].startswith("req_")
        with pytest.raises(openai.AuthenticationError) as caught:
            await m.sdk("sk-unknown-key-000000000000wxyz").chat.completions.create(
                model="gpt-4o", messages=PROMPT
            )
        assert caught.value.code == "invalid_api_key"
        assert "sk-...wxyz" in caught.value.message
        assert "sk-unknown-key-000000000000wxyz" not in caught.value.message
        with pytest.raises(openai.BadRequestError) as invalid:
            await m.client.chat.completions.create(model="gpt-4o", messages=[])
        assert invalid.value.param == "messages"
        no_messages = await m.http.post(
            "/v1/chat/completions", json={"model": "gpt-4o"}, headers=auth
        )
        assert no_messages.json()["error"]["code"] == "missing_required_parameter"
        options = await m.http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": PROMPT, "stream_options": {"include_usage": True}},
            headers=auth,
        )
        assert options.status_code == 400
    assert m.state.stats()["invalid"] == {
        "missing_api_key": 1,
        "invalid_api_key": 1,
        "bad_request": 4,
    }


@pytest.mark.asyncio
async def test_azure_deployment_routes_and_api_key_header() -> None:
    async with mock(instant(limits=MockLimits(rpm=1, tpm=1000))) as m:
        url = "/openai/deployments/my-gpt/chat/completions?api-version=2024-06-01"
        body = {"messages": PROMPT, "max_tokens": 5}
        ok = await m.http.post(url, json=body, headers={"api-key": KEY})
        assert ok.status_code == 200
        assert ok.json()["model"] == "my-gpt"
        again = await m.http.post(url, json=body, headers={"api-key": KEY})
        assert again.status_code == 429


@pytest.mark.asyncio
@pytest.mark.parametrize("cap", [50, 3])
async def test_every_responses_stream_event_validates(cap: int) -> None:
    adapter: pydantic.TypeAdapter[ResponseStreamEvent] = pydantic.TypeAdapter(ResponseStreamEvent)
    async with mock() as m:
        raw = await m.http.post(
            "/v1/responses",
            json={"model": "gpt-4o", "input": "hi", "max_output_tokens": cap, "stream": True},
            headers={"authorization": f"Bearer {KEY}"},
        )
    events = [adapter.validate_python(json.loads(item)) for item in _sse_data(raw.text)]
    names = [line[len("event: ") :] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names == [event.type for event in events]
    assert events[-1].type == ("response.incomplete" if cap == 3 else "response.completed")
