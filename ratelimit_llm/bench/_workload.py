"""Workloads: the calls a benchmark makes, when it makes them, against which limits.

A `Scenario` is everything that must be the same for every contender: the mock
server's configuration (its limits are the physical ceiling), the limits contenders are
*told* (which may be wrong on purpose), the keys they may use, the calls with their
arrival times, and a bound on how long a run may take. Calls are generated from a seed,
so every contender (and every run) faces the very same work.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._types import Limits
from ..mock import LatencyModel, MockConfig, MockLimits, OutputModel, Profile
from ..mock._requests import parse_chat, parse_embeddings

__all__ = [
    "BackgroundLoad",
    "Call",
    "Scenario",
    "builtin_scenarios",
    "ideal_admissions",
    "ideal_seconds",
]

Endpoint = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class Call:
    """One logical call: what to send, and when (seconds after the run starts)."""

    index: int
    at: float
    endpoint: Endpoint
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BackgroundLoad:
    """Traffic from an unseen second client on the same key (not through any limiter)."""

    #: Calls per second it sends, for the whole run, each as big as ``prompt_chars``.
    per_second: float
    prompt_chars: int
    max_tokens: int


@dataclass(frozen=True)
class Scenario:
    """One benchmark situation; see the module docstring."""

    name: str
    description: str
    server: MockConfig
    #: What contenders are told the limits are (per key).
    told: Limits
    calls: tuple[Call, ...]
    keys: tuple[str, ...] = ("sk-bench-key-0000000000000000",)
    background: BackgroundLoad | None = None
    #: A run is stopped after this many seconds, finished or not.
    max_seconds: float = 120.0
    stream: bool = False
    #: Contender names this scenario is meant for (empty: all).
    only: tuple[str, ...] = field(default=())

    def server_limits(self) -> MockLimits:
        return self.server.limits


def ideal_seconds(scenario: Scenario, calls: Sequence[Call] | None = None) -> float:
    """The shortest time in which the server's limits let the workload through.

    The last of `ideal_admissions`: charges each call as the mock's own admission rule
    does, then asks how long the binding dimension needs beyond its burst capacity (all
    keys together), and never less than the last arrival. ``calls`` narrows it to part
    of the workload (the calls a contender completed, so that one that dropped calls is
    not credited for them).
    """
    return max(ideal_admissions(scenario, calls), default=0.0)


def ideal_admissions(scenario: Scenario, calls: Sequence[Call] | None = None) -> list[float]:
    """When each call could be admitted at the soonest, in arrival order (the ideal line).

    Each call goes at its arrival, or once the binding dimension's capacity plus refill
    covers everything before it and itself, whichever is later. An unseen client's
    share of the quota (`BackgroundLoad`) is not ours to use.
    """
    calls = scenario.calls if calls is None else calls
    limits = scenario.server.limits
    keys = len(scenario.keys)
    rule = scenario.server.charge_rule
    default_output = scenario.server.output.default_max_tokens
    share = 1.0 if limits.burst_seconds is None else limits.burst_seconds / 60.0
    taken = {"requests": 0.0, "tokens": 0.0}
    background = scenario.background
    if background is not None:
        taken["requests"] = background.per_second
        taken["tokens"] = background.per_second * (
            math.ceil(background.prompt_chars / 4) + background.max_tokens
        )
    budgets = [
        (name, keys * limit * share, max(1e-9, keys * limit / 60.0 - taken[name]))
        for name, limit in (("requests", limits.rpm), ("tokens", limits.tpm))
        if limit
    ]
    spent = {"requests": 0.0, "tokens": 0.0}
    times = []
    for call in sorted(calls, key=lambda c: c.at):
        parse = parse_embeddings if call.endpoint == "embeddings" else parse_chat
        spent["requests"] += 1
        spent["tokens"] += rule(parse(dict(call.body)).charge_request(default_output))
        at = call.at
        for name, capacity, rate in budgets:
            at = max(at, (spent[name] - capacity) / rate)
        times.append(at)
    return times


# -- the built-in scenarios ------------------------------------------------------------

_WORDS = (
    "rate",
    "limit",
    "token",
    "bucket",
    "quota",
    "request",
    "minute",
    "model",
    "prompt",
    "answer",
    "stream",
    "batch",
    "label",
    "evaluate",
    "synthesize",
    "embed",
    "corpus",
    "pipeline",
    "latency",
    "retry",
    "header",
    "server",
)


def _prompt(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def _chat(
    index: int, at: float, rng: random.Random, chars: int, max_tokens: int, stream: bool
) -> Call:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": _prompt(rng, chars)}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return Call(index, at, "chat", body)


def _latency() -> LatencyModel:
    # Real-looking shape (time to first token, then tokens per second), compressed so a
    # run of a few hundred calls takes seconds rather than minutes.
    return LatencyModel(ttft=0.25, tokens_per_second=400.0, jitter=0.2)


def _server(limits: MockLimits, **kwargs: Any) -> MockConfig:
    return MockConfig(
        limits=limits,
        latency=_latency(),
        output=OutputModel(min_tokens=8),
        seed=7,
        **kwargs,
    )


def _mixed_calls(
    seconds: float, *, rpm: int, tpm: int, stream: bool = False, seed: int = 1
) -> tuple[Call, ...]:
    """Mixed chat sizes, arriving steadily a little faster than the limit allows."""
    rng = random.Random(seed)
    # Average admission charge of the mix below: ~220 prompt tokens + ~175 output.
    average = 395.0
    count = max(20, math.ceil((tpm + tpm / 60.0 * seconds) / average))
    count = min(count, math.ceil(rpm + rpm / 60.0 * seconds))
    spread = seconds * 0.6
    calls = []
    for index in range(count):
        chars = rng.randint(200, 1_600)
        max_tokens = rng.randint(50, 300)
        calls.append(_chat(index, spread * index / count, rng, chars, max_tokens, stream))
    return tuple(calls)


def _burst_of_mixed_calls(
    seconds: float, *, tpm: int, burst_seconds: float, seed: int = 9
) -> tuple[Call, ...]:
    """Mixed chat sizes, all at once: a slice's worth plus ``seconds`` of refill."""
    rng = random.Random(seed)
    average = 395.0  # the admission charge of the mix, as in `_mixed_calls`
    count = max(20, math.ceil((tpm / 60.0 * (burst_seconds + seconds)) / average))
    return tuple(
        _chat(index, 0.0, rng, rng.randint(200, 1_600), rng.randint(50, 300), False)
        for index in range(count)
    )


