"""The rival contenders of ``benchmarks/rivals`` run through the real harness.

Each rival drives a tiny scenario (instant responses, limits far above the load)
against the mock server in its own process, exactly as ``benchmarks/run.py`` would;
the server's own counters say whether every call got through once. token-throttle
runs only where ``benchmarks/.venv-token-throttle`` exists; elsewhere its skip reason
is checked instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from ratelimit_llm import Limits
from ratelimit_llm.bench import Call, Contender, RunResult, Scenario, run_scenario
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import rivals  # noqa: E402
import rivals._cookbook  # noqa: E402
import rivals._token_throttle  # noqa: E402
from rivals import Cookbook, SDKAioLimiter, TokenThrottle, rival_contenders  # noqa: E402

CALLS = 30
KEYS = ("sk-rival-test-key-a-000000000000", "sk-rival-test-key-b-000000000000")


def _chat(index: int, at: float) -> Call:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"call {index}: " + "rate limit " * 12}],
        "max_tokens": 20,
    }
    return Call(index, at, "chat", body)


def _scenario(
    server: MockLimits, told: Limits, *, calls: int = CALLS, spread: float = 0.3
) -> Scenario:
    return Scenario(
        "tiny",
        "a few small calls, far below the limits",
        MockConfig(limits=server, latency=LatencyModel.instant(), seed=1),
        told,
        tuple(_chat(i, spread * i / calls) for i in range(calls)),
        keys=KEYS,
        max_seconds=20.0,
    )


def _by_name(results: list[RunResult]) -> dict[str, RunResult]:
    return {result.contender: result for result in results}


def _assert_complete(result: RunResult) -> None:
    assert result.skipped is None
    assert (result.completed, result.failed, result.unfinished) == (CALLS, 0, 0), result.errors
    # The server saw each call exactly once: no 429s, no retries.
    assert result.server_requests == CALLS
    assert result.server_429s == 0
    assert result.server_retries == 0
    assert result.latency_p50 > 0


def test_rival_contenders_are_fresh_and_named() -> None:
    first, second = rival_contenders(), rival_contenders()
    assert [c.name for c in first] == ["sdk+aiolimiter", "cookbook", "token-throttle"]
    assert all(a is not b for a, b in zip(first, second, strict=True))


@pytest.mark.asyncio
async def test_rivals_complete_a_small_scenario() -> None:
    scenario = _scenario(MockLimits(rpm=6_000, tpm=2_000_000), Limits(rpm=6_000, tpm=2_000_000))
    contenders: list[Contender] = [SDKAioLimiter(), Cookbook(), TokenThrottle()]
    results = _by_name(await run_scenario(scenario, contenders))

    _assert_complete(results["sdk+aiolimiter"])
    assert results["sdk+aiolimiter"].tokens_estimated is None

    cookbook = results["cookbook"]
    _assert_complete(cookbook)
    # Its estimate (characters / 4 + max_tokens) is the mock's admission charge.
    assert cookbook.tokens_estimated == cookbook.server_tokens_charged
    assert cookbook.tokens_actual == cookbook.server_tokens_used

    throttle = results["token-throttle"]
    if rivals._token_throttle.venv_python() is None:
        assert throttle.skipped is not None
        assert "Python >= 3.12" in throttle.skipped
    else:
        _assert_complete(throttle)
        assert throttle.tokens_estimated == throttle.server_tokens_charged
        assert throttle.tokens_actual == throttle.server_tokens_used


@pytest.mark.asyncio
async def test_cookbook_pauses_after_a_rate_limit_then_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Told 5x the real RPM, the cookbook runs into 429s; each pauses its loop (0.2 s
    # here instead of 15 s) and the calls are sent again until they get through.
    # The server lets 5 through at once and 10 a second, the cookbook sends at 100 a
    # second: it is refused even when a loaded machine slows its sends fivefold.
    monkeypatch.setattr(rivals._cookbook, "PAUSE_AFTER_RATE_LIMIT_SECONDS", 0.5)
    calls = 20
    server = MockLimits(rpm=600, tpm=2_000_000, burst_seconds=0.5)
    scenario = _scenario(server, Limits(rpm=6_000, tpm=2_000_000), calls=calls, spread=0.0)
    (result,) = await run_scenario(scenario, [Cookbook()])
    assert (result.completed, result.failed, result.unfinished) == (calls, 0, 0), result.errors
    assert result.server_429s > 0
    assert result.server_429s_by_reason.keys() == {"requests_per_min"}
    assert result.server_requests == calls + result.server_429s


def _status_error(status: int, code: str | None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://mock/v1/chat/completions")
    response = httpx2.Response(status, request=request)
    body = {"message": "no", "type": "requests", "code": code}
    if status == 429:
        return openai.RateLimitError("no", response=response, body=body)
    return openai.InternalServerError("no", response=response, body=body)


def test_cookbook_pauses_only_for_temporary_rate_limits() -> None:
    assert rivals._cookbook.is_rate_limit_error(_status_error(429, "rate_limit_exceeded"))
    assert not rivals._cookbook.is_rate_limit_error(_status_error(429, "insufficient_quota"))
    assert not rivals._cookbook.is_rate_limit_error(_status_error(500, None))
    assert not rivals._cookbook.is_rate_limit_error(ValueError("429"))


def test_cookbook_estimate_defaults_max_tokens_to_15() -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x" * 41}]}
    assert rivals._cookbook.estimate_tokens(Call(0, 0.0, "chat", body)) == 11 + 15
    body["n"] = 2
    body["max_tokens"] = 100
    assert rivals._cookbook.estimate_tokens(Call(0, 0.0, "chat", body)) == 11 + 200


def test_token_throttle_explains_why_it_sits_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / ".venv-token-throttle"
    monkeypatch.setattr(rivals._token_throttle, "VENV", missing)
    monkeypatch.setattr(rivals._token_throttle, "STAMP", missing / ".token-throttle-installed")
    scenario = _scenario(MockLimits(rpm=600), Limits(rpm=600))
    reason = TokenThrottle().skip_reason(scenario)
    assert reason is not None
    assert reason.startswith(("needs Python >= 3.12 with token-throttle installed", "no Python"))
