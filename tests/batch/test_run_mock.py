"""`run` end to end against the mock's Files and Batch APIs, in virtual time.

Each test checks the property that matters for its case: every request answered exactly
once, results mapped by custom_id whatever the output order, only the right lines
resubmitted, and never a batch created twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import ratelimit_llm
from ratelimit_llm import batch
from ratelimit_llm.mock import BatchConfig

from ._support import CHAT, BatchMock, batch_mock, chat_bodies, fast

pytestmark = pytest.mark.anyio


def varied_bodies(count: int, model: str = "gpt-4o-mini") -> list[dict[str, Any]]:
    """Bodies whose prompts grow with their index, so answers' usage tells them apart."""
    return [
        {
            "model": model,
            "messages": [{"role": "user", "content": "word " * (4 * i + 1)}],
            "max_tokens": 4,
        }
        for i in range(count)
    ]


async def collect(results: Any) -> list[batch.BatchResult]:
    return [result async for result in results]


def assert_each_once(results: list[batch.BatchResult], count: int) -> None:
    ids = Counter(result.custom_id for result in results)
    assert len(ids) == count
    assert set(ids.values()) == {1}


async def assert_no_duplicate_batches(m: BatchMock) -> list[dict[str, Any]]:
    batches = await m.batches()
    nonces = Counter((b["metadata"] or {}).get("ratelimit_llm_nonce") for b in batches)
    assert set(nonces.values()) == {1}, nonces
    return batches


async def test_happy_path_maps_shuffled_output_by_custom_id(tmp_path: Path) -> None:
    telemetry = ratelimit_llm.telemetry.Telemetry()
    async with batch_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=10_000, tpm=10_000_000, telemetry=telemetry)
        stats = batch.BatchStatistics()
        results = await collect(
            batch.run(
                client,
                varied_bodies(25),
                journal=tmp_path / "job.db",
                endpoint=CHAT,
                statistics=stats,
                **fast(max_requests=10),
            )
        )
        assert_each_once(results, 25)
        prompts = {}
        for result in results:
            index = int(result.custom_id.removeprefix("request-"))
            assert result.ok and result.response is not None and result.usage is not None
            assert result.batch_id is not None
            prompts[index] = result.usage["prompt_tokens"]
        ordered = [prompts[i] for i in range(25)]
        assert ordered == sorted(ordered) and len(set(ordered)) == 25  # each got its own answer
        batches = await assert_no_duplicate_batches(m)
        assert [b["input_lines"] for b in batches] == [10, 10, 5]
        assert stats.batches_created == 3 and stats.malformed_lines == stats.missing_lines == 0
        assert m.files() == []  # input, output and error files deleted once journaled
        # Every call (uploads, creates, polls, downloads, deletes) went through the limiter.
        routes = telemetry.statistics()
        assert sum(route.requests for route in routes) >= 3 * 4
    cost = batch.cost(tmp_path / "job.db")
    assert cost.requests == 25 and cost.input_tokens == sum(ordered)
    assert cost.batch_usd == pytest.approx(cost.sync_usd / 2)


async def test_an_early_batch_is_yielded_before_a_later_one_completes(tmp_path: Path) -> None:
    async with batch_mock(BatchConfig(lines_per_second=1, validation_seconds=0)) as m:
        bodies = [*chat_bodies(2, model="gpt-4o"), *chat_bodies(40, start=2)]
        seen_while_running: list[str] = []
        async for result in batch.run(
            m.client, bodies, journal=tmp_path / "job.db", endpoint=CHAT, **fast()
        ):
            if not seen_while_running:
                statuses = [b["status"] for b in await m.batches()]
                seen_while_running.extend(statuses)
                assert result.custom_id in ("request-0", "request-1")
        assert "in_progress" in seen_while_running


