"""The learner: every correction of the buckets, whatever strategy decides.

Attempts are answered as the transport answers them (``_attempts.answer``). What is
asserted here is the bucket afterwards: levels, holds, the stated limits (which only the
user and the server change) and the inferred pace and depth (which only lower the pace
and the burst). Synchronous tests use a fake clock; async ones trio's ``MockClock``.
"""

from __future__ import annotations

import math

import pytest
import trio
from _attempts import (
    AZURE_TOKENS_429,
    COST,
    FLEX_429,
    MODEL,
    OK_HEADERS,
    OPENAI_HEADERS,
    SLOW_DOWN_503,
    TPM_429,
    FakeClock,
    answer,
    collect,
    limits_of,
    make_attempt,
    memory,
    openai_429,
    openai_headers,
)

from ratelimit_llm import Cost, Limits
from ratelimit_llm._learner import MAX_HOLD, Learner
from ratelimit_llm._pool import LimiterPool
from ratelimit_llm._strategy import Attempt
from ratelimit_llm._telemetry import Telemetry
from ratelimit_llm.strategies import AdaptiveBackoff

KNOWN = Limits(rpm=500, tpm=200_000, burst_seconds=60)


def paces_of(attempt: Attempt) -> dict[str, float]:
    assert attempt.limiter is not None
    return attempt.limiter.paces()


def depths_of(attempt: Attempt) -> dict[str, float]:
    assert attempt.limiter is not None
    return dict(attempt.limiter.statistics().depths)


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_hold": 0}, ValueError),
        ({"max_hold": math.inf}, ValueError),
        ({"growth": 0.5}, ValueError),
        ({"decrease": 1.0}, ValueError),
        ({"decrease": 0.0}, ValueError),
        ({"recovery": -0.1}, ValueError),
        ({"recovery": math.nan}, ValueError),
        ({"floor": 0}, ValueError),
        ({"floor": 1.5}, ValueError),
        ({"slow_down_factor": 0}, ValueError),
        ({"slow_down_hold": -1}, ValueError),
        ({"max_hold": "60"}, TypeError),
        ({"decrease": True}, TypeError),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        Learner(**kwargs)  # type: ignore[arg-type]


# -- named waits: put on the bucket, bounded ------------------------------------------------


def test_a_named_wait_holds_the_whole_bucket() -> None:
    attempt = answer(make_attempt(limits=KNOWN), 429, TPM_429, OPENAI_HEADERS)
    assert attempt.limiter is not None and attempt.held == pytest.approx(0.21)
    assert attempt.limiter.expected_wait(COST) == pytest.approx(0.21)
    # Everyone who needs as many tokens waits too (the held level is what the server
    # said it has left).
    assert attempt.limiter.expected_wait(Cost(requests=1, tokens=1_000)) == pytest.approx(0.15)


def test_retry_after_ms_wins_over_the_message() -> None:
    headers = {**OPENAI_HEADERS, "retry-after-ms": "1500"}
    attempt = answer(make_attempt(), 429, openai_429("requests", 500, "120ms"), headers)
    assert attempt.limiter is not None
    assert attempt.limiter.expected_wait(COST) == pytest.approx(1.5)


def test_the_hold_covers_every_dimension_when_the_metric_is_not_one_of_the_buckets() -> None:
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
    assert attempt.limiter.expected_wait(COST) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "999999999"},
        {"retry-after-ms": "1e11"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
    ],
)
def test_an_absurd_wait_gives_the_call_up_but_holds_the_bucket_no_longer_than_the_bound(
    headers: dict[str, str],
) -> None:
    attempt = answer(make_attempt(limits=KNOWN), 429, envelope_429(), headers)
    assert attempt.limiter is not None
    assert attempt.held == MAX_HOLD
    assert attempt.limiter.expected_wait(COST) == pytest.approx(MAX_HOLD)
    decision = AdaptiveBackoff().after_response(attempt)
    assert decision is not None and decision.action == "give_up"
    assert decision.error is None  # the SDK raises the server's own error


def test_an_absurd_wait_in_the_message_is_bounded_too() -> None:
    body = openai_429("tokens", 200_000, "99999h")
    attempt = answer(make_attempt(limits=KNOWN), 429, body, {})
    assert attempt.error is not None and attempt.error.retry_after is not None
    assert attempt.error.retry_after > 3.5e8
    assert attempt.limiter is not None
    assert attempt.limiter.expected_wait(COST) == pytest.approx(MAX_HOLD)


def envelope_429() -> dict[str, object]:
    return {"error": {"message": "Too Many Requests", "type": "requests", "code": None}}


# -- slow start ---------------------------------------------------------------------------


