"""AdaptiveBackoff: what it retries, how long it waits, and what it learns.

Attempts are built by hand and given classified errors with bodies as OpenAI, Azure and
proxies send them (research/openai-rate-limits.md section 3). Synchronous tests use a
plain fake clock; the async ones run on trio's ``MockClock`` (virtual time).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import anyio
import pytest
import trio
from error_bodies import QUOTA_429, envelope

from ratelimit_llm import Cost, Limits
from ratelimit_llm._classify import ErrorKind, classify_error
from ratelimit_llm._headers import parse_rate_limit_headers
from ratelimit_llm._limiter import RateLimiter
from ratelimit_llm._pool import LimiterPool
from ratelimit_llm._strategy import Attempt, Strategy
from ratelimit_llm._telemetry import Event, Telemetry
from ratelimit_llm.strategies import AdaptiveBackoff

MODEL = "gpt-4o-mini"
COST = Cost(requests=1, tokens=1_200)


def openai_429(metric: str, limit: int, wait: str, period: str = "min") -> dict[str, Any]:
    short = {"tokens": "TPM", "requests": "RPM"}[metric]
    if period == "day":
        short = short.replace("M", "D")
    return envelope(
        f"Rate limit reached for {MODEL} in organization org-abc on {metric} per {period} "
        f"({short}): Limit {limit}, Used {limit}, Requested 1200. Please try again in {wait}. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        metric,
        "rate_limit_exceeded",
    )


TPM_429 = openai_429("tokens", 200_000, "210ms")
AZURE_TOKENS_429 = envelope(
    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
    "2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
    "Please retry after 6 seconds.",
    None,
    "429",
)
TOO_LARGE_429 = envelope(
    "Request too large for gpt-4o in organization org-abc on tokens per min (TPM): Limit "
    "30000, Requested 31538. The input or output tokens must be reduced in order to run "
    "successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
    "tokens",
    "rate_limit_exceeded",
)
FLEX_429 = envelope("Resource Unavailable", None, "resource_unavailable")
SLOW_DOWN_503 = envelope(
    "A sudden increase in your request rate is impacting service reliability. "
    "Please reduce your request rate.",
    None,
    "slow_down",
)
OVERLOADED_503 = envelope("The engine is currently overloaded, please try again later")
SERVER_500 = envelope("The server had an error while processing your request.", "server_error")
AUTH_401 = envelope(
    "Incorrect API key provided: sk-abc***...wxyz. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "invalid_request_error",
    "invalid_api_key",
)


def openai_headers(
    rpm: int = 500, tpm: int = 200_000, requests_left: int = 499, tokens_left: int = 500
) -> dict[str, str]:
    """Consistent OpenAI headers: each reset is the time until that bucket is full."""
    return {
        "x-ratelimit-limit-requests": str(rpm),
        "x-ratelimit-limit-tokens": str(tpm),
        "x-ratelimit-remaining-requests": str(requests_left),
        "x-ratelimit-remaining-tokens": str(tokens_left),
        "x-ratelimit-reset-requests": f"{(rpm - requests_left) * 60 / rpm:.3f}s",
        "x-ratelimit-reset-tokens": f"{(tpm - tokens_left) * 60 / tpm:.3f}s",
    }


# As sent with TPM_429: 199,500 of 200,000 used, 1,200 requested: 210 ms to fit.
OPENAI_HEADERS = openai_headers()
OK_HEADERS = openai_headers(tokens_left=198_800)


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_attempt(
    clock: Callable[[], float] | None = None,
    limits: Limits | None = None,
    *,
    pool: LimiterPool | None = None,
    telemetry: Telemetry | None = None,
    number: int = 1,
) -> Attempt:
    clock = clock or FakeClock()
    pool = pool or LimiterPool(limits or Limits(rpm=500, tpm=200_000), clock=clock)
    attempt = Attempt(
        model=MODEL,
        endpoint="/v1/chat/completions",
        cost=COST,
        started=clock(),
        clock=clock,
        pool=pool,
        telemetry=telemetry or Telemetry(),
        number=number,
    )
    attempt.limiter = attempt.limiter_for(None)
    return attempt


def answer(
    attempt: Attempt,
    status: int,
    body: object = None,
    headers: Mapping[str, str] | None = None,
) -> Attempt:
    """Record an answer as the transport does: snapshot applied, then status and error."""
    snapshot = parse_rate_limit_headers(headers or {})
    if attempt.limiter is not None:
        attempt.limiter.observe_snapshot(snapshot, attempt.reservation)
    attempt.snapshot = snapshot
    attempt.status = status
    attempt.error = classify_error(status, headers or {}, body)  # type: ignore[arg-type]
    attempt.exception = None
    return attempt


def limits_of(attempt: Attempt) -> dict[str, float]:
    assert attempt.limiter is not None
    return dict(attempt.limiter.statistics().limits)


def collect(telemetry: Telemetry) -> list[Event]:
    events: list[Event] = []
    telemetry.subscribe(events.append)
    return events


# -- arguments -----------------------------------------------------------------------------


def test_needs_at_least_one_bound() -> None:
    with pytest.raises(ValueError, match="max_attempts or max_elapsed"):
        AdaptiveBackoff(max_attempts=None, max_elapsed=None)
    AdaptiveBackoff(max_attempts=None)
    AdaptiveBackoff(max_elapsed=None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"max_elapsed": 0},
        {"max_elapsed": math.inf},
        {"base": 0},
        {"cap": -1},
        {"decrease": 1.0},
        {"decrease": 0.0},
        {"recovery": -0.1},
        {"recovery": math.nan},
        {"floor": 0},
        {"floor": 1.5},
        {"slow_down_factor": 0},
        {"slow_down_hold": -1},
        {"base": "0.5"},
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AdaptiveBackoff(**kwargs)


def test_repr() -> None:
    assert repr(AdaptiveBackoff()) == (
        "AdaptiveBackoff(max_attempts=6, max_elapsed=300.0, base=0.5, cap=30)"
    )


# -- what is never retried -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind"),
    [
        (429, QUOTA_429, {}, ErrorKind.INSUFFICIENT_QUOTA),
        (429, TOO_LARGE_429, {}, ErrorKind.REQUEST_TOO_LARGE),
        (413, None, {}, ErrorKind.REQUEST_TOO_LARGE),
        (401, AUTH_401, {}, ErrorKind.AUTHENTICATION),
        (403, envelope("Forbidden"), {}, ErrorKind.AUTHENTICATION),
        (400, envelope("Invalid 'messages'", "invalid_request_error"), {}, ErrorKind.CLIENT_ERROR),
        (404, envelope("The model does not exist"), {}, ErrorKind.CLIENT_ERROR),
        (500, SERVER_500, {"x-should-retry": "false"}, ErrorKind.SERVER_ERROR),
        (429, TPM_429, {"x-should-retry": "false"}, ErrorKind.RATE_LIMIT),
    ],
)
def test_gives_up_on_what_no_wait_can_fix(
    status: int, body: object, headers: dict[str, str], kind: ErrorKind
) -> None:
    attempt = answer(make_attempt(), status, body, headers)
    assert attempt.error is not None and attempt.error.kind is kind
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.action == "give_up"
    # No error of ours: the SDK raises its own typed error from the response.
    assert decision.error is None
    assert kind.value in decision.reason


def test_success_and_non_errors_decide_nothing() -> None:
    strategy = AdaptiveBackoff()
    assert strategy.after_response(answer(make_attempt(), 200, {}, OK_HEADERS)) is None
    assert strategy.after_response(answer(make_attempt(), 304)) is None
    attempt = make_attempt()
    attempt.exception = KeyboardInterrupt()  # not an Exception: not ours to retry
    assert strategy.after_response(attempt) is None


# -- backoff with full jitter --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, envelope("Too Many Requests")),
        (429, FLEX_429),
        (503, SLOW_DOWN_503),
        (503, OVERLOADED_503),
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        (500, SERVER_500),
        (502, "<html><title>502 Bad Gateway</title></html>"),
        (408, None),
        (409, None),
    ],
)
def test_retries_what_waiting_can_cure_with_jittered_backoff(status: int, body: object) -> None:
    strategy = AdaptiveBackoff(rng=random.Random(7))
    expected = random.Random(7).uniform(0.0, 0.5)
    decision = strategy.after_response(answer(make_attempt(), status, body))
    assert decision is not None and decision.action == "retry"
    assert decision.delay == expected  # the first draw from [0, base]


@pytest.mark.parametrize(
    "exception", [ConnectionError("reset by peer"), TimeoutError(), OSError("unreachable")]
)
def test_retries_connection_errors(exception: Exception) -> None:
    attempt = make_attempt(number=2)
    attempt.exception = exception
    decision = AdaptiveBackoff(rng=random.Random(1)).after_response(attempt)
    assert decision is not None and decision.action == "retry"
    assert decision.delay == random.Random(1).uniform(0.0, 1.0)
    assert type(exception).__name__ in decision.reason


def test_full_jitter_ceiling_doubles_up_to_the_cap() -> None:
    strategy = AdaptiveBackoff(base=0.5, cap=30.0)
    assert [strategy.backoff_ceiling(n) for n in range(1, 9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0
    ]  # fmt: skip
    assert strategy.backoff_ceiling(10_000) == 30.0  # no overflow however many attempts


def test_full_jitter_draws_uniformly_from_zero_to_the_ceiling() -> None:
    seed = 2024
    strategy = AdaptiveBackoff(max_attempts=None, max_elapsed=10_000, rng=random.Random(seed))
    reference = random.Random(seed)
    delays: dict[int, list[float]] = {}
    for _ in range(400):
        for number in (1, 3, 8):
            attempt = answer(make_attempt(number=number), 500, SERVER_500)
            decision = strategy.after_response(attempt)
            assert decision is not None and decision.action == "retry"
            ceiling = min(30.0, 0.5 * 2 ** (number - 1))
            assert decision.delay == reference.uniform(0.0, ceiling)  # the exact draw
            delays.setdefault(number, []).append(decision.delay)
    for number, ceiling in ((1, 0.5), (3, 2.0), (8, 30.0)):
        drawn = delays[number]
        assert 0.0 <= min(drawn) < 0.05 * ceiling  # full jitter reaches down to zero
        assert 0.95 * ceiling < max(drawn) <= ceiling
        assert sum(drawn) / len(drawn) == pytest.approx(ceiling / 2, rel=0.1)


# -- waits named by the server -------------------------------------------------------------


def test_rate_limit_wait_named_in_the_message_holds_the_whole_bucket() -> None:
    attempt = answer(make_attempt(), 429, TPM_429, OPENAI_HEADERS)
    assert attempt.limiter is not None
    decision = AdaptiveBackoff().after_response(attempt)
    # Retry at once: the bucket, now held, makes this call wait exactly 210 ms...
    assert decision is not None and decision.action == "retry" and decision.delay == 0.0
    assert attempt.limiter.expected_wait(COST) == pytest.approx(0.21)
    # ...and so does every other caller that needs as many tokens (the held level is
    # what the server said it has left).
    assert attempt.limiter.expected_wait(Cost(requests=1, tokens=1_000)) == pytest.approx(0.15)
    assert "0.21" in decision.reason


def test_retry_after_ms_header_wins_over_the_message() -> None:
    headers = {**OPENAI_HEADERS, "retry-after-ms": "1500"}
    attempt = answer(make_attempt(), 429, openai_429("requests", 500, "120ms"), headers)
    assert attempt.limiter is not None
    AdaptiveBackoff().after_response(attempt)
    assert attempt.limiter.expected_wait(COST) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("status", "body"),
    [(503, OVERLOADED_503), (429, FLEX_429), (500, SERVER_500), (503, SLOW_DOWN_503)],
)
def test_other_kinds_wait_exactly_the_named_time(status: int, body: object) -> None:
    attempt = answer(make_attempt(), status, body, {"retry-after": "3"})
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.action == "retry"
    assert decision.delay == 3.0


def test_named_wait_without_a_limiter_becomes_the_delay() -> None:
    attempt = answer(make_attempt(), 429, TPM_429, OPENAI_HEADERS)
    attempt.limiter = None
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.delay == pytest.approx(0.21)


def test_hold_covers_every_dimension_when_the_metric_is_not_one_of_the_buckets() -> None:
    # Anthropic names input tokens; this bucket counts requests only.
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "This request would exceed the rate limit for your organization of "
            "20,000 input tokens per minute. Please try again in 2s.",
        },
    }
    attempt = answer(make_attempt(limits=Limits(rpm=50)), 429, body, {"retry-after": "2"})
    assert attempt.error is not None and attempt.error.metric == "input_tokens"
    assert attempt.limiter is not None
    AdaptiveBackoff().after_response(attempt)
    assert attempt.limiter.expected_wait(COST) == pytest.approx(2.0)


@pytest.mark.anyio
async def test_call_is_resent_exactly_when_the_server_said() -> None:
    pool = LimiterPool(Limits(rpm=500, tpm=200_000), clock=trio.current_time)
    answers = iter([(429, TPM_429, OPENAI_HEADERS), (200, {}, OK_HEADERS)])
    sent = await run_call(AdaptiveBackoff(), pool, lambda attempt: next(answers))
    assert sent == pytest.approx([0.0, 0.21])


# -- bounds --------------------------------------------------------------------------------


def test_gives_up_after_max_attempts() -> None:
    strategy = AdaptiveBackoff(max_attempts=3, rng=random.Random(0))
    for number, action in ((1, "retry"), (2, "retry"), (3, "give_up"), (4, "give_up")):
        decision = strategy.after_response(
            answer(make_attempt(number=number), 429, TPM_429, OPENAI_HEADERS)
        )
        assert decision is not None and decision.action == action
    assert decision is not None and "max_attempts" in decision.reason


def test_gives_up_when_the_next_attempt_would_start_too_late() -> None:
    clock = FakeClock()
    strategy = AdaptiveBackoff(max_attempts=None, max_elapsed=10.0)
    attempt = make_attempt(clock, number=40)
    clock.now += 5.0
    answer(attempt, 503, OVERLOADED_503, {"retry-after": "5"})
    decision = strategy.after_response(attempt)
    assert decision is not None and decision.action == "retry"  # starts at exactly 10 s
    answer(attempt, 503, OVERLOADED_503, {"retry-after": "5.5"})
    decision = strategy.after_response(attempt)
    assert decision is not None and decision.action == "give_up"
    assert "max_elapsed" in decision.reason


def test_a_named_rate_limit_wait_counts_against_max_elapsed() -> None:
    # "Please try again in 8.64s" on a per-day limit, with 295 s of the budget spent.
    clock = FakeClock()
    attempt = make_attempt(clock, Limits(rpm=500, rpd=10_000))
    clock.now += 295.0
    answer(attempt, 429, openai_429("requests", 10_000, "8.64s", period="day"))
    assert attempt.limiter is not None
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.action == "give_up"
    # The bucket is held all the same: the others must not hammer the server either.
    assert attempt.limiter.expected_wait(COST) == pytest.approx(8.64)


def test_max_elapsed_alone_allows_many_attempts() -> None:
    strategy = AdaptiveBackoff(max_attempts=None, max_elapsed=60.0, rng=random.Random(3))
    decision = strategy.after_response(answer(make_attempt(number=50), 500, SERVER_500))
    assert decision is not None and decision.action == "retry"


# -- learning from 429s: multiplicative decrease, additive recovery ------------------------


def test_429_without_limit_headers_cuts_the_metric_that_ran_out() -> None:
    telemetry = Telemetry()
    events = collect(telemetry)
    remaining_only = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining-requests": "9"}
    attempt = answer(make_attempt(telemetry=telemetry), 429, AZURE_TOKENS_429, remaining_only)
    decision = AdaptiveBackoff().after_response(attempt)
    assert limits_of(attempt) == {"requests/min": 500, "tokens/min": pytest.approx(140_000)}
    assert decision is not None and decision.action == "retry" and decision.delay == 0.0
    [event] = events
    assert event.kind == "limit_changed" and event.metric == "tokens"
    assert event.detail == "tokens/min 200000 -> 140000 (429 without limit headers)"
    assert event.key == "<no key>" and event.model == MODEL


def test_unknown_metric_cuts_requests_and_tokens_per_minute() -> None:
    limits = Limits(rpm=500, tpm=200_000, rpd=10_000)
    attempt = answer(make_attempt(limits=limits), 429, "Too Many Requests")
    AdaptiveBackoff(decrease=0.5).after_response(attempt)
    assert limits_of(attempt) == {
        "requests/min": 250,
        "tokens/min": 100_000,
        "requests/day": 10_000,
    }


def test_per_day_429_cuts_the_per_day_dimension() -> None:
    limits = Limits(rpm=500, tpm=200_000, rpd=20_000)
    body = openai_429("requests", 20_000, "8.64s", period="day")
    attempt = answer(make_attempt(limits=limits), 429, body)
    AdaptiveBackoff().after_response(attempt)
    assert limits_of(attempt) == {
        "requests/min": 500,
        "tokens/min": 200_000,
        "requests/day": pytest.approx(14_000),
    }


def test_limit_named_in_the_message_is_adopted_as_it_is() -> None:
    # A proxy that passes OpenAI's message through but strips the headers.
    telemetry = Telemetry()
    events = collect(telemetry)
    body = openai_429("tokens", 30_000, "1.2s")
    attempt = answer(make_attempt(telemetry=telemetry), 429, body)
    strategy = AdaptiveBackoff()
    strategy.after_response(attempt)
    assert limits_of(attempt)["tokens/min"] == 30_000
    assert events[0].detail == "tokens/min 200000 -> 30000 (limit named in the 429 message)"
    # Successes never take it above what the server named.
    for _ in range(5):
        strategy.after_response(answer(attempt, 200))
    assert limits_of(attempt)["tokens/min"] == 30_000


def test_limit_headers_are_the_truth_and_are_not_fought() -> None:
    attempt = answer(make_attempt(), 429, TPM_429, OPENAI_HEADERS)
    strategy = AdaptiveBackoff()
    strategy.after_response(attempt)
    assert limits_of(attempt) == {"requests/min": 500, "tokens/min": 200_000}


def test_limit_headers_the_transport_does_not_follow_do_not_stop_learning() -> None:
    # follow_server_limits=False: the headers' limit is not applied, so a 429 says as
    # much as from a server without headers.
    clock = FakeClock()
    pool = LimiterPool(Limits(rpm=500, tpm=200_000), clock=clock, follow_server_limits=False)
    attempt = make_attempt(clock, pool=pool)
    headers = openai_headers(tpm=150_000, tokens_left=500)
    answer(attempt, 429, openai_429("tokens", 150_000, "210ms"), headers)
    AdaptiveBackoff().after_response(attempt)
    assert limits_of(attempt) == {"requests/min": 500, "tokens/min": 150_000}


def test_repeated_cuts_stop_at_the_floor_and_successes_recover_additively() -> None:
    strategy = AdaptiveBackoff(decrease=0.5, floor=0.1, recovery=0.25)
    attempt = make_attempt(limits=Limits(tpm=200_000))
    seen = []
    for _ in range(6):
        strategy.after_response(answer(attempt, 429, AZURE_TOKENS_429))
        seen.append(limits_of(attempt)["tokens/min"])
    assert seen == [100_000, 50_000, 25_000, 20_000, 20_000, 20_000]  # floor: 10 % of 200k
    seen = []
    for _ in range(5):
        strategy.after_response(answer(attempt, 200))
        seen.append(limits_of(attempt)["tokens/min"])
    assert seen == [70_000, 120_000, 170_000, 200_000, 200_000]  # + 25 % of 200k, capped


def test_recovery_reports_when_back_at_the_start() -> None:
    telemetry = Telemetry()
    events = collect(telemetry)
    strategy = AdaptiveBackoff(recovery=0.1)
    attempt = make_attempt(limits=Limits(tpm=100_000), telemetry=telemetry)
    strategy.after_response(answer(attempt, 429, AZURE_TOKENS_429))
    for _ in range(3):
        strategy.after_response(answer(attempt, 200))
    details = [event.detail for event in events]
    assert details == [
        "tokens/min 100000 -> 70000 (429 without limit headers)",
        "tokens/min 90000 -> 100000 (recovered)",
    ]


def test_calls_granted_before_a_cut_do_not_cut_again() -> None:
    clock = FakeClock()
    strategy = AdaptiveBackoff()
    pool = LimiterPool(Limits(rpm=500, tpm=200_000), clock=clock)
    in_flight = [make_attempt(clock, pool=pool) for _ in range(3)]
    for attempt in in_flight:
        assert attempt.limiter is not None
        attempt.reservation = attempt.limiter.acquire_nowait(COST)
    for attempt in in_flight:  # three 429s for calls sent under the old limit
        strategy.after_response(answer(attempt, 429, AZURE_TOKENS_429))
    assert limits_of(in_flight[0])["tokens/min"] == pytest.approx(140_000)
    # A call granted after the cut that still gets a 429 cuts again.
    later = make_attempt(clock, pool=pool)
    assert later.limiter is not None
    clock.now += 10.0
    later.reservation = later.limiter.acquire_nowait(COST)
    strategy.after_response(answer(later, 429, AZURE_TOKENS_429))
    assert limits_of(later)["tokens/min"] == pytest.approx(98_000)


def test_limit_headers_arriving_later_end_the_learning() -> None:
    strategy = AdaptiveBackoff()
    attempt = make_attempt()
    strategy.after_response(answer(attempt, 429, AZURE_TOKENS_429))
    assert limits_of(attempt)["tokens/min"] == pytest.approx(140_000)
    # The server starts reporting its limit (lower than the configured one): adopted by
    # the transport, and successes do not push the limit back up to the old start.
    headers = openai_headers(tpm=150_000, tokens_left=148_800)
    for _ in range(5):
        strategy.after_response(answer(attempt, 200, {}, headers))
    assert limits_of(attempt)["tokens/min"] == 150_000


def test_a_limit_changed_by_someone_else_is_left_alone() -> None:
    strategy = AdaptiveBackoff()
    attempt = make_attempt()
    strategy.after_response(answer(attempt, 429, AZURE_TOKENS_429))
    assert attempt.limiter is not None
    attempt.limiter.resize("tokens/min", 50_000)
    strategy.after_response(answer(attempt, 200))
    assert limits_of(attempt)["tokens/min"] == 50_000


def test_limits_are_learned_per_limiter() -> None:
    clock = FakeClock()
    strategy = AdaptiveBackoff()
    pool = LimiterPool(Limits(rpm=500, tpm=200_000), clock=clock)
    mini = make_attempt(clock, pool=pool)
    other = make_attempt(clock, pool=pool)
    other.model = "gpt-4o"
    other.limiter = other.limiter_for(None)
    strategy.after_response(answer(mini, 429, AZURE_TOKENS_429))
    strategy.after_response(answer(other, 200))
    assert limits_of(mini)["tokens/min"] == pytest.approx(140_000)
    assert limits_of(other)["tokens/min"] == 200_000


def test_a_cut_adds_no_wait_to_the_one_the_server_named() -> None:
    attempt = make_attempt()
    assert attempt.limiter is not None
    attempt.limiter.acquire_nowait(Cost(requests=1, tokens=200_000))  # a spent minute
    AdaptiveBackoff().after_response(answer(attempt, 429, AZURE_TOKENS_429))
    assert limits_of(attempt)["tokens/min"] == pytest.approx(140_000)
    # "Please retry after 6 seconds", and not the 26 s a minute's debt at the cut rate
    # would impose: the cut changes the rate from now on, not the wait already known.
    assert attempt.limiter.expected_wait(COST) == pytest.approx(6.0)


def test_a_cut_keeps_the_wait_of_an_earlier_hold() -> None:
    # KeyRotation runs first and holds the bucket at the old rate; the cut that follows
    # must not stretch that wait.
    attempt = make_attempt()
    assert attempt.limiter is not None
    attempt.limiter.hold(6.0, metric="tokens", cost=COST)
    AdaptiveBackoff().after_response(answer(attempt, 429, AZURE_TOKENS_429))
    assert attempt.limiter.expected_wait(COST) == pytest.approx(6.0)


def test_recovery_gives_no_free_burst() -> None:
    strategy = AdaptiveBackoff(recovery=0.1)
    attempt = make_attempt(limits=Limits(tpm=100_000))
    assert attempt.limiter is not None
    strategy.after_response(answer(attempt, 429, "Too Many Requests"))
    attempt.limiter.acquire_nowait(Cost(requests=1, tokens=30_000))
    levels = [attempt.limiter.statistics().levels["tokens/min"]]
    for _ in range(3):
        strategy.after_response(answer(attempt, 200))
        levels.append(attempt.limiter.statistics().levels["tokens/min"])
    assert limits_of(attempt)["tokens/min"] == 100_000
    assert levels == pytest.approx([40_000] * 4)  # the limit grew, the level did not jump


def test_flex_resource_unavailable_never_shrinks() -> None:
    strategy = AdaptiveBackoff(rng=random.Random(5))
    attempt = make_attempt()
    for _ in range(4):
        decision = strategy.after_response(answer(attempt, 429, FLEX_429))
        assert decision is not None and decision.action == "retry"
    assert limits_of(attempt) == {"requests/min": 500, "tokens/min": 200_000}


# -- 503 slow_down: halve, hold, then ramp up ----------------------------------------------


@pytest.mark.anyio
async def test_slow_down_halves_holds_then_recovers_in_virtual_time() -> None:
    telemetry = Telemetry()
    events = collect(telemetry)
    strategy = AdaptiveBackoff(recovery=0.1, rng=random.Random(9))
    attempt = make_attempt(
        trio.current_time, Limits(rpm=500, tpm=200_000, rpd=10_000), telemetry=telemetry
    )
    decision = strategy.after_response(answer(attempt, 503, SLOW_DOWN_503))
    assert decision is not None and decision.action == "retry"
    assert 0.0 <= decision.delay <= 0.5  # backoff as well
    halved = {"requests/min": 250, "tokens/min": 100_000, "requests/day": 10_000}
    assert limits_of(attempt) == halved
    assert [event.detail for event in events] == [
        "requests/min 500 -> 250 (503 slow_down; held 900 s)",
        "tokens/min 200000 -> 100000 (503 slow_down; held 900 s)",
    ]
    # During the hold, successes do not ramp up, even when the headers report the quota
    # (the transport resizes to it; the cut is put back).
    await trio.sleep(899.0)
    for _ in range(3):
        strategy.after_response(answer(attempt, 200, {}, OK_HEADERS))
    assert limits_of(attempt) == halved
    # After the hold: additive recovery, 10 % of the starting limit per success.
    await trio.sleep(1.0)
    strategy.after_response(answer(attempt, 200, {}, OK_HEADERS))
    assert limits_of(attempt) == {
        "requests/min": 300,
        "tokens/min": 120_000,
        "requests/day": 10_000,
    }
    for _ in range(10):
        strategy.after_response(answer(attempt, 200, {}, OK_HEADERS))
    assert limits_of(attempt) == {
        "requests/min": 500,
        "tokens/min": 200_000,
        "requests/day": 10_000,
    }
    # Once recovered, the server's headers lead again.
    lower = openai_headers(rpm=400, requests_left=399, tokens_left=198_800)
    strategy.after_response(answer(attempt, 200, {}, lower))
    assert limits_of(attempt)["requests/min"] == 400


def test_slow_down_respects_the_floor() -> None:
    strategy = AdaptiveBackoff(slow_down_factor=0.1, floor=0.2, rng=random.Random(0))
    attempt = make_attempt(limits=Limits(rpm=1_000))
    strategy.after_response(answer(attempt, 503, SLOW_DOWN_503))
    assert limits_of(attempt) == {"requests/min": 200}


# -- a small transport loop, as the real one drives strategies -----------------------------


Answer = tuple[int, object, Mapping[str, str]]


async def run_call(
    strategy: Strategy, pool: LimiterPool, server: Callable[[Attempt], Answer]
) -> list[float]:
    """Drive one call through ``strategy``; return the send times of its attempts."""
    attempt = Attempt(
        model=MODEL,
        endpoint="/v1/chat/completions",
        cost=COST,
        started=trio.current_time(),
        clock=trio.current_time,
        pool=pool,
        telemetry=Telemetry(),
    )
    sent = []
    while True:
        attempt.number += 1
        await strategy.before_send(attempt)
        attempt.limiter = attempt.limiter_for(attempt.credential)
        attempt.reservation = await attempt.limiter.acquire(attempt.cost)
        sent.append(trio.current_time() - attempt.started)
        answer(attempt, *server(attempt))
        decision = strategy.after_response(attempt)
        if decision is None or decision.action == "give_up":
            return sent
        await anyio.sleep(decision.delay)


@pytest.mark.anyio
async def test_gives_up_after_six_attempts_against_a_failing_server() -> None:
    pool = LimiterPool(Limits(rpm=500, tpm=200_000), clock=trio.current_time)
    sent = await run_call(
        AdaptiveBackoff(rng=random.Random(11)), pool, lambda attempt: (500, SERVER_500, {})
    )
    assert len(sent) == 6
    reference = random.Random(11)
    gaps = [reference.uniform(0, 0.5 * 2**n) for n in range(5)]
    assert [b - a for a, b in itertools.pairwise(sent)] == pytest.approx(gaps)


@pytest.mark.anyio
async def test_a_held_bucket_delays_other_callers_too() -> None:
    pool = LimiterPool(Limits(rpm=500, tpm=200_000), clock=trio.current_time)
    limiter: RateLimiter = pool.get("<no key>", MODEL)
    answers: Iterator[Answer] = iter([(429, openai_429("tokens", 200_000, "2s"), {})])
    other_granted: list[float] = []

    def server(attempt: Attempt) -> Answer:
        return next(answers, (200, {}, {}))

    async def other() -> None:
        await trio.sleep(0.5)
        await limiter.acquire(COST)
        other_granted.append(trio.current_time())

    start = trio.current_time()
    async with anyio.create_task_group() as group:
        group.start_soon(other)
        sent = await run_call(AdaptiveBackoff(), pool, server)
    assert sent == pytest.approx([0.0, 2.0])
    # The other caller arrived during the hold and was served after the retry, in line.
    assert other_granted[0] - start >= 2.0
