"""Attempts built by hand, answered as the transport answers them (shared by tests).

Bodies are as OpenAI, Azure and proxies send them (research/openai-rate-limits.md
section 3); `answer` hands the answer to the `Learner` as the transport does, before any
strategy decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from error_bodies import envelope

from ratelimit_llm import Cost, Limits
from ratelimit_llm._classify import classify_error
from ratelimit_llm._headers import parse_rate_limit_headers
from ratelimit_llm._learner import Learner
from ratelimit_llm._limiter import RateLimiter
from ratelimit_llm._pool import LimiterPool
from ratelimit_llm._strategy import Attempt
from ratelimit_llm._telemetry import Event, Telemetry

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
    learner: Learner | None = None,
) -> Attempt:
    """Record an answer as the transport does: status, error and snapshot, then the
    learner applies them to the bucket (before any strategy decides)."""
    attempt.snapshot = parse_rate_limit_headers(headers or {})
    attempt.status = status
    attempt.error = classify_error(status, headers or {}, body)  # type: ignore[arg-type]
    attempt.exception = None
    (learner or Learner()).learn(attempt)
    return attempt


def limits_of(attempt: Attempt) -> dict[str, float]:
    assert attempt.limiter is not None
    return dict(attempt.limiter.statistics().limits)


def collect(telemetry: Telemetry) -> list[Event]:
    events: list[Event] = []
    telemetry.subscribe(events.append)
    return events


def memory(attempt: Attempt) -> RateLimiter:
    """The attempt's limiter, which these tests make in memory."""
    limiter = attempt.limiter
    assert isinstance(limiter, RateLimiter)
    return limiter
