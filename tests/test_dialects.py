"""Provider dialects: each provider's documented headers and refusals, read the same way.

Every table cites the page or public thread its rows come from. Where a provider documents
a header's meaning but shows no example value, the row uses the figures its page states
(Together's free tier "60 RPM" is 1 request per second, and so on).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from error_bodies import (
    DEEPSEEK_CONCURRENCY_429,
    GEMINI_PER_DAY_429,
    OPENROUTER_FREE_DAILY_429,
    OPENROUTER_IN_FLIGHT_402,
    TGI_OVERLOADED_429,
    envelope,
)

from ratelimit_llm._classify import ErrorKind, classify_error, classify_error_payload
from ratelimit_llm._headers import DimensionSnapshot, RateLimitSnapshot, parse_rate_limit_headers
from ratelimit_llm._providers import Provider
from ratelimit_llm._sse import UsageWatcher

# 2024-08-21T17:06:40Z.
NOW = 1_724_260_000.0
SECOND, MINUTE, DAY = 1.0, 60.0, 86_400.0


def dims(headers: dict[str, str], provider: Provider | str | None = None) -> RateLimitSnapshot:
    return parse_rate_limit_headers(headers, wall_time=NOW, provider=provider)


# --- Together ------------------------------------------------------------------------
# https://docs.together.ai/docs/rate-limits: "x-ratelimit-limit: The maximum number of
# requests per sec ...", "x-tokenlimit-limit: ... tokens per sec ...", "x-ratelimit-reset:
# The time until the rate limit (based on requests per sec) resets"; the -dynamic pairs
# are the dynamic rate. Figures: the free tier's 60 RPM / 60,000 TPM measured per second
# (as the page quoted in https://github.com/bespokelabsai/curator/issues/484 says).
TOGETHER_HEADERS = [
    (
        "free-tier",
        {
            "x-ratelimit-limit": "1",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1",
            "x-tokenlimit-limit": "1000",
            "x-tokenlimit-remaining": "850",
        },
        [
            DimensionSnapshot("requests", "", 1.0, 0.0, 1.0, SECOND, True, window_known=True),
            DimensionSnapshot("tokens", "", 1000.0, 850.0, None, SECOND, True, window_known=True),
        ],
    ),
    (
        "tier-5-with-dynamic",
        {
            "x-ratelimit-limit": "100",
            "x-ratelimit-remaining": "97",
            "x-ratelimit-reset": "0.03",
            "x-tokenlimit-limit": "33333",
            "x-tokenlimit-remaining": "30000",
            "x-ratelimit-limit-dynamic": "40",
            "x-ratelimit-remaining-dynamic": "38",
            "x-tokenlimit-limit-dynamic": "20000",
            "x-tokenlimit-remaining-dynamic": "19000",
        },
        [
            DimensionSnapshot("requests", "", 100.0, 97.0, 0.03, SECOND, True, window_known=True),
            DimensionSnapshot(
                "requests", "dynamic", 40.0, 38.0, None, SECOND, True, window_known=True
            ),
            DimensionSnapshot(
                "tokens", "", 33333.0, 30000.0, None, SECOND, True, window_known=True
            ),
            DimensionSnapshot(
                "tokens", "dynamic", 20000.0, 19000.0, None, SECOND, True, window_known=True
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [t[1:] for t in TOGETHER_HEADERS], ids=[t[0] for t in TOGETHER_HEADERS]
)
@pytest.mark.parametrize("provider", [Provider.TOGETHER, "together", None])
def test_together_headers(
    headers: dict[str, str], expected: list[DimensionSnapshot], provider: Provider | str | None
) -> None:
    # Named or not: x-tokenlimit-* is Together's alone, so the dialect is recognised.
    snapshot = dims(headers, provider)
    assert snapshot.provider is Provider.TOGETHER
    assert list(snapshot.dimensions) == expected
    requests = snapshot.get("requests")
    assert requests is not None and requests.rate == requests.limit  # per second


def test_a_bare_triplet_is_not_guessed_at_without_a_dialect() -> None:
    # A gateway's own X-RateLimit-* could mean anything: unread until someone says whose.
    headers = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "99", "x-ratelimit-reset": "30"}
    assert dims(headers).dimensions == ()
    assert dims(headers).provider is Provider.UNKNOWN
    assert dims(headers, Provider.TOGETHER).get("requests") == DimensionSnapshot(
        "requests", "", 100.0, 99.0, 30.0, SECOND, True, window_known=True
    )


# https://docs.together.ai/docs/rate-limits: "Requests at or below your dynamic rate return
# 503 Service Unavailable ... (not due to your usage)"; above it, 429 with error_type
# "dynamic_request_limited" or "dynamic_token_limited" (shape assumed: OpenAI's envelope,
# or the type at the top level).
TOGETHER_ERRORS = [
    ("503-below-dynamic-rate", 503, "Service Unavailable", "OVERLOADED", None),
    (
        "429-requests",
        429,
        envelope("Too many requests", "dynamic_request_limited"),
        "RATE_LIMIT",
        "requests",
    ),
    (
        "429-tokens",
        429,
        {"error": {"message": "Too many tokens", "error_type": "dynamic_token_limited"}},
        "RATE_LIMIT",
        "tokens",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "kind", "metric"),
    [t[1:] for t in TOGETHER_ERRORS],
    ids=[t[0] for t in TOGETHER_ERRORS],
)
def test_together_errors(status: int, body: Any, kind: str, metric: str | None) -> None:
    info = classify_error(status, {}, body, provider="together")
    assert info is not None
    assert (info.kind, info.retryable, info.metric) == (ErrorKind[kind], True, metric)
    assert info.provider is Provider.TOGETHER


def test_a_plain_503_elsewhere_stays_a_server_error() -> None:
    info = classify_error(503, {}, "Service Unavailable")
    assert info is not None and info.kind is ErrorKind.SERVER_ERROR


# --- Fireworks -----------------------------------------------------------------------
# https://docs.fireworks.ai/serverless/rate-limits: "Your current effective rate limits
# (described in tokens per second) are in the response headers X-Ratelimit-Limit-Tokens-
# Prompt, X-Ratelimit-Limit-Tokens-Cache-Adjusted-Prompt, and X-Ratelimit-Limit-Tokens-
# Generated"; starting limits "~60k / ~15k / ~600 TPS". The over-limit flag:
# https://docs.fireworks.ai/guides/quotas_usage/rate-limits ("x-ratelimit-over-limit: yes").
FIREWORKS_HEADERS = [
    (
        "starting-limits",
        {
            "X-Ratelimit-Limit-Tokens-Prompt": "60000",
            "X-Ratelimit-Remaining-Tokens-Prompt": "59000",
            "X-Ratelimit-Limit-Tokens-Cache-Adjusted-Prompt": "15000",
            "X-Ratelimit-Remaining-Tokens-Cache-Adjusted-Prompt": "14900",
            "X-Ratelimit-Limit-Tokens-Generated": "600",
            "X-Ratelimit-Remaining-Tokens-Generated": "550",
            "x-ratelimit-over-limit": "no",
        },
        [
            DimensionSnapshot(
                "input_tokens", "", 60000.0, 59000.0, None, SECOND, True, window_known=True
            ),
            DimensionSnapshot(
                "input_tokens", "uncached", 15000.0, 14900.0, None, SECOND, True, window_known=True
            ),
            DimensionSnapshot(
                "output_tokens", "", 600.0, 550.0, None, SECOND, True, window_known=True
            ),
        ],
        False,
    ),
    (
        "over-the-adaptive-limit",
        {
            "x-ratelimit-limit-tokens-generated": "600",
            "x-ratelimit-remaining-tokens-generated": "0",
            "x-ratelimit-over-limit": "yes",
        },
        [DimensionSnapshot("output_tokens", "", 600.0, 0.0, None, SECOND, True, window_known=True)],
        True,
    ),
]


@pytest.mark.parametrize(
    ("headers", "expected", "over_limit"),
    [f[1:] for f in FIREWORKS_HEADERS],
    ids=[f[0] for f in FIREWORKS_HEADERS],
)
def test_fireworks_headers(
    headers: dict[str, str], expected: list[DimensionSnapshot], over_limit: bool
) -> None:
    snapshot = dims(headers)
    assert snapshot.provider is Provider.FIREWORKS
    assert list(snapshot.dimensions) == expected
    assert snapshot.over_limit is over_limit
    assert not snapshot.is_empty


# Same page: "you may experience 429 Too Many Requests or 503 Service Overloaded. To avoid
# 429s, you need to stay below our adaptive rate limits" (body text assumed).
@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, envelope("Too many requests"), "RATE_LIMIT"),
        (503, envelope("Service Overloaded"), "OVERLOADED"),
    ],
)
def test_fireworks_errors(status: int, body: Any, kind: str) -> None:
    info = classify_error(status, {}, body, provider=Provider.FIREWORKS)
    assert info is not None and info.kind is ErrorKind[kind] and info.retryable


# --- OpenRouter ----------------------------------------------------------------------
# https://openrouter.ai/docs/api_reference/limits: "Successful inference responses do not
# include X-RateLimit-* headers"; OpenRouter's own 429s carry X-RateLimit-Limit,
# -Remaining and -Reset. Reset as captured: epoch milliseconds (the next UTC midnight),
# https://github.com/Gitlawb/openclaude/issues/936.
OPENROUTER_RESET = "1724284800000"  # 2024-08-22T00:00:00Z: 24,800 s after NOW


@pytest.mark.parametrize("provider", [Provider.OPENROUTER, None])
def test_openrouter_429_headers(provider: Provider | None) -> None:
    headers = {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": OPENROUTER_RESET,
    }
    snapshot = dims(headers, provider)
    # Unnamed, the epoch-millisecond reset gives it away.
    assert snapshot.provider is Provider.OPENROUTER
    assert snapshot.dimensions == (DimensionSnapshot("requests", "", 50.0, 0.0, 24_800.0, None),)


def test_openrouter_success_has_no_headers() -> None:
    snapshot = dims({"content-type": "application/json"}, Provider.OPENROUTER)
    assert snapshot.is_empty and snapshot.provider is Provider.OPENROUTER


def test_openrouter_in_flight_budget_is_a_wait() -> None:
    info = classify_error(402, {"Retry-After": "3"}, OPENROUTER_IN_FLIGHT_402)
    assert info is not None
    assert (info.kind, info.retryable, info.retry_after) == (ErrorKind.BUDGET_WAIT, True, 3.0)
    assert info.code == "402"  # error.code is an int there
    assert info.provider is Provider.OPENROUTER


def test_openrouter_402_with_retry_after_and_no_metadata_is_a_wait_too() -> None:
    body = {"error": {"code": 402, "message": "Please retry after in-flight requests settle"}}
    info = classify_error(402, {"retry-after": "2"}, body, provider="openrouter")
    assert info is not None and info.kind is ErrorKind.BUDGET_WAIT


OPENROUTER_FINAL_402S = [
    (
        "insufficient-credits-even-with-retry-after",
        {"error": {"code": 402, "message": "Insufficient credits. Add more using /credits"}},
    ),
    (
        "weight-exceeds-budget",
        {
            "error": {
                "code": 402,
                "message": "This request is larger than your in-flight budget.",
                "metadata": {
                    "reason": "weight_exceeds_budget",
                    "limit_source": "openrouter_credits",
                },
            }
        },
    ),
    (
        "key-limit",
        {
            "error": {
                "code": 402,
                "message": "Key limit exceeded",
                "metadata": {"limit_source": "openrouter_key_limit"},
            }
        },
    ),
]


@pytest.mark.parametrize(
    "body", [b for _, b in OPENROUTER_FINAL_402S], ids=[n for n, _ in OPENROUTER_FINAL_402S]
)
def test_openrouter_final_402s(body: Any) -> None:
    # Same page: "weight_exceeds_budget ... retrying will not help"; a spent key limit or
    # balance needs a human. None of them is a wait, whatever Retry-After says.
    info = classify_error(402, {"retry-after": "5"}, body, provider=Provider.OPENROUTER)
    assert info is not None
    assert not info.retryable
    assert info.kind in (ErrorKind.INSUFFICIENT_QUOTA, ErrorKind.REQUEST_TOO_LARGE)


def test_openrouter_weight_exceeds_budget_is_too_large() -> None:
    body = OPENROUTER_FINAL_402S[1][1]
    info = classify_error(402, None, body)
    assert info is not None and info.kind is ErrorKind.REQUEST_TOO_LARGE


# https://www.developersdigest.tech/errors/api/openrouter/403-budget-limit-exceeded:
# a guardrail or workspace budget answers 403 with metadata.limit_source.
def test_openrouter_403_budget_is_quota_not_authentication() -> None:
    body = {
        "error": {
            "code": 403,
            "message": "Budget limit exceeded",
            "metadata": {"limit_source": "openrouter_guardrail_budget"},
        }
    }
    info = classify_error(403, None, body)
    assert info is not None and info.kind is ErrorKind.INSUFFICIENT_QUOTA


def test_openrouter_free_daily_cap_from_the_body_alone() -> None:
    info = classify_error(429, None, OPENROUTER_FREE_DAILY_429, wall_time=1_768_300_000.0)
    assert info is not None
    assert info.provider is Provider.OPENROUTER
    assert (info.kind, info.retryable) == (ErrorKind.RATE_LIMIT, True)
    assert (info.metric, info.period) == ("requests", "day")
    assert (info.limit, info.used) == (50.0, 50.0)
    # Until the cap starts over at midnight UTC (from the X-RateLimit-Reset it repeats).
    assert info.retry_after is not None and math.isclose(info.retry_after, 48_800.0)


def test_openrouter_platform_429_with_real_headers() -> None:
    headers = {
        "X-RateLimit-Limit": "20",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int((NOW + 42) * 1000)),
    }
    body = {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-min."}}
    info = classify_error(429, headers, body, wall_time=NOW)
    assert info is not None
    assert (info.kind, info.metric, info.period) == (ErrorKind.RATE_LIMIT, "requests", "minute")
    assert info.retry_after is not None and math.isclose(info.retry_after, 42.0)
    # A Retry-After, when every upstream gave one, wins over the reset.
    waited = classify_error(429, {**headers, "Retry-After": "7"}, body, wall_time=NOW)
    assert waited is not None and waited.retry_after == 7.0


# Same page, "Mid-stream rate limits": after a 200 the error is an SSE event, with
# finish_reason "error" and the would-be status as an integer error.code.
OPENROUTER_STREAM_ERROR = (
    'data: {"id":"cmpl-abc123","object":"chat.completion.chunk","created":1234567890,'
    '"model":"openai/gpt-4o","provider":"openai","error":{"code":429,"message":"Rate limit '
    'exceeded"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}'
)


def test_openrouter_mid_stream_error() -> None:
    watcher = UsageWatcher()
    watcher.feed(b": OPENROUTER PROCESSING\n\n")
    watcher.feed(OPENROUTER_STREAM_ERROR.encode() + b"\n\n")
    watcher.close()
    assert watcher.error is not None
    info = classify_error_payload(watcher.error)
    assert (info.kind, info.status, info.code) == (ErrorKind.RATE_LIMIT, 200, "429")


# --- Gemini's OpenAI-compatible endpoint ------------------------------------------------
# No rate-limit headers (https://github.com/googleapis/python-genai/issues/1721); 429s are
# RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo details.

# A list-wrapped body through the OpenAI endpoint: https://github.com/n4ze3m/page-assist/issues/406
GEMINI_ARRAY_429 = (
    '[{\n  "error": {\n    "code": 429,\n    "message": "Resource has been exhausted (e.g. '
    'check quota).",\n    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n]'
)

# A gateway passing Gemini's envelope on as its message, per minute, input tokens:
# https://github.com/RooCodeInc/Roo-Code/issues/3883
GEMINI_NESTED_PER_MINUTE_429 = {
    "error": {
        "message": json.dumps(
            {
                "error": {
                    "code": 429,
                    "message": "You exceeded your current quota, please check your plan and "
                    "billing details. For more information on this error, head to: "
                    "https://ai.google.dev/gemini-api/docs/rate-limits.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                            "violations": [
                                {
                                    "quotaMetric": "generativelanguage.googleapis.com/"
                                    "generate_content_free_tier_input_token_count",
                                    "quotaId": "GenerateContentInputTokensPerModelPerMinute-"
                                    "FreeTier",
                                    "quotaDimensions": {
                                        "location": "global",
                                        "model": "gemini-2.5-flash",
                                    },
                                    "quotaValue": "250000",
                                }
                            ],
                        },
                        {
                            "@type": "type.googleapis.com/google.rpc.Help",
                            "links": [
                                {
                                    "description": "Learn more about Gemini API quotas",
                                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                                }
                            ],
                        },
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
                    ],
                }
            },
            indent=2,
        ),
        "code": 429,
        "status": "Too Many Requests",
    }
}

# The message's exact wait beside RetryInfo's whole seconds:
# https://github.com/googleapis/python-genai/issues/1875
GEMINI_RETRY_INFO_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota... Please retry in 53.016342224s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "53s"}],
    }
}

# A model the free tier may not use at all ("limit: 0"):
# https://github.com/continuedev/continue/issues/10085
GEMINI_ZERO_QUOTA_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, "
        "head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: "
        "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, "
        "limit: 0, model: gemini-2.5-pro\n* Quota exceeded for metric: "
        "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, "
        "model: gemini-2.5-pro\nPlease retry in 38.863719904s.",
        "status": "RESOURCE_EXHAUSTED",
    }
}

# Per minute, requests, no quota value (https://github.com/Aider-AI/aider/issues/3694).
GEMINI_PER_MINUTE_REQUESTS_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_requests_per_model",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                        "quotaDimensions": {"model": "gemini-2.0-pro-exp", "location": "global"},
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "44s"},
        ],
    }
}

# (id, body, kind, retry_after, metric, period, limit)
GEMINI_ERRORS: list[tuple[str, Any, str, float | None, str | None, str | None, float | None]] = [
    ("array-body", GEMINI_ARRAY_429, "RATE_LIMIT", None, None, None, None),
    (
        "nested-per-minute-input",
        GEMINI_NESTED_PER_MINUTE_429,
        "RATE_LIMIT",
        26.0,
        "input_tokens",
        "minute",
        250000.0,
    ),
    ("retry-info-and-message", GEMINI_RETRY_INFO_429, "RATE_LIMIT", 53.016342224, None, None, None),
    (
        "per-minute-requests",
        GEMINI_PER_MINUTE_REQUESTS_429,
        "RATE_LIMIT",
        44.0,
        "requests",
        "minute",
        None,
    ),
    ("per-day", GEMINI_PER_DAY_429, "RATE_LIMIT", 36.429760048, "requests", "day", 20.0),
    (
        "zero-quota",
        GEMINI_ZERO_QUOTA_429,
        "INSUFFICIENT_QUOTA",
        38.863719904,
        "input_tokens",
        None,
        0.0,
    ),
]


@pytest.mark.parametrize(
    ("body", "kind", "retry_after", "metric", "period", "limit"),
    [g[1:] for g in GEMINI_ERRORS],
    ids=[g[0] for g in GEMINI_ERRORS],
)
def test_gemini_errors(
    body: Any,
    kind: str,
    retry_after: float | None,
    metric: str | None,
    period: str | None,
    limit: float | None,
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body).encode()
    info = classify_error(429, {}, raw)
    assert info is not None
    assert info.provider is Provider.GEMINI
    assert info.kind is ErrorKind[kind]
    assert info.retryable is (kind == "RATE_LIMIT")
    assert info.retry_after == retry_after
    assert (info.metric, info.period) == (metric, period)
    assert info.limit == limit
    assert info.message is not None and "RESOURCE_EXHAUSTED" not in info.message


def test_gemini_day_wins_when_both_windows_are_violated() -> None:
    # Waiting a minute does not give the day's quota back.
    body = json.loads(json.dumps(GEMINI_PER_DAY_429))
    violations = body["error"]["details"][0]["violations"]
    violations.insert(
        0,
        {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaValue": "5",
        },
    )
    info = classify_error(429, None, body)
    assert info is not None and (info.period, info.limit) == ("day", 20.0)


def test_gemini_headers_are_none() -> None:
    snapshot = dims({"content-type": "application/json"}, Provider.GEMINI)
    assert snapshot.is_empty and snapshot.provider is Provider.GEMINI


def test_a_retry_after_header_still_beats_retry_delay() -> None:
    info = classify_error(429, {"retry-after": "120"}, GEMINI_PER_DAY_429)
    assert info is not None and info.retry_after == 120.0


# --- Anthropic through its OpenAI-compatible endpoint ---------------------------------
# https://docs.anthropic.com/en/api/rate-limits: anthropic-ratelimit-{requests,tokens,
# input-tokens,output-tokens}-{limit,remaining,reset}, resets "in RFC 3339 format", limits
# per minute; "OTPM rate limits are estimated based on max_tokens at the beginning of each
# request". Through the OpenAI-compatible endpoint the 429 is typed invalid_request_error:
# https://github.com/FoundationAgents/OpenManus/issues/531
ANTHROPIC_COMPAT_429 = {
    "error": {
        "code": "rate_limit_error",
        "message": "This request would exceed the rate limit for your organization "
        "(a65e626b-51a1-492e-84e1-79efe26b0948) of 20,000 input tokens per minute. For "
        "details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the "
        "response headers for current usage. Please reduce the prompt length or the maximum "
        "tokens requested, or try again later. You may also contact sales at "
        "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
        "increase.",
        "type": "invalid_request_error",
        "param": None,
    }
}


def test_anthropic_compat_429() -> None:
    headers = {
        "retry-after": "17",
        "anthropic-ratelimit-input-tokens-limit": "20000",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2024-08-21T17:06:57Z",
    }
    info = classify_error(429, headers, ANTHROPIC_COMPAT_429, wall_time=NOW)
    assert info is not None
    assert (info.kind, info.retryable, info.retry_after) == (ErrorKind.RATE_LIMIT, True, 17.0)
    assert (info.metric, info.period, info.limit) == ("input_tokens", "minute", 20000.0)
    assert info.provider is Provider.ANTHROPIC


def test_anthropic_output_limit_named_by_the_headers_alone() -> None:
    # A terse 429 (a spend-cap text, a proxy's own) says nothing of which bucket ran dry;
    # the one the headers show empty does.
    headers = {
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": "2024-08-21T17:06:50Z",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
    }
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}}
    info = classify_error(429, headers, body, wall_time=NOW)
    assert info is not None
    assert (info.metric, info.period, info.limit, info.used) == (
        "output_tokens",
        "minute",
        8000.0,
        8000.0,
    )


def test_anthropic_input_and_output_are_limited_apart() -> None:
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "36000",
        "anthropic-ratelimit-input-tokens-reset": "2024-08-21T17:06:46Z",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "4000",
        "anthropic-ratelimit-output-tokens-reset": "2024-08-21T17:07:10Z",
    }
    snapshot = dims(headers)
    assert snapshot.provider is Provider.ANTHROPIC
    assert snapshot.dimensions == (
        DimensionSnapshot("input_tokens", "", 40000.0, 36000.0, 6.0, MINUTE, window_known=True),
        DimensionSnapshot("output_tokens", "", 8000.0, 4000.0, 30.0, MINUTE, window_known=True),
    )
    traits = Provider.ANTHROPIC.traits
    assert traits.splits_input_output and traits.output_charged_up_front


# --- Azure provisioned (PTU) deployments ---------------------------------------------------
# The header and its "NN.N%" form, as Microsoft's own benchmark reads it:
# https://github.com/Azure/azure-openai-benchmark (benchmark/oairequester.py).
PTU = [
    ("typical", "23.5%", 0.235),
    ("full", "100%", 1.0),
    ("over", "104.2%", 1.042),
    ("bare-number", "12", 0.12),
    ("empty", "", None),
    ("garbage", "busy", None),
    ("negative", "-5%", None),
    ("nan", "nan%", None),
]


@pytest.mark.parametrize(("value", "fraction"), [p[1:] for p in PTU], ids=[p[0] for p in PTU])
def test_azure_ptu_utilization_is_a_hint(value: str, fraction: float | None) -> None:
    headers = {"azure-openai-deployment-utilization": value, "x-ms-region": "East US"}
    snapshot = dims(headers)
    assert snapshot.provider is Provider.AZURE
    assert snapshot.utilization == fraction
    assert snapshot.dimensions == ()  # never a limit
    assert snapshot.is_empty is (fraction is None)


# --- Groq ------------------------------------------------------------------------------------
# https://console.groq.com/docs/rate-limits: x-ratelimit-limit-requests "Always refers to
# Requests Per Day (RPD)", x-ratelimit-limit-tokens "Always refers to Tokens Per Minute".
GROQ_HEADERS = {
    "x-groq-region": "gcp-us-central1",
    "x-ratelimit-limit-requests": "14400",
    "x-ratelimit-limit-tokens": "18000",
    "x-ratelimit-remaining-requests": "14370",
    "x-ratelimit-remaining-tokens": "17997",
    "x-ratelimit-reset-requests": "2m59.56s",
    "x-ratelimit-reset-tokens": "7.66s",
}


@pytest.mark.parametrize("provider", [Provider.GROQ, None])
def test_groq_requests_are_per_day(provider: Provider | None) -> None:
    snapshot = dims(GROQ_HEADERS, provider)
    assert snapshot.provider is Provider.GROQ
    assert snapshot.dimensions == (
        DimensionSnapshot("requests", "", 14400.0, 14370.0, 179.56, DAY, window_known=True),
        DimensionSnapshot("tokens", "", 18000.0, 17997.0, 7.66, MINUTE, window_known=True),
    )


def test_groq_day_is_known_even_where_inference_fails() -> None:
    # 30 used of 14,400 with 1 s to full would infer about 8 minutes: no window at all.
    headers = {
        "x-ratelimit-limit-requests": "14400",
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-reset-requests": "1s",
    }
    assert dims(headers).dimensions[0].window is None
    assert dims(headers, "groq").dimensions[0].window == DAY


# --- DeepSeek ----------------------------------------------------------------------------
# https://api-docs.deepseek.com/quick_start/rate_limit: no rate-limit headers; under load
# "Non-streaming requests: Continuously return empty lines; Streaming requests:
# Continuously return SSE keep-alive comments (: keep-alive)". Concurrency limits per
# account, 429 past them (https://github.com/esengine/DeepSeek-Reasonix/pull/1526).


def test_deepseek_concurrency_429() -> None:
    info = classify_error(429, {}, DEEPSEEK_CONCURRENCY_429)
    assert info is not None
    assert (info.kind, info.retryable) == (ErrorKind.CONCURRENCY, True)
    assert (info.limit, info.used, info.metric) == (39.0, 40.0, None)


def test_deepseek_any_429_is_concurrency() -> None:
    # Its docs list "429 - Rate Limit Reached"; it meters no rate, only calls in flight.
    info = classify_error(429, {}, envelope("Rate Limit Reached"), provider=Provider.DEEPSEEK)
    assert info is not None and info.kind is ErrorKind.CONCURRENCY
    plain = classify_error(429, {}, envelope("Rate Limit Reached"))
    assert plain is not None and plain.kind is ErrorKind.RATE_LIMIT


def test_deepseek_402_stays_final() -> None:
    body = envelope("Insufficient Balance", "unknown_error", "invalid_request")
    info = classify_error(402, {}, body, provider="deepseek")
    assert info is not None and info.kind is ErrorKind.INSUFFICIENT_QUOTA


def _sse(*events: dict[str, Any]) -> list[bytes]:
    return [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]


USAGE = {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}


def test_keep_alive_comments_and_blank_lines_do_not_disturb_the_usage() -> None:
    chunks = [
        b": keep-alive\n\n",
        b"\n",
        b": keep-alive\r\n\r\n",
        *_sse({"choices": [{"delta": {"content": "Hi"}}], "usage": None}),
        b": keep-alive\n",
        b"\n\n\n",
        *_sse({"choices": [], "usage": USAGE}),
        b": keep-alive\n\n",
        b"data: [DONE]\n\n",
    ]
    whole = b"".join(chunks)
    # Fed whole, chunk by chunk, and split mid-line anywhere.
    for pieces in (
        [whole],
        chunks,
        [whole[i : i + 7] for i in range(0, len(whole), 7)],
    ):
        watcher = UsageWatcher()
        for piece in pieces:
            watcher.feed(piece)
        watcher.close()
        assert watcher.usage == USAGE
        assert watcher.error is None


def test_crlf_data_lines_are_read() -> None:
    watcher = UsageWatcher()
    watcher.feed(b"data: " + json.dumps({"choices": [], "usage": USAGE}).encode() + b"\r\n\r\n")
    watcher.close()
    assert watcher.usage == USAGE


# --- TGI and vLLM ------------------------------------------------------------------------


def test_tgi_overloaded_is_concurrency() -> None:
    info = classify_error(429, {}, json.dumps(TGI_OVERLOADED_429))
    assert info is not None
    assert (info.kind, info.retryable, info.type) == (ErrorKind.CONCURRENCY, True, "overloaded")
    assert info.message == "Model is overloaded"


def test_openais_overloaded_429_is_still_the_servers_load() -> None:
    body = envelope("That model is currently overloaded with other requests.")
    info = classify_error(429, {}, body)
    assert info is not None and info.kind is ErrorKind.OVERLOADED


def test_vllm_error_shape() -> None:
    # vLLM's OpenAI server: {"object": "error", "message", "type", "param", "code": int};
    # it has no limiter and never answers 429 (https://github.com/vllm-project/vllm/issues/13395).
    body = {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    info = classify_error(400, {}, body, provider="vllm")
    assert info is not None
    assert (info.kind, info.code, info.retryable) == (ErrorKind.CLIENT_ERROR, "400", False)
    assert not Provider.VLLM.traits.headers_on_success


# --- the taxonomy's new kinds --------------------------------------------------------------


@pytest.mark.parametrize("kind", [ErrorKind.CONCURRENCY, ErrorKind.BUDGET_WAIT])
def test_new_kinds_are_retryable_unless_told_not_to(kind: ErrorKind) -> None:
    body = DEEPSEEK_CONCURRENCY_429 if kind is ErrorKind.CONCURRENCY else OPENROUTER_IN_FLIGHT_402
    status = 429 if kind is ErrorKind.CONCURRENCY else 402
    info = classify_error(status, {"x-should-retry": "false"}, body)
    assert info is not None
    assert (info.kind, info.retryable) == (kind, False)


def test_a_named_provider_is_checked_at_the_door() -> None:
    with pytest.raises(ValueError, match="provider"):
        classify_error(429, None, None, provider="openai-ish")
    with pytest.raises(TypeError, match="provider"):
        classify_error_payload({}, provider=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="provider"):
        parse_rate_limit_headers({}, provider="nope")
