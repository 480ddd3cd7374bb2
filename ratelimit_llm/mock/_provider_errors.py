"""The refusals of the providers that do not word them as OpenAI does.

Statuses, envelopes and texts follow what ``docs/providers.md`` and
``tests/test_dialects.py`` cite (the providers' documents and captured bodies); where a
provider documents a refusal only in words, the shape is OpenAI's envelope and the docs
say "shape assumed". Every body carries what the provider's own refusal carries and
nothing a client could not get from it: the numbers a message quotes are the bucket's
(``Refusal``) or the calls in flight's (``InFlightRefusal``), so that a classifier reading
them learns what the server really did.
"""

from __future__ import annotations

import math
from typing import Any

from ._buckets import INPUT_TPM, OUTPUT_TPM, PROJECT_TPM, RPD, RPM, RPS, TPD, TPM, TPS, Refusal
from ._errors import OVERLOADED, error_body
from ._inflight import InFlightRefusal
from ._provider_headers import WINDOW_WORDS

__all__ = [
    "anthropic_overloaded",
    "anthropic_quota",
    "anthropic_rate_limited",
    "deepseek_in_flight",
    "deepseek_quota",
    "deepseek_rate_limited",
    "fireworks_overloaded",
    "fireworks_rate_limited",
    "gemini_overloaded",
    "gemini_rate_limited",
    "generic_in_flight",
    "openrouter_in_flight",
    "openrouter_quota",
    "openrouter_rate_limited",
    "tgi_overloaded",
    "together_overloaded",
    "together_rate_limited",
]

_WHAT = {
    "requests": "requests",
    "tokens": "tokens",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}


def _per(refusal: Refusal) -> str:
    """``"requests per second"``: what a refusing bucket counts, and over what window."""
    window = {RPS: 1.0, TPS: 1.0, RPD: 86_400.0, TPD: 86_400.0}.get(refusal.name, 60.0)
    return f"{_WHAT[refusal.metric]} per {WINDOW_WORDS[window]}"


def _seconds(wait: float) -> int:
    """A wait in whole seconds, rounded up and at least 1 (a ``Retry-After``)."""
    return max(1, math.ceil(round(wait, 6)))


# -- Together ---------------------------------------------------------------------------


def together_rate_limited(refusal: Refusal, *, model: str) -> tuple[int, dict[str, Any]]:
    """429 above the rate (the mock's static rate stands for Together's dynamic one),
    typed ``dynamic_token_limited`` or ``dynamic_request_limited`` (shape assumed)."""
    kind = "dynamic_request_limited" if refusal.metric == "requests" else "dynamic_token_limited"
    message = (
        f"You have exceeded your rate limit of {refusal.limit} {_per(refusal)} for model "
        f"{model}: Used {refusal.used}, Requested {refusal.requested}. Please slow down and "
        "keep your traffic steady."
    )
    return 429, error_body(message, kind)


def together_overloaded() -> tuple[int, dict[str, Any]]:
    """503 at or below the dynamic rate: the platform's capacity, not the caller's usage."""
    message = (
        "Service Unavailable: the model cannot serve this request right now. This is not "
        "due to your usage."
    )
    return 503, error_body(message, "server_error")


# -- Fireworks --------------------------------------------------------------------------


def fireworks_rate_limited(refusal: Refusal, *, model: str) -> tuple[int, dict[str, Any]]:
    """429 past the adaptive limit (and its soft margin); body text assumed."""
    message = (
        f"Too many requests: over the adaptive rate limit of {refusal.limit} "
        f"{_per(refusal)} for {model}. Please reduce your request rate and ramp up "
        "gradually."
    )
    return 429, {"error": {"object": "error", "type": "rate_limit_exceeded", "message": message}}


def fireworks_overloaded() -> tuple[int, dict[str, Any]]:
    """503 "Service Overloaded": Fireworks' load shedding, not the caller's limit."""
    return 503, {
        "error": {"object": "error", "type": "server_error", "message": "Service Overloaded"}
    }


# -- OpenRouter -------------------------------------------------------------------------


