"""Error bodies shared by the strategy tests, in the shapes the research file records."""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEEPSEEK_CONCURRENCY_429",
    "GEMINI_PER_DAY_429",
    "OPENROUTER_FREE_DAILY_429",
    "OPENROUTER_IN_FLIGHT_402",
    "QUOTA_429",
    "TGI_OVERLOADED_429",
    "envelope",
]


def envelope(message: str, type_: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope around ``message``."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


QUOTA_429 = envelope(
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
    "insufficient_quota",
)


# --- provider dialects: captures and documented examples -----------------------------
# Each constant cites where its text comes from; numbers that vary per account are kept
# as captured. Shapes a provider documents only in words are marked "shape assumed".

# DeepSeek's message, quoted verbatim in
# https://github.com/tarigelamin1997/jobfetcher/pull/42 (shape assumed: OpenAI's envelope).
DEEPSEEK_CONCURRENCY_429 = envelope(
    "Your current concurrency is 40, which exceeds your concurrency limit of 39 based on "
    "your remaining balance. Please top up your balance to restore your concurrency.",
    "rate_limit_error",
)

# TGI's router: InferError::Overloaded is "Model is overloaded", error_type "overloaded",
# answered with 429 (huggingface/text-generation-inference router/src/infer; issue 439:
# https://github.com/huggingface/text-generation-inference/issues/439).
TGI_OVERLOADED_429: dict[str, Any] = {"error": "Model is overloaded", "error_type": "overloaded"}

# https://openrouter.ai/docs/api_reference/limits ("In-flight spending budget").
OPENROUTER_IN_FLIGHT_402: dict[str, Any] = {
    "error": {
        "code": 402,
        "message": "This request would exceed your available credits given your current "
        "in-flight requests. Retry after in-flight requests settle, or add credits.",
        "metadata": {
            "reason": "in_flight_budget_exhausted",
            "limit_source": "openrouter_in_flight_budget",
            "remedy_hint": "Retry after your in-flight requests settle (see the Retry-After "
            "header). Adding credits at https://openrouter.ai/settings/credits raises your "
            "in-flight budget, up to a capped ceiling.",
        },
    }
}

# https://github.com/Gitlawb/openclaude/issues/936 (the headers repeated in the body);
# the reset is the next UTC midnight in epoch ms, as in a capture quoted by a public
# test ("X-RateLimit-Reset": "1768348800000").
OPENROUTER_FREE_DAILY_429: dict[str, Any] = {
    "error": {
        "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 "
        "free model requests per day",
        "code": 429,
        "metadata": {
            "headers": {
                "X-RateLimit-Limit": "50",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "1768348800000",
            },
            "provider_name": None,
        },
    }
}

# https://github.com/diegosouzapw/OmniRoute/issues/9504 (the per-day capture).
GEMINI_PER_DAY_429: dict[str, Any] = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, "
        "head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: "
        "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, "
        "model: gemini-3.6-flash\nPlease retry in 36.429760048s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                        "quotaDimensions": "[MaxDepth]",
                        "quotaValue": "20",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"},
        ],
    }
}