def builtin_scenarios(seconds: float = 8.0) -> list[Scenario]:
    """The standard set; ``seconds`` is about how long each needs beyond its burst."""
    steady = MockLimits(rpm=600, tpm=60_000)
    told = Limits(rpm=600, tpm=60_000)
    scenarios: list[Scenario] = []
    scenarios.append(
        Scenario(
            "steady",
            "mixed chat sizes arriving steadily, TPM binding",
            _server(steady),
            told,
            _mixed_calls(seconds, rpm=600, tpm=60_000),
        )
    )
    rng = random.Random(2)
    # Sized so the client's own CPU (the SDK spends ~4 ms per call) is not all that is
    # measured on a 2-core machine, while still thousands of calls start at once.
    burst_limits = MockLimits(rpm=1_800, tpm=1_000_000)
    burst_count = int(1_800 + 30 * seconds)
    scenarios.append(
        Scenario(
            "burst",
            f"{burst_count:,} small calls submitted at once, RPM binding",
            _server(burst_limits),
            Limits(rpm=1_800, tpm=1_000_000),
            tuple(_chat(i, 0.0, rng, 60, 20, False) for i in range(burst_count)),
        )
    )
    rng = random.Random(3)
    long_limits = MockLimits(rpm=600, tpm=100_000)
    long_count = max(10, math.ceil((100_000 + 100_000 / 60 * seconds) / 3_300))
    scenarios.append(
        Scenario(
            "token-bound",
            "long prompts (2-4k tokens each), TPM binding",
            _server(long_limits),
            Limits(rpm=600, tpm=100_000),
            tuple(
                _chat(i, 0.0, rng, rng.randint(8_000, 16_000), 200, False)
                for i in range(long_count)
            ),
        )
    )
    scenarios.append(
        Scenario(
            "told-2x",
            "steady mix, but every contender is told limits twice the real ones",
            _server(steady),
            Limits(rpm=1_200, tpm=120_000),
            _mixed_calls(seconds, rpm=600, tpm=60_000, seed=4),
        )
    )
    scenarios.append(
        Scenario(
            "shared-quota",
            "steady mix while an unseen client spends ~40% of the same quota",
            _server(steady),
            told,
            _mixed_calls(seconds * 0.6, rpm=600, tpm=60_000, seed=5),
            background=BackgroundLoad(per_second=1.0, prompt_chars=1_000, max_tokens=150),
        )
    )
    scenarios.append(
        Scenario(
            "streaming",
            "steady mix, every call streamed with include_usage",
            _server(steady),
            told,
            _mixed_calls(seconds, rpm=600, tpm=60_000, stream=True, seed=6),
            stream=True,
        )
    )
    keys = tuple(f"sk-bench-key-0000000000000000{n:04d}" for n in range(3))
    scenarios.append(
        Scenario(
            "three-keys",
            "steady mix over three keys of equal quota (per-key limits)",
            _server(steady),
            told,
            _mixed_calls(seconds, rpm=1_800, tpm=180_000, seed=7),
            keys=keys,
        )
    )
    for slice_seconds in (1.0, 2.0):
        # The first seconds, cold, as a new user meets them: a burst of mixed calls at
        # once against a server that enforces its per-minute limits over short slices
        # (OpenAI documents that it may). Sized so that the slices' refill, not the
        # burst, takes most of the run.
        cold = MockLimits(rpm=1_200, tpm=150_000, burst_seconds=slice_seconds)
        calls = _burst_of_mixed_calls(seconds, tpm=150_000, burst_seconds=slice_seconds)
        scenarios.append(
            Scenario(
                f"cold-{slice_seconds:g}s",
                f"{len(calls)} mixed calls at once, cold; the server enforces its per-minute "
                f"limits over {slice_seconds:g}-second slices",
                _server(cold),
                Limits(rpm=1_200, tpm=150_000),
                calls,
            )
        )
    rng = random.Random(10)
    headerless = MockLimits(rpm=600, tpm=1_000_000)
    headerless_count = int(600 + 10 * seconds)
    scenarios.append(
        Scenario(
            "no-headers",
            f"{headerless_count} small calls at once; the server sends no rate-limit headers "
            "(vLLM, Gemini's and DeepSeek's endpoints)",
            _server(headerless, profile=Profile.none()),
            Limits(rpm=600, tpm=1_000_000),
            tuple(_chat(i, 0.0, rng, 80, 20, False) for i in range(headerless_count)),
        )
    )
    rng = random.Random(8)
    quantized = MockLimits(rpm=1_200, tpm=1_000_000, burst_seconds=1.0)
    quantized_count = int(20 * seconds)
    scenarios.append(
        Scenario(
            "quantized",
            f"{quantized_count} calls at once; the server enforces RPM per second",
            _server(quantized),
            Limits(rpm=1_200, tpm=1_000_000),
            tuple(_chat(i, 0.0, rng, 80, 20, False) for i in range(quantized_count)),
        )
    )
    return scenarios


ScenarioFactory = Callable[[float], list[Scenario]]
