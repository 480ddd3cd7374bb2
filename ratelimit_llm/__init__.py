"""ratelimit-llm: push OpenAI-style APIs as hard as your quota allows, and never harder.

The ways in::

    client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)   # every call limited

    limiter = ratelimit_llm.RateLimiter(ratelimit_llm.Limits(rpm=500, tpm=200_000))
    async with limiter.acquire(ratelimit_llm.Cost(requests=1, tokens=1_200)) as reservation:
        ...
        reservation.settle(actual_cost)

The top level holds what a user touches; the rest has a module of its own:
`ratelimit_llm.strategies` (writing a strategy), `ratelimit_llm.errors` (every
exception), `ratelimit_llm.telemetry`, `ratelimit_llm.providers` (reading headers and
refusals), `ratelimit_llm.costs`, `ratelimit_llm.backends`, `ratelimit_llm.core` (the
bucket, the learner, the limiter protocols), `ratelimit_llm.batch` (the Batch API),
`ratelimit_llm.runs` (`run`'s results and options: a dataset online or in batches),
`ratelimit_llm.mock` and `ratelimit_llm.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The public submodules that only re-export, loaded with the package so that
# ``ratelimit_llm.errors.WouldBlock`` works after ``import ratelimit_llm``.
from . import core, costs, errors, providers, telemetry  # noqa: F401
from ._exceptions import (
    AcquireTimeoutError,
    BackendUnavailableError,
    CapacityExceededError,
    CredentialsExhaustedError,
    RateLimitLLMError,
)
from ._limiter import RateLimiter
from ._line import lane
from ._pool import LimiterPool
from ._transport import RateLimitedTransport
from ._types import Cost, Limits
from ._wrap import http_client, transport_of, wrap
from .backends import MemoryBackend
from .strategies import AdaptiveBackoff, FixedDelay, KeyRotation

if TYPE_CHECKING:
    from .backends import RedisBackend
    from .runs import run

__version__ = "0.1.0.dev0"

__all__ = [
    "AcquireTimeoutError",
    "AdaptiveBackoff",
    "BackendUnavailableError",
    "CapacityExceededError",
    "Cost",
    "CredentialsExhaustedError",
    "FixedDelay",
    "KeyRotation",
    "LimiterPool",
    "Limits",
    "MemoryBackend",
    "RateLimitLLMError",
    "RateLimitedTransport",
    "RateLimiter",
    "RedisBackend",
    "http_client",
    "lane",
    "run",
    "transport_of",
    "wrap",
]


if not TYPE_CHECKING:  # type checkers see the import above, and no catch-all

    def __getattr__(name: str) -> Any:
        # RedisBackend lives with the optional redis extra: imported when first named.
        if name == "RedisBackend":
            from .backends import RedisBackend

            return RedisBackend
        # run brings the journal, the Batch API and the input readers: a third of a
        # second that ``import ratelimit_llm`` does not pay until it is named.
        if name == "run":
            from .runs import run

            run.__module__ = "ratelimit_llm"
            globals()["run"] = run
            return run
        raise AttributeError(f"module 'ratelimit_llm' has no attribute {name!r}")


# As httpx does: what is exported here says so in reprs and tracebacks
# (ratelimit_llm.AcquireTimeoutError, not ratelimit_llm._exceptions.AcquireTimeoutError).
for _name in __all__:
    if _name not in ("RedisBackend", "run"):
        globals()[_name].__module__ = "ratelimit_llm"
del _name
