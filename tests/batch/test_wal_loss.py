"""Losing the ``-wal`` loses nothing: the main file alone resumes the job.

The operator's case: after a crash, ``job.db`` was copied to another machine without
its ``job.db-wal``, where all the state was; the resume started over and 2,000 requests
became 2,500 request lines in 25 batches. Here the main file alone is copied (after a
real SIGKILL, and in-process at every durable step) and the job is resumed from the
copy, somewhere else: no batch is created twice, every request is answered once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from ratelimit_llm import batch
from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits

from ._support import CHAT, batch_mock, chat_bodies, fast
from .test_run_mock import STEPS, Crash, assert_each_once, assert_no_duplicate_batches

WORKER = Path(__file__).with_name("_kill_worker.py")


@pytest.mark.anyio
@pytest.mark.parametrize("step", STEPS)
async def test_the_main_file_copied_at_any_step_resumes_elsewhere(
    tmp_path: Path, step: str
) -> None:
    journal = tmp_path / "here" / "job.db"
    journal.parent.mkdir()
    copy = tmp_path / "there" / "job.db"
    copy.parent.mkdir()
    async with batch_mock() as m:
        hits = Counter[str]()

        def copy_then_crash(name: str) -> None:
            hits[name] += 1
            if name == step and hits[name] == (1 if step == "ingested" else 2):
                shutil.copyfile(journal, copy)  # the main file only, the -wal stays behind
                raise Crash(name)

        with pytest.raises(Crash):
            async for _ in batch.run(
                m.client,
                chat_bodies(25),
                journal=journal,
                endpoint=CHAT,
                checkpoint=copy_then_crash,
                **fast(max_requests=10),
            ):
                pass
        stats = batch.BatchStatistics()
        again = [
            r
            async for r in batch.run(
                m.client,
                chat_bodies(25),
                journal=copy,
                endpoint=CHAT,
                statistics=stats,
                **fast(max_requests=10),
            )
        ]
        assert_each_once(again, 25)
        assert all(result.ok for result in again)
        batches = await assert_no_duplicate_batches(m)
        assert sum(b["input_lines"] for b in batches) == 25  # no line was sent twice
        assert stats.batches_adopted == 0  # the copy knew every batch: nothing to adopt
        if step == "created":
            assert stats.batches_found_by_nonce == 1


def _mock_batches(base_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base_url.removesuffix('/v1')}/mock/batches", timeout=30) as r:
        data: list[dict[str, Any]] = json.load(r)["data"]
    return data


def _worker(
    base_url: str, journal: Path, *, kill_at: str | None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "KILL_AT"}
    if kill_at is not None:
        env["KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, str(WORKER), base_url, str(journal), "2000", "200", str(10**9)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_after_a_sigkill_the_main_file_alone_finishes_the_job_elsewhere(tmp_path: Path) -> None:
    """2,000 requests in 10 batches of 200, killed after the 4th batch was created."""
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel.instant(),
        batch=BatchConfig(validation_seconds=0.2, finalizing_seconds=0.05, lines_per_second=2_000),
    )
    here = tmp_path / "here" / "job.db"
    there = tmp_path / "there" / "job.db"
    here.parent.mkdir()
    there.parent.mkdir()
    with mock_server_process(config) as base_url:
        killed = _worker(base_url, here, kill_at="submitted:4")
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        assert here.with_name("job.db-wal").exists()  # the kill left SQLite's -wal behind
        shutil.copyfile(here, there)  # ... and only the main file travels
        with sqlite3.connect(f"file:{there}?mode=ro&immutable=1", uri=True) as db:
            intents = {row[0] for row in db.execute("SELECT nonce FROM chunks")}
        before = _mock_batches(base_url)
        # Every batch the server has was announced in the main file before its create
        # (the last one's id may not be recorded yet: the resume finds it by its nonce).
        assert len(before) == 4
        assert {b["metadata"]["ratelimit_llm_nonce"] for b in before} <= intents

        finished = _worker(base_url, there, kill_at=None)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        created = _mock_batches(base_url)

    results = anyio.run(_results, there)
    assert sorted(r.custom_id for r in results) == [f"r-{i:05d}" for i in range(2000)]
    assert all(r.ok for r in results)
    nonces = [b["metadata"]["ratelimit_llm_nonce"] for b in created]
    assert len(created) == 10 and len(set(nonces)) == 10
    assert sum(b["input_lines"] for b in created) == 2000  # not one line paid twice


async def _results(journal: Path) -> list[batch.BatchResult]:
    return [r async for page in batch.results(None, journal, wait=False) for r in page]
