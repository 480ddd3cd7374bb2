"""Decide what a failed call means: wait and retry, back off, or give up.

A 429 is not one thing. "Rate limit reached ... Please try again in 644ms" clears by
itself; "Request too large" never will, however long we wait; "You exceeded your current
quota" needs a human with a credit card; a flex-tier "Resource Unavailable" is the
server's capacity, not our budget. The SDK retries all of them alike. `classify_error`
reads the status, the headers and the body (OpenAI's ``{"error": {...}}`` envelope,
Anthropic's, Azure's, OpenRouter's integer codes, HTML from a proxy, or garbage) and
returns an `ErrorInfo` that says which case it is, whether a retry can help, how long
the server asked us to wait and which bucket ran dry.

Providers refuse in their own ways, and the `Provider` dialect (named, or recognised from
the headers and the body's shape) reads them into the same kinds: DeepSeek's and TGI's
429s are calls in flight (`ErrorKind.CONCURRENCY`), OpenRouter's 402 with ``Retry-After``
is its in-flight spending budget (`ErrorKind.BUDGET_WAIT`, a wait, where a plain 402 is
final), Gemini's ``RESOURCE_EXHAUSTED`` says "exceeded your current quota" for what is a
per-minute or per-day rate limit (its ``QuotaFailure`` and ``RetryInfo`` details tell
which, and how long to wait), Together's 503 is the platform's capacity, not our rate.

It never raises on what the server sent, and the message it hands back has anything
that looks like an API key cut down to its last four characters, so the result is safe
to log.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._durations import parse_duration
from ._headers import HeadersLike, RateLimitSnapshot, parse_rate_limit_headers
from ._providers import Provider, to_provider

__all__ = [
    "RETRYABLE_KINDS",
    "ErrorInfo",
    "ErrorKind",
    "classify_error",
    "classify_error_payload",
]

_log = logging.getLogger("ratelimit_llm.classify")


class ErrorKind(enum.Enum):
    """What went wrong, in the terms that decide what to do next."""

    #: Temporary throttling (RPM, TPM, RPD, TPD; organisation or project): wait, retry.
    RATE_LIMIT = "rate_limit"
    #: 429 "Request too large" or 413: the call can never fit, never retry.
    REQUEST_TOO_LARGE = "request_too_large"
    #: Quota, billing or credits exhausted: never retry.
    INSUFFICIENT_QUOTA = "insufficient_quota"
    #: Flex-tier 429: retry with backoff, but the budget was not the problem.
    RESOURCE_UNAVAILABLE = "resource_unavailable"
    #: 503 "slow_down": retry, and cut the rate.
    SLOW_DOWN = "slow_down"
    #: 503 or 529 "overloaded": retry with backoff.
    OVERLOADED = "overloaded"
    #: Any other 5xx, HTML error pages from a proxy included.
    SERVER_ERROR = "server_error"
    #: 408.
    TIMEOUT = "timeout"
    #: 409.
    CONFLICT = "conflict"
    #: 401 or 403: the credential is refused, never retry.
    AUTHENTICATION = "authentication"
    #: Any other 4xx: the request itself is wrong, never retry.
    CLIENT_ERROR = "client_error"
    #: Too many calls in flight (DeepSeek's 429, TGI's "Model is overloaded" past
    #: ``--max-concurrent-requests``): retry when one finishes, and send fewer at once.
    CONCURRENCY = "concurrency"
    #: A spending budget held by calls in flight is full (OpenRouter's in-flight budget
    #: 402 with ``Retry-After``): retry after the named wait; nothing is wrong with
    #: the account. A plain 402 ("insufficient credits") stays `INSUFFICIENT_QUOTA`.
    BUDGET_WAIT = "budget_wait"


#: The kinds that waiting may cure.
RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.RATE_LIMIT,
        ErrorKind.RESOURCE_UNAVAILABLE,
        ErrorKind.SLOW_DOWN,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.CONFLICT,
        ErrorKind.CONCURRENCY,
        ErrorKind.BUDGET_WAIT,
    }
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One failed call, classified.

    ``retryable`` is whether waiting can help: true for the temporary kinds unless the
    server sent ``x-should-retry: false`` (which never makes a final kind retryable the
    other way round). ``retry_after`` is in seconds, from ``retry-after-ms``, then
    ``retry-after``, then the message ("Please try again in 644ms", "Please retry after 6
    seconds", Gemini's ``retryDelay``), then OpenRouter's ``X-RateLimit-Reset`` when its
    cap is spent. ``metric``, ``period``, ``scope``, ``limit``, ``used`` and ``requested``
    come from the message when it names them ("on tokens per min (TPM): Limit 30000, Used
    29937, Requested 385"), from Gemini's ``QuotaFailure`` violations (``quotaId``
    ``GenerateRequestsPerDayPerProjectPerModel`` is ``period="day"``), or from the one
    bucket the headers show empty. For `ErrorKind.CONCURRENCY`, ``limit`` and ``used``
    count calls in flight ("concurrency limit of 39") and ``metric`` is `None`.
    ``message`` has API keys redacted. ``provider`` is the dialect the answer was read
    in (`Provider.UNKNOWN` when nothing recognised it).
    """

    kind: ErrorKind
    status: int
    retryable: bool
    retry_after: float | None = None
    metric: str | None = None
    period: str | None = None
    scope: str | None = None
    limit: float | None = None
    used: float | None = None
    requested: float | None = None
    code: str | None = None
    type: str | None = None
    message: str | None = None
    should_retry: bool | None = None
    provider: Provider = Provider.UNKNOWN