def test_one_answer_with_headers_opens_a_full_minute_bucket() -> None:
    clock = FakeClock()
    attempt = make_attempt(clock, Limits(rpm=500, tpm=200_000))
    assert attempt.limiter is not None
    assert depths_of(attempt) == {
        "requests/min": pytest.approx(500 / 60),
        "tokens/min": 200_000 / 60,
    }
    attempt.reservation = memory(attempt).acquire_nowait(COST)
    answer(attempt, 200, {}, openai_headers(requests_left=499, tokens_left=198_800))
    assert attempt.limiter.probing() == ()
    assert depths_of(attempt) == {
        "requests/min": pytest.approx(500),
        "tokens/min": pytest.approx(200_000),
    }
    assert attempt.limiter.statistics().levels["tokens/min"] == pytest.approx(198_800)


def test_answers_without_headers_open_slow_start_and_a_refusal_stops_it() -> None:
    clock = FakeClock()
    learner = Learner()
    pool = LimiterPool(Limits(rpm=600, tpm=1_000_000), clock=clock)
    first = make_attempt(clock, pool=pool)
    limiter = memory(first)
    opening = depths_of(first)["requests/min"]
    depths = []
    for _ in range(4):
        attempt = make_attempt(clock, pool=pool)
        attempt.reservation = limiter.acquire_nowait(COST)
        answer(attempt, 200, {}, {}, learner)
        depths.append(depths_of(attempt)["requests/min"])
    assert depths == [opening + 1, opening + 3, opening + 7, opening + 15]
    attempt = make_attempt(clock, pool=pool)
    attempt.reservation = limiter.acquire_nowait(COST)
    answer(attempt, 429, envelope_429(), {"retry-after": "1"}, learner)
    assert depths_of(attempt)["requests/min"] == opening + 7  # the last probe given back
    assert "requests/min" not in limiter.probing()
    # The refusal is explained by the burst: the pace is not cut.
    assert paces_of(attempt)["requests/min"] == 600


# -- a pace learned from refusals: multiplicative decrease, additive recovery -------------


def test_429_without_limit_headers_cuts_the_pace_of_the_metric_that_ran_out() -> None:
    telemetry = Telemetry()
    events = collect(telemetry)
    remaining_only = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining-requests": "9"}
    attempt = make_attempt(limits=KNOWN, telemetry=telemetry)
    answer(attempt, 429, AZURE_TOKENS_429, remaining_only)
    assert paces_of(attempt) == {"requests/min": 500, "tokens/min": pytest.approx(140_000)}
    # Stated limits stay: a call that fits the minute is never refused for a guess.
    assert limits_of(attempt) == {"requests/min": 500, "tokens/min": 200_000}
    [event] = [e for e in events if e.kind == "limit_changed"]
    assert event.metric == "tokens"
    assert event.detail == "tokens/min pace 200000 -> 140000 (429 without limit headers)"
    assert event.key == "<no key>" and event.model == MODEL


def test_unknown_metric_cuts_requests_and_tokens_per_minute() -> None:
    limits = Limits(rpm=500, tpm=200_000, rpd=10_000, burst_seconds=60)
    attempt = answer(
        make_attempt(limits=limits), 429, "Too Many Requests", {}, Learner(decrease=0.5)
    )
    assert paces_of(attempt) == {"requests/min": 250, "tokens/min": 100_000, "requests/day": 10_000}


def test_per_day_429_cuts_the_per_day_dimension() -> None:
    limits = Limits(rpm=500, tpm=200_000, rpd=20_000, burst_seconds=60)
    body = openai_429("requests", 20_000, "8.64s", period="day")
    attempt = answer(make_attempt(limits=limits), 429, body)
    assert paces_of(attempt) == {
        "requests/min": 500,
        "tokens/min": 200_000,
        "requests/day": pytest.approx(14_000),
    }


def test_limit_named_in_the_message_is_adopted_as_it_is() -> None:
    # A proxy that passes OpenAI's message through but strips the headers.
    telemetry = Telemetry()
    events = collect(telemetry)
    learner = Learner()
    attempt = make_attempt(limits=KNOWN, telemetry=telemetry)
    answer(attempt, 429, openai_429("tokens", 30_000, "1.2s"), {}, learner)
    assert paces_of(attempt)["tokens/min"] == 30_000
    assert events[0].detail == "tokens/min pace 200000 -> 30000 (limit named in the 429 message)"
    for _ in range(5):  # successes never take it above what the server named
        answer(attempt, 200, {}, {}, learner)
    assert paces_of(attempt)["tokens/min"] == 30_000


def test_limit_headers_are_the_truth_and_are_not_fought() -> None:
    attempt = answer(make_attempt(limits=KNOWN), 429, TPM_429, OPENAI_HEADERS)
    assert paces_of(attempt) == {"requests/min": 500, "tokens/min": 200_000}


