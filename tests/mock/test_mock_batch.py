"""The Files and Batch APIs, driven through the real ``openai`` SDK in virtual time.

Batches advance only when the test moves the fake clock, so every status, count and
timestamp is exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Final, Literal

import openai
import pytest
from openai.types import Batch, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from ratelimit_llm.mock import BatchConfig, count_tokens, serve
from ratelimit_llm.mock._cli import build_config, build_parser, main

from ._support import KEY, FakeClock, Mock, instant, mock

CHAT: Final = "/v1/chat/completions"
Endpoint = Literal["/v1/chat/completions", "/v1/responses", "/v1/embeddings"]


def request_line(
    custom_id: str | None,
    *,
    model: str = "gpt-4o-mini",
    url: str = CHAT,
    text: str = "Tell me about buckets.",
    **body: Any,
) -> str:
    """One input line; a chat request unless ``body`` says otherwise."""
    payload: dict[str, Any] = {"model": model}
    if url == CHAT:
        payload["messages"] = [{"role": "user", "content": text}]
        payload["max_tokens"] = 12
    elif url == "/v1/responses":
        payload["input"] = text
        payload["max_output_tokens"] = 12
    else:
        payload["input"] = text
        payload["encoding_format"] = "float"
        payload["dimensions"] = 4
    payload.update(body)
    line: dict[str, Any] = {"method": "POST", "url": url, "body": payload}
    if custom_id is not None:
        line["custom_id"] = custom_id
    return json.dumps(line)


def chat_lines(count: int, prefix: str = "r") -> list[str]:
    return [request_line(f"{prefix}{i}", text=f"Request number {i}.") for i in range(count)]


async def submit(
    m: Mock,
    lines: list[str],
    *,
    endpoint: Endpoint = CHAT,
    metadata: dict[str, str] | None = None,
) -> Batch:
    upload = await m.client.files.create(
        file=("input.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
    )
    return await m.client.batches.create(
        input_file_id=upload.id,
        endpoint=endpoint,
        completion_window="24h",
        metadata=metadata,
    )


async def read_lines(m: Mock, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await m.client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line]


def config(**batch: Any) -> Any:
    return instant(batch=BatchConfig(**batch))


# -- files --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_file_upload_retrieve_content_list_and_delete() -> None:
    async with mock() as m:
        data = b'{"custom_id": "a"}\n'
        upload = await m.client.files.create(file=("in.jsonl", data), purpose="batch")
        assert upload.object == "file" and upload.purpose == "batch"
        assert upload.bytes == len(data) and upload.filename == "in.jsonl"
        assert upload.id.startswith("file-")
        assert await m.client.files.retrieve(upload.id) == upload
        assert (await m.client.files.content(upload.id)).content == data

        other = await m.client.files.create(file=b"plain bytes", purpose="user_data")
        listed = [f.id async for f in m.client.files.list()]
        assert listed == [other.id, upload.id]
        assert [f.id async for f in m.client.files.list(order="asc")] == [upload.id, other.id]
        assert [f.id async for f in m.client.files.list(purpose="batch")] == [upload.id]
        paged = [f.id async for f in m.client.files.list(limit=1)]
        assert paged == [other.id, upload.id]

        deleted = await m.client.files.delete(upload.id)
        assert deleted.deleted and deleted.id == upload.id
        with pytest.raises(openai.NotFoundError):
            await m.client.files.retrieve(upload.id)
        with pytest.raises(openai.NotFoundError):
            await m.client.files.content(upload.id)
        with pytest.raises(openai.NotFoundError):
            await m.client.files.delete(upload.id)


@pytest.mark.asyncio
async def test_file_upload_errors_and_auth() -> None:
    async with mock() as m:
        with pytest.raises(openai.BadRequestError, match="purpose"):
            await m.client.files.create(file=b"x", purpose="nonsense")  # type: ignore[arg-type]
        missing = await m.http.post("/v1/files", headers={"authorization": f"Bearer {KEY}"})
        assert missing.status_code == 400
        no_file = await m.http.post(
            "/v1/files", data={"purpose": "batch"}, files={"other": ("x", b"1")}
        )
        assert no_file.status_code == 401  # no key: refused before anything else
        no_file = await m.http.post(
            "/v1/files",
            data={"purpose": "batch"},
            files={"other": ("x", b"1")},
            headers={"authorization": f"Bearer {KEY}"},
        )
        assert no_file.status_code == 400
        assert no_file.json()["error"]["param"] == "file"
        assert (await m.http.get("/v1/batches")).status_code == 401


# -- the happy path --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_batch_runs_through_every_status_in_clock_time() -> None:
    batch_config = config(
        validation_seconds=2, lines_per_second=10, finalizing_seconds=3, expiry_seconds=3600
    )
    async with mock(batch_config) as m:
        batch = await submit(m, chat_lines(50), metadata={"job": "nightly"})
        assert batch.status == "validating" and batch.object == "batch"
        assert batch.endpoint == CHAT and batch.completion_window == "24h"
        assert batch.metadata == {"job": "nightly"}
        assert batch.expires_at == batch.created_at + 3600
        assert batch.request_counts is not None and batch.request_counts.total == 0
        assert batch.output_file_id is None and batch.errors is None

        m.clock.advance(1.9)
        assert (await m.client.batches.retrieve(batch.id)).status == "validating"
        m.clock.advance(0.1)
        running = await m.client.batches.retrieve(batch.id)
        assert running.status == "in_progress"
        assert running.in_progress_at == running.created_at + 2
        m.clock.advance(2.0)
        running = await m.client.batches.retrieve(batch.id)
        assert running.request_counts is not None
        assert running.request_counts.model_dump() == {"total": 50, "completed": 20, "failed": 0}
        assert running.output_file_id is None  # files appear only when the batch ends

        m.clock.advance(3.0)
        finalizing = await m.client.batches.retrieve(batch.id)
        assert finalizing.status == "finalizing" and finalizing.output_file_id is None
        assert finalizing.finalizing_at == finalizing.created_at + 7
        m.clock.advance(3.0)
        done = await m.client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.completed_at == done.created_at + 10
        assert done.error_file_id is None and done.output_file_id is not None
        assert done.request_counts is not None
        assert done.request_counts.model_dump() == {"total": 50, "completed": 50, "failed": 0}

        results = await read_lines(m, done.output_file_id)
    ids = [r["custom_id"] for r in results]
    assert sorted(ids) == sorted(f"r{i}" for i in range(50))
    assert ids != [f"r{i}" for i in range(50)]  # arbitrary order, as OpenAI warns
    input_tokens = output_tokens = 0
    for result in results:
        assert result["id"].startswith("batch_req_") and result["error"] is None
        response = result["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(response["body"])
        assert completion.usage is not None
        text = completion.choices[0].message.content or ""
        assert completion.usage.completion_tokens == count_tokens(text) <= 12
        input_tokens += completion.usage.prompt_tokens
        output_tokens += completion.usage.completion_tokens
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (input_tokens, output_tokens)


@pytest.mark.asyncio
async def test_responses_and_embeddings_batches() -> None:
    async with mock(config(validation_seconds=0, finalizing_seconds=0)) as m:
        responses = await submit(
            m,
            [request_line(f"q{i}", url="/v1/responses") for i in range(3)],
            endpoint="/v1/responses",
        )
        embeddings = await submit(
            m,
            [
                request_line("e0", url="/v1/embeddings", model="text-embedding-3-small"),
                request_line(
                    "e1", url="/v1/embeddings", model="text-embedding-3-small", input=["a", "b"]
                ),
            ],
            endpoint="/v1/embeddings",
        )
        m.clock.advance(1)
        responses = await m.client.batches.retrieve(responses.id)
        embeddings = await m.client.batches.retrieve(embeddings.id)
        assert responses.status == embeddings.status == "completed"
        for result in await read_lines(m, responses.output_file_id):
            body = Response.model_validate(result["response"]["body"])
            assert body.usage is not None and body.usage.output_tokens <= 12
        vectors = {
            r["custom_id"]: CreateEmbeddingResponse.model_validate(r["response"]["body"])
            for r in await read_lines(m, embeddings.output_file_id)
        }
    assert [len(v.data) for _, v in sorted(vectors.items())] == [1, 2]
    assert len(vectors["e0"].data[0].embedding) == 4


@pytest.mark.asyncio
async def test_same_seed_gives_the_same_output_file() -> None:
    contents: list[bytes] = []
    for _ in range(2):
        async with mock(instant(seed=5, batch=BatchConfig(validation_seconds=0))) as m:
            batch = await submit(m, chat_lines(20))
            m.clock.advance(5)
            batch = await m.client.batches.retrieve(batch.id)
            assert batch.output_file_id is not None
            contents.append((await m.client.files.content(batch.output_file_id)).content)
    assert contents[0] == contents[1]


# -- refusals and validation -----------------------------------------------------------


@pytest.mark.asyncio
async def test_create_refuses_what_the_api_refuses_at_once() -> None:
    async with mock() as m:
        with pytest.raises(openai.NotFoundError):
            await m.client.batches.create(
                input_file_id="file-missing", endpoint=CHAT, completion_window="24h"
            )
        other = await m.client.files.create(file=b"x", purpose="user_data")
        with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
            await m.client.batches.create(
                input_file_id=other.id, endpoint=CHAT, completion_window="24h"
            )
        upload = await m.client.files.create(file=b"x", purpose="batch")
        with pytest.raises(openai.BadRequestError, match="endpoint"):
            await m.client.batches.create(
                input_file_id=upload.id, endpoint="/v1/completions", completion_window="24h"
            )
        with pytest.raises(openai.BadRequestError, match="completion_window"):
            await m.client.batches.create(
                input_file_id=upload.id,
                endpoint=CHAT,
                completion_window="1h",  # type: ignore[arg-type]
            )
        too_many = {f"k{i}": "v" for i in range(17)}
        with pytest.raises(openai.BadRequestError, match="metadata"):
            await m.client.batches.create(
                input_file_id=upload.id, endpoint=CHAT, completion_window="24h", metadata=too_many
            )
        with pytest.raises(openai.BadRequestError, match="metadata"):
            await m.client.batches.create(
                input_file_id=upload.id,
                endpoint=CHAT,
                completion_window="24h",
                metadata={"k": "v" * 513},
            )
        with pytest.raises(openai.NotFoundError):
            await m.client.batches.retrieve("batch_missing")
        with pytest.raises(openai.NotFoundError):
            await m.client.batches.cancel("batch_missing")
        assert (await m.http.get("/mock/batches")).json()["data"] == []


_VALIDATION_CASES = [
    pytest.param(
        [request_line("a"), "{not json", request_line("c")], {}, "invalid_json_line", 2, id="json"
    ),
    pytest.param([request_line(None)], {}, "missing_required_parameter", 1, id="no-custom-id"),
    pytest.param(
        [request_line("a"), request_line("b"), request_line("a")],
        {},
        "duplicate_custom_id",
        3,
        id="duplicate",
    ),
    pytest.param(
        [request_line("a"), request_line("b", url="/v1/embeddings")],
        {},
        "url_mismatch",
        2,
        id="url",
    ),
    pytest.param(
        [request_line("a"), request_line("b", model="gpt-4o")], {}, "model_mismatch", 2, id="model"
    ),
    pytest.param(chat_lines(4), {"max_requests_per_batch": 3}, "too_many_tasks", None, id="lines"),
    pytest.param(chat_lines(4), {"max_file_bytes": 300}, "file_too_large", None, id="bytes"),
    pytest.param(["", "  "], {}, "empty_file", None, id="empty"),
]


@pytest.mark.parametrize(("lines", "knobs", "code", "line"), _VALIDATION_CASES)
@pytest.mark.asyncio
async def test_validation_failures(
    lines: list[str], knobs: dict[str, Any], code: str, line: int | None
) -> None:
    async with mock(config(validation_seconds=1, **knobs)) as m:
        batch = await submit(m, lines)
        assert batch.status == "validating"  # the create call itself succeeds
        m.clock.advance(1)
        failed = await m.client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.failed_at == failed.created_at + 1
    assert failed.errors is not None and failed.errors.data
    error = failed.errors.data[0]
    assert (error.code, error.line) == (code, line)
    assert error.message
    assert failed.output_file_id is None and failed.error_file_id is None


@pytest.mark.asyncio
async def test_embedding_inputs_over_the_limit_fail_validation() -> None:
    lines = [
        request_line(f"e{i}", url="/v1/embeddings", model="text-embedding-3-small", input=["a"] * 3)
        for i in range(2)
    ]
    async with mock(config(validation_seconds=0, max_embedding_inputs=5)) as m:
        batch = await submit(m, lines, endpoint="/v1/embeddings")
        m.clock.advance(0.1)
        failed = await m.client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None and failed.errors.data
    assert failed.errors.data[0].code == "too_many_embedding_inputs"


# -- the enqueued-token limit ----------------------------------------------------------


@pytest.mark.asyncio
async def test_token_limit_exceeded_fails_later_and_is_released_when_a_batch_ends() -> None:
    # Each line costs ceil(chars / 4) + 12 reserved output tokens by the sum rule.
    cost = -(-len("Tell me about buckets.") // 4) + 12
    knobs = {"validation_seconds": 1, "lines_per_second": 1, "finalizing_seconds": 1}
    async with mock(config(enqueued_token_limit=cost * 15, **knobs)) as m:
        first = await submit(m, [request_line(f"a{i}") for i in range(10)])
        m.clock.advance(1)
        assert (await m.client.batches.retrieve(first.id)).status == "in_progress"
        second = await submit(m, [request_line(f"b{i}") for i in range(10)])
        assert second.status == "validating"
        other_model = await submit(m, [request_line(f"c{i}", model="gpt-4o") for i in range(10)])
        m.clock.advance(1)
        refused = await m.client.batches.retrieve(second.id)
        assert refused.status == "failed"
        assert refused.errors is not None and refused.errors.data
        error = refused.errors.data[0]
        assert error.code == "token_limit_exceeded"
        assert error.message is not None and "Enqueued token limit reached for gpt-4o-mini" in (
            error.message
        )
        assert (await m.client.batches.retrieve(other_model.id)).status == "in_progress"
        held = (await m.http.get("/mock/batches")).json()["enqueued_tokens"]
        assert held == {"gpt-4o-mini": cost * 10, "gpt-4o": cost * 10}

        # A batch that validates for 15 s is checked after the first one has finished (10
        # lines at 1/s, then 1 s finalizing) and let its tokens go.
        await m.http.post("/mock/batch-config", json={"validation_seconds": 15})
        third = await submit(m, [request_line(f"d{i}") for i in range(10)])
        m.clock.advance(20)
        # Read only the third: catching up replays the first one's end before its check.
        assert (await m.client.batches.retrieve(third.id)).status == "in_progress"
        assert (await m.client.batches.retrieve(first.id)).status == "completed"


@pytest.mark.asyncio
async def test_token_limit_per_model_and_changed_at_runtime() -> None:
    async with mock(config(validation_seconds=1)) as m:
        response = await m.http.post(
            "/mock/batch-config", json={"model_enqueued_token_limits": {"gpt-4o-mini": 5}}
        )
        assert response.json()["model_enqueued_token_limits"] == {"gpt-4o-mini": 5}
        refused = await submit(m, chat_lines(2))
        allowed = await submit(m, [request_line("x", model="gpt-4o")])
        m.clock.advance(1)
        refused = await m.client.batches.retrieve(refused.id)
        allowed = await m.client.batches.retrieve(allowed.id)
    assert refused.status == "failed" and allowed.status == "in_progress"


# -- per-line outcomes -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_line_errors_go_to_the_error_file() -> None:
    knobs = {"validation_seconds": 0, "line_error_rate": 0.4, "line_error_statuses": (429, 500)}
    async with mock(config(**knobs)) as m:
        lines = [*chat_lines(40), request_line("bad", messages=[])]
        batch = await submit(m, lines)
        m.clock.advance(1)
        batch = await m.client.batches.retrieve(batch.id)
        assert batch.status == "completed"
        ok = await read_lines(m, batch.output_file_id)
        failed = await read_lines(m, batch.error_file_id)
    assert batch.request_counts is not None
    assert batch.request_counts.completed == len(ok) and batch.request_counts.failed == len(failed)
    assert len(ok) + len(failed) == 41 and 5 < len(failed) < 30
    assert {r["custom_id"] for r in ok} | {r["custom_id"] for r in failed} == {
        *(f"r{i}" for i in range(40)),
        "bad",
    }
    statuses: dict[str, int] = {r["custom_id"]: r["response"]["status_code"] for r in failed}
    assert statuses.pop("bad") == 400
    assert set(statuses.values()) == {429, 500}
    for result in failed:
        assert result["error"] is None
        assert result["response"]["body"]["error"]["message"]
    assert all(r["response"]["status_code"] == 200 for r in ok)


@pytest.mark.asyncio
async def test_model_not_found_lines_and_a_batch_with_only_failures() -> None:
    async with mock(config(validation_seconds=0, not_found_models=("gpt-4o",))) as m:
        batch = await submit(m, [request_line(f"x{i}", model="gpt-4o") for i in range(3)])
        m.clock.advance(1)
        batch = await m.client.batches.retrieve(batch.id)
        failed = await read_lines(m, batch.error_file_id)
    assert batch.status == "completed" and batch.output_file_id is None
    assert len(failed) == 3
    for result in failed:
        assert result["response"]["status_code"] == 404
        assert result["response"]["body"]["error"]["code"] == "model_not_found"


@pytest.mark.asyncio
async def test_malformed_output_lines_fault() -> None:
    async with mock(config(validation_seconds=0, malformed_output_lines=2)) as m:
        batch = await submit(m, chat_lines(10))
        m.clock.advance(1)
        batch = await m.client.batches.retrieve(batch.id)
        assert batch.output_file_id is not None
        content = (await m.client.files.content(batch.output_file_id)).text
    broken = 0
    for line in content.splitlines():
        try:
            json.loads(line)
        except ValueError:
            broken += 1
    assert broken == 2 and len(content.splitlines()) == 10
    assert batch.request_counts is not None and batch.request_counts.completed == 10


# -- expiry and cancellation -----------------------------------------------------------


@pytest.mark.asyncio
async def test_expiry_returns_partial_results_and_batch_expired_lines() -> None:
    knobs = {"validation_seconds": 2, "lines_per_second": 1, "expiry_seconds": 10}
    async with mock(config(**knobs)) as m:
        batch = await submit(m, chat_lines(30))
        m.clock.advance(9.5)
        running = await m.client.batches.retrieve(batch.id)
        assert running.status == "in_progress"
        m.clock.advance(100)
        expired = await m.client.batches.retrieve(batch.id)
        assert expired.status == "expired"
        assert expired.expired_at == expired.expires_at == expired.created_at + 10
        assert expired.completed_at is None and expired.finalizing_at is None
        done = await read_lines(m, expired.output_file_id)
        rest = await read_lines(m, expired.error_file_id)
    assert len(done) == 8 and len(rest) == 22  # 8 s of running at one line a second
    assert expired.request_counts is not None
    assert expired.request_counts.model_dump() == {"total": 30, "completed": 8, "failed": 22}
    for result in rest:
        assert result["response"] is None
        assert result["error"]["code"] == "batch_expired"
    assert {r["custom_id"] for r in done} | {r["custom_id"] for r in rest} == {
        f"r{i}" for i in range(30)
    }


@pytest.mark.asyncio
async def test_cancel_goes_through_cancelling_and_keeps_partial_results() -> None:
    knobs = {"validation_seconds": 0, "lines_per_second": 2, "cancel_seconds": 5}
    async with mock(config(**knobs)) as m:
        batch = await submit(m, chat_lines(20))
        m.clock.advance(3)
        cancelling = await m.client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling"
        assert cancelling.cancelling_at == cancelling.created_at + 3
        assert (await m.client.batches.cancel(batch.id)).status == "cancelling"  # idempotent
        m.clock.advance(4)
        still = await m.client.batches.retrieve(batch.id)
        assert still.status == "cancelling" and still.output_file_id is None
        assert still.request_counts is not None and still.request_counts.completed == 6
        m.clock.advance(1)
        cancelled = await m.client.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled"
        assert cancelled.cancelled_at == cancelled.created_at + 8
        done = await read_lines(m, cancelled.output_file_id)
        rest = await read_lines(m, cancelled.error_file_id)
        assert (await m.client.batches.cancel(batch.id)).status == "cancelled"
    assert len(done) == 6 and len(rest) == 14
    assert {r["error"]["code"] for r in rest} == {"batch_cancelled"}
    assert cancelled.request_counts is not None
    assert cancelled.request_counts.model_dump() == {"total": 20, "completed": 6, "failed": 14}


@pytest.mark.asyncio
async def test_cancel_while_validating_and_after_completion() -> None:
    async with mock(config(validation_seconds=5, cancel_seconds=1)) as m:
        batch = await submit(m, chat_lines(3))
        assert (await m.client.batches.cancel(batch.id)).status == "cancelling"
        m.clock.advance(1)
        cancelled = await m.client.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled"
        assert cancelled.output_file_id is None and cancelled.error_file_id is None
        assert cancelled.in_progress_at is None

        finished = await submit(m, chat_lines(3))
        m.clock.advance(10)
        assert (await m.client.batches.retrieve(finished.id)).status == "completed"
        with pytest.raises(openai.ConflictError, match="completed"):
            await m.client.batches.cancel(finished.id)


# -- listing and the /mock controls ----------------------------------------------------


@pytest.mark.asyncio
async def test_list_paginates_newest_first_through_the_sdk() -> None:
    async with mock() as m:
        upload = await m.client.files.create(
            file=("in.jsonl", request_line("a").encode()), purpose="batch"
        )
        created = [
            (
                await m.client.batches.create(
                    input_file_id=upload.id,
                    endpoint=CHAT,
                    completion_window="24h",
                    metadata={"n": str(n)},
                )
            ).id
            for n in range(25)
        ]
        first = await m.client.batches.list(limit=7)
        assert [b.id for b in first.data] == created[::-1][:7]
        assert first.has_more
        raw = (
            await m.http.get(
                "/v1/batches", params={"limit": 7}, headers={"authorization": f"Bearer {KEY}"}
            )
        ).json()
        assert (raw["first_id"], raw["last_id"]) == (created[-1], created[-7])
        everything = [b.id async for b in m.client.batches.list(limit=7)]
        assert everything == created[::-1]
        tail = await m.client.batches.list(after=created[3])
        assert [b.id for b in tail.data] == created[2::-1] and not tail.has_more
        default = await m.client.batches.list()
        assert len(default.data) == 20 and default.has_more
        with pytest.raises(openai.BadRequestError):
            await m.client.batches.list(limit=101)


@pytest.mark.asyncio
async def test_list_pages_carry_metadata_and_input_files_outlive_their_batch() -> None:
    """What adoption relies on: a batch found by its metadata tells its lines by its file."""
    async with mock(config(validation_seconds=0)) as m:
        lines = chat_lines(4)
        made = [await submit(m, lines, metadata={"job": "j1", "n": str(n)}) for n in range(5)]
        m.clock.advance(10)
        listed = [b async for b in m.client.batches.list(limit=2)]  # three pages
        assert [b.id for b in listed] == [b.id for b in reversed(made)]
        assert [b.metadata for b in listed] == [
            {"job": "j1", "n": str(n)} for n in range(4, -1, -1)
        ]
        assert {b.status for b in listed} == {"completed"}
        content = await m.client.files.content(listed[-1].input_file_id)
        assert content.text == "\n".join(lines) + "\n"  # the input, byte for byte


@pytest.mark.asyncio
async def test_mock_batches_lists_every_batch_and_reset_forgets_them() -> None:
    async with mock(config(validation_seconds=0)) as m:
        first = await submit(m, chat_lines(3), metadata={"nonce": "one"})
        second = await submit(m, chat_lines(5), metadata={"nonce": "two"})
        m.clock.advance(1)
        seen = (await m.http.get("/mock/batches")).json()["data"]
        assert [(b["id"], b["metadata"], b["input_lines"], b["status"]) for b in seen] == [
            (first.id, {"nonce": "one"}, 3, "completed"),
            (second.id, {"nonce": "two"}, 5, "completed"),
        ]
        assert (await m.http.post("/mock/reset", json={"batches": False})).status_code == 200
        assert len((await m.http.get("/mock/batches")).json()["data"]) == 2
        assert (await m.http.post("/mock/reset")).status_code == 200
        assert (await m.http.get("/mock/batches")).json()["data"] == []
        assert [f async for f in m.client.files.list()] == []


@pytest.mark.asyncio
async def test_batch_config_endpoint_reads_and_changes_settings() -> None:
    async with mock() as m:
        current = (await m.http.get("/mock/batch-config")).json()
        assert current == BatchConfig().as_dict()
        changed = await m.http.post(
            "/mock/batch-config",
            json={"lines_per_second": 5, "line_error_statuses": [503], "not_found_models": ["x"]},
        )
        assert changed.status_code == 200
        config_now = m.state.batches.config
        assert config_now.lines_per_second == 5 and config_now.line_error_statuses == (503,)
        assert config_now.not_found_models == ("x",)
        for bad in ({"bogus": 1}, {"lines_per_second": -1}, {"line_error_statuses": [200]}, [1]):
            response = await m.http.post("/mock/batch-config", json=bad)
            assert response.status_code == 400, bad
        assert m.state.batches.config == config_now


def test_batch_config_validates_its_values() -> None:
    with pytest.raises(ValueError):
        BatchConfig(lines_per_second=0)
    with pytest.raises(ValueError):
        BatchConfig(line_error_rate=1.5)
    with pytest.raises(ValueError):
        BatchConfig(enqueued_token_limit=0)
    with pytest.raises(ValueError):
        BatchConfig(malformed_output_lines=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BatchConfig(validation_seconds="1")  # type: ignore[arg-type]
    assert BatchConfig(model_enqueued_token_limits={"m": 3}).enqueued_limit_for("m") == 3
    assert BatchConfig(enqueued_token_limit=7).enqueued_limit_for("other") == 7


# -- over a socket and from the command line ----------------------------------------------


@pytest.mark.asyncio
async def test_batch_round_trip_over_a_real_socket() -> None:
    clock = FakeClock()
    batch_config = config(validation_seconds=1, lines_per_second=100, line_error_rate=0.2)
    async with (
        serve(batch_config, clock=clock, sleep=clock.sleep) as server,
        openai.AsyncOpenAI(api_key=KEY, base_url=server.url, max_retries=0) as client,
    ):
        data = ("\n".join(chat_lines(200)) + "\n").encode()
        upload = await client.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint=CHAT, completion_window="24h"
        )
        clock.advance(5)
        batch = await client.batches.retrieve(batch.id)
        assert batch.status == "completed"
        assert batch.output_file_id is not None and batch.error_file_id is not None
        output = (await client.files.content(batch.output_file_id)).text.splitlines()
        errors = (await client.files.content(batch.error_file_id)).text.splitlines()
        assert len(output) + len(errors) == 200
        assert [b.id async for b in client.batches.list()] == [batch.id]


def test_cli_batch_flags_build_the_batch_config() -> None:
    argv = [
        *("--batch-validation-seconds", "0", "--batch-lines-per-second", "50"),
        *("--batch-finalizing-seconds", "0.5", "--batch-cancel-seconds", "2"),
        *("--batch-expiry-seconds", "60", "--batch-max-requests", "100"),
        *("--batch-max-file-bytes", "1000", "--batch-max-embedding-inputs", "10"),
        *("--batch-token-limit", "5000", "--batch-model-token-limit", "gpt-4o=100"),
        *("--batch-line-error-rate", "0.1", "--batch-line-error-statuses", "429,503"),
        *("--batch-not-found-model", "gpt-x", "--batch-malformed-lines", "3"),
    ]
    batch = build_config(build_parser().parse_args(argv)).batch
    assert batch == BatchConfig(
        validation_seconds=0,
        lines_per_second=50,
        finalizing_seconds=0.5,
        cancel_seconds=2,
        expiry_seconds=60,
        max_requests_per_batch=100,
        max_file_bytes=1000,
        max_embedding_inputs=10,
        enqueued_token_limit=5000,
        model_enqueued_token_limits={"gpt-4o": 100},
        line_error_rate=0.1,
        line_error_statuses=(429, 503),
        not_found_models=("gpt-x",),
        malformed_output_lines=3,
    )
    assert build_config(build_parser().parse_args([])).batch == BatchConfig()
    assert main(["--batch-model-token-limit", "nonsense"]) == 2
    assert main(["--batch-line-error-statuses", "200"]) == 2


def test_cli_server_runs_a_batch_in_a_subprocess() -> None:
    code = "import sys; from ratelimit_llm.mock._cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [
        *("--latency-scale", "0", "--batch-validation-seconds", "0"),
        *("--batch-finalizing-seconds", "0", "--batch-lines-per-second", "1000000"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            with openai.OpenAI(api_key=KEY, base_url=url, max_retries=0, timeout=10) as client:
                upload = client.files.create(
                    file=("in.jsonl", "\n".join(chat_lines(100)).encode()), purpose="batch"
                )
                batch = client.batches.create(
                    input_file_id=upload.id, endpoint=CHAT, completion_window="24h"
                )
                deadline = time.monotonic() + 10
                # Real time passes here, so the batch needs a few polls at most.
                while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
                    time.sleep(0.01)
                    batch = client.batches.retrieve(batch.id)
                assert batch.status == "completed" and batch.output_file_id is not None
                lines = client.files.content(batch.output_file_id).text.splitlines()
                assert len(lines) == 100
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:  # pragma: no cover - only when an assertion failed
                process.kill()
                process.wait()