def classify_error(
    status: int,
    headers: HeadersLike | None = None,
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
    *,
    wall_time: float | None = None,
    provider: Provider | str | None = None,
) -> ErrorInfo | None:
    """Classify an HTTP error response; `None` when ``status`` is not an error (< 400).

    ``body`` may be the raw bytes, the text or the decoded JSON. ``wall_time`` (Unix
    seconds, default `time.time()`) is "now" for an HTTP-date ``retry-after`` and an epoch
    reset. ``provider`` (a `Provider` or its name) says whose dialect the answer is in;
    without it the headers and the body's shape are used to recognise it. Never raises
    on what the server sent; a ``provider`` that is not a `Provider`, a known name or
    `None` raises `TypeError` or `ValueError`.

    Example::

        info = classify_error(response.status_code, response.headers, response.content)
        if info is not None and info.retryable:
            await anyio.sleep(info.retry_after or backoff)
    """
    named = to_provider(provider)
    if isinstance(status, bool) or not isinstance(status, int) or status < 400:
        return None
    try:
        return _classify(status, headers, body, wall_time, named, in_body=False)
    except Exception as exc:  # a last resort: the status alone still says a lot
        _log.debug("could not read the error response: %s", type(exc).__name__)
        return _from_status(status, status)


def classify_error_payload(
    payload: Mapping[str, Any],
    *,
    status: int = 200,
    headers: HeadersLike | None = None,
    wall_time: float | None = None,
    provider: Provider | str | None = None,
) -> ErrorInfo:
    """Classify an error that arrived inside a response body, such as a stream event.

    For an SSE ``{"error": {...}}`` frame or a Responses ``response.failed`` event after
    a 200, the kind comes from the payload's ``code`` and ``type`` (an integer ``code`` is
    read as the status, as OpenRouter means it: its errors after generation began arrive
    this way); an error the payload does not explain is a `SERVER_ERROR`. ``status`` is
    reported as given; ``provider`` is as for `classify_error`. Never raises on what the
    server sent.
    """
    named = to_provider(provider)
    if isinstance(status, bool) or not isinstance(status, int):
        status = 200
    try:
        return _classify(status, headers, payload, wall_time, named, in_body=True)
    except Exception as exc:
        _log.debug("could not read the error payload: %s", type(exc).__name__)
        return _from_status(status, status if status >= 400 else 500)


# Known values of error.code / error.type, grouped by what they mean.
_QUOTA_MARKERS = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "insufficient_credits",
        "insufficient_balance",
        "payment_required",
    }
)
_TOO_LARGE_MARKERS = frozenset({"request_too_large", "payload_too_large"})
_OVERLOADED_MARKERS = frozenset(
    {"overloaded", "overloaded_error", "engine_overloaded", "server_overloaded"}
)
# What an in-stream error (sent after a 200) would have been as an HTTP status.
_MARKER_STATUS: dict[str, int] = {
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "rate_limit": 429,
    "tokens": 429,
    "requests": 429,
    "tokens_usage_based": 429,
    "insufficient_quota": 429,
    "resource_unavailable": 429,
    "request_too_large": 413,
    "overloaded": 503,
    "overloaded_error": 529,
    "slow_down": 503,
    "server_error": 500,
    "api_error": 500,
    "internal_error": 500,
    "timeout": 408,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "invalid_request_error": 400,
    "not_found_error": 404,
    "model_not_found": 404,
    "context_length_exceeded": 400,
    # Together's two 429 types: above the dynamic request or token rate.
    "dynamic_request_limited": 429,
    "dynamic_token_limited": 429,
}

