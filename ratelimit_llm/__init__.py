"""ratelimit-llm: push OpenAI-style APIs as hard as your quota allows, and never harder."""

from __future__ import annotations

from ._bucket import Bucket
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
from ._limiter import LimiterStatistics, RateLimiter, Reservation
from ._types import Cost, Dimension, Limits

__all__ = [
    "APIStatusError",
    "AcquireTimeoutError",
    "AuthenticationError",
    "Bucket",
    "CapacityExceededError",
    "Cost",
    "Dimension",
    "InsufficientQuotaError",
    "LimiterStatistics",
    "Limits",
    "RateLimitError",
    "RateLimitLLMError",
    "RateLimiter",
    "RequestTooLargeError",
    "Reservation",
    "ReservationError",
    "ServerError",
    "WouldBlock",
]
