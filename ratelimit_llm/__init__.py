"""ratelimit-llm: push OpenAI-style APIs as hard as your quota allows, and never harder."""

from __future__ import annotations

from ._exceptions import (
    AcquireTimeoutError,
    APIStatusError,
    AuthenticationError,
    CapacityExceededError,
    InsufficientQuotaError,
    RateLimitError,
    RateLimitLLMError,
    RequestTooLargeError,
    ReservationError,
    ServerError,
    WouldBlock,
)
from ._types import Cost, Dimension, Limits

__all__ = [
    "APIStatusError",
    "AcquireTimeoutError",
    "AuthenticationError",
    "CapacityExceededError",
    "Cost",
    "Dimension",
    "InsufficientQuotaError",
    "Limits",
    "RateLimitError",
    "RateLimitLLMError",
    "RequestTooLargeError",
    "ReservationError",
    "ServerError",
    "WouldBlock",
]