# ASCII only: in Unicode mode \d takes any script's digits and IGNORECASE lets the Kelvin
# sign match "k".
_FLAGS = re.ASCII | re.IGNORECASE
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)+/\S*", re.ASCII)
# Links are cut before matching: OpenAI's free-tier 429 and Groq's TPD 429 both end with
# a link to a ".../billing" page, yet they are ordinary rate limits. A bare "credits" is
# not enough either: OpenRouter's free daily limit says "Add 10 credits to unlock ...".
_QUOTA_TEXT = re.compile(
    r"exceeded your current quota|\binsufficient[ _](?:quota|credits?|balance|funds)\b"
    r"|\b(?:no|out of) credits\b|\bcredit balance\b|\bcredits? (?:exhausted|depleted)\b"
    r"|\bbilling\b",
    _FLAGS,
)
_TOO_LARGE_TEXT = re.compile(r"\brequest too large\b", _FLAGS)
_RESOURCE_UNAVAILABLE_TEXT = re.compile(r"\bresource unavailable\b", _FLAGS)
_SLOW_DOWN_TEXT = re.compile(r"sudden increase in your request rate", _FLAGS)
_OVERLOADED_TEXT = re.compile(r"\boverloaded\b", _FLAGS)

_NUM = r"(\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?)"
_LIMIT = re.compile(r"\bLimit:?\s*~?" + _NUM, _FLAGS)
_USED = re.compile(r"\b(?:Used|Current):?\s*~?" + _NUM, _FLAGS)
_REQUESTED = re.compile(r"\bRequested:?\s*~?" + _NUM, _FLAGS)
_METRIC_WORDS = r"(tokens_usage_based|input[ _-]tokens|output[ _-]tokens|tokens|requests)"
# OpenAI / Groq: "on tokens per min (TPM)", "on requests per day (RPD)".
_ON_PER = re.compile(r"\bon\s+" + _METRIC_WORDS + r"\s+per\s+(min|minute|day)\b", _FLAGS)
# Anthropic: "of 20,000 input tokens per minute".
_OF_PER = re.compile(
    r"\bof\s+" + _NUM + r"\s+" + _METRIC_WORDS + r"\s+per\s+(min|minute|day)\b", re.IGNORECASE
)
_ABBREVIATION = re.compile(r"\((TPM|RPM|TPD|RPD|ITPM|OTPM)\)", re.ASCII)
# Azure: "have exceeded token rate limit" / "have exceeded call rate limit".
_AZURE_METRIC = re.compile(r"\bexceeded (?:the )?(token|call|request)s? rate limit", _FLAGS)
_PROJECT = re.compile(r"\bin project\b", _FLAGS)
_ORGANIZATION = re.compile(r"\b(?:in|for) (?:your )?organi[sz]ation\b|\borgani[sz]ation's", _FLAGS)
_GO_DURATION = r"(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|\u00b5s|\u03bcs|ns)\s?)+"
_RETRY_IN = re.compile(
    r"\b(?:try again|retry)\s+(?:in|after)\s+(?:(" + _GO_DURATION + r")(?![A-Za-z])"
    r"|(\d+(?:\.\d+)?)\s*(seconds?|secs?|milliseconds?|ms|minutes?|mins?)\b)",
    _FLAGS,
)
_WORD_UNITS = {"m": 60.0, "s": 1.0}  # by first letter; "ms"/"milli..." are checked first
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", _FLAGS | re.DOTALL)

