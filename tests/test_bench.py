"""The benchmark harness, on a tiny scenario, against a real mock server process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from rich.console import Console

from ratelimit_llm import Limits, transport_of
from ratelimit_llm._providers import Provider
from ratelimit_llm.bench import (
    BareSDK,
    Call,
    RateLimitLLM,
    Scenario,
    builtin_contenders,
    builtin_scenarios,
    ideal_admissions,
    ideal_seconds,
    run_scenario,
)
from ratelimit_llm.bench._contenders import RunContext
from ratelimit_llm.bench._report import plot_results, print_results, write_json
from ratelimit_llm.cli import main
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits, OutputModel, Profile


def tiny(calls: int = 40, rpm: int = 1_200) -> Scenario:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x" * 40}],
        "max_tokens": 10,
    }
    return Scenario(
        "tiny",
        "a few small calls",
        MockConfig(limits=MockLimits(rpm=rpm, tpm=1_000_000), latency=LatencyModel.instant()),
        Limits(rpm=rpm, tpm=1_000_000),
        tuple(Call(i, 0.0, "chat", body) for i in range(calls)),
        max_seconds=30,
    )


def test_ideal_time_follows_the_binding_limit() -> None:
    # 80 calls at 60 RPM: 60 at once (a full bucket), then one per second for 20.
    assert ideal_seconds(tiny(80, rpm=60)) == 20.0


def dialect(
    limits: MockLimits,
    profile: Profile,
    calls: int,
    *,
    provider: str,
    told: Limits | None = None,
) -> Scenario:
    """``calls`` chat calls at once of exactly 20 output tokens, 0.5 s each."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x" * 40}],
        "max_tokens": 20,
    }
    server = MockConfig(
        limits=limits,
        profile=profile,
        latency=LatencyModel(ttft=0.3, per_prompt_token=0.0, tokens_per_second=100.0, jitter=0),
        output=OutputModel(min_tokens=20),
    )
    return Scenario(
        "dialect",
        "calls at once",
        server,
        told or Limits(rpm=6_000, tpm=1_000_000),
        tuple(Call(i, 0.0, "chat", body) for i in range(calls)),
        max_seconds=30,
        provider=provider,
    )


@pytest.mark.asyncio
async def test_ratelimit_llm_contenders_are_told_the_scenarios_provider() -> None:
    for provider, expected in (("together", Provider.TOGETHER), (None, None)):
        scenario = dialect(MockLimits(rps=2), Profile.together(), 1, provider="together")
        scenario = dataclasses.replace(scenario, provider=provider)
        contender = RateLimitLLM("ratelimit-llm")
        context = RunContext("http://127.0.0.1:9/v1", scenario.keys, scenario.told, scenario)
        await contender.start(context)
        try:
            client = contender._client
            assert client is not None
            assert transport_of(client).provider is expected
        finally:
            await contender.stop()


def test_ideal_of_a_concurrency_cap_is_calls_times_latency_over_places() -> None:
    # Two places, 0.5 s a call: two calls go every half second.
    scenario = dialect(MockLimits(concurrency=2), Profile.deepseek(), 10, provider="deepseek")
    assert ideal_admissions(scenario) == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0]
    # With a rate too, whichever binds later wins for each call.
    both = dialect(MockLimits(concurrency=2, rps=1), Profile.deepseek(), 4, provider="deepseek")
    assert ideal_admissions(both) == [0.0, 1.0, 2.0, 3.0]


def test_ideal_of_per_second_limits() -> None:
    # Two requests a second, a second's depth: two at once, then one every half second.
    scenario = dialect(MockLimits(rps=2), Profile.together(), 6, provider="together")
    assert ideal_admissions(scenario) == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    # 30 tokens a call (10 of prompt, 20 of output) at 60 a second, a second's depth.
    tokens = dialect(MockLimits(tps=60), Profile.together(), 4, provider="together")
    assert ideal_admissions(tokens) == [0.0, 0.0, 0.5, 1.0]