def openrouter_rate_limited(cap: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """429 of a platform cap, the ``X-RateLimit-*`` repeated in ``error.metadata``."""
    body = {
        "error": {
            "message": f"Rate limit exceeded: {cap}. ",
            "code": 429,
            "metadata": {"headers": dict(headers), "provider_name": None},
        }
    }
    return 429, body


def openrouter_in_flight(refusal: InFlightRefusal) -> tuple[int, dict[str, Any], dict[str, str]]:
    """402 past the in-flight spending budget, with the ``Retry-After`` OpenRouter
    documents for it; a call larger than the whole budget gets ``weight_exceeds_budget``
    and no wait (retrying cannot help)."""
    if refusal.too_large:
        body = {
            "error": {
                "code": 402,
                "message": "This request is larger than your in-flight budget.",
                "metadata": {
                    "reason": "weight_exceeds_budget",
                    "limit_source": "openrouter_credits",
                },
            }
        }
        return 402, body, {}
    body = {
        "error": {
            "code": 402,
            "message": "This request would exceed your available credits given your current "
            "in-flight requests. Retry after in-flight requests settle, or add credits.",
            "metadata": {
                "reason": "in_flight_budget_exhausted",
                "limit_source": "openrouter_in_flight_budget",
                "remedy_hint": "Retry after your in-flight requests settle (see the "
                "Retry-After header). Adding credits raises your in-flight budget, up to a "
                "capped ceiling.",
            },
        }
    }
    return 402, body, {"retry-after": str(_seconds(refusal.wait))}


def openrouter_quota() -> tuple[int, dict[str, Any]]:
    """402 for spent credits: final, whatever a retry might hope."""
    message = "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
    return 402, {"error": {"code": 402, "message": message}}


# -- Gemini -----------------------------------------------------------------------------

_GOOGLE = "type.googleapis.com/google.rpc."
_GEMINI_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
# Each bucket as Gemini names its quota: (quotaMetric, quotaId).
_GEMINI_QUOTAS: dict[str, tuple[str, str]] = {
    RPM: ("generate_requests_per_model", "GenerateRequestsPerMinutePerProjectPerModel"),
    RPD: ("generate_requests_per_model_per_day", "GenerateRequestsPerDayPerProjectPerModel"),
    RPS: ("generate_requests_per_model_per_second", "GenerateRequestsPerSecondPerProjectPerModel"),
    TPM: ("generate_content_token_count", "GenerateContentTokensPerModelPerMinute"),
    PROJECT_TPM: ("generate_content_token_count", "GenerateContentTokensPerModelPerMinute"),
    TPD: ("generate_content_token_count_per_day", "GenerateContentTokensPerModelPerDay"),
    TPS: ("generate_content_token_count_per_second", "GenerateContentTokensPerModelPerSecond"),
    INPUT_TPM: (
        "generate_content_input_token_count",
        "GenerateContentInputTokensPerModelPerMinute",
    ),
    OUTPUT_TPM: (
        "generate_content_output_token_count",
        "GenerateContentOutputTokensPerModelPerMinute",
    ),
}


def _duration(seconds: float) -> str:
    """A JSON ``Duration`` with up to nine decimals, as Gemini's messages write it."""
    text = f"{max(0.0, seconds):.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def gemini_rate_limited(
    refusal: Refusal, *, model: str, array: bool
) -> tuple[int, dict[str, Any] | list[Any]]:
    """429 ``RESOURCE_EXHAUSTED``: "You exceeded your current quota" (for what is a rate
    limit), the quota's line in the message, and ``QuotaFailure``, ``Help`` and
    ``RetryInfo`` details (``retryDelay`` in whole seconds, the message's wait exact)."""
    metric, quota_id = _GEMINI_QUOTAS.get(refusal.name, _GEMINI_QUOTAS[RPM])
    full_metric = f"generativelanguage.googleapis.com/{metric}"
    message = (
        "You exceeded your current quota, please check your plan and billing details. For "
        f"more information on this error, head to: {_GEMINI_DOCS}. To monitor your current "
        f"usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: "
        f"{full_metric}, limit: {refusal.limit}, model: {model}\n"
        f"Please retry in {_duration(refusal.wait)}."
    )
    error = {
        "code": 429,
        "message": message,
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": _GOOGLE + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": full_metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": str(refusal.limit),
                    }
                ],
            },
            {
                "@type": _GOOGLE + "Help",
                "links": [
                    {"description": "Learn more about Gemini API quotas", "url": _GEMINI_DOCS}
                ],
            },
            {"@type": _GOOGLE + "RetryInfo", "retryDelay": f"{math.floor(refusal.wait)}s"},
        ],
    }
    body: dict[str, Any] = {"error": error}
    return 429, [body] if array else body


