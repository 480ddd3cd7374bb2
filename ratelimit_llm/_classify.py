"""Decide what a failed call means: wait and retry, back off, or give up.

A 429 is not one thing. "Rate limit reached ... Please try again in 644ms" clears by
itself; "Request too large" never will, however long we wait; "You exceeded your current
quota" needs a human with a credit card; a flex-tier "Resource Unavailable" is the
server's capacity, not our budget. The SDK retries all of them alike. `classify_error`
reads the status, the headers and the body (OpenAI's ``{"error": {...}}`` envelope,
Anthropic's, Azure's, OpenRouter's integer codes, HTML from a proxy, or garbage) and
returns an `ErrorInfo` that says which case it is, whether a retry can help, how long
the server asked us to wait and which bucket ran dry.

It never raises, and the message it hands back has anything that looks like an API key
cut down to its last four characters, so the result is safe to log.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._durations import parse_duration
from ._headers import HeadersLike, parse_rate_limit_headers

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
    }
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One failed call, classified.

    ``retryable`` is whether waiting can help: true for the temporary kinds unless the
    server sent ``x-should-retry: false`` (which never makes a final kind retryable the
    other way round). ``retry_after`` is in seconds, from ``retry-after-ms``, then
    ``retry-after``, then the message ("Please try again in 644ms", "Please retry after 6
    seconds"). ``metric``, ``period``, ``scope``, ``limit``, ``used`` and ``requested``
    come from the message when it names them ("on tokens per min (TPM): Limit 30000, Used
    29937, Requested 385"). ``message`` has API keys redacted.
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


def classify_error(
    status: int,
    headers: HeadersLike | None = None,
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
    *,
    wall_time: float | None = None,
) -> ErrorInfo | None:
    """Classify an HTTP error response; `None` when ``status`` is not an error (< 400).

    ``body`` may be the raw bytes, the text or the decoded JSON. ``wall_time`` (Unix
    seconds, default `time.time()`) is "now" for an HTTP-date ``retry-after``. Never raises.

    Example::

        info = classify_error(response.status_code, response.headers, response.content)
        if info is not None and info.retryable:
            await anyio.sleep(info.retry_after or backoff)
    """
    if isinstance(status, bool) or not isinstance(status, int) or status < 400:
        return None
    try:
        return _classify(status, headers, body, wall_time, in_body=False)
    except Exception as exc:  # a last resort: the status alone still says a lot
        _log.debug("could not read the error response: %s", type(exc).__name__)
        return _from_status(status, status)


def classify_error_payload(
    payload: Mapping[str, Any],
    *,
    status: int = 200,
    headers: HeadersLike | None = None,
    wall_time: float | None = None,
) -> ErrorInfo:
    """Classify an error that arrived inside a response body, such as a stream event.

    For an SSE ``{"error": {...}}`` frame or a Responses ``response.failed`` event after
    a 200, the kind comes from the payload's ``code`` and ``type`` (an integer ``code`` is
    read as the status, as OpenRouter means it); an error the payload does not explain is
    a `SERVER_ERROR`. ``status`` is reported as given. Never raises.
    """
    if isinstance(status, bool) or not isinstance(status, int):
        status = 200
    try:
        return _classify(status, headers, payload, wall_time, in_body=True)
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
# How much of a body is worth reading: error bodies are small, and a proxy's page or a
# runaway payload should not cost more than this.
_MAX_BODY = 1_000_000
_MAX_TEXT = 4_000
_MAX_MESSAGE = 2_000


def _classify(
    status: int,
    headers: HeadersLike | None,
    body: object,
    wall_time: float | None,
    *,
    in_body: bool,
) -> ErrorInfo:
    message, type_, code = _read_body(body)
    text = message[:_MAX_TEXT] if message else ""
    markers = {marker.lower() for marker in (code, type_) if marker}
    effective = _status_of_payload(status, code, type_) if in_body else status
    kind = _kind(effective, markers, _URL.sub(" ", text))

    should_retry = retry_after = None
    if headers is not None:
        snapshot = parse_rate_limit_headers(headers, wall_time=wall_time)
        should_retry, retry_after = snapshot.should_retry, snapshot.retry_after
    if text:
        named = _retry_in(text)
        # "retry-after: 1" is the message's "try again in 33ms" rounded up to a whole
        # second (the header has no finer unit); the message is the exact figure.
        if retry_after is None or (
            named is not None and named <= retry_after < named + 1 and retry_after.is_integer()
        ):
            retry_after = named if named is not None else retry_after
    metric, period = _metric_and_period(text, markers)
    limit = _number(_LIMIT, text)
    if limit is None and (found := _OF_PER.search(text)):
        limit = _to_number(found.group(1))

    return ErrorInfo(
        kind=kind,
        status=status,
        retryable=kind in RETRYABLE_KINDS and should_retry is not False,
        retry_after=retry_after,
        metric=metric,
        period=period,
        scope=_scope(text),
        limit=limit,
        used=_number(_USED, text),
        requested=_number(_REQUESTED, text),
        code=None if code is None else _redact(code),
        type=None if type_ is None else _redact(type_),
        message=_redact(message[:_MAX_MESSAGE]) if message else None,
        should_retry=should_retry,
    )


def _from_status(status: int, meaning: int) -> ErrorInfo:
    kind = _kind(meaning, set(), "")
    return ErrorInfo(kind=kind, status=status, retryable=kind in RETRYABLE_KINDS)


def _read_body(body: object) -> tuple[str | None, str | None, str | None]:
    """``(message, type, code)`` from whatever the server sent."""
    payload = _load(body)
    if isinstance(payload, str):
        return _text_message(payload), None, None
    if not isinstance(payload, Mapping):
        return None, None, None
    source: Mapping[Any, Any] = payload
    error = payload.get("error")
    response = payload.get("response")
    if isinstance(error, Mapping):
        source = error
    elif isinstance(error, str):  # {"error": "Too many requests"}
        return error, None, None
    elif isinstance(response, Mapping) and isinstance(response.get("error"), Mapping):
        source = response["error"]  # a Responses API "response.failed" event
    message = source.get("message")
    if not isinstance(message, str):
        message = source.get("detail")  # FastAPI-style servers (vLLM, proxies)
    type_ = source.get("type")
    # A bare stream event's "type" is the event name ("error"), not the error's type.
    if source is payload and type_ == "error":
        type_ = None
    return (
        message if isinstance(message, str) else None,
        type_ if isinstance(type_, str) else None,
        _code(source.get("code")),
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
