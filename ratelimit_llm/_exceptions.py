"""Every exception ratelimit-llm raises, in one place.

The names follow the ``openai`` SDK where they mean the same thing (``APIStatusError``,
``RateLimitError``), so code that already catches the SDK's errors reads naturally.

The tree::

    RateLimitLLMError
    ├── CapacityExceededError (also ValueError)  a cost no bucket could ever hold
    ├── WouldBlock (also anyio.WouldBlock)       acquire_nowait() found no room
    ├── AcquireTimeoutError (also TimeoutError)  a waiter's deadline passed
    ├── ReservationError (also RuntimeError)     a reservation used after it was closed
    ├── CredentialsExhaustedError                every credential was retired
    └── APIStatusError                           the server refused and we gave up
        ├── RateLimitError                       429 that waiting may cure
        │   ├── InsufficientQuotaError           429 quota/billing: never retried
        │   └── RequestTooLargeError             429 "Request too large": never fits
        ├── AuthenticationError                  401/403: the credential is refused
        └── ServerError                          5xx after the retry budget ran out

Nothing here ever carries an API key: callers name keys by a redacted form only.
"""

from __future__ import annotations

import anyio

__all__ = [
    "APIStatusError",
    "AcquireTimeoutError",
    "AuthenticationError",
    "CapacityExceededError",
    "CredentialsExhaustedError",
    "InsufficientQuotaError",
    "RateLimitError",
    "RateLimitLLMError",
    "RequestTooLargeError",
    "ReservationError",
    "ServerError",
    "WouldBlock",
]


class RateLimitLLMError(Exception):
    """Base class of every error raised by ratelimit-llm."""


class CapacityExceededError(RateLimitLLMError, ValueError):
    """A cost is larger than a bucket can ever hold, so waiting would never end.

    Raised at once instead of hanging (or slipping through). ``dimension`` names the
    bucket, ``capacity`` is its depth and ``requested`` what the call asked for.
    """

    def __init__(self, dimension: str, requested: float, capacity: float) -> None:
        self.dimension = dimension
        self.requested = requested
        self.capacity = capacity
        super().__init__(
            f"a cost of {requested:g} exceeds the capacity of {dimension} ({capacity:g}): "
            "the request can never be granted; split it or raise the limit"
        )


class WouldBlock(RateLimitLLMError, anyio.WouldBlock):
    """``acquire_nowait()`` could not be served without waiting."""


class AcquireTimeoutError(RateLimitLLMError, TimeoutError):
    """A waiter's deadline passed before capacity was granted; its place was released."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"no capacity was granted within {timeout:g} s")


class ReservationError(RateLimitLLMError, RuntimeError):
    """A reservation was settled or released after it had already been closed."""


class CredentialsExhaustedError(RateLimitLLMError):
    """Every credential in rotation was retired (401/403, insufficient quota).

    ``reasons`` maps each credential's redacted name to why it was retired.
    """

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = dict(reasons)
        listed = "; ".join(f"{name}: {why}" for name, why in self.reasons.items())
        super().__init__(f"no usable credential is left ({listed or 'none configured'})")


class APIStatusError(RateLimitLLMError):
    """The server answered with an error status and the limiter gave up on the call.

    ``status_code`` is the HTTP status, ``code`` and ``type`` come from the error body when
    it had them, and ``key`` is the redacted name of the credential that was used.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        type: str | None = None,
        key: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.type = type
        self.key = key
        super().__init__(message)


class RateLimitError(APIStatusError):
    """HTTP 429 that the limiter could not get past within its retry budget."""


class InsufficientQuotaError(RateLimitError):
    """HTTP 429 ``insufficient_quota``: billing or credits, which no retry can fix."""


class RequestTooLargeError(RateLimitError):
    """HTTP 429 "Request too large": the call exceeds the server's limit on its own."""


class AuthenticationError(APIStatusError):
    """HTTP 401/403: the server refused the credential."""


class ServerError(APIStatusError):
    """HTTP 5xx (or a connection failure) that outlasted the retry budget."""
