"""The benchmark harness, on a tiny scenario, against a real mock server process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from ratelimit_llm import Limits
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
from ratelimit_llm.bench._report import plot_results, print_results, write_json
from ratelimit_llm.cli import main
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits


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
    ]
    for scenario in builtin_scenarios(3):
        assert scenario.calls, scenario.name
        assert 0 < ideal_seconds(scenario) < scenario.max_seconds, scenario.name
        # The ideal line ends where the ideal time says, and never runs backwards.
        times = ideal_admissions(scenario)
        assert len(times) == len(scenario.calls)
        assert times == sorted(times)
        assert times[-1] == pytest.approx(ideal_seconds(scenario)), scenario.name
    assert builtin_contenders()[0].name == "openai-sdk"


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