# The key is cut to its last four characters; anything shorter than eight is left alone
# (OpenAI already masks keys in its own messages as "sk-abc***...wxyz").
_SECRETS = (
    re.compile(r"(sk-|gsk_|xai-|AIza)([A-Za-z0-9_-]{8,})", re.ASCII),
    re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/=-]{8,})", _FLAGS),
)
# Calls in flight: DeepSeek ("Your current concurrency is 40, which exceeds your
# concurrency limit of 39 ..."), and any server that says "too many concurrent requests".
_CONCURRENCY_TEXT = re.compile(r"\bconcurren(?:cy|t)\b", _FLAGS)
_CONCURRENCY_LIMIT = re.compile(r"\bconcurrency limit (?:of|is)\s*" + _NUM, _FLAGS)
_CONCURRENCY_USED = re.compile(r"\bcurrent concurrency (?:is|of)\s*" + _NUM, _FLAGS)
# TGI's fixed text for its max_concurrent_requests semaphore; OpenAI's "That model is
# currently overloaded with other requests" is the server's load, not ours.
_TGI_OVERLOADED = re.compile(r"\s*model is overloaded\.?\s*", _FLAGS)
# OpenRouter's in-flight budget 402: "... given your current in-flight requests".
_IN_FLIGHT_TEXT = re.compile(r"\bin-flight (?:requests|spending|budget)\b", _FLAGS)
_OPENROUTER_PER_DAY = re.compile(r"\bfree-models-per-day\b", _FLAGS)
_OPENROUTER_PER_MINUTE = re.compile(r"\bfree-models-per-min(?:ute)?\b", _FLAGS)
# OpenRouter's error.metadata.limit_source values for spending caps that no wait cures.
_SPENDING_CAPS = frozenset(
    {
        "openrouter_credits",
        "openrouter_key_limit",
        "openrouter_guardrail_budget",
        "openrouter_workspace_budget",
    }
)
# Gemini puts every violated quota in its message too: "* Quota exceeded for metric:
# generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, ...".
_GEMINI_QUOTA_LINE = re.compile(
    r"\bquota exceeded for metric:\s*([\w./-]+),\s*limit:\s*(\d+)", _FLAGS
)
_GOOGLE_RPC = "type.googleapis.com/google.rpc."

# How much of a body is worth reading: error bodies are small, and a proxy's page or a
# runaway payload should not cost more than this.
_MAX_BODY = 1_000_000
_MAX_TEXT = 4_000
_MAX_MESSAGE = 2_000
# A message that is itself a JSON error envelope (Gemini's, as some gateways pass it on)
# is opened this many levels deep, and only while it is this short.
_MAX_NESTING = 2
_MAX_NESTED_TEXT = 100_000
_MAX_DETAILS = 20


class _Body(NamedTuple):
    """What an error body says, whoever wrote it."""

    message: str | None = None
    type: str | None = None
    code: str | None = None
    #: Google's ``error.status`` ("RESOURCE_EXHAUSTED").
    status: str | None = None
    #: OpenRouter's ``error.metadata`` (``limit_source``, ``reason``, ``headers``, ``raw``).
    metadata: Mapping[Any, Any] | None = None
    #: Google's ``error.details`` (``QuotaFailure``, ``RetryInfo``, ...).
    details: tuple[Mapping[Any, Any], ...] = ()


class _Quota(NamedTuple):
    """What Gemini's ``QuotaFailure`` details and quota lines say."""

    period: str | None = None
    metric: str | None = None
    limit: float | None = None
    zero: bool = False  # a quota of 0: this tier may not use this model at all