async def test_expired_batches_keep_partial_output_and_resubmit_only_the_rest(
    tmp_path: Path,
) -> None:
    config = BatchConfig(lines_per_second=2, validation_seconds=0, expiry_seconds=5)
    async with batch_mock(config) as m:
        stats = batch.BatchStatistics()
        results = await collect(
            batch.run(
                m.client,
                chat_bodies(24),
                journal=tmp_path / "job.db",
                endpoint=CHAT,
                statistics=stats,
                **fast(max_expired_resubmits=10),
            )
        )
        assert_each_once(results, 24)
        assert all(result.ok for result in results)
        batches = await assert_no_duplicate_batches(m)
        assert batches[0]["status"] == "expired"
        done_first = batches[0]["request_counts"]["completed"]
        assert 0 < done_first < 24
        assert batches[1]["input_lines"] == 24 - done_first  # only the missing lines
        assert stats.missing_lines == 0  # expiry lines came in the error file


async def test_token_limit_exceeded_requeues_and_shrinks_the_budget(tmp_path: Path) -> None:
    tokens = 13  # what the mock counts per request of chat_bodies
    async with batch_mock(BatchConfig(enqueued_token_limit=tokens * 3)) as m:
        stats = batch.BatchStatistics()
        results = await collect(
            batch.run(
                m.client,
                chat_bodies(12),
                journal=tmp_path / "job.db",
                endpoint=CHAT,
                statistics=stats,
                **fast(max_requests=12),
            )
        )
        assert_each_once(results, 12)
        assert all(result.ok for result in results)
        assert stats.token_limit_failures >= 1
        batches = await assert_no_duplicate_batches(m)
        failed = [b for b in batches if b["status"] == "failed"]
        assert failed and failed[0]["input_lines"] == 12
        assert all(b["input_lines"] <= 3 for b in batches if b["status"] == "completed")


async def test_a_request_over_the_token_limit_alone_fails_the_run(tmp_path: Path) -> None:
    async with batch_mock(BatchConfig(enqueued_token_limit=5)) as m:
        with pytest.raises(batch.BatchFailedError) as caught:
            await collect(
                batch.run(
                    m.client, chat_bodies(2), journal=tmp_path / "j.db", endpoint=CHAT, **fast()
                )
            )
        assert "token_limit_exceeded" in caught.value.codes
    status = await batch.status(None, tmp_path / "j.db")
    assert status.pending == 2  # nothing lost: a later run can go on


async def test_duplicate_custom_id_is_refused_before_any_upload(tmp_path: Path) -> None:
    async with batch_mock() as m:
        bodies = [{**body, "custom_id": f"id-{i % 3}"} for i, body in enumerate(chat_bodies(5))]
        with pytest.raises(batch.DuplicateCustomIdError):
            await collect(
                batch.run(m.client, bodies, journal=tmp_path / "j.db", endpoint=CHAT, **fast())
            )
        assert m.files() == []
        assert await m.batches() == []


async def test_a_malformed_output_line_loses_only_its_request_which_is_resubmitted(
    tmp_path: Path,
) -> None:
    async with batch_mock(BatchConfig(malformed_output_lines=1)) as m:

        async def heal(step: str) -> None:
            if step == "collected":
                await m.configure(malformed_output_lines=0)

        stats = batch.BatchStatistics()
        results = await collect(
            batch.run(
                m.client,
                chat_bodies(10),
                journal=tmp_path / "job.db",
                endpoint=CHAT,
                statistics=stats,
                checkpoint=heal,
                **fast(),
            )
        )
        assert_each_once(results, 10)
        assert all(result.ok for result in results)
        assert stats.malformed_lines == 1 and stats.missing_lines == 1
        batches = await m.batches()
        assert [b["input_lines"] for b in batches] == [10, 1]


async def test_line_errors_retryable_are_retried_and_final_are_final(tmp_path: Path) -> None:
    config = BatchConfig(
        line_error_rate=0.4, line_error_statuses=(429, 500), not_found_models=("gpt-gone",)
    )
    async with batch_mock(config) as m:
        bodies = [*chat_bodies(20), *chat_bodies(3, model="gpt-gone", start=20)]
        results = await collect(
            batch.run(
                m.client, bodies, journal=tmp_path / "job.db", endpoint=CHAT, **fast(max_retries=12)
            )
        )
        assert_each_once(results, 23)
        by_id = {r.custom_id: r for r in results}
        for i in range(20):
            assert by_id[f"request-{i}"].ok  # retried until it went through
        for i in range(20, 23):
            error = by_id[f"request-{i}"].error
            assert error is not None and error.status_code == 404
            assert error.code == "model_not_found" and not error.retryable
        batches = await m.batches()
        assert len(batches) > 2  # the 429/500 lines went round again