def gemini_overloaded(*, array: bool) -> tuple[int, dict[str, Any] | list[Any]]:
    """503 ``UNAVAILABLE``: "The model is overloaded"."""
    error = {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
    body: dict[str, Any] = {"error": error}
    return 503, [body] if array else body


# -- Anthropic (its OpenAI-compatible endpoint) -------------------------------------------

_ANTHROPIC_MORE = (
    "For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the "
    "response headers for current usage. Please reduce the prompt length or the maximum "
    "tokens requested, or try again later. You may also contact sales at "
    "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
    "increase."
)


def anthropic_rate_limited(refusal: Refusal, *, organization: str) -> tuple[int, dict[str, Any]]:
    """429 "This request would exceed the rate limit for your organization (...) of
    20,000 input tokens per minute", typed ``invalid_request_error`` with code
    ``rate_limit_error``, as the OpenAI-compatible endpoint answers."""
    message = (
        f"This request would exceed the rate limit for your organization ({organization}) "
        f"of {refusal.limit:,} {_per(refusal)}. {_ANTHROPIC_MORE}"
    )
    body = {
        "error": {
            "code": "rate_limit_error",
            "message": message,
            "type": "invalid_request_error",
            "param": None,
        }
    }
    return 429, body


def anthropic_overloaded() -> tuple[int, dict[str, Any]]:
    """529 ``overloaded_error``: Anthropic's own capacity."""
    return 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def anthropic_quota() -> tuple[int, dict[str, Any]]:
    """400 for a spent credit balance: final."""
    message = (
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits."
    )
    return 400, error_body(message, "invalid_request_error")


# -- DeepSeek ---------------------------------------------------------------------------


def deepseek_in_flight(refusal: InFlightRefusal) -> tuple[int, dict[str, Any]]:
    """429 past the calls in flight, in DeepSeek's words (shape assumed)."""
    current = refusal.in_flight + refusal.requested
    message = (
        f"Your current concurrency is {current}, which exceeds your concurrency limit of "
        f"{refusal.limit} based on your remaining balance. Please top up your balance to "
        "restore your concurrency."
    )
    return 429, error_body(message, "rate_limit_error")


def deepseek_rate_limited() -> tuple[int, dict[str, Any]]:
    """429 "Rate Limit Reached" (DeepSeek meters no rate; a limit set anyway says this)."""
    return 429, error_body("Rate Limit Reached", "rate_limit_error")


def deepseek_quota() -> tuple[int, dict[str, Any]]:
    """402 "Insufficient Balance": final."""
    return 402, error_body("Insufficient Balance", "unknown_error", None, "invalid_request")


# -- TGI ----------------------------------------------------------------------------------


def tgi_overloaded() -> tuple[int, dict[str, Any]]:
    """429 "Model is overloaded": TGI's answer past ``--max-concurrent-requests`` (its
    only refusal of the kind)."""
    return 429, {"error": "Model is overloaded", "error_type": "overloaded"}


# -- any other dialect --------------------------------------------------------------------


def generic_in_flight(refusal: InFlightRefusal, *, model: str) -> tuple[int, dict[str, Any]]:
    """429 past the calls (or tokens) in flight, for a dialect without a refusal of its
    own for that: worded so that a reader can tell it from a rate limit."""
    if refusal.reason == "concurrency":
        message = (
            f"Too many concurrent requests for {model}: your current concurrency is "
            f"{refusal.in_flight + 1}, over the concurrency limit of {refusal.limit}. Please "
            "try again when one of your requests finishes."
        )
    else:
        message = (
            f"Too many tokens in concurrent requests for {model}: {refusal.in_flight} held "
            f"by requests in flight and {refusal.requested} requested, over the in-flight "
            f"limit of {refusal.limit} tokens. Please try again when one of your requests "
            "finishes."
        )
    return 429, error_body(message, "requests", None, "rate_limit_exceeded")


def openai_overloaded() -> tuple[int, dict[str, Any]]:
    """OpenAI's 503 "The engine is currently overloaded"."""
    return 503, error_body(OVERLOADED, "server_error")
