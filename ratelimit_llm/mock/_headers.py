"""The rate-limit headers and 429 bodies of OpenAI, Azure and Groq.

These are what the limiter under test reads, so the formats are the ones captured from
the real services (research notes, sections 1 to 3): Go durations truncated to
milliseconds for OpenAI and Groq, whole seconds for Azure, and 429 messages whose
numbers obey ``try again in = (Used + Requested - Limit) / rate``. The other providers'
headers and refusals are in ``_provider_headers.py`` and ``_provider_errors.py``;
``_dialect.py`` picks the family a profile speaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .._durations import format_duration
from ._buckets import (
    INPUT_TPM,
    OUTPUT_TPM,
    PROJECT_TPM,
    RPD,
    RPM,
    RPS,
    TPD,
    TPM,
    TPS,
    Bucket,
    BucketSet,
    Refusal,
)
from ._config import Profile
from ._errors import QUOTA, error_body

__all__ = [
    "Denial",
    "quota_denial",
    "rate_limit_headers",
    "rate_limited_denial",
    "retry_headers",
    "too_large_denial",
]

_OPENAI_WHAT = {
    RPM: "requests per min (RPM)",
    RPD: "requests per day (RPD)",
    TPM: "tokens per min (TPM)",
    TPD: "tokens per day (TPD)",
    PROJECT_TPM: "tokens per min (TPM)",
    # Not OpenAI's own limits, but a mock configured with them still says which it was.
    RPS: "requests per sec (RPS)",
    TPS: "tokens per sec (TPS)",
    INPUT_TPM: "input tokens per min (ITPM)",
    OUTPUT_TPM: "output tokens per min (OTPM)",
}
_GROQ_WHAT = {
    RPM: "requests per minute (RPM)",
    RPD: "requests per day (RPD)",
    TPM: "tokens per minute (TPM)",
    TPD: "tokens per day (TPD)",
    PROJECT_TPM: "tokens per minute (TPM)",
    RPS: "requests per second (RPS)",
    TPS: "tokens per second (TPS)",
    INPUT_TPM: "input tokens per minute (ITPM)",
    OUTPUT_TPM: "output tokens per minute (OTPM)",
}
_OPENAI_MORE = "Visit https://platform.openai.com/account/rate-limits to learn more."
_GROQ_MORE = "Visit https://console.groq.com/docs/rate-limits for more information."
_AZURE_MORE = (
    "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase "
    "the default rate limit."
)


@dataclass(frozen=True, slots=True)
class Denial:
    """An error response before the common headers are added: status, JSON body (an object,
    or Gemini's array), extra headers."""

    status: int
    body: Any
    headers: dict[str, str]


def _reset(profile: Profile, seconds: float) -> str:
    if profile.reset_format == "seconds":
        return str(math.ceil(round(seconds, 6)))
    # Round off float noise first: format_duration truncates, and 0.11999999 would read 119ms.
    return format_duration(round(seconds, 9))


def _pick(
    buckets: BucketSet, minute: str, day: str, window: Literal["binding", "minute", "day"]
) -> Bucket | None:
    per_minute = buckets.buckets.get(minute)
    per_day = buckets.buckets.get(day)
    if window == "minute":
        return per_minute
    if window == "day":
        return per_day
    if per_minute is None or per_day is None:
        return per_minute or per_day
    # The binding bucket is the one with less left; on a tie the day one, as in the capture
    # of "limit 10000, remaining 9999, reset 8.64s".
    return per_minute if per_minute.level < per_day.level else per_day


def rate_limit_headers(profile: Profile, buckets: BucketSet) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers for ``buckets`` (already refilled to now)."""
    if not profile.rate_limit_headers:
        return {}
    headers: dict[str, str] = {}
    triplets: list[tuple[str, Bucket]] = []
    requests = _pick(buckets, RPM, RPD, profile.requests_window)
    if requests is not None:
        triplets.append(("requests", requests))
    tokens = _pick(buckets, TPM, TPD, profile.tokens_window)
    if tokens is not None:
        triplets.append(("tokens", tokens))
    if profile.project_headers and buckets.project is not None:
        triplets.append(("project-tokens", buckets.project))
    sentinel = profile.token_sentinels
    if not profile.remaining_only:
        for suffix, bucket in triplets:
            headers[f"x-ratelimit-limit-{suffix}"] = (
                "-1" if sentinel and suffix == "tokens" else str(bucket.limit)
            )
    for suffix, bucket in triplets:
        headers[f"x-ratelimit-remaining-{suffix}"] = (
            "-1" if sentinel and suffix == "tokens" else str(bucket.remaining())
        )
    if not profile.remaining_only:
        for suffix, bucket in triplets:
            headers[f"x-ratelimit-reset-{suffix}"] = (
                "0" if sentinel and suffix == "tokens" else _reset(profile, bucket.time_to_full())
            )
    return headers


def retry_headers(profile: Profile, wait: float) -> dict[str, str]:
    """``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``, as the profile
    sends them on refusals that waiting cures."""
    headers: dict[str, str] = {}
    if profile.retry_after:
        headers["retry-after"] = str(max(1, math.ceil(round(wait, 6))))
    if profile.retry_after_ms:
        headers["retry-after-ms"] = str(max(1, math.ceil(round(wait * 1000, 3))))
    return headers


def _never_retry(profile: Profile) -> dict[str, str]:
    return {"x-should-retry": "false"} if profile.should_retry_header else {}


def rate_limited_denial(
    profile: Profile,
    refusal: Refusal,
    retry_after: float,
    *,
    model: str,
    organization: str,
    project: str | None,
    operation: str,
    api_version: str,
) -> Denial:
    """The 429 for a request that will fit once the buckets refill.

    ``refusal`` is quoted in the message; ``retry_after`` (which covers every refusing
    bucket) goes in the ``Retry-After`` headers.
    """
    kind = "requests" if refusal.metric == "requests" else "tokens"
    headers = retry_headers(profile, retry_after)
    if profile.error_style == "azure":
        seconds = max(1, math.ceil(round(retry_after, 6)))
        which = "token" if kind == "tokens" else "call"
        message = (
            f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} "
            f"have exceeded {which} rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {seconds} seconds. {_AZURE_MORE}"
        )
        return Denial(429, {"error": {"code": "429", "message": message}}, headers)
    numbers = (
        f"Limit {refusal.limit}, Used {refusal.used}, Requested {refusal.requested}. "
        f"Please try again in {format_duration(refusal.wait)}."
    )
    if profile.error_style == "groq":
        message = (
            f"Rate limit reached for model `{model}` in organization `{organization}` service tier "
            f"`on_demand` on {_GROQ_WHAT[refusal.name]}: {numbers} {_GROQ_MORE}"
        )
    else:
        where = _where(refusal, organization, project)
        what = _OPENAI_WHAT[refusal.name]
        message = f"Rate limit reached for {model} {where} on {what}: {numbers} {_OPENAI_MORE}"
    return Denial(429, error_body(message, kind, None, "rate_limit_exceeded"), headers)


def too_large_denial(
    profile: Profile, refusal: Refusal, *, model: str, organization: str, project: str | None
) -> Denial:
    """The refusal of a request bigger than a bucket can ever hold: no ``Retry-After``."""
    limit = math.floor(refusal.capacity)
    if profile.error_style == "groq":
        message = (
            f"Request too large for model `{model}` in organization `{organization}` service tier "
            f"`on_demand` on {_GROQ_WHAT[refusal.name]}: Limit {limit}, "
            f"Requested {refusal.requested}, please reduce your message size and try again. "
            + _GROQ_MORE
        )
        return Denial(
            413, error_body(message, "tokens", None, "rate_limit_exceeded"), _never_retry(profile)
        )
    where = _where(refusal, organization, project)
    message = (
        f"Request too large for {model} {where} on {_OPENAI_WHAT[refusal.name]}: Limit {limit}, "
        f"Requested {refusal.requested}. "
        "The input or output tokens must be reduced in order to run successfully."
    )
    return Denial(
        429, error_body(message, "tokens", None, "rate_limit_exceeded"), _never_retry(profile)
    )


def quota_denial(profile: Profile) -> Denial:
    """The billing 429: retrying never helps, so no ``Retry-After``."""
    body = error_body(QUOTA, "insufficient_quota", None, "insufficient_quota")
    return Denial(429, body, _never_retry(profile))


def _where(refusal: Refusal, organization: str, project: str | None) -> str:
    if refusal.project and project is not None:
        return f"in project {project} organization {organization}"
    return f"in organization {organization}"
