"""`run` over a real socket (uvicorn), as the subprocess kill tests will use it.

The in-process ASGI transport buffers bodies; a real server proves the upload streams
from the spooled file through the HTTP stack and the downloads stream back.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import openai
import pytest

import ratelimit_llm
from ratelimit_llm import batch
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits, serve

from ._support import CHAT, KEY, chat_bodies


@pytest.mark.asyncio
async def test_run_against_uvicorn(tmp_path: Path) -> None:
    config = MockConfig(
        limits=MockLimits(rpm=100_000, tpm=100_000_000),
        latency=LatencyModel.instant(),
        batch=BatchConfig(validation_seconds=0, finalizing_seconds=0, lines_per_second=100_000),
    )
    async with serve(config) as server:
        client = ratelimit_llm.wrap(
            openai.AsyncOpenAI(api_key=KEY, base_url=server.url), rpm=10_000, tpm=100_000_000
        )
        async with client:
            results = [
                r
                async for r in batch.run(
                    client,
                    chat_bodies(300),
                    journal=tmp_path / "job.db",
                    endpoint=CHAT,
                    limits=batch.BatchLimits(max_requests=100),
                    poll=batch.FixedPoll(0.01),
                    spool_dir=tmp_path,
                )
            ]
    assert len({r.custom_id for r in results}) == 300 and all(r.ok for r in results)
    spooled = [path async for path in anyio.Path(tmp_path).glob("*.jsonl")]
    assert spooled == []  # spool files are removed after upload
