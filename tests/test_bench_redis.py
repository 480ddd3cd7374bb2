"""The Redis benchmarks run end to end, at ``--quick`` size or smaller.

No timing is asserted (the machine may be busy): only that every run completes, no call
is lost, and the workers sharing one quota through Redis stay (all but) clear of 429s.
token-throttle takes part only where ``benchmarks/.venv-token-throttle`` exists.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from ratelimit_llm.testing import LocalRedisServer

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import four_workers  # noqa: E402
import redis_hot_bucket  # noqa: E402
import rivals._token_throttle  # noqa: E402

#: "A handful": what one late header correction may let through, never a pattern.
HANDFUL = 3


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with LocalRedisServer() as server:
        yield server.url


def _has_token_throttle() -> bool:
    return rivals._token_throttle.venv_python() is not None


@pytest.mark.asyncio
async def test_hot_bucket_runs_every_contender(redis_url: str, tmp_path: Path) -> None:
    payload = await redis_hot_bucket.hot_bucket(
        workers=200, seconds=1.0, rate=1_000, grace=2.0, redis_url=redis_url, round_trip_calls=50
    )
    rows = {(r["contender"], r["load"]): r for r in payload["results"]}
    for contender in ("ratelimit-llm (redis)", "ratelimit-llm (memory)"):
        for load in ("paced 1,000/s", "flat out"):
            row = rows[(contender, load)]
            assert row["skipped"] is None
            assert row["errors"] == {} and row["unfinished"] == 0, row
            assert row["acquires"] > 0
            assert row["acquires_per_second"] > 0
            assert 0 <= row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
            assert row["round_trip_us"] > 0
    assert payload["redis_ping_us"] > 0
    throttle = [r for r in payload["results"] if r["contender"] == "token-throttle (redis)"]
    assert len(throttle) == 2
    for row in throttle:
        if _has_token_throttle():
            # It may collapse (that is the point), but it must report and be bounded.
            assert row["skipped"] is None
            assert row["acquires"] + sum(row["errors"].values()) + row["unfinished"] > 0
            assert row["seconds"] < 1.0 + 2.0 + 5.0
        else:
            assert row["skipped"]
    console = Console(record=True, width=200)
    redis_hot_bucket.report(payload, console)
    assert "ratelimit-llm (redis)" in console.export_text()
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(redis_hot_bucket._finite(payload)))
    assert json.loads(path.read_text())["workers"] == 200


@pytest.mark.asyncio
async def test_hot_bucket_keeps_its_loops_bounded(redis_url: str) -> None:
    # Paced: no worker acquires more often than the offered rate allows.
    payload = await redis_hot_bucket.hot_bucket(
        workers=50,
        seconds=0.5,
        rate=200,
        grace=2.0,
        redis_url=redis_url,
        token_throttle=False,
        round_trip_calls=20,
    )
    for row in payload["results"]:
        if row["load"].startswith("paced"):
            assert row["acquires"] <= math.ceil(200 * 0.5) + 50
    assert {r["contender"] for r in payload["results"]} == {
        "ratelimit-llm (redis)",
        "ratelimit-llm (memory)",
    }


@pytest.mark.asyncio
async def test_four_workers_share_one_quota(redis_url: str, tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    names = ["ratelimit-llm+redis", "ratelimit-llm+memory"]
    if _has_token_throttle():
        names.append("token-throttle+redis")
    scenario, results = await four_workers.run(2.0, console, names=names, redis_url=redis_url)
    assert scenario.name == "four-workers"
    by_name = {result.contender: result for result in results}
    assert list(by_name) == names
    for result in results:
        assert result.skipped is None
        if result.contender.startswith("ratelimit-llm"):
            # Nothing lost: every call completed (ours retry their 429s).
            assert (result.completed, result.failed, result.unfinished) == (
                result.calls,
                0,
                0,
            ), result.errors
        else:
            # token-throttle leaves 429s to the SDK's two retries: none may be unfinished.
            assert result.unfinished == 0
            assert result.completed + result.failed == result.calls
        assert result.server_requests >= result.calls
    shared = by_name["ratelimit-llm+redis"]
    assert shared.server_429s <= HANDFUL, shared.server_429s_by_reason
    assert shared.tokens_estimated is not None and shared.tokens_actual is not None
    text = console.export_text()
    assert "four-workers" in text and "ratelimit-llm+redis" in text
