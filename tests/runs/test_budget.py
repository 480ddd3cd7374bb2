"""``budget_usd``: dozens of calls in flight together never spend past it, the run stops
admitting cleanly, and what was spent carries over to a resume.

In virtual time against the in-process mock, with answers whose length varies (the
mock draws each between 8 tokens and the request's ``max_tokens``), so a call's
reservation (its bound, at ``max_tokens``) is often well above its price: admission
has to wait for reservations to come back, not just count answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ratelimit_llm
from ratelimit_llm.mock import LatencyModel

from ._support import lines, output_lines, run_mock

pytestmark = pytest.mark.anyio

BUDGET_USD = 0.01
NANO = 1_000_000_000


def long_lines(count: int) -> Iterator[dict[str, Any]]:
    for line in lines(count):
        line["body"]["max_tokens"] = 200
        yield line


def spent_nano(journal: Path) -> tuple[int, int, dict[str, int]]:
    """(priced answers, unresolved reservations, requests by state), from the journal."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        (priced,) = db.execute(
            "SELECT COALESCE(SUM(nano_usd), 0) FROM requests WHERE state = 'done'"
        ).fetchone()
        row = db.execute("SELECT value FROM meta WHERE key = 'run_unresolved_nano'").fetchone()
        states = dict(db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state"))
    return int(priced), int(row[0]) if row else 0, states


async def test_concurrent_calls_never_overshoot_the_budget_and_a_resume_keeps_it(
    tmp_path: Path,
) -> None:
    journal, out = tmp_path / "job.db", tmp_path / "out.jsonl"
    # Half a second to a few seconds per answer: many calls are in flight at once.
    async with run_mock(latency=LatencyModel(ttft=0.5, tokens_per_second=60)) as m:
        client = ratelimit_llm.wrap(m.client, rpm=6_000, tpm=10_000_000)
        async with ratelimit_llm.run(
            client,
            long_lines(1_000),
            journal=journal,
            out=out,
            budget_usd=BUDGET_USD,
            concurrency=64,
        ) as job:
            peak = 0
            results = []
            async for result in job:
                results.append(result)
                peak = max(peak, job.progress().in_flight)
        summary = job.summary()
        served = await m.chat_requests()
        assert summary is not None and summary.stop_reason == "budget"
        assert not summary.finished and summary.pending == 1_000 - len(results)
        assert peak >= 10, peak  # the budget was shared by calls in flight together
        priced, unresolved, states = spent_nano(journal)
        assert priced + unresolved <= BUDGET_USD * NANO
        assert summary.usd <= BUDGET_USD
        # It stopped because the next bound did not fit, not early: one bound is ~$0.00012.
        assert priced > (BUDGET_USD - 0.0005) * NANO
        assert states == {"done": len(results), "pending": 1_000 - len(results)}
        assert served == len(results) == len(output_lines(out))
        assert all(r.ok and r.usd is not None for r in results)
        assert sum(r.usd or 0 for r in results) == pytest.approx(priced / NANO, abs=1e-6)

        # The same budget on resume: what was spent counts; at most a request or two
        # that fits what is left goes out, and the total stays within the budget.
        async with ratelimit_llm.run(
            client, long_lines(1_000), journal=journal, out=out, budget_usd=BUDGET_USD
        ) as job:
            await job.wait()
        again = job.summary()
        assert again is not None and again.stop_reason == "budget"
        assert await m.chat_requests() - served <= 5
        priced, unresolved, _ = spent_nano(journal)
        assert priced + unresolved <= BUDGET_USD * NANO

        # A larger budget on resume goes on from there.
        async with ratelimit_llm.run(
            client, long_lines(1_000), journal=journal, out=out, budget_usd=2 * BUDGET_USD
        ) as job:
            await job.wait()
        priced_after, unresolved, _ = spent_nano(journal)
        assert priced < priced_after <= 2 * BUDGET_USD * NANO
        assert await m.chat_requests() == len(output_lines(out))
