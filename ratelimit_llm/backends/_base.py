"""Where a limiter keeps its state: the `Backend` interface and the in-process backend.

A backend hands out limiters for *quota scopes* (one scope per credential and model group
in `wrap`, any name you choose elsewhere). Every limiter a backend gives out for one scope
draws on the same quota: in this process for `MemoryBackend`, across processes and hosts
for `RedisBackend`. Limiters from either backend implement one interface (`Limiter`), so
the transport, the learner, the decorator, the strategies and the batch runner work
unchanged on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from .._interface import Limiter
from .._limiter import RateLimiter
from .._line import DEFAULT_LANES
from .._types import Dimension, Limits

__all__ = ["Backend", "MemoryBackend"]

Clock = Callable[[], float]


@runtime_checkable
class Backend(Protocol):
    """Makes the limiters whose state a backend keeps."""

    def limiter(
        self,
        limits: Limits | Sequence[Dimension],
        *,
        scope: str,
        clock: Clock | None = None,
        follow_server_limits: bool = True,
        lanes: Mapping[str, float] = DEFAULT_LANES,
    ) -> Limiter:
        """The limiter of quota ``scope``; ``limits`` set it up if it is new.

        Limiters for the same scope share one quota. ``clock`` is honoured by backends
        whose time is local (the memory backend); a shared backend keeps its own time.
        """
        ...

    async def aclose(self) -> None:
        """Release connections (a shared backend); nothing to do in memory."""
        ...


class MemoryBackend:
    """State in this process: the default, and the fastest (no I/O on any call).

    Asking twice for one scope returns the same limiter, so two wrapped clients that use
    the same backend object share their quota just as two processes do over Redis.
    """

    __slots__ = ("_limiters",)

    def __init__(self) -> None:
        self._limiters: dict[str, RateLimiter] = {}

    def limiter(
        self,
        limits: Limits | Sequence[Dimension],
        *,
        scope: str,
        clock: Clock | None = None,
        follow_server_limits: bool = True,
        lanes: Mapping[str, float] = DEFAULT_LANES,
    ) -> RateLimiter:
        limiter = self._limiters.get(scope)
        if limiter is None:
            limiter = RateLimiter(
                limits, clock=clock, follow_server_limits=follow_server_limits, lanes=lanes
            )
            self._limiters[scope] = limiter
        return limiter

    async def aclose(self) -> None:
        """Nothing to release: the state lives in this process."""
        return None

    def __repr__(self) -> str:
        return f"<MemoryBackend scopes={len(self._limiters)}>"
