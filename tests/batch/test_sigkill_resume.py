"""SIGKILL the batch client at random moments; the journal still answers everything once.

A worker process (`_kill_worker.py`) runs `batch.run` over 20,000 requests in batches of
2,000 against the mock server in another process (real sockets, retryable line errors
on). It is killed with SIGKILL at seeded random moments and restarted with the same
journal and inputs, then left to finish. Afterwards:

* the journal holds exactly one final result for each of the 20,000 custom_ids;
* the mock never saw a nonce on two batches, every batch it created is recorded in the
  journal, and the lines it received add up to 20,000 plus the retried lines: no chunk
  was ever submitted twice.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio

from ratelimit_llm import batch
from ratelimit_llm.batch._runner import NONCE_KEY
from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits

COUNT = 20_000
CHUNK = 2_000
#: Estimated tokens in flight: one 2,000-request chunk (about 17 tokens a request) and
#: a few retry chunks, so the chunks go out one after another and the job advances only
#: while a worker runs (a kill lands in every phase, not just in a long wait).
BUDGET = 40_000
KILLS = 6
SEED = 20_261_128
TOTAL_TIMEOUT = 240.0
WORKER = Path(__file__).with_name("_kill_worker.py")


def _mock_batches(base_url: str) -> list[dict[str, Any]]:
    origin = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{origin}/mock/batches", timeout=30) as response:
        data: list[dict[str, Any]] = json.load(response)["data"]
    return data


def _start(base_url: str, journal: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                base_url,
                str(journal),
                str(COUNT),
                str(CHUNK),
                str(BUDGET),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(30)


async def _journal_results(journal: Path) -> list[batch.BatchResult]:
    return [
        result
        async for page in batch.results(None, journal, wait=False, chunk_size=5_000)
        for result in page
    ]


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel.instant(),
        batch=BatchConfig(
            validation_seconds=0.05,
            finalizing_seconds=0.05,
            lines_per_second=4_000,
            line_error_rate=0.01,
            line_error_statuses=(429, 500),
        ),
        seed=3,
    )
    journal = tmp_path / "job.db"
    log = tmp_path / "worker.log"
    rng = random.Random(SEED)
    deadline = time.monotonic() + TOTAL_TIMEOUT
    kills = 0
    runs = 0
    with mock_server_process(config) as base_url:
        process: subprocess.Popen[bytes] | None = None
        try:
            for _ in range(KILLS):
                process = _start(base_url, journal, log)
                runs += 1
                try:
                    process.wait(rng.uniform(0.3, 2.5))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.wait(30)
                    kills += 1
                    continue
                break  # finished before its kill: nothing left to interrupt
            if process is None or process.returncode != 0:
                process = _start(base_url, journal, log)
                runs += 1
                process.wait(max(1.0, deadline - time.monotonic()))
        finally:
            if process is not None:
                _stop(process)
        output = log.read_text(errors="replace")
        assert process.returncode == 0, f"worker failed ({process.returncode}):\n{output[-4000:]}"
        created = _mock_batches(base_url)

    assert kills >= 3, f"only {kills} kill(s) landed on a running worker:\n{output[-2000:]}"

    # The journal: one final result per custom_id, nothing pending or queued.
    results = anyio.run(_journal_results, journal)
    ids = [r.custom_id for r in results]
    assert len(ids) == COUNT
    assert set(ids) == {f"r-{i:05d}" for i in range(COUNT)}
    final_errors = sum(1 for r in results if not r.ok)
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        states = dict(db.execute("SELECT state, count(*) FROM requests GROUP BY state").fetchall())
        recorded = [
            row[0] for row in db.execute("SELECT batch_id FROM chunks WHERE batch_id IS NOT NULL")
        ]
    assert states == {"done": COUNT}

    # The server: no nonce on two batches, every batch recorded, no chunk sent twice.
    nonces = [(b.get("metadata") or {}).get(NONCE_KEY) for b in created]
    assert None not in nonces
    assert len(set(nonces)) == len(nonces), "a chunk was created as two batches"
    assert sorted(recorded) == sorted(b["id"] for b in created), "a batch the journal lost"
    assert all(b["status"] == "completed" for b in created), [b["status"] for b in created]
    assert len(created) >= COUNT // CHUNK
    lines = sum(int(b["input_lines"]) for b in created)
    failed = sum(int(b["request_counts"]["failed"]) for b in created)
    assert failed > 0, "no line error was injected: the retries went untested"
    # Every line the mock answered with an error was resubmitted once, unless its
    # retry budget was spent (then it is a final error in the journal).
    assert lines == COUNT + failed - final_errors, (lines, failed, final_errors)
    print(f"\nruns={runs} kills={kills} batches={len(created)} lines={lines} failed={failed}")
