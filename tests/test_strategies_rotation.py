"""KeyRotation: routing by soonest bucket, cooldowns, retirement, and no leaked keys.

The credentials stand for quotas the user is entitled to (keys of different projects);
the keys below are made up. Async tests run on trio's ``MockClock`` (virtual time).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping

import anyio
import pytest
import trio
import trio.testing
from error_bodies import QUOTA_429, envelope

from ratelimit_llm import Cost, Limits
from ratelimit_llm._classify import classify_error
from ratelimit_llm._credentials import Credential
from ratelimit_llm._exceptions import CredentialsExhaustedError
from ratelimit_llm._headers import parse_rate_limit_headers
from ratelimit_llm._learner import Learner
from ratelimit_llm._pool import LimiterPool
from ratelimit_llm._strategy import Attempt, Decision, Strategy
from ratelimit_llm._telemetry import Event, Telemetry
from ratelimit_llm.strategies import AdaptiveBackoff, CredentialState, KeyRotation

MODEL = "gpt-4o-mini"
COST = Cost(requests=1, tokens=1_000)
KEY_A = "sk-proj-Zq8WmB3xR5tY7uI9oP1aS2dF4gH6jK8lAAAA"
KEY_B = "sk-proj-Lm4Nb6Vc8Xz0Qw2Er4Ty6Ui8Op0As2DfBBBB"
KEY_C = "sk-proj-Gh5Jk7Lz9Xc1Vb3Nm5Qw7Er9Ty1Ui3OpCCCC"
KEYS = (KEY_A, KEY_B, KEY_C)
NAME_A, NAME_B, NAME_C = "sk-...AAAA", "sk-...BBBB", "sk-...CCCC"


TPM_429 = envelope(
    f"Rate limit reached for {MODEL} in organization org-abc on tokens per min (TPM): Limit "
    "200000, Used 199500, Requested 1200. Please try again in 2s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more.",
    "tokens",
    "rate_limit_exceeded",
)
PLAIN_429 = envelope("Too Many Requests")
AUTH_401 = envelope(
    # Servers quote the key back; classify_error cuts it down before anything keeps it.
    f"Incorrect API key provided: {KEY_B}. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "invalid_request_error",
    "invalid_api_key",
)


def make_pool(limits: Limits | None = None) -> LimiterPool:
    return LimiterPool(
        limits or Limits(rpm=500, tpm=200_000, burst_seconds=60), clock=trio.current_time
    )


def make_attempt(
    pool: LimiterPool,
    *,
    model: str = MODEL,
    telemetry: Telemetry | None = None,
    number: int = 1,
) -> Attempt:
    return Attempt(
        model=model,
        endpoint="/v1/chat/completions",
        cost=COST,
        started=trio.current_time(),
        clock=trio.current_time,
        pool=pool,
        telemetry=telemetry or Telemetry(),
        number=number,
    )


async def routed(strategy: KeyRotation, attempt: Attempt) -> str:
    await strategy.before_send(attempt)
    assert attempt.credential is not None
    attempt.limiter = attempt.limiter_for(attempt.credential)
    return attempt.credential.name


def answer(
    attempt: Attempt,
    status: int,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    learner: Learner | None = None,
) -> Attempt:
    """Record an answer as the transport does: the learner first, then the strategy."""
    attempt.snapshot = parse_rate_limit_headers(headers or {})
    attempt.status = status
    attempt.error = classify_error(status, headers or {}, body)  # type: ignore[arg-type]
    (learner or Learner()).learn(attempt)
    return attempt


def states(strategy: KeyRotation) -> dict[str, str]:
    return {entry.name: entry.state for entry in strategy.statistics()}


# -- construction --------------------------------------------------------------------------


def test_needs_credentials_with_distinct_names() -> None:
    with pytest.raises(ValueError, match="at least one"):
        KeyRotation([])
    # Two keys that end alike get the same redacted name: they must be named.
    twin = "sk-proj-Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9PpAAAA"
    with pytest.raises(ValueError, match=re.escape(NAME_A)) as raised:
        KeyRotation([KEY_A, twin])
    assert KEY_A not in str(raised.value) and twin not in str(raised.value)
    KeyRotation([Credential(KEY_A, name="research"), Credential(twin, name="evals")])


@pytest.mark.parametrize("cooldown", [-1.0, float("inf"), float("nan")])
def test_rejects_a_bad_cooldown(cooldown: float) -> None:
    with pytest.raises(ValueError):
        KeyRotation([KEY_A], cooldown=cooldown)


def test_rejects_what_is_not_a_credential() -> None:
    with pytest.raises(TypeError) as raised:
        KeyRotation([KEY_A, KEY_B.encode()])  # type: ignore[list-item]
    assert "bytes" in str(raised.value) and KEY_B not in str(raised.value)
    with pytest.raises(TypeError):
        KeyRotation(KEY_A)


def test_plain_strings_become_credentials_named_by_their_redacted_key() -> None:
    strategy = KeyRotation([KEY_A, Credential(KEY_B, project="proj_evals")], cooldown=2)
    assert [c.name for c in strategy.credentials] == [NAME_A, NAME_B]
    assert strategy.credentials[1].project == "proj_evals"
    assert strategy.cooldown == 2.0
    assert repr(strategy) == "KeyRotation(['sk-...AAAA', 'sk-...BBBB'], cooldown=2)"
    assert strategy.statistics() == (
        CredentialState(NAME_A, "active"),
        CredentialState(NAME_B, "active"),
    )


# -- choosing ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_three_idle_equal_keys_share_300_calls_evenly() -> None:
    strategy = KeyRotation(KEYS)
    pool = make_pool(limits=Limits(rpm=10_000, tpm=100_000_000, burst_seconds=60))
    counts: Counter[str] = Counter()
    for _ in range(300):
        attempt = make_attempt(pool)
        counts[await routed(strategy, attempt)] += 1
        assert attempt.limiter is not None
        await attempt.limiter.acquire(attempt.cost)
    assert set(counts) == {NAME_A, NAME_B, NAME_C}
    assert all(99 <= count <= 101 for count in counts.values()), counts


@pytest.mark.anyio
async def test_saturated_equal_keys_share_concurrent_calls_evenly() -> None:
    # 60 requests a minute per key: 180 go at once, the rest queue on the soonest key.
    strategy = KeyRotation(KEYS)
    pool = make_pool(limits=Limits(rpm=60, burst_seconds=60))
    counts: Counter[str] = Counter()
    start = trio.current_time()

    async def call() -> None:
        attempt = make_attempt(pool)
        name = await routed(strategy, attempt)
        assert attempt.limiter is not None
        await attempt.limiter.acquire(attempt.cost)
        counts[name] += 1

    async with anyio.create_task_group() as group:
        for _ in range(300):
            group.start_soon(call)
    assert all(99 <= count <= 101 for count in counts.values()), counts
    # Three keys' worth of throughput: 120 queued calls at 3 per second.
    assert trio.current_time() - start == pytest.approx(40.0, abs=1.0)


@pytest.mark.anyio
async def test_picks_the_key_that_can_serve_soonest() -> None:
    strategy = KeyRotation(KEYS)
    pool = make_pool(limits=Limits(tpm=60_000, burst_seconds=60))  # 1,000 tokens a second per key
    for key, tokens in ((NAME_A, 59_900), (NAME_B, 59_500), (NAME_C, 60_000)):
        await pool.get(key, MODEL).acquire(Cost(requests=1, tokens=tokens))
    # For 1,000 tokens A waits 0.9 s, B 0.5 s and C 1 s.
    first = make_attempt(pool)
    assert await routed(strategy, first) == NAME_B
    limiter = first.limiter
    assert limiter is not None

    async def wait_in_line() -> None:
        await limiter.acquire(first.cost)

    async with anyio.create_task_group() as group:
        group.start_soon(wait_in_line)
        await trio.testing.wait_all_tasks_blocked()
        # B's bucket now has that call in line (1.5 s): A is the soonest.
        assert await routed(strategy, make_attempt(pool)) == NAME_A
        group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_routes_by_each_models_own_buckets() -> None:
    strategy = KeyRotation([KEY_A, KEY_B])
    pool = make_pool(limits=Limits(rpm=1))
    await pool.get(NAME_A, MODEL).acquire()
    await pool.get(NAME_B, MODEL).acquire()
    await pool.get(NAME_A, "gpt-4o").acquire()
    # For gpt-4o only B is free, whatever the mini buckets say.
    assert await routed(strategy, make_attempt(pool, model="gpt-4o")) == NAME_B


# -- 429: cool down, move on ---------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_limited_key_cools_down_and_the_call_moves() -> None:
    strategy = KeyRotation(KEYS, cooldown=5.0)
    pool = make_pool()
    attempt = make_attempt(pool)
    assert await routed(strategy, attempt) == NAME_A
    decision = strategy.after_response(answer(attempt, 429, PLAIN_429))
    assert decision is not None and decision.action == "retry" and decision.delay == 0.0
    assert "moved to another key" in decision.reason
    [a, b, c] = strategy.statistics()
    assert (a.state, a.reason) == ("cooling", f"rate limited (429) on {MODEL}")
    assert a.cooling_for == pytest.approx(5.0)
    assert (b.state, c.state) == ("active", "active")
    # A is skipped until its cooldown ends, then back in rotation.
    picks = [await routed(strategy, make_attempt(pool)) for _ in range(4)]
    assert picks == [NAME_B, NAME_C, NAME_B, NAME_C]
    await trio.sleep(5.0)
    assert states(strategy)[NAME_A] == "active"
    picks = [await routed(strategy, make_attempt(pool)) for _ in range(3)]
    assert sorted(picks) == [NAME_A, NAME_B, NAME_C]


@pytest.mark.anyio
async def test_named_wait_sets_the_cooldown_and_holds_the_bucket() -> None:
    strategy = KeyRotation([KEY_A, KEY_B], cooldown=0.5)
    pool = make_pool()
    attempt = make_attempt(pool)
    await routed(strategy, attempt)
    strategy.after_response(answer(attempt, 429, TPM_429))
    [a, _] = strategy.statistics()
    assert a.cooling_for == pytest.approx(2.0)
    assert pool.get(NAME_A, MODEL).expected_wait(COST) == pytest.approx(2.0)


@pytest.mark.anyio
async def test_cooldown_is_per_model() -> None:
    strategy = KeyRotation([KEY_A, KEY_B])
    pool = make_pool()
    attempt = make_attempt(pool)
    await routed(strategy, attempt)
    strategy.after_response(answer(attempt, 429, PLAIN_429))
    # A rests for gpt-4o-mini only; for gpt-4o round-robin goes on as before.
    picks = [await routed(strategy, make_attempt(pool, model="gpt-4o")) for _ in range(2)]
    assert sorted(picks) == [NAME_A, NAME_B]


@pytest.mark.anyio
async def test_no_move_when_every_other_key_is_busy() -> None:
    strategy = KeyRotation([KEY_A, KEY_B])
    pool = make_pool(limits=Limits(rpm=1))
    await pool.get(NAME_B, MODEL).acquire()  # B has nothing left this minute
    attempt = make_attempt(pool)
    assert await routed(strategy, attempt) == NAME_A
    # Nobody can take the call now: the wait is left to the next strategy.
    assert strategy.after_response(answer(attempt, 429, PLAIN_429)) is None


@pytest.mark.anyio
async def test_a_call_moves_at_most_once_per_key() -> None:
    strategy = KeyRotation(KEYS)
    pool = make_pool()
    attempt = make_attempt(pool, number=3)
    await routed(strategy, attempt)
    assert strategy.after_response(answer(attempt, 429, PLAIN_429)) is None


@pytest.mark.anyio
async def test_other_outcomes_are_left_to_other_strategies() -> None:
    strategy = KeyRotation([KEY_A, KEY_B])
    pool = make_pool()
    attempt = make_attempt(pool)
    await routed(strategy, attempt)
    assert strategy.after_response(answer(attempt, 200)) is None
    assert strategy.after_response(answer(attempt, 500, envelope("boom"))) is None
    attempt.credential = Credential("sk-proj-NotOneOfOursAtAll0000ZZZZ")
    assert strategy.after_response(answer(attempt, 429, QUOTA_429)) is None
    assert states(strategy) == {NAME_A: "active", NAME_B: "active"}


# -- retirement ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_quota_and_refused_keys_are_retired_until_none_is_left() -> None:
    telemetry = Telemetry()
    events: list[Event] = []
    telemetry.subscribe(events.append)
    strategy = KeyRotation(KEYS)
    pool = make_pool()

    async def fail(status: int, body: object) -> Decision | None:
        attempt = make_attempt(pool, telemetry=telemetry)
        await routed(strategy, attempt)
        return strategy.after_response(answer(attempt, status, body))

    decision = await fail(429, QUOTA_429)
    assert decision is not None and decision.action == "retry" and decision.delay == 0.0
    decision = await fail(401, AUTH_401)
    assert decision is not None and decision.action == "retry"
    # Only C is left, so every call goes there.
    assert [await routed(strategy, make_attempt(pool)) for _ in range(3)] == [NAME_C] * 3
    decision = await fail(403, envelope("Forbidden", "permission_error"))
    assert decision is not None and decision.action == "give_up"
    assert isinstance(decision.error, CredentialsExhaustedError)
    assert decision.error.reasons == {
        NAME_A: "insufficient_quota (HTTP 429, insufficient_quota)",
        NAME_B: "authentication (HTTP 401, invalid_api_key)",
        NAME_C: "authentication (HTTP 403)",
    }
    assert [(e.kind, e.key, e.error_kind) for e in events] == [
        ("key_retired", NAME_A, "insufficient_quota"),
        ("key_retired", NAME_B, "authentication"),
        ("key_retired", NAME_C, "authentication"),
    ]
    assert [s.state for s in strategy.statistics()] == ["retired"] * 3
    with pytest.raises(CredentialsExhaustedError) as raised:
        await strategy.before_send(make_attempt(pool))
    assert set(raised.value.reasons) == {NAME_A, NAME_B, NAME_C}


@pytest.mark.anyio
async def test_retiring_twice_reports_once() -> None:
    telemetry = Telemetry()
    events: list[Event] = []
    telemetry.subscribe(events.append)
    strategy = KeyRotation([KEY_A, KEY_B])
    pool = make_pool()
    first, second = make_attempt(pool, telemetry=telemetry), make_attempt(pool, telemetry=telemetry)
    await routed(strategy, first)
    second.credential = first.credential  # in flight on A when A was retired
    strategy.after_response(answer(first, 429, QUOTA_429))
    decision = strategy.after_response(answer(second, 429, QUOTA_429))
    assert decision is not None and decision.action == "retry"
    assert len(events) == 1


# -- composed with AdaptiveBackoff, through a small transport loop -------------------------


Server = Callable[[Attempt], tuple[int, object]]


async def run_call(
    strategy: Strategy, pool: LimiterPool, server: Server
) -> list[tuple[str, float]]:
    """Drive one call as the transport does; return (key, send time) of each attempt."""
    attempt = make_attempt(pool)
    attempt.number = 0
    sent = []
    while True:
        attempt.number += 1
        await strategy.before_send(attempt)
        attempt.limiter = attempt.limiter_for(attempt.credential)
        attempt.reservation = await attempt.limiter.acquire(attempt.cost)
        sent.append((attempt.key_name, trio.current_time() - attempt.started))
        answer(attempt, *server(attempt))
        decision = strategy.after_response(attempt)
        if decision is None:
            return sent
        if decision.action == "give_up":
            if decision.error is not None:
                raise decision.error
            return sent
        await anyio.sleep(decision.delay)


def by_key(answers: Mapping[str, tuple[int, object]]) -> Server:
    return lambda attempt: answers[attempt.key_name]


@pytest.mark.anyio
async def test_quota_on_one_key_moves_on_to_the_next() -> None:
    strategy = KeyRotation(KEYS) + AdaptiveBackoff()
    server = by_key({NAME_A: (429, QUOTA_429), NAME_B: (200, None), NAME_C: (200, None)})
    sent = await run_call(strategy, make_pool(), server)
    assert sent == [(NAME_A, 0.0), (NAME_B, 0.0)]


@pytest.mark.anyio
async def test_every_key_retired_raises_credentials_exhausted() -> None:
    strategy = KeyRotation(KEYS) + AdaptiveBackoff()
    server = by_key({NAME_A: (429, QUOTA_429), NAME_B: (401, AUTH_401), NAME_C: (429, QUOTA_429)})
    with pytest.raises(CredentialsExhaustedError):
        await run_call(strategy, make_pool(), server)


@pytest.mark.anyio
async def test_when_every_key_is_rate_limited_backoff_waits_the_named_time() -> None:
    rotation = KeyRotation([KEY_A, KEY_B])
    strategy = rotation + AdaptiveBackoff()
    calls: Counter[str] = Counter()

    def server(attempt: Attempt) -> tuple[int, object]:
        calls[attempt.key_name] += 1
        return (429, TPM_429) if calls[attempt.key_name] == 1 else (200, None)

    sent = await run_call(strategy, make_pool(), server)
    # A is limited: moved to B at once; B is limited too: nobody is free, so
    # AdaptiveBackoff holds B's bucket for the named 2 s and the call waits for the
    # soonest key (A, cooling since t=0, is free at t=2 as well; round-robin picks it).
    assert sent == [(NAME_A, 0.0), (NAME_B, 0.0), (NAME_A, pytest.approx(2.0))]


# -- keys never leak -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_string_produced_contains_a_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ratelimit_llm")
    telemetry = Telemetry()
    events: list[Event] = []
    telemetry.subscribe(events.append)
    credentials: list[Credential | str] = [
        Credential(KEY_A, project="proj_research"),
        Credential(KEY_B, base_url="https://westeurope.example.azure.com/openai/"),
        KEY_C,
    ]
    rotation = KeyRotation(credentials, cooldown=3.0)
    strategy = rotation + AdaptiveBackoff()
    pool = make_pool()
    produced: list[str] = [repr(rotation), repr(strategy), repr(rotation.credentials)]
    outcomes = [(429, PLAIN_429), (401, AUTH_401), (429, TPM_429), (429, QUOTA_429)]
    for status, body in outcomes:
        attempt = make_attempt(pool, telemetry=telemetry)
        await strategy.before_send(attempt)
        attempt.limiter = attempt.limiter_for(attempt.credential)
        decision = strategy.after_response(answer(attempt, status, body))
        produced += [repr(attempt), repr(decision), repr(attempt.error)]
        produced.append(repr(rotation.statistics()))
    with pytest.raises(CredentialsExhaustedError) as raised:
        for _ in range(3):  # retire whatever is left
            attempt = make_attempt(pool, telemetry=telemetry)
            await strategy.before_send(attempt)
            decision = strategy.after_response(answer(attempt, 429, QUOTA_429))
            produced.append(repr(decision))
    produced += [str(raised.value), repr(raised.value), repr(raised.value.reasons)]
    produced += [repr(event) for event in events]
    produced += [repr(stats) for stats in telemetry.statistics()]
    produced.append(caplog.text)
    text = "\n".join(produced)
    assert "key_retired" in caplog.text and "limit_changed" in caplog.text
    assert NAME_A in text and NAME_B in text and NAME_C in text
    for key in KEYS:
        assert key not in text
        assert key[8:-4] not in text  # not even the secret part without its ends


def test_a_403_about_one_model_does_not_retire_the_key() -> None:
    from ratelimit_llm._classify import classify_error
    from ratelimit_llm.strategies._rotation import _model_access

    no_model = classify_error(
        403,
        {},
        {
            "error": {
                "message": "Project proj_x does not have access to model gpt-5",
                "code": "model_not_found",
            }
        },
    )
    refused = classify_error(403, {}, {"error": {"message": "Your key was revoked"}})
    assert no_model is not None and refused is not None
    assert _model_access(no_model)
    assert not _model_access(refused)
