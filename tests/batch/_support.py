"""Helpers for the batch tests: the mock server in-process, on trio's virtual clock.

The mock's batches advance with its clock; giving it ``trio.current_time`` puts them on
the same virtual clock as the runner's ``anyio.sleep``, so a batch that "takes" minutes
finishes in milliseconds and every poll interval is exact.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from _journal_fixtures import in_process_mock
from starlette.applications import Starlette

from ratelimit_llm.batch import BatchLimits, FixedPoll
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits

__all__ = ["CHAT", "KEY", "BatchMock", "batch_mock", "chat_bodies", "fast"]

KEY = "sk-test-batchbatchbatchbatch0042"
CHAT = "/v1/chat/completions"


@dataclass
class BatchMock:
    """The app, an SDK client on it and a raw client for ``/mock/*``."""

    app: Starlette
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient

    async def batches(self) -> list[dict[str, Any]]:
        """Every batch the mock ever created (``GET /mock/batches``)."""
        response = await self.http.get("/mock/batches")
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def files(self) -> list[Any]:
        return list(self.app.state.mock.batches.files.listing())

    async def configure(self, **changes: Any) -> None:
        response = await self.http.post("/mock/batch-config", json=changes)
        assert response.status_code == 200, response.text


@asynccontextmanager
async def batch_mock(batch: BatchConfig | None = None, **config: Any) -> AsyncIterator[BatchMock]:
    """Serve a mock whose batches run on trio's (virtual) clock."""
    settings = MockConfig(
        limits=MockLimits(rpm=1_000_000, tpm=1_000_000_000),
        latency=LatencyModel.instant(),
        batch=batch or BatchConfig(),
        **config,
    )
    async with in_process_mock(settings, KEY) as (app, client, http):
        yield BatchMock(app, client, http)


def chat_bodies(
    count: int, *, model: str = "gpt-4o-mini", start: int = 0
) -> Iterator[dict[str, Any]]:
    """Small chat bodies, each with its own text."""
    for i in range(start, start + count):
        yield {
            "model": model,
            "messages": [{"role": "user", "content": f"Request number {i}."}],
            "max_tokens": 8,
        }


def fast(**limits: Any) -> dict[str, Any]:
    """Runner options for tests: no real waits, small batches."""
    return {"limits": BatchLimits(**limits), "poll": FixedPoll(0.5), "retry_backoff": 0.0}


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