def test_limit_headers_the_bucket_does_not_follow_do_not_stop_learning() -> None:
    # follow_server_limits=False: the headers' limit is not applied, so a 429 says as
    # much as from a server without headers.
    clock = FakeClock()
    pool = LimiterPool(KNOWN, clock=clock, follow_server_limits=False)
    attempt = make_attempt(clock, pool=pool)
    headers = openai_headers(tpm=150_000, tokens_left=500)
    answer(attempt, 429, openai_429("tokens", 150_000, "210ms"), headers)
    assert paces_of(attempt) == {"requests/min": 500, "tokens/min": 150_000}
    assert limits_of(attempt) == {"requests/min": 500, "tokens/min": 200_000}


def test_repeated_cuts_stop_at_the_floor_and_successes_recover_additively() -> None:
    learner = Learner(decrease=0.5, floor=0.1, recovery=0.25)
    attempt = make_attempt(limits=Limits(tpm=200_000, burst_seconds=60))
    seen = []
    for _ in range(6):
        answer(attempt, 429, AZURE_TOKENS_429, {}, learner)
        seen.append(paces_of(attempt)["tokens/min"])
    assert seen == [100_000, 50_000, 25_000, 20_000, 20_000, 20_000]  # floor: 10 % of 200k
    seen = []
    for _ in range(5):
        answer(attempt, 200, {}, {}, learner)
        seen.append(paces_of(attempt)["tokens/min"])
    assert seen == [70_000, 120_000, 170_000, 200_000, 200_000]  # + 25 % of 200k, capped


def test_recovery_reports_when_back_at_the_start() -> None:
    telemetry = Telemetry()
    events = collect(telemetry)
    learner = Learner(recovery=0.1)
    attempt = make_attempt(limits=Limits(tpm=100_000, burst_seconds=60), telemetry=telemetry)
    answer(attempt, 429, AZURE_TOKENS_429, {}, learner)
    for _ in range(3):
        answer(attempt, 200, {}, {}, learner)
    details = [event.detail for event in events if event.kind == "limit_changed"]
    assert details == [
        "tokens/min pace 100000 -> 70000 (429 without limit headers)",
        "tokens/min pace 90000 -> 100000 (recovered)",
    ]


def test_calls_granted_before_a_cut_do_not_cut_again() -> None:
    clock = FakeClock()
    learner = Learner()
    pool = LimiterPool(KNOWN, clock=clock)
    in_flight = [make_attempt(clock, pool=pool) for _ in range(3)]
    for attempt in in_flight:
        assert attempt.limiter is not None
        attempt.reservation = memory(attempt).acquire_nowait(COST)
    for attempt in in_flight:  # three 429s for calls sent under the old pace
        answer(attempt, 429, AZURE_TOKENS_429, {}, learner)
    assert paces_of(in_flight[0])["tokens/min"] == pytest.approx(140_000)
    # A call granted after the cut that still gets a 429 cuts again.
    later = make_attempt(clock, pool=pool)
    assert later.limiter is not None
    clock.now += 10.0
    later.reservation = memory(later).acquire_nowait(COST)
    answer(later, 429, AZURE_TOKENS_429, {}, learner)
    assert paces_of(later)["tokens/min"] == pytest.approx(98_000)


def test_limit_headers_arriving_later_end_the_learning() -> None:
    learner = Learner()
    attempt = make_attempt(limits=KNOWN)
    answer(attempt, 429, AZURE_TOKENS_429, {}, learner)
    assert paces_of(attempt)["tokens/min"] == pytest.approx(140_000)
    # The server starts stating its limit (lower than the configured one): adopted, and
    # successes do not push the pace back up to the old start.
    headers = openai_headers(tpm=150_000, tokens_left=148_800)
    for _ in range(5):
        answer(attempt, 200, {}, headers, learner)
    assert paces_of(attempt)["tokens/min"] == 150_000
    assert limits_of(attempt)["tokens/min"] == 150_000


def test_a_limit_changed_by_the_user_is_left_alone() -> None:
    learner = Learner()
    attempt = make_attempt(limits=KNOWN)
    answer(attempt, 429, AZURE_TOKENS_429, {}, learner)
    assert attempt.limiter is not None
    attempt.limiter.resize("tokens/min", 50_000)
    answer(attempt, 200, {}, {}, learner)
    assert paces_of(attempt)["tokens/min"] == 50_000


def test_paces_are_learned_per_limiter() -> None:
    clock = FakeClock()
    learner = Learner()
    pool = LimiterPool(KNOWN, clock=clock)
    mini = make_attempt(clock, pool=pool)
    other = make_attempt(clock, pool=pool)
    other.model = "gpt-4o"
    other.limiter = other.limiter_for(None)
    answer(mini, 429, AZURE_TOKENS_429, {}, learner)
    answer(other, 200, {}, {}, learner)
    assert paces_of(mini)["tokens/min"] == pytest.approx(140_000)
    assert paces_of(other)["tokens/min"] == 200_000


