"""Every exception ratelimit-llm raises, in one place.

The names follow the ``openai`` SDK's style (``...Error``, one base class), and none
of them shadows one of its names, so both can be caught side by side.

The tree::

    RateLimitLLMError
    ├── CapacityExceededError (also ValueError)  a cost no bucket could ever hold
    ├── WouldBlock (also anyio.WouldBlock)       acquire_nowait() found no room
    ├── AcquireTimeoutError (also TimeoutError)  a waiter's deadline passed
    ├── ReservationError (also RuntimeError)     a reservation used after it was closed
    └── CredentialsExhaustedError                every credential was retired

What the *server* refused is not here: when the limiter gives up on a call it hands the
last answer back to the SDK, which raises its own ``openai.RateLimitError``,
``openai.APIStatusError`` and so on, as code around the SDK already expects.

Nothing here ever carries an API key: callers name keys by a redacted form only.
"""

from __future__ import annotations

import anyio

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

    def __reduce__(self) -> tuple[type[CapacityExceededError], tuple[str, float, float]]:
        # Pickled with its own arguments (the default would pass the message back in),
        # so it crosses process pools and job queues.
        return type(self), (self.dimension, self.requested, self.capacity)


class WouldBlock(RateLimitLLMError, anyio.WouldBlock):
    """``acquire_nowait()`` could not be served without waiting."""


class AcquireTimeoutError(RateLimitLLMError, TimeoutError):
    """A waiter's deadline passed before capacity was granted; its place was released."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"no capacity was granted within {timeout:g} s")

    def __reduce__(self) -> tuple[type[AcquireTimeoutError], tuple[float]]:
        return type(self), (self.timeout,)


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

    def __reduce__(self) -> tuple[type[CredentialsExhaustedError], tuple[dict[str, str]]]:
        return type(self), (self.reasons,)


class BackendUnavailableError(RateLimitLLMError, ConnectionError):
    """The shared backend (Redis) could not be reached, or did not answer in time.

    Raised by limiters whose backend is configured to *fail closed*; with a local
    fallback share configured, calls are served from it instead. The message names the
    backend by host and port only (never a password), and the driver's own exception is
    not chained, so nothing of the connection settings leaks into logs.
    """


class BackendError(RateLimitLLMError):
    """The shared backend answered, with a refusal no waiting will cure.

    Wrong credentials, a user without the rights to run scripts, a key of the wrong
    type in the namespace, a server out of memory: raised whatever the outage policy,
    since falling back would hide a configuration that has to be fixed. The message
    names the backend by host and port only.
    """