async def test_retry_budget_turns_a_retryable_error_final(tmp_path: Path) -> None:
    config = BatchConfig(line_error_rate=1.0, line_error_statuses=(500,))
    async with batch_mock(config) as m:
        results = await collect(
            batch.run(
                m.client,
                chat_bodies(3),
                journal=tmp_path / "j.db",
                endpoint=CHAT,
                **fast(max_retries=2),
            )
        )
        assert_each_once(results, 3)
        for result in results:
            assert result.error is not None and result.error.status_code == 500
            assert result.error.retryable
        assert len(await m.batches()) == 3  # the first try and two retries


class Crash(Exception):
    pass


STEPS = [
    "ingested",
    "planned",
    "uploaded",
    "creating",
    "created",
    "submitted",
    "collecting",
    "collected",
]


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_at_any_step_resumes_exactly_once(tmp_path: Path, step: str) -> None:
    async with batch_mock() as m:
        hits = Counter[str]()

        def crash_once(name: str) -> None:
            hits[name] += 1
            # Mid-run: at the second chunk's step (the inputs are ingested once).
            if name == step and hits[name] == (1 if step == "ingested" else 2):
                raise Crash(name)

        journal = tmp_path / "job.db"
        with pytest.raises(Crash):
            async for _ in batch.run(
                m.client,
                chat_bodies(25),
                journal=journal,
                endpoint=CHAT,
                checkpoint=crash_once,
                **fast(max_requests=10),
            ):
                pass
        stats = batch.BatchStatistics()
        again = await collect(
            batch.run(
                m.client,
                chat_bodies(25),
                journal=journal,
                endpoint=CHAT,
                statistics=stats,
                **fast(max_requests=10),
            )
        )
        assert_each_once(again, 25)  # the resume hands over everything, once
        assert all(result.ok for result in again)
        batches = await assert_no_duplicate_batches(m)
        assert sum(b["input_lines"] for b in batches if b["status"] == "completed") == 25
        if step == "created":
            assert stats.batches_found_by_nonce == 1  # found by its nonce, not created again


async def test_a_lost_create_response_is_found_by_nonce(tmp_path: Path) -> None:
    """The create succeeded, its answer was lost (the checkpoint raises a connection error)."""
    import httpx2
    import openai

    async with batch_mock() as m:
        lost = False

        def lose(step: str) -> None:
            nonlocal lost
            if step == "created" and not lost:
                lost = True
                raise openai.APIConnectionError(request=httpx2.Request("POST", "http://mock.test"))

        stats = batch.BatchStatistics()
        with pytest.raises(openai.APIConnectionError):
            await collect(
                batch.run(
                    m.client,
                    chat_bodies(4),
                    journal=tmp_path / "j.db",
                    endpoint=CHAT,
                    checkpoint=lose,
                    **fast(),
                )
            )
        results = await collect(
            batch.run(m.client, None, journal=tmp_path / "j.db", statistics=stats, **fast())
        )
        assert_each_once(results, 4)
        assert len(await m.batches()) == 1 and stats.batches_found_by_nonce == 1


async def test_a_second_driver_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    async with batch_mock(BatchConfig(lines_per_second=1)) as m:
        journal = tmp_path / "j.db"
        refused: list[Exception] = []

        async def try_second(step: str) -> None:
            if step == "submitted" and not refused:  # the first run holds the journal now
                try:
                    await collect(batch.run(m.client, None, journal=journal, **fast()))
                except batch.JournalLockedError as exc:
                    refused.append(exc)

        results = await collect(
            batch.run(
                m.client,
                chat_bodies(5),
                journal=journal,
                endpoint=CHAT,
                checkpoint=try_second,
                **fast(),
            )
        )
        assert len(results) == 5
        assert len(refused) == 1
