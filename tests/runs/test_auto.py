"""``via="auto"``: the Batch API while the deadline allows, then the tail online, in time.

In virtual time against the in-process mock (its batches run on the same clock), with
a Batch API too slow for the deadline: a batch that would take hours, or one that
expires first. The run must switch in time, cancel what is running, keep the lines
the batches finished (paid once, at the batch price), send only the rest online, and
be done before the deadline. ``via="batch"`` alone, on the same server, is the
contrast: it takes the batch's own time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest

import ratelimit_llm
from ratelimit_llm.mock import BatchConfig, LatencyModel
from ratelimit_llm.runs import AutoPolicy

from ._support import lines, output_lines, run_mock

pytestmark = pytest.mark.anyio

COUNT = 300
DEADLINE = 3_600.0
#: 300 online calls at 600 a minute: 30 s of quota; the policy keeps 1.25x that,
#: 120 s for the cancel and 60 s of margin, so it switches near 3,380 s.
POLICY = AutoPolicy(cancel_allowance=120, margin=60)

SLOW = BatchConfig(lines_per_second=0.02, cancel_seconds=30)  # 300 lines: ~4 hours
EXPIRING = BatchConfig(lines_per_second=0.02, expiry_seconds=1_500, cancel_seconds=30)


@pytest.mark.parametrize("batch", [SLOW, EXPIRING], ids=["slow", "expiring"])
async def test_auto_finishes_the_tail_online_before_the_deadline(
    tmp_path: Path, batch: BatchConfig
) -> None:
    out = tmp_path / "out.jsonl"
    async with run_mock(batch=batch, latency=LatencyModel(ttft=0.2)) as m:
        client = ratelimit_llm.wrap(m.client, rpm=600, tpm=1_000_000)
        started = anyio.current_time()
        async with ratelimit_llm.run(
            client,
            lines(COUNT),
            journal=tmp_path / "job.db",
            out=out,
            via="auto",
            deadline=DEADLINE,
            auto=POLICY,
        ) as job:
            results = [result async for result in job]
        elapsed = anyio.current_time() - started
        summary = job.summary()
        online_calls = await m.chat_requests()
        batches = await m.batches()

    assert elapsed < DEADLINE, elapsed
    # It waited for the batches as long as the deadline allowed, not less.
    assert elapsed > DEADLINE - 600, elapsed
    assert summary is not None and summary.finished and summary.failed == 0
    ids = Counter(r.custom_id for r in results)
    assert len(ids) == COUNT and set(ids.values()) == {1}
    via = Counter(r.via for r in results)
    assert via["batch"] > 0 and via["online"] > 0, via
    assert via["batch"] + via["online"] == COUNT
    # Only the lines no batch answered went online, each once: nothing paid twice.
    assert online_calls == via["online"] == summary.online
    assert summary.batch == via["batch"]
    assert batches and all(b["status"] in ("cancelled", "expired") for b in batches), [
        b["status"] for b in batches
    ]
    # The batch answers are priced at half the online price.
    batch_usd = [r.usd for r in results if r.via == "batch" and r.usd is not None]
    assert batch_usd and summary.usd_batch == pytest.approx(sum(batch_usd), rel=1e-6)
    assert summary.usd_batch < summary.usd_at_online_price
    assert Counter(line["via"] for line in output_lines(out)) == via


async def test_batch_alone_takes_the_batch_time(tmp_path: Path) -> None:
    # The contrast: the same 300 lines through the Batch API only, a faster batch.
    async with run_mock(batch=BatchConfig(lines_per_second=1.0)) as m:
        client = ratelimit_llm.wrap(m.client, rpm=600, tpm=1_000_000)
        started = anyio.current_time()
        async with ratelimit_llm.run(
            client, lines(COUNT), journal=tmp_path / "job.db", via="batch"
        ) as job:
            results = [result async for result in job]
        elapsed = anyio.current_time() - started
        assert await m.chat_requests() == 0
    assert {r.via for r in results} == {"batch"} and len(results) == COUNT
    assert elapsed >= COUNT / 1.0
