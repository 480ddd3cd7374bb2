"""Error bodies shared by the strategy tests, in the shapes the research file records."""

from __future__ import annotations

from typing import Any

__all__ = ["QUOTA_429", "envelope"]


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
