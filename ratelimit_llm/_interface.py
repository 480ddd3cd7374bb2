"""The limiter interface: what the transport, the learner and the strategies rely on.

Two siblings implement it fully: `RateLimiter` (this process, the default) and
``RedisRateLimiter`` (one quota shared by many processes through Redis). Nothing above
the backends knows which one it holds, so a strategy, the learner, the decorator and the
batch runner work unchanged on both.

The two halves:

* **granting**: `Limiter.acquire` waits in line (FIFO) and returns a `Reservation`,
  which is settled against what the call really cost, or released if it was never sent;
* **correcting** (the learner's only): what the server stated (`observe_snapshot`,
  `resize`), the waits it named (`hold`), and what is only inferred: the pace
  (`set_pace`) and slow start's depth (`answered`, `grow`, `fall_back`). Inferred values
  lower the pace and the burst, never the largest call let through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, runtime_checkable

from ._types import Cost, Dimension

if TYPE_CHECKING:
    from ._headers import RateLimitSnapshot
    from ._limiter import LimiterStatistics

__all__ = ["AcquireCall", "Limiter", "Mark", "Reservation"]

P = ParamSpec("P")
R = TypeVar("R")

#: How much had been taken per dimension when a reservation was granted (see
#: `Limiter.mark`); a later header snapshot is discounted by what was taken after it.
Mark = tuple[float, ...]


@runtime_checkable
class Reservation(Protocol):
    """Capacity granted to one call: settle it with the real cost, or release it.

    A reservation left open keeps its estimate, which is the safe side.
    """

    #: The cost that was reserved.
    cost: Cost
    #: Seconds the reservation waited in line.
    waited: float

    @property
    def mark(self) -> Mark:
        """How much had been taken per dimension when this reservation was granted."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the reservation was settled or released."""
        ...

    def settle(self, actual: Cost) -> None:
        """Reconcile with what the call really cost (refund or debit the difference).

        :raises ReservationError: if it was already settled or released.
        """
        ...

    def release(self) -> None:
        """Give the whole reservation back: the call was never sent.

        :raises ReservationError: if it was already settled or released.
        """
        ...

    def sent(self) -> None:
        """Say that the call is leaving for the server now (after any wait of its own)."""
        ...

    def finish(self) -> None:
        """The call is over: its place among the calls in flight comes back (idempotent)."""
        ...


class AcquireCall(Protocol):
    """What `Limiter.acquire` returns: await it, or use it as ``async with``."""

    def __await__(self) -> Generator[Any, None, Reservation]: ...

    async def __aenter__(self) -> Reservation: ...

    def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Awaitable[None]: ...


@runtime_checkable
class Limiter(Protocol):
    """A FIFO line in front of a multi-dimension token bucket; see the module docstring."""

    def clock(self) -> float:
        """The limiter's clock, read now (reservations and snapshots use it)."""
        ...

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions with their stated limits (the server's, once it stated them)."""
        ...

    def acquire(
        self, cost: Cost | None = None, *, timeout: float | None = None, lane: str | None = None
    ) -> AcquireCall:
        """Wait in line until ``cost`` fits, take it, and return a `Reservation`.

        ``lane`` is the priority lane (see `ratelimit_llm.lane`); ``None`` takes the one a
        surrounding ``lane`` block names, else ``"default"``.

        :raises CapacityExceededError: at once, if ``cost`` can never fit.
        :raises AcquireTimeoutError: if ``timeout`` passed first (nothing is taken).
        """
        ...

    def expected_wait(self, cost: Cost | None = None) -> float:
        """Seconds until ``cost`` would be granted if it joined the line now (estimate)."""
        ...

    def limit(
        self,
        cost: Cost | Callable[..., Cost] | None = None,
        *,
        timeout: float | None = None,
        actual: Callable[[Any], Cost | None] | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate a coroutine function so that each call acquires ``cost`` first."""
        ...

    # -- corrections (the learner's) -----------------------------------------------------

    def observe_snapshot(
        self,
        snapshot: RateLimitSnapshot,
        reservation: Reservation | None = None,
        *,
        since: float | None = None,
    ) -> list[str]:
        """Apply the server's header snapshot; returns the names of the dimensions corrected."""
        ...

    def observe(
        self,
        metric: str,
        *,
        limit: float | None = None,
        remaining: float | None = None,
        window: float | None = None,
        reset: float | None = None,
        reservation: Reservation | None = None,
        since: float | None = None,
    ) -> str | None:
        """Correct one dimension from the server's view; returns its name, or ``None``."""
        ...

    def hold(self, seconds: float, *, metric: str | None = None, cost: Cost | None = None) -> None:
        """Grant nothing that needs ``cost`` for ``seconds`` (the server said "try again in")."""
        ...

    def resize(self, name: str, limit: float) -> None:
        """Set a new stated limit; waiters it can no longer serve fail at once."""
        ...

    def set_pace(self, name: str, limit: float, cost: Cost | None = None) -> None:
        """Refill ``name`` as if its limit were ``limit`` (inferred; the stated limit stays)."""
        ...

    def set_level(self, name: str, level: float) -> None:
        """Put dimension ``name`` at ``level`` now (below zero is debt)."""
        ...

    def answered(self) -> None:
        """The server answered a call: slow start's wait for refill ends."""
        ...

    def grow(self, reservation: Reservation, *, factor: float = 2.0) -> tuple[str, ...]:
        """The call of ``reservation`` was answered without refusal: open slow start."""
        ...

    def fall_back(self, metric: str | None = None) -> tuple[str, ...]:
        """A refusal during slow start: give the last probe back and stop probing."""
        ...

    def set_concurrency(self, limit: float) -> None:
        """Let at most ``limit`` calls be in flight from now (inferred; never above stated)."""
        ...

    # -- reading -------------------------------------------------------------------------

    def in_flight(self) -> tuple[float, float] | None:
        """Calls in flight now and the cap in force, if the limits count them."""
        ...

    def paces(self) -> dict[str, float]:
        """The limit each dimension refills at now, by name."""
        ...

    def probing(self) -> tuple[str, ...]:
        """The dimensions still slow-starting (their depth not yet shown by the server)."""
        ...

    def mark(self) -> Mark:
        """How much has been taken so far per dimension (comparable with `Reservation.mark`)."""
        ...

    def statistics(self) -> LimiterStatistics:
        """Counters and levels at this moment."""
        ...

    async def aclose(self) -> None:
        """Wait for updates still being applied (a shared backend's), then let go."""
        ...


AsyncContext = AbstractAsyncContextManager[Reservation]