def _classify(
    status: int,
    headers: HeadersLike | None,
    body: object,
    wall_time: float | None,
    named: Provider | None,
    *,
    in_body: bool,
) -> ErrorInfo:
    info = _read_body(body)
    message = info.message
    text = message[:_MAX_TEXT] if message else ""
    metadata = info.metadata or {}
    limit_source = _lower(metadata.get("limit_source"))
    reason = _lower(metadata.get("reason"))
    raw = metadata.get("raw")  # the upstream provider's own message, through OpenRouter
    search_text = f"{text} {raw[:_MAX_TEXT]}" if isinstance(raw, str) else text
    markers = {marker.lower() for marker in (info.code, info.type) if marker}
    effective = _status_of_payload(status, info.code, info.type) if in_body else status

    snapshot = RateLimitSnapshot()
    if headers is not None:
        snapshot = parse_rate_limit_headers(headers, wall_time=wall_time, provider=named)
    dialect = named if named is not None else _dialect_of(snapshot.provider, info)
    embedded = metadata.get("headers")  # OpenRouter repeats its X-RateLimit-* here
    if isinstance(embedded, Mapping) and not snapshot.dimensions:
        inner = parse_rate_limit_headers(embedded, wall_time=wall_time, provider=dialect)
        snapshot = RateLimitSnapshot(
            inner.dimensions, snapshot.retry_after, snapshot.should_retry, dialect
        )
    quota = _gemini_quota(info, text)
    gemini = _is_gemini(info)

    cleaned = _URL.sub(" ", search_text)
    kind = _kind(effective, markers, cleaned)
    kind = _refine(
        kind,
        effective,
        dialect=dialect,
        gemini=gemini,
        quota=quota,
        limit_source=limit_source,
        reason=reason,
        message=text,
        text=cleaned,
        markers=markers,
        waited=snapshot.retry_after is not None,
    )

    should_retry, retry_after = snapshot.should_retry, snapshot.retry_after
    named_wait = _body_wait(text, info)
    # "retry-after: 1" is the message's "try again in 33ms" rounded up to a whole
    # second (the header has no finer unit); the message is the exact figure. A date
    # depends on two clocks agreeing: a relative wait in the message beats it too.
    if (
        retry_after is None
        or (named_wait is not None and snapshot.retry_after_is_date)
        or (
            named_wait is not None
            and named_wait <= retry_after < named_wait + 1
            and retry_after.is_integer()
        )
    ):
        retry_after = named_wait if named_wait is not None else retry_after
    if retry_after is None and dialect is Provider.OPENROUTER:
        retry_after = _spent_reset(snapshot)

    metric, period = _metric_and_period(text, markers)
    if kind is ErrorKind.CONCURRENCY:
        # Calls in flight are no bucket of a rate: the numbers count calls.
        metric = period = None
        limit = _number(_CONCURRENCY_LIMIT, text)
        used = _number(_CONCURRENCY_USED, text)
    else:
        metric = metric or quota.metric
        period = period or quota.period or _openrouter_period(limit_source, search_text)
        if metric is None:
            metric, exhausted_period = _exhausted(snapshot)
            period = period or exhausted_period
        if metric is None and period is not None and dialect is Provider.OPENROUTER:
            metric = "requests"  # its platform caps count requests
        limit, used = _limit_and_used(text, quota, snapshot, metric)

    return ErrorInfo(
        kind=kind,
        status=status,
        retryable=kind in RETRYABLE_KINDS and should_retry is not False,
        retry_after=retry_after,
        metric=metric,
        period=period,
        scope=_scope(text),
        limit=limit,
        used=used,
        requested=_number(_REQUESTED, text),
        code=None if info.code is None else _redact(info.code),
        type=None if info.type is None else _redact(info.type),
        message=_redact(message[:_MAX_MESSAGE]) if message else None,
        should_retry=should_retry,
        provider=dialect,
    )


def _limit_and_used(
    text: str, quota: _Quota, snapshot: RateLimitSnapshot, metric: str | None
) -> tuple[float | None, float | None]:
    """The bucket's size and what was used of it: the message's, else the headers'."""
    limit = _number(_LIMIT, text)
    if limit is None and (found := _OF_PER.search(text)):
        limit = _to_number(found.group(1))
    if quota.limit is not None:
        limit = quota.limit
    used = _number(_USED, text)
    if limit is None and (reported := _reported(snapshot, metric)) is not None:
        limit, used = reported
    return limit, used


def _refine(
    kind: ErrorKind,
    status: int,
    *,
    dialect: Provider,
    gemini: bool,
    quota: _Quota,
    limit_source: str | None,
    reason: str | None,
    message: str,
    text: str,
    markers: set[str],
    waited: bool,
) -> ErrorKind:
    """The generic kind, corrected by what a provider's dialect says it means."""
    if gemini and status == 429 and kind in (ErrorKind.INSUFFICIENT_QUOTA, ErrorKind.RATE_LIMIT):
        # "You exceeded your current quota, please check your plan and billing details"
        # is Gemini's text for every RESOURCE_EXHAUSTED, per-minute ones included; only
        # a quota of zero (the tier may not use the model) is for a human to fix.
        return ErrorKind.INSUFFICIENT_QUOTA if quota.zero else ErrorKind.RATE_LIMIT
    if reason == "in_flight_budget_exhausted" or limit_source == "openrouter_in_flight_budget":
        return ErrorKind.BUDGET_WAIT
    if reason == "weight_exceeds_budget":
        return ErrorKind.REQUEST_TOO_LARGE  # this one call costs more than the budget
    if limit_source in _SPENDING_CAPS and status in (402, 403):
        return ErrorKind.INSUFFICIENT_QUOTA
    # OpenRouter documents Retry-After on its 402s for the in-flight budget alone.
    in_flight = _IN_FLIGHT_TEXT.search(text) or (dialect is Provider.OPENROUTER and waited)
    if status == 402 and in_flight and not _QUOTA_TEXT.search(text):
        return ErrorKind.BUDGET_WAIT
    if status == 429 and kind in (ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED):
        tgi = bool(_TGI_OVERLOADED.fullmatch(message)) or (
            dialect is Provider.TGI and "overloaded" in markers
        )
        if tgi or _CONCURRENCY_TEXT.search(text) or dialect is Provider.DEEPSEEK:
            return ErrorKind.CONCURRENCY
    if status == 503 and kind is ErrorKind.SERVER_ERROR and dialect is Provider.TOGETHER:
        return ErrorKind.OVERLOADED  # at or below our dynamic rate: its capacity
    return kind


