"""A create whose answer is lost in transit starts one job, whoever would retry it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx2
import openai
import pytest
import trio

import ratelimit_llm
from ratelimit_llm import batch
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits, create_app

from ._support import CHAT, KEY, chat_bodies, fast

pytestmark = pytest.mark.anyio


class _LoseFirstCreateAnswer(httpx2.AsyncBaseTransport):
    """Passes everything on, but answers the first ``POST /v1/batches`` with a 502 after
    the server has created the batch: the answer was lost on the way back."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lost = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/v1/batches" and not self.lost:
            self.lost += 1
            await response.aread()
            return httpx2.Response(
                502, json={"error": {"message": "bad gateway", "type": "server_error"}}
            )
        return response


@pytest.mark.parametrize("wrapped", [False, True], ids=["sdk-retries", "wrapped"])
async def test_a_lost_create_answer_never_makes_a_second_batch(
    tmp_path: Path, wrapped: bool
) -> None:
    settings = MockConfig(
        limits=MockLimits(rpm=1_000_000, tpm=1_000_000_000),
        latency=LatencyModel.instant(),
        batch=BatchConfig(),
    )
    app = create_app(settings, clock=trio.current_time)
    lossy = _LoseFirstCreateAnswer(httpx2.ASGITransport(app=app))
    client = openai.AsyncOpenAI(
        api_key=KEY,
        base_url="http://mock.test/v1",
        http_client=openai.DefaultAsyncHttpx2Client(transport=lossy),
        max_retries=2,  # the SDK's default: it would send the create again
    )
    if wrapped:
        client = ratelimit_llm.wrap(client, rpm=100_000, tpm=100_000_000)
    async with client:
        results = [
            r
            async for r in batch.run(
                client, chat_bodies(6), journal=tmp_path / "j.db", endpoint=CHAT, **fast()
            )
        ]
    assert lossy.lost == 1
    assert Counter(r.custom_id for r in results) == Counter(f"request-{i}" for i in range(6))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://mock.test"
    ) as http:
        batches = (await http.get("/mock/batches")).json()["data"]
    assert len(batches) == 1, batches
