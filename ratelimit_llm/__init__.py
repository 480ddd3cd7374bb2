"""ratelimit-llm: push OpenAI-style APIs as hard as your quota allows, and never harder.

The two ways in::

    client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)   # every call limited

    limiter = ratelimit_llm.RateLimiter(ratelimit_llm.Limits(rpm=500, tpm=200_000))
    async with limiter.acquire(Cost(requests=1, tokens=1_200)) as reservation:
        ...
        reservation.settle(actual_cost)
"""

from __future__ import annotations

from ._bucket import Bucket
from ._classify import ErrorInfo, ErrorKind, classify_error, classify_error_payload
from ._credentials import Credential, redact_key
from ._estimate import CostEstimator, cost_from_usage, estimate_cost
from ._exceptions import (
    AcquireTimeoutError,
    BackendError,
    BackendUnavailableError,
    CapacityExceededError,
    CredentialsExhaustedError,
    RateLimitLLMError,
    ReservationError,
    WouldBlock,
)
from ._headers import DimensionSnapshot, RateLimitSnapshot, parse_rate_limit_headers
from ._interface import Limiter, Reservation
from ._limiter import LimiterStatistics, RateLimiter
from ._pool import LimiterPool
from ._strategy import Attempt, Decision, Strategy, compose
from ._telemetry import Event, RouteStatistics, Telemetry
from ._transport import RateLimitedTransport
from ._types import Cost, Dimension, Limits
from ._wrap import http_client, transport_of, wrap
from .backends import Backend, MemoryBackend, backend_from
from .runs import run
from .strategies import AdaptiveBackoff, CredentialState, FixedDelay, KeyRotation

__version__ = "0.1.0.dev0"

__all__ = [
    "AcquireTimeoutError",
    "AdaptiveBackoff",
    "Attempt",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Bucket",
    "CapacityExceededError",
    "Cost",
    "CostEstimator",
    "Credential",
    "CredentialState",
    "CredentialsExhaustedError",
    "Decision",
    "Dimension",
    "DimensionSnapshot",
    "ErrorInfo",
    "ErrorKind",
    "Event",
    "FixedDelay",
    "KeyRotation",
    "Limiter",
    "LimiterPool",
    "LimiterStatistics",
    "Limits",
    "MemoryBackend",
    "RateLimitLLMError",
    "RateLimitSnapshot",
    "RateLimitedTransport",
    "RateLimiter",
    "Reservation",
    "ReservationError",
    "RouteStatistics",
    "Strategy",
    "Telemetry",
    "WouldBlock",
    "backend_from",
    "classify_error",
    "classify_error_payload",
    "compose",
    "cost_from_usage",
    "estimate_cost",
    "http_client",
    "parse_rate_limit_headers",
    "redact_key",
    "run",
    "transport_of",
    "wrap",
]
