"""Every exception ratelimit-llm raises (the most common are also at the top level).

::

    RateLimitLLMError
    ├── CapacityExceededError (also ValueError)   a cost no bucket could ever hold
    ├── WouldBlock (also anyio.WouldBlock)        acquire_nowait() found no room
    ├── AcquireTimeoutError (also TimeoutError)   a waiter's deadline passed
    ├── ReservationError (also RuntimeError)      a reservation used after it was closed
    ├── CredentialsExhaustedError                 every credential was retired
    ├── BackendUnavailableError (also ConnectionError)  Redis unreachable, failing closed
    └── BackendError                              Redis answered something unexpected

What the server refused is the SDK's to raise (``openai.RateLimitError`` and so on): the
limiter hands the last answer back when it gives up.
"""

from __future__ import annotations

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

__all__ = [
    "AcquireTimeoutError",
    "BackendError",
    "BackendUnavailableError",
    "CapacityExceededError",
    "CredentialsExhaustedError",
    "RateLimitLLMError",
    "ReservationError",
    "WouldBlock",
]
