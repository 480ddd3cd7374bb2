"""`run` online against the in-process mock, in virtual time.

Each test checks what matters for its case from the outside: the results handed out,
the output file's lines, the journal's rows and the server's own count of calls.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import ratelimit_llm
from ratelimit_llm.batch import JournalLockedError, JournalMismatchError
from ratelimit_llm.mock import FaultPlan, FaultRule, KeyConfig, MockLimits
from ratelimit_llm.runs import RunResult
from ratelimit_llm.strategies import AdaptiveBackoff

from ._support import KEY, lines, output_lines, run_mock, write_jsonl

pytestmark = pytest.mark.anyio


def states(journal: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall())


def each_once(items: list[str], count: int) -> None:
    seen = Counter(items)
    assert len(seen) == count, (len(seen), count)
    assert set(seen.values()) == {1}, seen.most_common(3)


async def test_every_request_answered_once_in_results_and_output(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "requests.jsonl", lines(120))
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=600, tpm=1_000_000)
        async with ratelimit_llm.run(
            client, source, journal=tmp_path / "job.db", out=tmp_path / "out.jsonl", concurrency=16
        ) as job:
            results = [result async for result in job]
        summary = job.summary()
        served = await m.chat_requests()
    each_once([r.custom_id for r in results], 120)
    assert all(r.ok and r.via == "online" and r.usage for r in results)
    out = output_lines(tmp_path / "out.jsonl")
    each_once([line["custom_id"] for line in out], 120)
    assert {line["via"] for line in out} == {"online"}
    assert all(line["response"]["object"] == "chat.completion" for line in out)
    assert served == 120
    assert summary is not None and summary.finished and summary.succeeded == 120
    assert summary.online == 120 and summary.resent == 0
    # Dollars are priced from each answer's usage (gpt-4o-mini: $0.15 / $0.60 per 1M).
    expected = sum(
        (r.usage["prompt_tokens"] * 0.15 + r.usage["completion_tokens"] * 0.60) / 1e6
        for r in results
        if r.usage
    )
    assert summary.usd_online == pytest.approx(expected, rel=1e-6)
    assert states(tmp_path / "job.db") == {"done": 120}


async def test_stop_keeps_every_finished_answer_and_a_resume_sends_only_the_rest(
    tmp_path: Path,
) -> None:
    journal, out = tmp_path / "job.db", tmp_path / "out.jsonl"
    async with run_mock() as m:
        # 60 a minute: the run takes minutes of virtual time, so the stop lands mid-job.
        client = ratelimit_llm.wrap(m.client, rpm=60, tpm=1_000_000)
        first: list[RunResult] = []
        async with ratelimit_llm.run(
            client, lines(100), journal=journal, out=out, concurrency=8, grace=5
        ) as job:
            async for result in job:
                first.append(result)
                if len(first) == 30:
                    job.stop()
        assert job.summary() is not None
        stopped = states(journal)
        # Every answer handed out is journaled and written; nothing is left in flight.
        assert stopped.get("done", 0) == len(output_lines(out)) >= 30
        assert "online" not in stopped
        assert [line["custom_id"] for line in output_lines(out)] == [r.custom_id for r in first]
        served_before = await m.chat_requests()
        assert served_before == stopped["done"]

        async with ratelimit_llm.run(
            client, lines(100), journal=journal, out=out, concurrency=8, replay=False
        ) as job:
            second = [result async for result in job]
        served = await m.chat_requests()
    assert len(second) == 100 - stopped["done"]
    each_once([r.custom_id for r in first + second], 100)
    each_once([line["custom_id"] for line in output_lines(out)], 100)
    assert served == 100  # nothing answered was sent again


async def test_a_resume_yields_earlier_answers_first_then_new_ones(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=60, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(40), journal=journal, concurrency=4) as job:
            count = 0
            async for _ in job:
                count += 1
                if count == 10:
                    job.stop()
        async with ratelimit_llm.run(client, None, journal=journal, concurrency=4) as job:
            results = [result async for result in job]
    each_once([r.custom_id for r in results], 40)
    assert all(r.ok for r in results)


async def test_other_inputs_on_a_journal_are_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=6_000, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(20), journal=journal) as job:
            await job.wait()
        served = await m.chat_requests()
        with pytest.raises(JournalMismatchError, match="another job"):
            async with ratelimit_llm.run(client, lines(20, start=500), journal=journal) as job:
                await job.wait()
        with pytest.raises(JournalMismatchError, match="do not name"):
            async with ratelimit_llm.run(client, lines(10), journal=journal) as job:
                await job.wait()
        assert await m.chat_requests() == served
    assert states(journal) == {"done": 20}


async def test_a_second_runner_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=60, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(50), journal=journal, concurrency=2) as first:
            results = first.__aiter__()
            await results.__anext__()  # the first runner is under way
            with pytest.raises(JournalLockedError, match="another process is driving"):
                async with ratelimit_llm.run(client, lines(50), journal=journal) as second:
                    await second.wait()
            first.stop()
            async for _ in results:
                pass
    assert "online" not in states(journal)


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


async def test_an_exhausted_quota_stops_admitting(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    keys = {KEY: KeyConfig(insufficient_quota=True)}
    async with run_mock(keys=keys) as m:
        client = ratelimit_llm.wrap(m.client, rpm=6_000, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(200), journal=journal, concurrency=4) as job:
            results = [result async for result in job]
        served = await m.chat_requests()
    summary = job.summary()
    assert summary is not None and summary.stop_reason == "quota"
    assert results and {r.error.kind for r in results if r.error} == {"insufficient_quota"}
    # The first refusal stopped the run: only the calls already claimed went out.
    assert served == len(results) <= 4 + 128
    assert summary.pending == 200 - len(results)


async def test_the_output_is_rebuilt_when_it_went_missing(tmp_path: Path) -> None:
    journal, out = tmp_path / "job.db", tmp_path / "out.jsonl"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=6_000, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(25), journal=journal, out=out) as job:
            await job.wait()
        first = out.read_bytes()
        out.unlink()
        async with ratelimit_llm.run(client, lines(25), journal=journal, out=out) as job:
            await job.wait()
        assert await m.chat_requests() == 25
    assert out.read_bytes() == first


async def test_an_unwrapped_client_is_wrapped_with_learned_limits(tmp_path: Path) -> None:
    async with run_mock(limits=MockLimits(rpm=6_000, tpm=1_000_000)) as m:
        async with ratelimit_llm.run(m.client, lines(10), journal=tmp_path / "job.db") as job:
            results = [result async for result in job]
        stats = await m.stats()
    assert len(results) == 10 and all(r.ok for r in results)
    assert stats["rejected"] == 0


def _usage_price(line: dict[str, Any]) -> float:
    usage = line["usage"]
    return float(usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.60) / 1e6