@pytest.mark.asyncio
async def test_the_dialect_scenarios_reach_the_server_and_ratelimit_llm_is_told_whose() -> None:
    capped = dialect(MockLimits(concurrency=4), Profile.deepseek(), 24, provider="deepseek")
    bare, ours = await run_scenario(capped, [BareSDK(), RateLimitLLM("ratelimit-llm")])
    # The bare SDK's burst meets DeepSeek's concurrency 429s, counted by reason.
    assert bare.server_429s > 0
    assert set(bare.server_429s_by_reason) == {"concurrency"}
    assert ours.completed == 24 and ours.binding == "in flight"
    assert 0 < ours.goodput <= 1.0
    per_second = dialect(
        MockLimits(rps=8, tps=1_000),
        Profile.together(),
        24,
        provider="together",
        told=Limits(rpm=480, tpm=60_000),  # the per-minute equivalents
    )
    contender = RateLimitLLM("ratelimit-llm")
    (result,) = await run_scenario(per_second, [contender])
    assert result.completed == 24
    # Told Together's dialect, it read the per-second headers: at most a few refusals.
    assert result.server_429s <= 3
    assert result.binding == "requests" and 0 < result.goodput <= 1.0


@pytest.mark.asyncio
async def test_runs_contenders_and_reads_the_server_side(tmp_path: Path) -> None:
    scenario = tiny()
    results = await run_scenario(scenario, [BareSDK(), RateLimitLLM("ratelimit-llm")])
    assert [r.contender for r in results] == ["openai-sdk", "ratelimit-llm"]
    for result in results:
        assert result.completed == 40
        assert result.failed == result.unfinished == 0
        assert result.server_requests == 40  # what the server saw, not a contender's claim
        assert result.server_429s == 0
        assert 0 < result.latency_p50 <= result.latency_p95
        assert result.timeline
    ours = results[1]
    assert ours.tokens_estimated is not None and ours.tokens_actual is not None
    console = Console(record=True, width=200)
    print_results(console, scenario, results)
    assert "ratelimit-llm" in console.export_text()
    write_json(tmp_path / "b.json", [scenario], results)
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["completed"] == 40
    plot_results(tmp_path / "b.png", [scenario], results)
    assert (tmp_path / "b.png").stat().st_size > 1_000


def test_builtin_sets() -> None:
    names = [s.name for s in builtin_scenarios(3)]
    assert names == [
        "steady",
        "burst",
        "token-bound",
        "told-2x",
        "shared-quota",
        "streaming",
        "three-keys",
        "cold-1s",
        "cold-2s",
        "no-headers",
        "quantized",
        "concurrency-capped",
        "per-second",
        "interactive-bulk",
    ]
    by_name = {scenario.name: scenario for scenario in builtin_scenarios(8)}
    assert by_name["per-second"].provider == "together"
    assert by_name["concurrency-capped"].provider == "deepseek"
    for name in ("per-second", "concurrency-capped"):
        # Sized to about the default --seconds, whatever the mix.
        assert 7.0 <= ideal_seconds(by_name[name]) <= 8.0, name
    for scenario in builtin_scenarios(3):
        assert scenario.calls, scenario.name
        assert 0 < ideal_seconds(scenario) < scenario.max_seconds, scenario.name
        # The ideal line ends where the ideal time says, and never runs backwards.
        times = ideal_admissions(scenario)
        assert len(times) == len(scenario.calls)
        assert times == sorted(times)
        assert times[-1] == pytest.approx(ideal_seconds(scenario)), scenario.name
    assert builtin_contenders()[0].name == "openai-sdk"


@pytest.mark.asyncio
async def test_interactive_calls_pass_a_bulk_backlog_and_the_report_shows_it() -> None:
    scenario = next(s for s in builtin_scenarios(2) if s.name == "interactive-bulk")
    lanes = {call.lane for call in scenario.calls}
    assert lanes == {"bulk", "interactive"}
    # The backlog is more than the bucket holds at once: it queues for the whole run.
    assert ideal_seconds(scenario) > 1.5
    (ours,) = await run_scenario(scenario, [RateLimitLLM("ratelimit-llm")])
    assert ours.completed == len(scenario.calls)
    assert ours.server_429s <= 1
    # Each interactive call passes the queued bulk ones at the next slot: its wait is
    # a small part of what the backlog's last calls wait (a ratio, not a time).
    p95 = ours.lane_latency_p95
    assert set(p95) == {"bulk", "interactive"}
    assert p95["interactive"] < 0.5 * p95["bulk"], p95
    console = Console(record=True, width=250)
    print_results(console, scenario, [ours])
    text = console.export_text()
    assert "interactive p95 s" in text and "bulk p95 s" in text


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "steady" in listed and "ratelimit-llm" in listed
    assert main(["bench", "--scenario", "nope"]) == 2
    assert main(["mock-server", "--help"]) == 0
    assert "--rpm" in capsys.readouterr().out
