"""AdaptiveBackoff: what it retries and how long it waits.

Attempts are built by hand and given classified errors with bodies as OpenAI, Azure and
proxies send them (research/openai-rate-limits.md section 3), then handed to the
`Learner` as the transport does before any strategy decides. What the learner does with
them is tested in ``test_learner.py``. Synchronous tests use a plain fake clock; the
async ones run on trio's ``MockClock`` (virtual time).
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
from _attempts import (
    AUTH_401,
    COST,
    FLEX_429,
    MODEL,
    OK_HEADERS,
    OPENAI_HEADERS,
    OVERLOADED_503,
    SERVER_500,
    SLOW_DOWN_503,
    TOO_LARGE_429,
    TPM_429,
    FakeClock,
    answer,
    make_attempt,
    openai_429,
)
from error_bodies import QUOTA_429, envelope

from ratelimit_llm import Cost, Limits
from ratelimit_llm._classify import ErrorKind
from ratelimit_llm._learner import Learner
from ratelimit_llm._pool import LimiterPool
from ratelimit_llm._strategy import Attempt, Strategy, retry_kind
from ratelimit_llm._telemetry import Telemetry
from ratelimit_llm.strategies import AdaptiveBackoff
from ratelimit_llm.strategies._adaptive import RETRY_BUDGETS

# -- arguments -----------------------------------------------------------------------------


def test_per_kind_budgets_bound_every_call_even_without_the_other_bounds() -> None:
    strategy = AdaptiveBackoff(max_attempts=None, max_elapsed=None, rng=random.Random(0))
    assert strategy.retries == RETRY_BUDGETS
    attempt = make_attempt()
    decisions = []
    for _ in range(7):
        decision = strategy.after_response(answer(attempt, 500, SERVER_500))
        assert decision is not None
        decisions.append(decision.action)
        if decision.action == "retry":
            attempt.retried["overload"] = attempt.retried.get("overload", 0) + 1
            attempt.number += 1
    assert decisions == ["retry"] * 5 + ["give_up"] * 2
    assert "retries['overload']" in strategy.after_response(answer(attempt, 500, SERVER_500)).reason  # type: ignore[union-attr]


def test_each_kind_draws_on_its_own_budget() -> None:
    strategy = AdaptiveBackoff(retries={"overload": 1, "throttling": 2}, rng=random.Random(0))
    attempt = make_attempt()
    attempt.retried = {"overload": 1}
    # The overload budget is spent, the throttling one is not.
    decision = strategy.after_response(answer(attempt, 503, OVERLOADED_503))
    assert decision is not None and decision.action == "give_up"
    decision = strategy.after_response(answer(attempt, 429, TPM_429, OPENAI_HEADERS))
    assert decision is not None and decision.action == "retry"
    attempt.retried["throttling"] = 2
    decision = strategy.after_response(answer(attempt, 429, TPM_429, OPENAI_HEADERS))
    assert decision is not None and decision.action == "give_up"
    # A quota error may be given a budget by someone who knows their proxy; 0 by default.
    quota = AdaptiveBackoff(retries={"quota": 1})
    decision = quota.after_response(answer(make_attempt(), 429, QUOTA_429))
    assert decision is not None and decision.action == "retry"
    with pytest.raises(ValueError, match="unknown kind"):
        AdaptiveBackoff(retries={"everything": 3})
    with pytest.raises(ValueError, match="throttling"):
        AdaptiveBackoff(retries={"throttling": -1})
    with pytest.raises(TypeError, match="retries"):
        AdaptiveBackoff(retries=[("throttling", 3)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_elapsed": 0},
        {"max_elapsed": math.inf},
        {"base": 0},
        {"cap": -1},
        {"cap": math.nan},
    ],
)
def test_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AdaptiveBackoff(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 2.5}, {"max_attempts": True}, {"base": "0.5"}, {"rng": 7}],
)
def test_rejects_bad_types(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        AdaptiveBackoff(**kwargs)


def test_repr() -> None:
    assert repr(AdaptiveBackoff()) == (
        "AdaptiveBackoff(max_attempts=None, max_elapsed=300.0, base=0.5, cap=30)"
    )
    assert repr(AdaptiveBackoff(retries={"throttling": 2}, max_attempts=6)) == (
        "AdaptiveBackoff(retries={'throttling': 2}, max_attempts=6, max_elapsed=300.0, "
        "base=0.5, cap=30)"
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


def test_a_named_wait_no_bucket_held_becomes_the_delay() -> None:
    attempt = answer(make_attempt(), 429, TPM_429, OPENAI_HEADERS)
    attempt.held = 0.0  # as with no bucket to hold
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.delay == pytest.approx(0.21)


def test_what_a_bounded_hold_did_not_cover_is_slept_before_the_retry() -> None:
    # The learner held the bucket 0.1 s of the 0.21 the server named.
    attempt = answer(make_attempt(), 429, TPM_429, OPENAI_HEADERS, Learner(max_hold=0.1))
    assert attempt.held == pytest.approx(0.1)
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.action == "retry"
    assert decision.delay == pytest.approx(0.11)


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


# -- a small transport loop, as the real one drives strategies -----------------------------


Answer = tuple[int, object, Mapping[str, str]]


async def run_call(
    strategy: Strategy,
    pool: LimiterPool,
    server: Callable[[Attempt], Answer],
    learner: Learner | None = None,
) -> list[float]:
    """Drive one call through ``strategy``; return the send times of its attempts."""
    learner = learner or Learner()
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
        answer(attempt, *server(attempt), learner=learner)
        decision = strategy.after_response(attempt)
        if decision is None or decision.action == "give_up":
            return sent
        kind = retry_kind(attempt.error)  # counted as the transport counts it
        attempt.retried[kind] = attempt.retried.get(kind, 0) + 1
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
    limiter = pool.get("<no key>", MODEL)
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
