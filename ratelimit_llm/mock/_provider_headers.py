"""The rate-limit headers of the providers that do not speak OpenAI's triplets.

Each function writes one provider's family from the buckets (already refilled to now),
in the formats ``docs/providers.md`` and ``tests/test_dialects.py`` cite: Together's
per-second pairs, Fireworks' prompt and generated limits stated per second, Anthropic's
``anthropic-ratelimit-*`` with RFC 3339 resets, OpenRouter's ``X-RateLimit-*`` with an
epoch-millisecond reset (only on its own 429s), and the utilisation figure of Azure's
provisioned deployments. They are what ratelimit-llm's own header reader is tested
against, so a value here is never rounded in a way the provider does not round it.

Instants (Anthropic's resets, OpenRouter's) are written from ``wall``, the Unix time of
the answer, plus the bucket's own seconds to go: a client on the same machine reads them
back to the same span whatever clock drives the buckets.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ._buckets import (
    INPUT_TPM,
    MINUTE,
    OUTPUT_TPM,
    RPD,
    RPM,
    RPS,
    TOKEN_METRICS,
    TPD,
    TPM,
    TPS,
    Bucket,
    BucketSet,
)

__all__ = [
    "WINDOW_WORDS",
    "anthropic_headers",
    "epoch_millis",
    "fireworks_headers",
    "openrouter_cap",
    "openrouter_headers",
    "rfc3339",
    "seconds_text",
    "together_headers",
    "utilization_header",
]


def seconds_text(seconds: float) -> str:
    """Seconds rounded up to the millisecond, without trailing zeros: ``0.1``, ``1``."""
    millis = math.ceil(round(max(0.0, seconds) * 1000, 6))
    return f"{millis / 1000:g}"


def rfc3339(instant: float) -> str:
    """A Unix time as RFC 3339 in UTC, rounded up to the whole second (never early)."""
    moment = datetime.fromtimestamp(math.ceil(round(instant, 6)), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_millis(instant: float) -> str:
    """A Unix time in whole milliseconds, rounded up, as OpenRouter writes its resets."""
    return str(math.ceil(round(instant * 1000, 3)))


def together_headers(buckets: BucketSet) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}`` (requests per second) and
    ``x-tokenlimit-{limit,remaining}`` (tokens per second), from the ``rps``/``tps``
    buckets; the reset is the time until the request bucket is full again."""
    headers: dict[str, str] = {}
    requests = buckets.get(RPS)
    if requests is not None:
        headers["x-ratelimit-limit"] = str(requests.limit)
        headers["x-ratelimit-remaining"] = str(requests.remaining())
        headers["x-ratelimit-reset"] = seconds_text(requests.time_to_full())
    tokens = buckets.get(TPS)
    if tokens is not None:
        headers["x-tokenlimit-limit"] = str(tokens.limit)
        headers["x-tokenlimit-remaining"] = str(tokens.remaining())
    return headers


def fireworks_headers(buckets: BucketSet) -> dict[str, str]:
    """The prompt and generated limits in tokens per second (Fireworks enforces them per
    minute and states them per second), and ``x-ratelimit-over-limit``: ``yes`` while any
    token bucket is past its limit (borrowing from the profile's soft limit)."""
    headers: dict[str, str] = {}
    for name, suffix in ((INPUT_TPM, "prompt"), (OUTPUT_TPM, "generated")):
        bucket = buckets.get(name)
        if bucket is not None:
            seconds = bucket.window  # a per-minute bucket, stated per second
            headers[f"x-ratelimit-limit-tokens-{suffix}"] = str(math.floor(bucket.limit / seconds))
            headers[f"x-ratelimit-remaining-tokens-{suffix}"] = str(
                max(0, math.floor(bucket.level / seconds))
            )
    over = any(bucket.level < 0 for bucket in buckets if bucket.metric in TOKEN_METRICS)
    headers["x-ratelimit-over-limit"] = "yes" if over else "no"
    return headers


def anthropic_headers(buckets: BucketSet, wall: float) -> dict[str, str]:
    """``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*``.

    ``tokens`` is the token bucket in force that is closest to its limit (Anthropic: "the
    most restrictive limit currently in effect"); resets are the instants the buckets
    are full again.
    """
    triplets: list[tuple[str, Bucket]] = []
    requests = buckets.get(RPM)
    if requests is not None:
        triplets.append(("requests", requests))
    token_buckets = [
        bucket for name in (TPM, INPUT_TPM, OUTPUT_TPM) if (bucket := buckets.get(name)) is not None
    ]
    if token_buckets:
        tightest = max(token_buckets, key=lambda bucket: bucket.used())
        triplets.append(("tokens", tightest))
    for name, label in ((INPUT_TPM, "input-tokens"), (OUTPUT_TPM, "output-tokens")):
        bucket = buckets.get(name)
        if bucket is not None:
            triplets.append((label, bucket))
    headers: dict[str, str] = {}
    for label, bucket in triplets:
        prefix = f"anthropic-ratelimit-{label}"
        headers[f"{prefix}-limit"] = str(bucket.limit)
        headers[f"{prefix}-remaining"] = str(bucket.remaining())
        headers[f"{prefix}-reset"] = rfc3339(wall + bucket.time_to_full())
    return headers


def openrouter_cap(bucket_name: str) -> str:
    """The name OpenRouter gives a platform cap in its 429 message."""
    return {
        RPM: "free-models-per-min",
        RPD: "free-models-per-day",
        RPS: "requests-per-sec",
        TPM: "tokens-per-min",
        TPD: "tokens-per-day",
        TPS: "tokens-per-sec",
    }.get(bucket_name, bucket_name.replace("/", "-per-"))


def openrouter_headers(bucket: Bucket, wait: float, wall: float) -> dict[str, str]:
    """``X-RateLimit-{Limit,Remaining,Reset}`` of a cap that refused: the reset is the
    instant the refused request fits again, in epoch milliseconds."""
    return {
        "X-RateLimit-Limit": str(bucket.limit),
        "X-RateLimit-Remaining": str(bucket.remaining()),
        "X-RateLimit-Reset": epoch_millis(wall + wait),
    }


def utilization_header(buckets: BucketSet) -> dict[str, str]:
    """``azure-openai-deployment-utilization``: the busiest bucket's share in use, as
    ``"23.5%"`` (past 100 % while a bucket is in debt); nothing without buckets."""
    shares = [bucket.used() for bucket in buckets]
    if not shares:
        return {}
    percent = max(0.0, max(shares) * 100)
    return {"azure-openai-deployment-utilization": f"{percent:.1f}%"}


# Each bucket's window in the words providers use ("per minute"), for the bodies.
WINDOW_WORDS: dict[float, str] = {1.0: "second", MINUTE: "minute", 86_400.0: "day"}
