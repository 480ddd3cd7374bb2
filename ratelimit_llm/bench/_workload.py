"""Workloads: the calls a benchmark makes, when it makes them, against which limits.

A `Scenario` is everything that must be the same for every contender: the mock
server's configuration (its limits are the physical ceiling), the limits contenders are
*told* (which may be wrong on purpose), the keys they may use, the calls with their
arrival times, and a bound on how long a run may take. Calls are generated from a seed,
so every contender (and every run) faces the very same work.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._types import Limits
from ..mock import LatencyModel, MockConfig, MockLimits, OutputModel, Profile
from ..mock._buckets import dimensions_of
from ..mock._requests import ParsedRequest, parse_chat, parse_embeddings

__all__ = [
    "BackgroundLoad",
    "Call",
    "Scenario",
    "builtin_scenarios",
    "expected_latency",
    "ideal_admissions",
    "ideal_seconds",
    "mean_latency",
]

Endpoint = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class Call:
    """One logical call: what to send, and when (seconds after the run starts)."""

    index: int
    at: float
    endpoint: Endpoint
    body: dict[str, Any]
    #: The priority lane the caller puts it in (``"interactive"``, ``"bulk"``), for
    #: contenders that have lanes (ratelimit-llm's ``lane()``); `None`: no lane.
    lane: str | None = None


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
    #: Whose dialect the server speaks (``"together"``), for contenders that can be
    #: told (ratelimit-llm's ``wrap(..., provider=...)``): the mock's loopback URL
    #: does not say. `None`: nobody is told.
    provider: str | None = None

    def server_limits(self) -> MockLimits:
        return self.server.limits


def ideal_seconds(scenario: Scenario, calls: Sequence[Call] | None = None) -> float:
    """The shortest time in which the server's limits let the workload through.

    The last of `ideal_admissions`: charges each call as the mock's own admission rule
    does, then asks how long the binding dimension needs beyond its burst capacity (all
    keys together), how long the calls in flight keep the server's places busy when it
    limits them, and never less than the last arrival. ``calls`` narrows it to part of
    the workload (the calls a contender completed, so that one that dropped calls is
    not credited for them).
    """
    return max(ideal_admissions(scenario, calls), default=0.0)


def ideal_admissions(scenario: Scenario, calls: Sequence[Call] | None = None) -> list[float]:
    """When each call could be admitted at the soonest, in arrival order (the ideal line).

    Each call goes at its arrival, or once every bucket's capacity plus refill covers
    everything before it and itself (per second, minute or day, requests and every kind
    of token the server counts), or, when the server limits calls in flight, once one
    of its places is free (each call holding one for its expected latency), whichever
    is latest. An unseen client's share of the quota (`BackgroundLoad`) is not ours to
    use.
    """
    calls = scenario.calls if calls is None else calls
    server = scenario.server
    limits = server.limits
    keys = len(scenario.keys)
    background = scenario.background
    taken = {"requests": 0.0, "tokens": 0.0, "input_tokens": 0.0, "output_tokens": 0.0}
    if background is not None:
        prompt = math.ceil(background.prompt_chars / 4)
        taken["requests"] = background.per_second
        taken["tokens"] = background.per_second * (prompt + background.max_tokens)
        taken["input_tokens"] = background.per_second * prompt
        taken["output_tokens"] = background.per_second * background.max_tokens
    budgets = [
        (metric, keys * capacity, max(1e-9, keys * limit / window - taken[metric]))
        for _, metric, limit, window, capacity in dimensions_of(limits)
    ]
    spent = dict.fromkeys(taken, 0.0)
    # When each of the server's places in flight is free again (all keys together).
    places = [0.0] * (keys * limits.concurrency) if limits.concurrency else []
    times = []
    for call in sorted(calls, key=lambda c: c.at):
        parsed = _parsed(call)
        for metric, amount in _charges(scenario, parsed).items():
            spent[metric] += amount
        at = call.at
        for metric, capacity, rate in budgets:
            at = max(at, (spent[metric] - capacity) / rate)
        if places:
            at = max(at, places[0])
            heapq.heapreplace(places, at + expected_latency(scenario, parsed))
        times.append(at)
    return times


def mean_latency(scenario: Scenario) -> float:
    """The mock's average time to answer one of the scenario's calls (`expected_latency`)."""
    if not scenario.calls:
        return 0.0
    total = math.fsum(expected_latency(scenario, _parsed(call)) for call in scenario.calls)
    return total / len(scenario.calls)


def _parsed(call: Call) -> ParsedRequest:
    parse = parse_embeddings if call.endpoint == "embeddings" else parse_chat
    return parse(dict(call.body))


def _charges(scenario: Scenario, parsed: ParsedRequest) -> dict[str, float]:
    """What the mock's admission takes from each kind of bucket for this call."""
    server = scenario.server
    request = parsed.charge_request(server.output.default_max_tokens)
    output = float(request.reserved_output_tokens)
    if server.profile.output_charge == "usage":
        output = _expected_output(scenario, parsed)  # charged as it is written
    return {
        "requests": 1.0,
        "tokens": float(server.charge_rule(request)),
        "input_tokens": float(request.estimated_prompt_tokens),
        "output_tokens": output,
    }