def _dialect_of(from_headers: Provider, info: _Body) -> Provider:
    if from_headers is not Provider.UNKNOWN:
        return from_headers
    metadata = info.metadata or {}
    source = _lower(metadata.get("limit_source")) or ""
    if source.startswith("openrouter_") or isinstance(metadata.get("headers"), Mapping):
        return Provider.OPENROUTER
    if _is_gemini(info):
        return Provider.GEMINI
    return Provider.UNKNOWN


def _is_gemini(info: _Body) -> bool:
    if info.status == "RESOURCE_EXHAUSTED":
        return True
    return any(
        (_lower(detail.get("@type")) or "").startswith(_GOOGLE_RPC) for detail in info.details
    )


def _gemini_quota(info: _Body, text: str) -> _Quota:
    """Period, metric and limit of the quotas a Gemini 429 names; the daily one wins."""
    found: list[tuple[str, str, float | None]] = []
    for detail in info.details:
        violations = detail.get("violations")
        if not isinstance(violations, list):
            continue
        for violation in violations[:_MAX_DETAILS]:
            if not isinstance(violation, Mapping):
                continue
            quota_id = violation.get("quotaId")
            quota_metric = violation.get("quotaMetric")
            value = violation.get("quotaValue")
            found.append(
                (
                    quota_id if isinstance(quota_id, str) else "",
                    quota_metric if isinstance(quota_metric, str) else "",
                    _quota_value(value),
                )
            )
    found.extend(
        ("", line.group(1), _to_number(line.group(2))) for line in _GEMINI_QUOTA_LINE.finditer(text)
    )
    if not found:
        return _Quota()
    zero = any(value == 0 for _, _, value in found)
    daily = [item for item in found if _per_day(item[0], item[1])]
    chosen = daily[0] if daily else found[0]
    quota_id, quota_metric, value = chosen
    period = "day" if daily else ("minute" if _per_minute(quota_id, quota_metric) else None)
    return _Quota(period, _quota_metric(quota_id + " " + quota_metric), value, zero)


def _per_day(quota_id: str, quota_metric: str) -> bool:
    return "perday" in quota_id.lower() or "per_day" in quota_metric.lower()


def _per_minute(quota_id: str, quota_metric: str) -> bool:
    return "perminute" in quota_id.lower() or "per_minute" in quota_metric.lower()


def _quota_metric(names: str) -> str | None:
    lowered = names.lower().replace("_", "")
    if "inputtoken" in lowered:
        return "input_tokens"
    if "outputtoken" in lowered:
        return "output_tokens"
    if "token" in lowered:
        return "tokens"
    if "request" in lowered:
        return "requests"
    return None


def _quota_value(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value) < 20:
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _body_wait(text: str, info: _Body) -> float | None:
    """The wait the body names: the message's, Gemini's ``retryDelay``; the longer."""
    candidates = (_retry_in(text) if text else None, _retry_delay(info))
    waits = [wait for wait in candidates if wait is not None]
    return max(waits) if waits else None


def _retry_delay(info: _Body) -> float | None:
    for detail in info.details:
        delay = detail.get("retryDelay")  # google.rpc.RetryInfo, a JSON Duration: "37s"
        if isinstance(delay, str):
            seconds = parse_duration(delay.strip().lower())
            if seconds is not None:
                return seconds
    return None


def _spent_reset(snapshot: RateLimitSnapshot) -> float | None:
    """Seconds until an OpenRouter cap that has nothing left starts over."""
    for dimension in snapshot.dimensions:
        if dimension.remaining == 0 and dimension.reset:
            return dimension.reset
    return None


