"""``retry_failed=True`` (``--retry-failed``): only the job's failed requests go again.

Failures are results (journaled, written, counted by kind); a later run with
``retry_failed`` puts exactly those back to pending and sends them, and the output
then holds each request once, with its latest answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ratelimit_llm
from ratelimit_llm.mock import FaultPlan, FaultRule
from ratelimit_llm.strategies import AdaptiveBackoff

from ._support import each_once, lines, output_lines, run_mock

pytestmark = pytest.mark.anyio


async def test_failures_are_results_and_retry_failed_sends_only_those(tmp_path: Path) -> None:
    journal, out = tmp_path / "job.db", tmp_path / "out.jsonl"
    # The 3rd to 5th calls get a 500; with one attempt allowed, they fail for good.
    faults = FaultPlan((FaultRule.parse("500@3-5"),))
    async with run_mock(faults=faults) as m:
        client = ratelimit_llm.wrap(
            m.client, rpm=6_000, tpm=1_000_000, strategy=AdaptiveBackoff(max_attempts=1)
        )
        bad = {
            "custom_id": "bad-request",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "max_tokens": 8},  # no messages: a 400
        }
        inputs = [*lines(30), bad]
        async with ratelimit_llm.run(
            client, inputs, journal=journal, out=out, concurrency=1
        ) as job:
            results = [result async for result in job]
        failed = {r.custom_id: r.error for r in results if r.error is not None}
        assert len(failed) == 4
        assert failed["bad-request"].kind == "client_error"
        assert failed["bad-request"].status_code == 400 and not failed["bad-request"].retryable
        server_errors = [e for cid, e in failed.items() if cid != "bad-request"]
        assert {e.kind for e in server_errors} == {"server_error"}
        assert all(e.retryable and e.status_code == 500 for e in server_errors)
        summary = job.summary()
        assert summary is not None and summary.finished
        assert summary.failed_by_kind == {"server_error": 3, "client_error": 1}
        assert {line["custom_id"] for line in output_lines(out) if line["error"]} == set(failed)
        served = await m.chat_requests()

        async with ratelimit_llm.run(
            client, inputs, journal=journal, out=out, retry_failed=True, replay=False
        ) as job:
            again = [result async for result in job]
        assert job.retried == 4
        assert sorted(r.custom_id for r in again) == sorted(failed)
        assert await m.chat_requests() == served + 4  # only the failed ones went again
    final = {line["custom_id"]: line for line in output_lines(out)}
    each_once([line["custom_id"] for line in output_lines(out)], 31)
    assert [cid for cid, line in final.items() if line["error"]] == ["bad-request"]
