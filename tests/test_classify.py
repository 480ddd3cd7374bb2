"""Error classification over every 429/5xx sample in the research notes, and hostile bodies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_llm._classify import ErrorInfo, ErrorKind, classify_error, classify_error_payload
from ratelimit_llm._durations import parse_duration
from ratelimit_llm._providers import Provider

NOW = 1_724_260_000.0  # Wed, 21 Aug 2024 17:06:40 GMT
KEY = re.compile(r"sk-[A-Za-z0-9_-]{20,}")

OPENAI_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."
FREE_TIER = (
    "You can increase your rate limit by adding a payment method to your account at "
    "https://platform.openai.com/account/billing."
)


def envelope(message: str, type_: str | None = None, code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def openai_429(
    metric: str, per: str, abbreviation: str, numbers: str, wait: str, *, where: str = ""
) -> dict[str, Any]:
    where = where or "organization org-AbCdEf123"
    message = (
        f"Rate limit reached for gpt-4o in {where} on {metric} per {per} ({abbreviation}): "
        f"{numbers}. Please try again in {wait}. {OPENAI_DOCS}"
    )
    return envelope(message, metric, "rate_limit_exceeded")


# (id, body, retry_after, metric, period, scope, limit, used, requested): all RATE_LIMIT.
# A NaN `requested` stands for a message that does not say it.
RATE_LIMITS: list[tuple[str, Any, float | None, str, str, str, float, float | None, float]] = [
    (
        "tpm-644ms",
        openai_429("tokens", "min", "TPM", "Limit 30000, Used 29937, Requested 385", "644ms"),
        0.644,
        "tokens",
        "minute",
        "organization",
        30000,
        29937,
        385,
    ),
    (
        "tpm-1.574s",
        openai_429("tokens", "min", "TPM", "Limit 200000, Used 162960, Requested 42288", "1.574s"),
        1.574,
        "tokens",
        "minute",
        "organization",
        200000,
        162960,
        42288,
    ),
    (
        "rpm-3-free-tier",
        envelope(
            "Rate limit reached for gpt-3.5-turbo in organization org-AbC on requests per min "
            f"(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. {OPENAI_DOCS} "
            + FREE_TIER,
            "requests",
            "rate_limit_exceeded",
        ),
        20.0,
        "requests",
        "minute",
        "organization",
        3,
        3,
        1,
    ),
    (
        "rpm-500",
        openai_429("requests", "min", "RPM", "Limit 500, Used 500, Requested 1", "120ms"),
        0.12,
        "requests",
        "minute",
        "organization",
        500,
        500,
        1,
    ),
    (
        "rpd-200",
        openai_429("requests", "day", "RPD", "Limit 200, Used 200, Requested 1", "7m12s"),
        432.0,
        "requests",
        "day",
        "organization",
        200,
        200,
        1,
    ),
    (
        "rpd-1000",
        openai_429("requests", "day", "RPD", "Limit 1000, Used 1000, Requested 1", "1m26.4s"),
        86.4,
        "requests",
        "day",
        "organization",
        1000,
        1000,
        1,
    ),
    (
        "rpd-10000",
        openai_429("requests", "day", "RPD", "Limit 10000, Used 10000, Requested 1", "8.64s"),
        8.64,
        "requests",
        "day",
        "organization",
        10000,
        10000,
        1,
    ),
    (
        "project-rpm",
        openai_429(
            "requests",
            "min",
            "RPM",
            "Limit 500, Used 500, Requested 1",
            "120ms",
            where="project proj_abc organization org_xyz",
        ),
        0.12,
        "requests",
        "minute",
        "project",
        500,
        500,
        1,
    ),
    (
        "legacy-usage-based",
        envelope(
            "Rate limit reached for default-text-davinci-003 in organization org-AbC on "
            "tokens_usage_based per min: Limit 250000, Used 249000, Requested 2000. "
            "Please try again in 240ms. " + OPENAI_DOCS,
            "tokens_usage_based",
            "rate_limit_exceeded",
        ),
        0.24,
        "tokens",
        "minute",
        "organization",
        250000,
        249000,
        2000,
    ),
    (
        "legacy-2023-slash-min",
        envelope(
            "Rate limit reached for 10KTPM-200RPM in organization org-AbC on tokens per min. "
            "Limit: 10000 / min. Current: 9820 / min. Contact us through our help center at "
            "help.openai.com if you continue to have issues. Please try again in 6ms.",
            "tokens",
            None,
        ),
        0.006,
        "tokens",
        "minute",
        "organization",
        10000,
        9820,
        math.nan,
    ),
    (
        "groq-tpd",
        envelope(
            "Rate limit reached for model `llama-3.3-70b-versatile` in organization "
            "`org_01kjh7p9n8f1qs6nz2bz77vy6b` service tier `on_demand` on tokens per day "
            "(TPD): Limit 100000, Used 97050, Requested 3619. Please try again in 9m38.016s. "
            "Need more tokens? Upgrade to Dev Tier today at "
            "https://console.groq.com/settings/billing",
            "tokens",
            "rate_limit_exceeded",
        ),
        578.016,
        "tokens",
        "day",
        "organization",
        100000,
        97050,
        3619,
    ),
    (
        "groq-tpm-space-and-tilde",
        envelope(
            "Rate limit reached for model `llama3-70b-8192` in organization `org_abc` on "
            "tokens per minute (TPM): Limit 6000, Used 5905, Requested ~1206. "
            "Please try again in 6m 11.52s. Visit https://console.groq.com/docs/rate-limits "
            "for more information.",
            "tokens",
            "rate_limit_exceeded",
        ),
        371.52,
        "tokens",
        "minute",
        "organization",
        6000,
        5905,
        1206,
    ),
    (
        "groq-thousands-separators",
        envelope(
            "Rate limit reached for model `qwen` in organization `org_abc` on tokens per day "
            "(TPD): Limit 200,000, Used 199,500, Requested 1,200. "
            "Please try again in 1h23m31s.",
            "tokens",
            "rate_limit_exceeded",
        ),
        5011.0,
        "tokens",
        "day",
        "organization",
        200000,
        199500,
        1200,
    ),
]


@pytest.mark.parametrize(
    ("body", "retry_after", "metric", "period", "scope", "limit", "used", "requested"),
    [case[1:] for case in RATE_LIMITS],
    ids=[case[0] for case in RATE_LIMITS],
)
def test_openai_and_groq_rate_limits(
    body: Any,
    retry_after: float,
    metric: str,
    period: str,
    scope: str,
    limit: float,
    used: float | None,
    requested: float,
) -> None:
    info = classify_error(429, {}, json.dumps(body).encode())
    assert info is not None
    assert info.kind is ErrorKind.RATE_LIMIT
    assert info.retryable
    assert info.retry_after == retry_after
    assert (info.metric, info.period, info.scope) == (metric, period, scope)
    assert (info.limit, info.used) == (limit, used)
    if math.isnan(requested):
        assert info.requested is None
    else:
        assert info.requested == requested
    assert info.message == body["error"]["message"]


@pytest.mark.parametrize(
    "wait",
    ["174ms", "644ms", "1.574s", "3.89s", "9.816s", "18.642s", "41.724s", "20s", "1m26.4s"],
)
def test_every_message_duration(wait: str) -> None:
    body = openai_429("tokens", "min", "TPM", "Limit 1, Used 1, Requested 1", wait)
    info = classify_error(429, None, body)
    assert info is not None
    assert info.retry_after == parse_duration(wait)


def test_request_too_large_is_final() -> None:
    body = envelope(
        "Request too large for gpt-4o in organization org-AbC on tokens per min (TPM): "
        "Limit 30000, Requested 31538. The input or output tokens must be reduced in order "
        "to run successfully. " + OPENAI_DOCS,
        "tokens",
        "rate_limit_exceeded",
    )
    info = classify_error(429, {"x-should-retry": "true"}, body)
    assert info is not None
    assert info.kind is ErrorKind.REQUEST_TOO_LARGE
    assert not info.retryable
    assert (info.limit, info.used, info.requested) == (30000.0, None, 31538.0)
    assert (info.metric, info.period) == ("tokens", "minute")


def test_groq_413_too_large() -> None:
    body = envelope(
        "Request too large for model `llama3-70b-8192` in organization `org_abc` on tokens "
        "per minute (TPM): Limit 6000, Requested 7661, please reduce your message size and "
        "try again. Visit https://console.groq.com/docs/rate-limits for more information.",
        "tokens",
        "rate_limit_exceeded",
    )
    info = classify_error(413, {"x-should-retry": "false"}, body)
    assert info is not None
    assert info.kind is ErrorKind.REQUEST_TOO_LARGE
    assert not info.retryable
    assert info.should_retry is False
    assert info.retry_after is None


QUOTA = [
    (
        "insufficient-quota",
        429,
        envelope(
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            "insufficient_quota",
        ),
    ),
    (
        "credit-balance-exhausted",
        429,
        envelope(
            "You have no credits remaining. Add credits to continue.",
            "insufficient_quota",
            "credit_balance_exhausted",
        ),
    ),
    ("quota-text-only", 429, envelope("You exceeded your current quota.")),
    ("billing-code", 429, envelope("Your account is not active.", None, "billing_not_active")),
    (
        "openrouter-402-int",
        402,
        {"error": {"code": 402, "message": "Insufficient credits. Add more using /credits"}},
    ),
    ("deepseek-402", 402, envelope("Insufficient Balance", "unknown_error", "invalid_request")),
    (
        "anthropic-credit-balance",
        400,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API. "
                "Please go to Plans & Billing to upgrade or purchase credits.",
            },
        },
    ),
    (
        "anthropic-429-billing",
        429,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Billing cap hit."}},
    ),
]


@pytest.mark.parametrize(("status", "body"), [q[1:] for q in QUOTA], ids=[q[0] for q in QUOTA])
def test_quota_is_never_retryable(status: int, body: Any) -> None:
    info = classify_error(status, {"x-should-retry": "true", "retry-after": "20"}, body)
    assert info is not None
    assert info.kind is ErrorKind.INSUFFICIENT_QUOTA
    assert not info.retryable
    assert info.should_retry is True


NOT_QUOTA = [
    (
        "openrouter-free-daily-limit",
        {
            "error": {
                "code": 429,
                "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock "
                "1000 free model requests per day",
            }
        },
    ),
    (
        "billing-link-without-scheme",
        envelope(
            "Rate limit reached for model `m` in organization `org_abc` on tokens per day "
            "(TPD): Limit 100000, Used 99000, Requested 3000. Please try again in 2m0s. "
            "Upgrade at console.groq.com/settings/billing",
            "tokens",
            "rate_limit_exceeded",
        ),
    ),
]


@pytest.mark.parametrize("body", [n[1] for n in NOT_QUOTA], ids=[n[0] for n in NOT_QUOTA])
def test_links_and_offers_are_not_quota(body: Any) -> None:
    info = classify_error(429, None, body)
    assert info is not None
    assert (info.kind, info.retryable) == (ErrorKind.RATE_LIMIT, True)


def test_openrouter_code_is_a_string() -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits"}}
    info = classify_error(402, None, body)
    assert info is not None and info.code == "402"


# --- Azure ---------------------------------------------------------------------------

AZURE_TOKENS = (
    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
    "2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
    "Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if you "
    "would like to further increase the default rate limit."
)


def test_azure_token_rate_limit() -> None:
    info = classify_error(429, None, {"error": {"code": "429", "message": AZURE_TOKENS}})
    assert info is not None
    assert info.kind is ErrorKind.RATE_LIMIT
    assert info.retryable
    assert (info.retry_after, info.metric, info.code) == (6.0, "tokens", "429")


def test_azure_call_rate_limit_with_headers() -> None:
    message = AZURE_TOKENS.replace("token rate limit", "call rate limit").replace("6 ", "9 ")
    headers = {"retry-after-ms": "8500", "retry-after": "9"}
    info = classify_error(429, headers, {"error": {"code": "429", "message": message}})
    assert info is not None
    assert (info.kind, info.retry_after, info.metric) == (ErrorKind.RATE_LIMIT, 8.5, "requests")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Rate limit is exceeded. Try again in 13 seconds.", 13.0),
        ("Please retry after 1 second.", 1.0),
        ("Please retry after 250 milliseconds.", 0.25),
        ("Please retry after 2 minutes.", 120.0),
        ("Please retry in 27.29s.", 27.29),  # Gemini's OpenAI endpoint
        ("Please try again later.", None),
    ],
)
def test_message_wait_phrasings(text: str, seconds: float | None) -> None:
    info = classify_error(429, None, envelope(text))
    assert info is not None and info.retry_after == seconds


# --- Anthropic -----------------------------------------------------------------------

ANTHROPIC_429 = {
    "type": "error",
    "error": {
        "type": "rate_limit_error",
        "message": "This request would exceed the rate limit for your organization "
        "(0dccdde6-f924-4f1b-bb3b-92ef846e0a5b) of 20,000 input tokens per minute. For "
        "details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the "
        "response headers for current usage. Please reduce the prompt length or the maximum "
        "tokens requested, or try again later. You may also contact sales at "
        "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
        "increase.",
    },
}


def test_anthropic_rate_limit() -> None:
    headers = {
        "retry-after": "17",
        "x-should-retry": "true",
        "anthropic-ratelimit-input-tokens-remaining": "0",
    }
    info = classify_error(429, headers, json.dumps(ANTHROPIC_429))
    assert info is not None
    assert info.kind is ErrorKind.RATE_LIMIT
    assert info.retryable
    assert (info.retry_after, info.should_retry) == (17.0, True)
    assert (info.metric, info.period, info.scope) == ("input_tokens", "minute", "organization")
    assert (info.limit, info.used, info.requested) == (20000.0, None, None)
    assert info.type == "rate_limit_error"


def test_anthropic_through_an_openai_compatible_proxy() -> None:
    inner = ANTHROPIC_429["error"]
    assert isinstance(inner, dict)
    body = envelope(inner["message"], "invalid_request_error", "rate_limit_error")
    info = classify_error(429, None, body)
    assert info is not None and info.kind is ErrorKind.RATE_LIMIT


def test_anthropic_spend_cap_without_retry_after_is_still_a_rate_limit() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your specified workspace API usage limits.",
        },
    }
    info = classify_error(429, {}, body)
    assert info is not None
    assert info.kind is ErrorKind.RATE_LIMIT
    assert info.retry_after is None


def test_anthropic_overloaded_529() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    info = classify_error(529, None, body)
    assert info is not None
    assert (info.kind, info.retryable) == (ErrorKind.OVERLOADED, True)


# --- other 429s and every other status ----------------------------------------------

CLOUDFLARE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
STATUSES = [
    (
        "flex",
        429,
        envelope("Resource Unavailable", None, "resource_unavailable"),
        "RESOURCE_UNAVAILABLE",
    ),
    ("flex-text", 429, envelope("Resource Unavailable"), "RESOURCE_UNAVAILABLE"),
    ("429-no-body", 429, None, "RATE_LIMIT"),
    (
        "429-model-overloaded",
        429,
        envelope("That model is currently overloaded with other requests."),
        "OVERLOADED",
    ),
    (
        "500",
        500,
        envelope(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        ),
        "SERVER_ERROR",
    ),
    (
        "503-engine-overloaded",
        503,
        envelope("The engine is currently overloaded, please try again later"),
        "OVERLOADED",
    ),
    (
        "503-model-overloaded",
        503,
        envelope(
            "That model is currently overloaded with other requests. You can retry your request."
        ),
        "OVERLOADED",
    ),
    (
        "503-slow-down",
        503,
        envelope(
            "A sudden increase in your request rate is impacting service reliability. "
            "Please reduce your request rate.",
            None,
            "slow_down",
        ),
        "SLOW_DOWN",
    ),
    ("503-slow-down-code", 503, envelope("Slow down", None, "slow_down"), "SLOW_DOWN"),
    ("503-plain", 503, "Service Unavailable", "SERVER_ERROR"),
    ("502-html", 502, CLOUDFLARE_502, "SERVER_ERROR"),
    ("504-html", 504, "<html><title>504 Gateway Time-out</title></html>", "SERVER_ERROR"),
    ("599", 599, None, "SERVER_ERROR"),
    ("408", 408, None, "TIMEOUT"),
    ("409", 409, envelope("Conflict"), "CONFLICT"),
    (
        "401",
        401,
        envelope(
            "Incorrect API key provided: sk-abc***wxyz.", "invalid_request_error", "invalid_api_key"
        ),
        "AUTHENTICATION",
    ),
    (
        "403",
        403,
        envelope(
            "Country, region, or territory not supported",
            None,
            "unsupported_country_region_territory",
        ),
        "AUTHENTICATION",
    ),
    (
        "400",
        400,
        envelope("context_length_exceeded", "invalid_request_error", "context_length_exceeded"),
        "CLIENT_ERROR",
    ),
    (
        "404",
        404,
        envelope("The model `gpt-5` does not exist", None, "model_not_found"),
        "CLIENT_ERROR",
    ),
    ("422", 422, None, "CLIENT_ERROR"),
    ("413", 413, None, "REQUEST_TOO_LARGE"),
]
RETRYABLE = {
    "CONCURRENCY",
    "BUDGET_WAIT",
    "RATE_LIMIT",
    "RESOURCE_UNAVAILABLE",
    "SLOW_DOWN",
    "OVERLOADED",
    "SERVER_ERROR",
    "TIMEOUT",
    "CONFLICT",
}


@pytest.mark.parametrize(
    ("status", "body", "kind"), [s[1:] for s in STATUSES], ids=[s[0] for s in STATUSES]
)
def test_status_and_body(status: int, body: Any, kind: str) -> None:
    info = classify_error(status, None, body)
    assert info is not None
    assert info.kind is ErrorKind[kind]
    assert info.status == status
    assert info.retryable is (kind in RETRYABLE)


def test_html_title_is_the_message() -> None:
    info = classify_error(502, None, CLOUDFLARE_502)
    assert info is not None and info.message == "502 Bad Gateway"


@pytest.mark.parametrize("status", [0, 100, 200, 204, 301, 304, 399])
def test_not_an_error(status: int) -> None:
    assert classify_error(status, {"retry-after": "5"}, b"{}") is None


def test_should_retry_false_keeps_the_kind() -> None:
    body = openai_429("tokens", "min", "TPM", "Limit 1, Used 1, Requested 1", "1s")
    info = classify_error(429, {"x-should-retry": "false"}, body)
    assert info is not None
    assert (info.kind, info.retryable, info.should_retry) == (ErrorKind.RATE_LIMIT, False, False)


def test_should_retry_true_does_not_make_a_client_error_retryable() -> None:
    info = classify_error(400, {"x-should-retry": "true"}, None)
    assert info is not None and not info.retryable


# --- retry-after precedence -----------------------------------------------------------

MESSAGE_644 = openai_429("tokens", "min", "TPM", "Limit 1, Used 1, Requested 1", "644ms")
PRECEDENCE = [
    ("message-only", {}, 0.644),
    ("retry-after-beats-message", {"retry-after": "2"}, 2.0),
    ("ms-beats-retry-after", {"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
    ("inf-falls-back-to-message", {"retry-after": "inf"}, 0.644),
    ("nan-falls-back-to-message", {"retry-after": "nan"}, 0.644),
    ("negative-falls-back-to-message", {"retry-after": "-10"}, 0.644),
    ("bad-date-falls-back-to-message", {"retry-after": "Wed, 99 Aug 2024 17:07:10 GMT"}, 0.644),
    # A date needs two clocks to agree: the message's relative wait beats it.
    ("http-date-loses-to-the-message", {"retry-after": "Wed, 21 Aug 2024 17:07:10 GMT"}, 0.644),
    ("past-http-date-falls-back", {"retry-after": "Wed, 21 Aug 2024 17:00:00 GMT"}, 0.644),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [p[1:] for p in PRECEDENCE], ids=[p[0] for p in PRECEDENCE]
)
def test_retry_after_precedence(headers: dict[str, str], expected: float) -> None:
    info = classify_error(429, headers, MESSAGE_644, wall_time=NOW)
    assert info is not None and info.retry_after == expected


def test_httpx_response() -> None:
    response = httpx.Response(
        429,
        headers=[("Retry-After", "3"), ("X-Should-Retry", "true")],
        json=MESSAGE_644,
    )
    info = classify_error(response.status_code, response.headers, response.content)
    assert info is not None
    assert (info.kind, info.retry_after, info.should_retry) == (ErrorKind.RATE_LIMIT, 3.0, True)


# --- body shapes ------------------------------------------------------------------------

BODIES = [
    ("empty-bytes", b"", None, None, None),
    ("empty-str", "", None, None, None),
    ("whitespace", "  \n ", None, None, None),
    ("non-utf8", b"\xff\xfe\x00\x81 oops", "\ufffd\ufffd\x00\ufffd oops", None, None),
    (
        "invalid-json",
        '{"error": {"message": "cut off',
        '{"error": {"message": "cut off',
        None,
        None,
    ),
    (
        "json-list",
        [{"error": {"message": "in a list", "code": "rate_limit_exceeded"}}],
        "in a list",
        None,
        "rate_limit_exceeded",
    ),
    ("json-list-text", '[{"error": {"message": "in a list"}}]', "in a list", None, None),
    ("json-list-of-numbers", "[1, 2, 3]", None, None, None),
    ("json-number", "42", "42", None, None),
    ("json-string", '"just a string"', '"just a string"', None, None),
    (
        "bare-object",
        {"message": "bare", "type": "tokens", "code": "rate_limit_exceeded"},
        "bare",
        "tokens",
        "rate_limit_exceeded",
    ),
    ("error-is-a-string", {"error": "Too many requests"}, "Too many requests", None, None),
    ("fastapi-detail", {"detail": "Rate limited"}, "Rate limited", None, None),
    ("null-fields", {"error": {"message": None, "type": None, "code": None}}, None, None, None),
    ("wrong-types", {"error": {"message": 5, "type": ["x"], "code": {"a": 1}}}, None, None, None),
    ("float-code", {"error": {"code": 429.0}}, None, None, "429"),
    ("bool-code", {"error": {"code": True}}, None, None, None),
    ("plain-text", "upstream connect error", "upstream connect error", None, None),
]


@pytest.mark.parametrize(
    ("body", "message", "type_", "code"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES]
)
def test_body_shapes(body: Any, message: str | None, type_: str | None, code: str | None) -> None:
    info = classify_error(429, None, body)
    assert info is not None
    assert info.kind is ErrorKind.RATE_LIMIT
    assert (info.message, info.type, info.code) == (message, type_, code)


def test_deeply_nested_json() -> None:
    info = classify_error(500, None, "[" * 100_000 + "]" * 100_000)
    assert info is not None and info.kind is ErrorKind.SERVER_ERROR


def test_huge_body() -> None:
    message = "Rate limit reached. " + "x" * 3_000_000
    info = classify_error(429, None, json.dumps(envelope(message)))
    assert info is not None and info.kind is ErrorKind.RATE_LIMIT


# --- in-stream payloads -------------------------------------------------------------------

PAYLOADS = [
    (
        "sse-error-envelope",
        envelope("Rate limit reached. Please try again in 1.5s.", "tokens", "rate_limit_exceeded"),
        "RATE_LIMIT",
    ),
    (
        "responses-failed",
        {
            "type": "response.failed",
            "response": {
                "id": "resp_1",
                "status": "failed",
                "error": {"code": "rate_limit_exceeded", "message": "Please try again in 1.5s."},
            },
        },
        "RATE_LIMIT",
    ),
    (
        "responses-error-event",
        {"type": "error", "code": "server_error", "message": "oops"},
        "SERVER_ERROR",
    ),
    ("openrouter-429", {"error": {"code": 429, "message": "Rate limit exceeded"}}, "RATE_LIMIT"),
    (
        "openrouter-502",
        {"error": {"code": 502, "message": "Provider returned error"}},
        "SERVER_ERROR",
    ),
    ("quota", envelope("quota", "insufficient_quota", "insufficient_quota"), "INSUFFICIENT_QUOTA"),
    (
        "overloaded",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        "OVERLOADED",
    ),
    ("invalid-request", envelope("bad", "invalid_request_error"), "CLIENT_ERROR"),
    ("unknown", {"error": {"message": "something broke"}}, "SERVER_ERROR"),
    ("empty", {}, "SERVER_ERROR"),
]


@pytest.mark.parametrize(
    ("payload", "kind"), [p[1:] for p in PAYLOADS], ids=[p[0] for p in PAYLOADS]
)
def test_stream_payloads(payload: Mapping[str, Any], kind: str) -> None:
    info = classify_error_payload(payload)
    assert info.kind is ErrorKind[kind]
    assert info.status == 200
    if kind == "RATE_LIMIT" and "1.5s" in json.dumps(payload):
        assert info.retry_after == 1.5


def test_stream_payload_code_beats_type() -> None:
    payload = envelope("slow", "invalid_request_error", "rate_limit_exceeded")
    assert classify_error_payload(payload).kind is ErrorKind.RATE_LIMIT


def test_stream_event_type_is_not_the_error_type() -> None:
    info = classify_error_payload({"type": "error", "code": "server_error", "message": "oops"})
    assert (info.type, info.code, info.message) == (None, "server_error", "oops")


def test_payload_with_an_http_status_and_headers() -> None:
    info = classify_error_payload(
        envelope("Overloaded"), status=503, headers={"x-should-retry": "false"}
    )
    assert (info.kind, info.status, info.retryable) == (ErrorKind.OVERLOADED, 503, False)


# --- redaction --------------------------------------------------------------------------

SECRETS = [
    (
        "openai-project-key",
        "Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD.",
        "Incorrect API key provided: sk-...ABCD.",
    ),
    ("legacy-key", "key sk-abcdefghijklmnopqrstuvwxyz0123456789 bad", "key sk-...6789 bad"),
    (
        "anthropic-key",
        "x-api-key sk-ant-api03-abcdefghijklmnopqrstu_vwxyz-WXYZ",
        "x-api-key sk-...WXYZ",
    ),
    ("groq-key", "gsk_abcdefghijklmnopqrstuvwxyz0123", "gsk_...0123"),
    (
        "bearer",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcd",
        "Authorization: Bearer ...abcd",
    ),
    (
        "two-keys",
        "sk-aaaaaaaaaaaaaaaaaaaaaaaa1111 and sk-bbbbbbbbbbbbbbbbbbbbbbbb2222",
        "sk-...1111 and sk-...2222",
    ),
    ("glued", "xsk-aaaaaaaaaaaaaaaaaaaaaaaaaaaa1111!", "xsk-...1111!"),
    (
        "already-masked",
        "Incorrect API key provided: sk-abc***********wxyz.",
        "Incorrect API key provided: sk-abc***********wxyz.",
    ),
    ("short", "sk-abc is not a key", "sk-abc is not a key"),
]


@pytest.mark.parametrize(
    ("message", "expected"), [s[1:] for s in SECRETS], ids=[s[0] for s in SECRETS]
)
def test_keys_are_redacted(message: str, expected: str) -> None:
    info = classify_error(401, None, envelope(message, "invalid_request_error", "invalid_api_key"))
    assert info is not None
    assert info.message == expected


def test_keys_are_redacted_from_text_bodies_and_codes() -> None:
    key = "sk-proj-" + "Q" * 48
    info = classify_error(401, None, f"bad key {key}".encode())
    assert info is not None and info.message == "bad key sk-...QQQQ"
    info = classify_error(401, None, {"error": {"code": key, "type": key}})
    assert info is not None and info.code == info.type == "sk-...QQQQ"


def test_error_info_is_frozen() -> None:
    info = classify_error(500, None, None)
    assert isinstance(info, ErrorInfo)
    with pytest.raises(AttributeError):
        info.retryable = False  # type: ignore[misc]


# --- hostile input ------------------------------------------------------------------------


class ExplodingMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")


HOSTILE: list[tuple[str, Any, Any, Any]] = [
    ("exploding-body", 429, None, ExplodingMapping()),
    ("exploding-headers", 429, ExplodingMapping(), None),
    ("str-status", "429", None, None),
    ("bool-status", True, None, None),
    ("negative-status", -1, None, None),
    ("huge-status", 10**20, None, None),
    ("list-body", 500, None, [1, 2]),
    ("int-body", 500, None, 5),
    ("memoryview-body", 500, None, memoryview(b'{"error": {"message": "mv"}}')),
    ("bytearray-body", 500, None, bytearray(b"oops")),
    ("unicode-digits-code", 200, None, {"error": {"code": "\u00b2\u00b2\u00b2"}}),
]


@pytest.mark.parametrize(
    ("status", "headers", "body"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_input_never_raises(status: Any, headers: Any, body: Any) -> None:
    info = classify_error(status, headers, body)
    assert info is None or isinstance(info, ErrorInfo)
    if isinstance(body, Mapping):
        assert isinstance(classify_error_payload(body, status=status), ErrorInfo)


def test_exploding_body_still_classifies_by_status() -> None:
    info = classify_error(429, None, ExplodingMapping())
    assert info is not None and (info.kind, info.retryable) == (ErrorKind.RATE_LIMIT, True)
    assert classify_error_payload(ExplodingMapping()).kind is ErrorKind.SERVER_ERROR


# --- properties -----------------------------------------------------------------------------

_KEYS = st.from_regex(r"sk-(proj-)?[A-Za-z0-9_-]{20,60}", fullmatch=True)
_TEXT_WITH_KEYS = st.builds(
    lambda before, key, after: before + key + after,
    st.text(max_size=30),
    _KEYS,
    st.text(max_size=30),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    _TEXT_WITH_KEYS,
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "message",
                    "type",
                    "code",
                    "response",
                    "detail",
                    "x",
                    # The dialects' fields: OpenRouter's metadata, Gemini's details, TGI's.
                    "metadata",
                    "limit_source",
                    "reason",
                    "headers",
                    "raw",
                    "status",
                    "details",
                    "violations",
                    "quotaId",
                    "quotaMetric",
                    "quotaValue",
                    "retryDelay",
                    "@type",
                    "error_type",
                ]
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=12,
)
_BODIES = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.text(max_size=200),
    _TEXT_WITH_KEYS,
    _JSON.map(lambda value: json.dumps(value)),
    _JSON.map(lambda value: json.dumps(value).encode()),
    _JSON.filter(lambda value: isinstance(value, dict)),
    st.builds(
        lambda message, code, type_: {"error": {"message": message, "code": code, "type": type_}},
        _TEXT_WITH_KEYS,
        _SCALARS,
        _SCALARS,
    ),
)
# Shaped like the dialects' bodies, with hostile values where the real ones have data.
_GEMINI_BODIES = st.builds(
    lambda status, violations, delay, message: {
        "error": {
            "code": 429,
            "message": message,
            "status": status,
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            ],
        }
    },
    st.sampled_from(["RESOURCE_EXHAUSTED", None, 5]),
    st.lists(
        st.fixed_dictionaries(
            {
                "quotaId": st.one_of(st.text(max_size=40), _SCALARS),
                "quotaMetric": st.one_of(st.text(max_size=40), _SCALARS),
                "quotaValue": st.one_of(st.integers().map(str), st.floats().map(str), _SCALARS),
            }
        ),
        max_size=3,
    ),
    st.one_of(st.text(max_size=20), _SCALARS, st.floats().map(lambda f: f"{f}s")),
    st.one_of(_TEXT_WITH_KEYS, st.just("Quota exceeded for metric: x/y, limit: 0, model: m")),
)
_OPENROUTER_BODIES = st.builds(
    lambda code, metadata, message: {
        "error": {"code": code, "message": message, "metadata": metadata}
    },
    _SCALARS,
    st.fixed_dictionaries(
        {
            "reason": st.one_of(_SCALARS, st.just("in_flight_budget_exhausted")),
            "limit_source": st.one_of(_SCALARS, st.just("openrouter_free_tier_daily")),
            "headers": st.one_of(
                _SCALARS,
                st.dictionaries(
                    st.sampled_from(
                        ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
                    ),
                    st.one_of(st.text(max_size=20), st.integers(), st.floats()),
                ),
            ),
            "raw": _SCALARS,
        }
    ),
    _TEXT_WITH_KEYS,
)
_BODIES = st.one_of(_BODIES, _GEMINI_BODIES, _OPENROUTER_BODIES)
_HEADERS = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(
            [
                "retry-after",
                "retry-after-ms",
                "x-should-retry",
                "authorization",
                "x",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "x-tokenlimit-limit",
                "anthropic-ratelimit-output-tokens-remaining",
            ]
        ),
        st.one_of(st.text(max_size=30), st.binary(max_size=30), st.integers(), st.floats()),
        max_size=4,
    ),
)


_PROVIDERS = st.one_of(st.none(), st.sampled_from(list(Provider)))


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-10, max_value=1000), _HEADERS, _BODIES, _PROVIDERS)
def test_classify_never_raises_nor_leaks_keys(
    status: int, headers: Any, body: Any, provider: Provider | None
) -> None:
    info = classify_error(status, headers, body, wall_time=NOW, provider=provider)
    if status < 400:
        assert info is None
        return
    assert info is not None
    assert info.retryable is (info.kind.name in RETRYABLE and info.should_retry is not False)
    for text in (info.message, info.code, info.type):
        assert text is None or not KEY.search(text), text
    for number in (info.retry_after, info.limit, info.used, info.requested):
        assert number is None or (math.isfinite(number) and number >= 0)


@settings(max_examples=200, deadline=None)
@given(
    _JSON.filter(lambda value: isinstance(value, dict)),
    st.integers(min_value=0, max_value=700),
    _PROVIDERS,
)
def test_payloads_never_raise_nor_leak_keys(
    payload: dict[str, Any], status: int, provider: Provider | None
) -> None:
    info = classify_error_payload(payload, status=status, provider=provider)
    assert info.status == status
    assert info.message is None or not KEY.search(info.message)


def test_the_messages_exact_wait_beats_a_whole_second_retry_after() -> None:
    body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-x on requests per"
            " min (RPM): Limit 1800, Used 1800, Requested 1. Please try again in 33ms.",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    info = classify_error(429, {"retry-after": "1"}, body)
    assert info is not None and info.retry_after == 0.033
    # retry-after-ms is exact already, and a retry-after that disagrees is kept.
    exact = classify_error(429, {"retry-after-ms": "500"}, body)
    assert exact is not None and exact.retry_after == 0.5
    longer = classify_error(429, {"retry-after": "20"}, body)
    assert longer is not None and longer.retry_after == 20.0


def test_a_zero_wait_in_the_message_is_kept() -> None:
    body = openai_429("requests", "min", "RPM", "Limit 1, Used 1, Requested 1", "0s")
    info = classify_error(429, None, body)
    assert info is not None and info.retry_after == 0.0
