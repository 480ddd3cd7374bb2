"""``GET /mock/stats``: counts, redaction, retry counts, timeline; and ``POST /mock/reset``."""

from __future__ import annotations

import json

import pytest

from ratelimit_llm.mock import FaultPlan, FaultRule, MockLimits, redact

from ._support import KEY, OTHER_KEY, instant, mock
from .test_mock_limits import chat


def test_redaction() -> None:
    assert redact("sk-proj-0123456789abcdefXYZ9") == "sk-...XYZ9"
    short = redact("secret")
    assert short.startswith("key-") and "secret" not in short
    assert redact("secret") == short


@pytest.mark.asyncio
async def test_stats_count_what_the_server_saw() -> None:
    config = instant(
        limits=MockLimits(rpm=2, tpm=1_000), faults=FaultPlan((FaultRule.parse("500@4"),))
    )
    async with mock(config) as m:
        await chat(m, max_tokens=20)  # 24 tokens
        await chat(m, max_tokens=20)
        m.clock.advance(1.5)
        await chat(m, max_tokens=20)  # 429 on RPM
        m.clock.advance(30)  # one request refills
        await chat(m, key=OTHER_KEY, model="gpt-4o")  # request 4: the 500
        await chat(m, max_tokens=5_000)  # too large
        await m.http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {KEY}", "x-stainless-retry-count": "1"},
        )
        stats = (await m.http.get("/mock/stats")).json()
    assert stats["requests"] == 6
    assert stats["accepted"] == 3
    assert stats["rejected"] == 2
    assert stats["failed"] == 1
    assert stats["rejected_by_reason"] == {"requests_per_min": 1, "request_too_large": 1}
    assert stats["faults"] == {"500": 1}
    mine, other = redact(KEY), redact(OTHER_KEY)
    assert set(stats["by_key"]) == {mine, other}
    assert stats["by_key"][mine]["gpt-4o-mini"]["accepted"] == 2
    assert stats["by_key"][mine]["gpt-4o-mini"]["rejected"] == {
        "requests_per_min": 1,
        "request_too_large": 1,
    }
    assert stats["by_key"][other]["gpt-4o"]["failed"] == 1
    assert stats["by_model"]["gpt-4o"] == {"accepted": 1, "rejected": 0, "failed": 1}
    assert stats["tokens"]["charged"] == 48 + 257  # the 500 was refunded; "x" is 1 + 256 reserved
    assert stats["tokens"]["used"] > 0
    assert stats["retry_counts"] == {"1": 1}  # only the last request said
    assert stats["peak_bucket_usage"][f"{mine}|gpt-4o-mini|requests/min"] == 1.0
    timeline = {row["second"]: row for row in stats["timeline"]}
    assert set(timeline) == {0, 1, 31}
    assert timeline[0]["accepted"] == 2 and timeline[0]["tokens_charged"] == 48
    assert timeline[1]["rejected"] == 1
    assert timeline[31] == {
        "second": 31,
        "requests": 3,
        "accepted": 1,
        "rejected": 1,
        "failed": 1,
        "tokens_charged": 257,
        "tokens_used": timeline[31]["tokens_used"],
    }
    assert [entry["status"] for entry in stats["log"]] == [200, 200, 429, 500, 429, 200]
    assert stats["log"][2]["reason"] == "requests_per_min"
    assert stats["elapsed_seconds"] == 31.5
    # Nothing the server reports carries a key in clear.
    dumped = json.dumps(stats)
    assert KEY not in dumped and OTHER_KEY not in dumped


@pytest.mark.asyncio
async def test_reset_clears_stats_and_optionally_buckets() -> None:
    async with mock(limits=MockLimits(rpm=1)) as m:
        await chat(m)
        assert (await chat(m)).status_code == 429
        assert (await m.http.post("/mock/reset")).json() == {"reset": True, "buckets": False}
        assert m.state.stats()["requests"] == 0
        assert (await chat(m)).status_code == 429  # buckets kept
        await m.http.post("/mock/reset", json={"buckets": True})
        assert (await chat(m)).status_code == 200
        stats = m.state.stats()
    assert stats["requests"] == 1 and stats["accepted"] == 1
    assert stats["api_requests_numbered"] == 1


@pytest.mark.asyncio
async def test_stats_memory_is_bounded() -> None:
    config = instant(limits=MockLimits(rpm=1_000_000), timeline_seconds=5, log_size=3)
    async with mock(config) as m:
        for _ in range(12):
            await chat(m)
            m.clock.advance(1)
        await chat(m, headers={"x-stainless-retry-count": "x" * 100})
        stats = m.state.stats()
    assert [row["second"] for row in stats["timeline"]] == [8, 9, 10, 11, 12]
    assert len(stats["log"]) == 3
    assert stats["requests"] == 13
    assert stats["retry_counts"] == {"other": 1}