def _openrouter_period(limit_source: str | None, text: str) -> str | None:
    if limit_source == "openrouter_free_tier_daily" or _OPENROUTER_PER_DAY.search(text):
        return "day"
    if _OPENROUTER_PER_MINUTE.search(text):
        return "minute"
    return None


def _exhausted(snapshot: RateLimitSnapshot) -> tuple[str | None, str | None]:
    """The metric (and period) of the one bucket the headers show empty, if just one."""
    empty = {d.metric: d.window for d in snapshot.dimensions if d.remaining == 0 and not d.scope}
    if len(empty) != 1:
        return None, None
    ((metric, window),) = empty.items()
    period = {_MINUTE_S: "minute", _DAY_S: "day"}.get(window or 0.0)
    return metric, period


def _reported(snapshot: RateLimitSnapshot, metric: str | None) -> tuple[float, float | None] | None:
    """``(limit, used)`` from the headers of the bucket ``metric`` names."""
    if metric is None:
        return None
    dimension = snapshot.get(metric)
    if dimension is None or dimension.limit is None:
        return None
    used = None if dimension.remaining is None else max(0.0, dimension.limit - dimension.remaining)
    return dimension.limit, used


def _lower(value: object) -> str | None:
    return value.lower() if isinstance(value, str) else None


_MINUTE_S, _DAY_S = 60.0, 86_400.0


def _from_status(status: int, meaning: int) -> ErrorInfo:
    kind = _kind(meaning, set(), "")
    return ErrorInfo(kind=kind, status=status, retryable=kind in RETRYABLE_KINDS)


def _read_body(body: object, depth: int = 0) -> _Body:
    """What the server sent, in whichever envelope it used."""
    payload = _load(body)
    if isinstance(payload, str):
        return _Body(message=_text_message(payload))
    if not isinstance(payload, Mapping):
        return _Body()
    source: Mapping[Any, Any] = payload
    error = payload.get("error")
    response = payload.get("response")
    if isinstance(error, Mapping):
        source = error
    elif isinstance(error, str):  # {"error": "Too many requests"}; TGI adds "error_type"
        error_type = payload.get("error_type")
        return _Body(message=error, type=error_type if isinstance(error_type, str) else None)
    elif isinstance(response, Mapping) and isinstance(response.get("error"), Mapping):
        source = response["error"]  # a Responses API "response.failed" event
    message = source.get("message")
    if not isinstance(message, str):
        message = source.get("detail")  # FastAPI-style servers (vLLM, proxies)
    if (
        isinstance(message, str)
        and depth < _MAX_NESTING
        and len(message) <= _MAX_NESTED_TEXT
        and message.lstrip().startswith(("{", "["))
    ):
        inner = _read_body(message, depth + 1)
        if inner.message is not None or inner.status is not None:
            # A gateway wrapped the provider's own envelope in its message; the inner
            # one has the details, the outer one may have the only usable code.
            return inner._replace(code=inner.code or _code(source.get("code")))
    type_ = source.get("type")
    if not isinstance(type_, str):
        type_ = source.get("error_type")
    # A bare stream event's "type" is the event name ("error"), not the error's type.
    if source is payload and type_ == "error":
        type_ = None
    metadata = source.get("metadata")
    details = source.get("details")
    status = source.get("status")
    return _Body(
        message=message if isinstance(message, str) else None,
        type=type_ if isinstance(type_, str) else None,
        code=_code(source.get("code")),
        status=status if isinstance(status, str) else None,
        metadata=metadata if isinstance(metadata, Mapping) else None,
        details=tuple(detail for detail in details[:_MAX_DETAILS] if isinstance(detail, Mapping))
        if isinstance(details, list)
        else (),
    )


def _load(body: object) -> object:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, list):
        # Some OpenAI-compatible servers (Gemini's) wrap the envelope in a list.
        return next((item for item in body if isinstance(item, Mapping)), None)
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body[:_MAX_BODY]).decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return None
    text = body[:_MAX_BODY].strip()
    if not text.startswith(("{", "[")):
        return text
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return _load(loaded) if isinstance(loaded, list) else loaded


def _text_message(text: str) -> str | None:
    if text.startswith("<"):  # a proxy's error page: its title is the useful part
        title = _HTML_TITLE.search(text[:_MAX_TEXT])
        return (" ".join(title.group(1).split()) or None) if title else None
    return text[:500] or None


def _code(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) < 10**18 else None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return None