def _expected_output(scenario: Scenario, parsed: ParsedRequest) -> float:
    """The output tokens the mock draws for a call, on average (uniform up to its cap)."""
    if parsed.endpoint == "embeddings":
        return 0.0
    output = scenario.server.output
    cap = parsed.max_output if parsed.max_output is not None else output.default_max_tokens
    low = min(output.min_tokens, cap)
    return max(parsed.n, parsed.best_of) * (low + cap) / 2


def expected_latency(scenario: Scenario, parsed: ParsedRequest) -> float:
    """How long the mock takes to answer a call, on average: time to the first token,
    then the expected output at the model's speed (jitter averages out)."""
    latency = scenario.server.latency
    first = (latency.ttft + latency.per_prompt_token * parsed.prompt_tokens()) * latency.scale
    if parsed.endpoint == "embeddings":
        return first
    per_choice = _expected_output(scenario, parsed) / max(parsed.n, parsed.best_of)
    return first + per_choice * latency.scale / latency.tokens_per_second


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


def _server(
    limits: MockLimits, *, latency: LatencyModel | None = None, **kwargs: Any
) -> MockConfig:
    return MockConfig(
        limits=limits,
        latency=latency or _latency(),
        output=OutputModel(min_tokens=8),
        seed=7,
        **kwargs,
    )


def _within(scenario: Scenario, seconds: float) -> Scenario:
    """``scenario`` cut to the calls its server can admit within ``seconds`` (calls all
    at once: the ideal line of a prefix is the prefix of the ideal line)."""
    times = ideal_admissions(scenario)
    count = max(1, sum(1 for at in times if at <= seconds))
    calls = tuple(sorted(scenario.calls, key=lambda c: c.at)[:count])
    return replace(scenario, calls=calls, description=scenario.description.format(count=count))


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
    scenarios.append(_concurrency_capped(seconds))
    scenarios.append(_per_second(seconds))
    scenarios.append(_interactive_and_bulk(seconds))
    return scenarios


def _interactive_and_bulk(seconds: float) -> Scenario:
    """A bulk backlog and a person waiting: one quota, two kinds of caller.

    A labelling job queues a backlog larger than the bucket at once (lane ``"bulk"``),
    while an application on the same key sends a small call every quarter second (lane
    ``"interactive"``). The report's "interactive p95" column is how long those waited
    and took: behind a FIFO they wait for the backlog; with lanes they pass it at the
    next free slot, while the backlog still gets the rest of the quota.
    """
    rng = random.Random(13)
    limits = MockLimits(rpm=600, tpm=60_000)
    backlog = tuple(
        replace(
            _chat(i, 0.0, rng, rng.randint(200, 1_600), rng.randint(50, 300), False), lane="bulk"
        )
        for i in range(2_000)
    )
    bulk = _within(
        Scenario("interactive-bulk", "", _server(limits), Limits(rpm=600, tpm=60_000), backlog),
        seconds,
    ).calls
    interactive = tuple(
        replace(_chat(len(bulk) + n, 0.5 + 0.25 * n, rng, 120, 30, False), lane="interactive")
        for n in range(max(4, int((seconds - 1.0) / 0.25)))
    )
    return Scenario(
        "interactive-bulk",
        f"{len(bulk)} bulk calls at once and {len(interactive)} small interactive ones, one "
        "every 0.25 s, on one key (TPM binding)",
        _server(limits),
        Limits(rpm=600, tpm=60_000),
        bulk + interactive,
    )


def _concurrency_capped(seconds: float) -> Scenario:
    """A DeepSeek-like server: no rate limit and no headers, 16 calls in flight per key.

    Calls take about two thirds of a second, so the places in flight bind long before
    the (generous) rate contenders are told; every refusal is one of DeepSeek's
    concurrency 429s.
    """
    rng = random.Random(11)
    latency = LatencyModel(ttft=0.3, tokens_per_second=100.0, jitter=0.2)
    candidates = tuple(
        _chat(i, 0.0, rng, rng.randint(100, 400), rng.randint(40, 80), False) for i in range(2_000)
    )
    scenario = Scenario(
        "concurrency-capped",
        "{count} calls at once against a DeepSeek-like server (no headers, 16 calls in "
        "flight per key, ~0.65 s each); contenders are told a generous rate",
        _server(MockLimits(concurrency=16), latency=latency, profile=Profile.deepseek()),
        Limits(rpm=6_000, tpm=10_000_000),
        candidates,
        provider="deepseek",
    )
    return _within(scenario, seconds)


def _per_second(seconds: float) -> Scenario:
    """A Together-like server: 10 requests and 2,000 tokens per *second*, in its headers.

    Contenders are told the per-minute equivalents (600 RPM, 120,000 TPM), as an
    account page shows them; a minute's worth at once is what the server refuses.
    """
    rng = random.Random(12)
    candidates = tuple(
        _chat(i, 0.0, rng, rng.randint(200, 1_200), rng.randint(30, 200), False)
        for i in range(2_000)
    )
    scenario = Scenario(
        "per-second",
        "{count} mixed calls at once against a Together-like server limiting 10 requests "
        "and 2,000 tokens per second; contenders are told 600 RPM / 120,000 TPM",
        _server(MockLimits(rps=10, tps=2_000), profile=Profile.together()),
        Limits(rpm=600, tpm=120_000),
        candidates,
        provider="together",
    )
    return _within(scenario, seconds)


ScenarioFactory = Callable[[float], list[Scenario]]
