"""`run` online against the in-process mock, in virtual time.

Each test checks what matters for its case from the outside: the results handed out,
the output file's lines, the journal's rows and the server's own count of calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ratelimit_llm
from ratelimit_llm.mock import KeyConfig, MockLimits
from ratelimit_llm.runs import RunResult

from ._support import KEY, each_once, lines, output_lines, run_mock, states, write_jsonl

pytestmark = pytest.mark.anyio


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