def _status_of_payload(status: int, code: str | None, type_: str | None) -> int:
    if status >= 400:
        return status
    if code is not None and code.isascii() and code.isdigit() and 400 <= int(code) <= 599:
        return int(code)  # OpenRouter sends the would-be status as error.code
    for marker in (code, type_):  # code first: it is the more specific of the two
        if marker and marker.lower() in _MARKER_STATUS:
            return _MARKER_STATUS[marker.lower()]
    return 500


def _kind(status: int, markers: set[str], text: str) -> ErrorKind:
    if status < 500:
        if (
            status == 402
            or markers & _QUOTA_MARKERS
            or any(marker.startswith("billing_") for marker in markers)
            or _QUOTA_TEXT.search(text)
        ):
            return ErrorKind.INSUFFICIENT_QUOTA
        if status == 413 or markers & _TOO_LARGE_MARKERS or _TOO_LARGE_TEXT.search(text):
            return ErrorKind.REQUEST_TOO_LARGE
    slow_down = "slow_down" in markers or bool(_SLOW_DOWN_TEXT.search(text))
    overloaded = bool(markers & _OVERLOADED_MARKERS or _OVERLOADED_TEXT.search(text))
    if status == 429:
        if "resource_unavailable" in markers or _RESOURCE_UNAVAILABLE_TEXT.search(text):
            return ErrorKind.RESOURCE_UNAVAILABLE
        if slow_down:
            return ErrorKind.SLOW_DOWN
        if overloaded:
            return ErrorKind.OVERLOADED
        return ErrorKind.RATE_LIMIT
    if status >= 500:
        if slow_down:
            return ErrorKind.SLOW_DOWN
        if overloaded or status == 529:  # 529 is Anthropic's "overloaded"
            return ErrorKind.OVERLOADED
        return ErrorKind.SERVER_ERROR
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 409:
        return ErrorKind.CONFLICT
    if status in (401, 403):
        return ErrorKind.AUTHENTICATION
    return ErrorKind.CLIENT_ERROR


def _retry_in(text: str) -> float | None:
    found = _RETRY_IN.search(text)
    if found is None:
        return None
    go_form, number, unit = found.groups()
    if go_form is not None:
        return parse_duration(go_form.strip().lower())
    unit = unit.lower()
    scale = 0.001 if unit.startswith(("ms", "milli")) else _WORD_UNITS[unit[0]]
    seconds = float(number) * scale
    return seconds if math.isfinite(seconds) else None


def _metric_and_period(text: str, markers: set[str]) -> tuple[str | None, str | None]:
    if found := _ON_PER.search(text):
        return _metric_name(found.group(1)), _period_name(found.group(2))
    if found := _OF_PER.search(text):
        return _metric_name(found.group(2)), _period_name(found.group(3))
    if found := _ABBREVIATION.search(text):
        abbreviation = found.group(1)
        metric = {"T": "tokens", "R": "requests", "I": "input_tokens", "O": "output_tokens"}
        return metric[abbreviation[0]], "day" if abbreviation.endswith("D") else "minute"
    if found := _AZURE_METRIC.search(text):
        return ("tokens" if found.group(1).lower() == "token" else "requests"), None
    for marker in ("tokens", "tokens_usage_based", "requests"):
        if marker in markers:
            return _metric_name(marker), None
    # Together's 429 types: above the dynamic token or request rate (per second).
    if "dynamic_token_limited" in markers:
        return "tokens", None
    if "dynamic_request_limited" in markers:
        return "requests", None
    return None, None


def _period_name(word: str) -> str:
    return "day" if word.lower() == "day" else "minute"


def _metric_name(words: str) -> str:
    words = words.lower().replace(" ", "_").replace("-", "_")
    return "tokens" if words == "tokens_usage_based" else words


def _scope(text: str) -> str | None:
    if _PROJECT.search(text):
        return "project"
    if _ORGANIZATION.search(text):
        return "organization"
    return None


def _number(pattern: re.Pattern[str], text: str) -> float | None:
    found = pattern.search(text)
    return _to_number(found.group(1)) if found else None


def _to_number(digits: str) -> float | None:
    number = float(digits.replace(",", ""))
    return number if math.isfinite(number) else None


def _redact(text: str) -> str:
    """``text`` with every API-key-looking string cut to ``<prefix>...<last 4>``."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda found: f"{found.group(1)}...{found.group(2)[-4:]}", text)
    return text
