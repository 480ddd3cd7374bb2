"""Helpers for the run tests: the mock server in-process on trio's virtual clock, inputs.

The mock's buckets, latency and batches run on ``trio.current_time``, the same clock as
the limiter and the run's waits, so a job the quota paces over minutes finishes in
milliseconds of real time, with every wait exact.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
import trio
from _journal_fixtures import in_process_mock
from starlette.applications import Starlette

from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits

__all__ = [
    "CHAT",
    "KEY",
    "RunMock",
    "each_once",
    "lines",
    "output_lines",
    "run_mock",
    "states",
    "write_jsonl",
]

KEY = "sk-test-runsrunsrunsruns0042"
CHAT = "/v1/chat/completions"


@dataclass
class RunMock:
    """The app, an SDK client on it (not wrapped) and a raw client for ``/mock/*``."""

    app: Starlette
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/mock/stats")
        data: dict[str, Any] = response.json()
        return data

    async def batches(self) -> list[dict[str, Any]]:
        response = await self.http.get("/mock/batches")
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def chat_requests(self) -> int:
        """Online API calls the mock saw, those refused as invalid (400) included (batch
        lines are not API calls)."""
        stats = await self.stats()
        return int(stats["requests"]) + sum(int(n) for n in stats["invalid"].values())


@asynccontextmanager
async def run_mock(
    limits: MockLimits | None = None,
    batch: BatchConfig | None = None,
    latency: LatencyModel | None = None,
    **config: Any,
) -> AsyncIterator[RunMock]:
    settings = MockConfig(
        limits=limits or MockLimits(rpm=1_000_000, tpm=1_000_000_000),
        latency=latency or LatencyModel.instant(),
        batch=batch or BatchConfig(),
        **config,
    )
    async with in_process_mock(settings, KEY, sleep=trio.sleep) as (app, client, http):
        yield RunMock(app, client, http)


def lines(count: int, *, start: int = 0, model: str = "gpt-4o-mini") -> Iterator[dict[str, Any]]:
    """Batch API input lines with fixed custom_ids (``r-00000``...)."""
    for i in range(start, start + count):
        yield {
            "custom_id": f"r-{i:05d}",
            "method": "POST",
            "url": CHAT,
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"Request number {i}."}],
                "max_tokens": 8,
            },
        }


def write_jsonl(path: Path, items: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item) + "\n")
    return path


def output_lines(path: Path) -> list[dict[str, Any]]:
    """The output file's lines, each parsed (a cut line fails the test)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def states(journal: Path) -> dict[str, int]:
    """The journal's requests by state."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def each_once(items: list[str], count: int) -> None:
    """``items`` holds ``count`` distinct values, each exactly once."""
    seen = Counter(items)
    assert len(seen) == count, (len(seen), count)
    assert set(seen.values()) == {1}, seen.most_common(3)