def test_a_cut_adds_no_wait_to_the_one_the_server_named() -> None:
    attempt = make_attempt(limits=KNOWN)
    assert attempt.limiter is not None
    memory(attempt).acquire_nowait(Cost(requests=1, tokens=200_000))  # a spent minute
    answer(attempt, 429, AZURE_TOKENS_429)
    assert paces_of(attempt)["tokens/min"] == pytest.approx(140_000)
    # "Please retry after 6 seconds", and not the 26 s a minute's debt at the cut pace
    # would impose: the cut changes the pace from now on, not the wait already known.
    assert attempt.limiter.expected_wait(COST) == pytest.approx(6.0)


def test_recovery_gives_no_free_burst() -> None:
    learner = Learner(recovery=0.1)
    attempt = make_attempt(limits=Limits(tpm=100_000, burst_seconds=60))
    assert attempt.limiter is not None
    answer(attempt, 429, "Too Many Requests", {}, learner)
    memory(attempt).acquire_nowait(Cost(requests=1, tokens=30_000))
    levels = [attempt.limiter.statistics().levels["tokens/min"]]
    for _ in range(3):
        answer(attempt, 200, {}, {}, learner)
        levels.append(attempt.limiter.statistics().levels["tokens/min"])
    assert paces_of(attempt)["tokens/min"] == 100_000
    assert levels == pytest.approx([70_000] * 4)  # the pace grew, the level did not jump


def test_flex_resource_unavailable_never_cuts() -> None:
    learner = Learner()
    attempt = make_attempt(limits=KNOWN)
    for _ in range(4):
        answer(attempt, 429, FLEX_429, {}, learner)
    assert paces_of(attempt) == {"requests/min": 500, "tokens/min": 200_000}


# -- 503 slow_down: halve, hold, then ramp up ----------------------------------------------


@pytest.mark.anyio
async def test_slow_down_halves_holds_then_recovers_in_virtual_time() -> None:
    telemetry = Telemetry()
    events = collect(telemetry)
    learner = Learner(recovery=0.1)
    limits = Limits(rpm=500, tpm=200_000, rpd=10_000, burst_seconds=60)
    attempt = make_attempt(trio.current_time, limits, telemetry=telemetry)
    answer(attempt, 503, SLOW_DOWN_503, {}, learner)
    halved = {"requests/min": 250, "tokens/min": 100_000, "requests/day": 10_000}
    assert paces_of(attempt) == halved
    assert [event.detail for event in events if event.kind == "limit_changed"] == [
        "requests/min pace 500 -> 250 (503 slow_down; held 900 s)",
        "tokens/min pace 200000 -> 100000 (503 slow_down; held 900 s)",
    ]
    # During the hold, successes do not ramp up, even when the headers state the quota.
    await trio.sleep(899.0)
    for _ in range(3):
        answer(attempt, 200, {}, OK_HEADERS, learner)
    assert paces_of(attempt) == halved
    # After the hold: additive recovery, 10 % of the starting limit per success.
    await trio.sleep(1.0)
    answer(attempt, 200, {}, OK_HEADERS, learner)
    assert paces_of(attempt) == {"requests/min": 300, "tokens/min": 120_000, "requests/day": 10_000}
    for _ in range(10):
        answer(attempt, 200, {}, OK_HEADERS, learner)
    assert paces_of(attempt) == {"requests/min": 500, "tokens/min": 200_000, "requests/day": 10_000}
    # Once recovered, the server's headers lead again.
    lower = openai_headers(rpm=400, requests_left=399, tokens_left=198_800)
    answer(attempt, 200, {}, lower, learner)
    assert limits_of(attempt)["requests/min"] == 400
    assert paces_of(attempt)["requests/min"] == 400


def test_slow_down_stays_in_force_against_a_newly_stated_quota() -> None:
    learner = Learner()
    attempt = make_attempt(limits=KNOWN)
    answer(attempt, 503, SLOW_DOWN_503, {}, learner)
    assert paces_of(attempt)["requests/min"] == 250
    answer(attempt, 200, {}, openai_headers(rpm=400, requests_left=399), learner)
    assert limits_of(attempt)["requests/min"] == 400
    assert paces_of(attempt)["requests/min"] == 250


def test_slow_down_respects_the_floor() -> None:
    learner = Learner(slow_down_factor=0.1, floor=0.2)
    attempt = make_attempt(limits=Limits(rpm=1_000, burst_seconds=60))
    answer(attempt, 503, SLOW_DOWN_503, {}, learner)
    assert paces_of(attempt) == {"requests/min": 200}
