"""`submit` then `results` (from a fresh journal handle), `status`, `cancel`, inputs shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio

from ratelimit_llm import batch
from ratelimit_llm.mock import BatchConfig

from ._support import CHAT, batch_mock, chat_bodies, fast

pytestmark = pytest.mark.anyio


async def test_submit_then_results_in_chunks(tmp_path: Path) -> None:
    async with batch_mock(BatchConfig(lines_per_second=5, validation_seconds=0)) as m:
        options = fast(max_requests=10)
        job = await batch.submit(
            m.client,
            chat_bodies(25),
            journal=tmp_path / "job.db",
            endpoint=CHAT,
            limits=options["limits"],
            retry_backoff=0.0,
        )
        assert job.requests == 25 and len(job.batch_ids) == 3
        state = await batch.status(m.client, job)
        assert state.queued == 25 and state.done == 0 and not state.finished
        assert {c.remote_status for c in state.chunks} <= {"validating", "in_progress"}

        pages = [
            page async for page in batch.results(m.client, job.journal, chunk_size=7, **options)
        ]
        assert [len(page) for page in pages][:3] == [7, 7, 7]
        assert sum(len(page) for page in pages) == 25
        state = await batch.status(None, job)
        assert state.finished and state.succeeded == 25

        again = [r async for page in batch.results(None, job, wait=False) for r in page]
        assert sorted(r.custom_id for r in again) == sorted(f"request-{i}" for i in range(25))


async def test_cancel_keeps_partial_output_and_run_resumes_the_rest(tmp_path: Path) -> None:
    async with batch_mock(BatchConfig(lines_per_second=1, validation_seconds=0)) as m:
        journal = tmp_path / "job.db"
        await batch.submit(
            m.client, chat_bodies(20), journal=journal, endpoint=CHAT, retry_backoff=0.0
        )
        await trio.sleep(5.5)  # about five lines run
        state = await batch.cancel(m.client, journal, poll=batch.FixedPoll(0.5), retry_backoff=0.0)
        assert state.cancelled
        assert 0 < state.succeeded < 20 and state.pending == 20 - state.succeeded
        assert (await m.batches())[0]["status"] == "cancelled"
        partial = state.succeeded

        # results() after a cancel submits nothing: it hands over what is there.
        pages = [page async for page in batch.results(m.client, journal, **fast())]
        assert sum(len(page) for page in pages) == partial
        assert len(await m.batches()) == 1

        results = [r async for r in batch.run(m.client, None, journal=journal, **fast())]
        assert len(results) == 20 and len({r.custom_id for r in results}) == 20
        batches = await m.batches()
        assert batches[1]["input_lines"] == 20 - partial


async def test_async_iterables_and_all_input_shapes(tmp_path: Path) -> None:
    async def inputs() -> AsyncIterator[Any]:
        body = next(chat_bodies(1))
        yield batch.BatchRequest(body, endpoint=CHAT, custom_id="a")
        yield {"custom_id": "b", "method": "POST", "url": CHAT, "body": body}
        yield {**body, "custom_id": "c"}
        yield body
        yield {
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": ["x", "y"]},
        }

    async with batch_mock() as m:
        results = [
            r
            async for r in batch.run(
                m.client, inputs(), journal=tmp_path / "j.db", endpoint=CHAT, **fast()
            )
        ]
        assert sorted(r.custom_id for r in results) == ["a", "b", "c", "request-3", "request-4"]
        assert all(r.ok for r in results)
        embedding = next(r for r in results if r.custom_id == "request-4")
        assert embedding.response is not None and len(embedding.response["data"]) == 2
        endpoints = sorted(b["endpoint"] for b in await m.batches())
        assert endpoints == [CHAT, "/v1/embeddings"]


async def test_journal_and_reprs_hold_no_api_key(tmp_path: Path) -> None:
    from ._support import KEY

    async with batch_mock() as m:
        journal = tmp_path / "j.db"
        job = await batch.submit(
            m.client, chat_bodies(3), journal=journal, endpoint=CHAT, retry_backoff=0.0
        )
        results = [r async for page in batch.results(m.client, job, **fast()) for r in page]
    text = b"".join([await p.read_bytes() async for p in anyio.Path(tmp_path).iterdir()])
    assert KEY.encode() not in text
    assert KEY not in repr(job) + repr(results) + repr(await batch.status(None, journal))
