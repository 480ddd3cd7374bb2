"""The async limiter: a FIFO queue of waiters in front of a `Bucket`.

Waiting is built on anyio, so the same limiter runs on asyncio and trio. Three rules
shape it, each a fix for a failure seen in other limiters (``research/peers.md``):

* **Strict FIFO, no barging.** A newcomer takes capacity at once only when nobody is
  queued; otherwise it joins the back of the line. A large request is therefore served in
  the time its place in line implies, however many small ones keep arriving
  (aiolimiter orders by amount and lets newcomers barge; token-throttle wakes everyone).
* **One timer.** Only the waiter at the head sleeps until the bucket will hold its
  amount; everyone behind it sleeps on an event without a timeout. When the head is
  served it serves every follower that already fits and hands the timer to the next.
  Each acquire is O(1), whatever the queue length.
* **Nothing leaks.** A waiter cancelled or timed out before it was served leaves the
  line (lazily, like aiolimiter's heap); one cancelled after it was served gives its
  capacity back whole.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import anyio
import sniffio

from ._bucket import Bucket, Mark
from ._exceptions import AcquireTimeoutError, CapacityExceededError, ReservationError, WouldBlock
from ._headers import RateLimitSnapshot
from ._interface import Reservation
from ._line import DEFAULT_LANE, DEFAULT_LANES, Line, check_lanes, current_lane
from ._types import Cost, Dimension, Limits
from ._validate import check_number

__all__ = ["LimiterStatistics", "MemoryReservation", "RateLimiter"]

Clock = Callable[[], float]
P = ParamSpec("P")
R = TypeVar("R")

_DEFAULT_COST = Cost(requests=1)

#: One dimension of a header snapshot, as the limiters apply it:
#: (metric, limit, remaining, window, reset, window_known).
Reading = tuple[str, float | None, float | None, float | None, float | None, bool]

# Waiter states.
_WAITING, _GRANTED, _GONE, _FAILED = 0, 1, 2, 3
# Reservation states.
_OPEN, _SETTLED, _RELEASED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A point-in-time view of a `RateLimiter`, as returned by `RateLimiter.statistics`."""

    #: Tasks queued right now.
    tasks_waiting: int
    #: Reservations granted so far (at once or after waiting).
    granted: int
    #: Reservations granted after waiting in line.
    granted_after_wait: int
    #: Waiters that gave up (cancelled or timed out) before being served.
    abandoned: int
    #: Waiters whose deadline passed.
    timed_out: int
    #: Reservations settled against an actual cost.
    settled: int
    #: Reservations released (refunded whole).
    released: int
    #: Total seconds spent in line by the waiters that were served.
    time_waited: float
    #: Units given back to each dimension by settles and releases.
    refunded: Mapping[str, float]
    #: Units charged up front (estimates) per dimension.
    estimated: Mapping[str, float]
    #: Units the settled reservations really cost, per dimension.
    actual: Mapping[str, float]
    #: What each dimension holds now (negative while in debt).
    levels: Mapping[str, float]
    #: The current limits per dimension (they follow the server's headers).
    limits: Mapping[str, float]
    #: How much each dimension lets be spent at once now: the slow-start allowance,
    #: the depth the server showed, or its capacity.
    depths: Mapping[str, float]
    #: The limit each dimension refills at now: its stated limit, unless refusals from
    #: a server without limit headers taught a lower one.
    paces: Mapping[str, float]
    #: The dimensions still slow-starting (their depth not yet shown by the server).
    probing: tuple[str, ...]


class MemoryReservation:
    """A `Reservation` of the in-process `RateLimiter`.

    Capacity granted to one call: settle it with the real cost, or release it.

    ``settle(actual)`` refunds what was reserved but not spent, or debits the excess;
    ``release()`` gives everything back and is meant for calls that were never sent;
    ``finish()`` says the call is over, so its place among the calls in flight returns
    (a settle implies it). A reservation left open keeps its estimate, which is the safe
    side.
    """

    __slots__ = (
        "_amounts",
        "_finished",
        "_limiter",
        "_mark",
        "_state",
        "_wired",
        "cost",
        "waited",
    )

    def __init__(
        self,
        limiter: RateLimiter,
        cost: Cost,
        amounts: tuple[float, ...],
        mark: Mark,
        waited: float,
    ) -> None:
        self._limiter = limiter
        self._amounts = amounts
        self._mark = mark
        self._state = _OPEN
        self._wired = False
        self._finished = False
        #: The cost that was reserved.
        self.cost = cost
        #: Seconds this reservation waited in line.
        self.waited = waited

    @property
    def mark(self) -> Mark:
        """How much had been taken per dimension when this reservation was granted."""
        return self._mark

    @property
    def closed(self) -> bool:
        """Whether the reservation was settled or released."""
        return self._state != _OPEN

    def settle(self, actual: Cost) -> None:
        """Reconcile with what the call really cost.

        :raises ReservationError: if the reservation was already settled or released.
        """
        if self._state != _OPEN:
            raise ReservationError("reservation already closed")
        self._state = _SETTLED
        limiter = self._limiter
        bucket = limiter._bucket
        assert bucket is not None and limiter._clock is not None
        bucket.settle(self._amounts, bucket.amounts(actual), limiter._clock())
        limiter._settled += 1
        if not self._finished:
            self._finished = True
            bucket.finish(self._amounts)
        if limiter._waiting:
            limiter._wake_head()

    def finish(self) -> None:
        """The call is over (answered, failed or cut): its place in flight comes back.

        Only dimensions that count calls in flight (``Limits(concurrency=...)``) change;
        the estimate stays charged until a settle. Idempotent; a settle or a release
        implies it.
        """
        if self._finished or self._state == _RELEASED:
            return
        self._finished = True
        limiter = self._limiter
        bucket = limiter._bucket
        assert bucket is not None
        bucket.finish(self._amounts)
        if limiter._waiting:
            limiter._wake_head()

    def sent(self) -> None:
        """Say that the call is leaving for the server now (after any wait of its own).

        `wrap`'s transport and the decorator call it. It lets a server snapshot be
        discounted by calls that were granted before the snapshot but sent after it
        (see `Bucket.wire`). Calling it more than once, or after closing, does nothing.
        """
        if self._state != _OPEN or self._wired:
            return
        self._wired = True
        limiter = self._limiter
        bucket = limiter._bucket
        assert bucket is not None and limiter._clock is not None
        bucket.wire(self._amounts, limiter._clock())

    def release(self) -> None:
        """Give the whole reservation back: the call it was for was never sent.

        :raises ReservationError: if the reservation was already settled or released.
        """
        if self._state != _OPEN:
            raise ReservationError("reservation already closed")
        self._state = _RELEASED
        amounts = self._amounts
        if self._finished:
            # Its place in flight came back already: give back the rest only.
            holding = self._limiter._holding
            amounts = tuple(0.0 if held else a for a, held in zip(amounts, holding, strict=True))
        self._finished = True
        self._limiter._release(amounts)

    def __repr__(self) -> str:
        state = ("open", "settled", "released")[self._state]
        return f"<Reservation {self.cost!r} {state}>"


class _Waiter:
    __slots__ = ("amounts", "enqueued", "error", "event", "lane", "state", "tag")

    def __init__(self, amounts: tuple[float, ...], enqueued: float, lane: str) -> None:
        self.amounts = amounts
        self.enqueued = enqueued
        self.lane = lane
        #: Its start tag in the line (see `Line`).
        self.tag = 0.0
        self.event: anyio.Event | None = None
        self.state = _WAITING
        #: Why it was failed (a stated limit shrank below its amount).
        self.error: BaseException | None = None

    @property
    def waiting(self) -> bool:
        return self.state == _WAITING


class _Done:
    """An awaitable that is already finished (cheaper than a coroutine)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_DONE = _Done()


class _Acquire:
    """What `RateLimiter.acquire` returns: await it, or use it as ``async with``."""

    __slots__ = ("_cost", "_lane", "_limiter", "_timeout")

    def __init__(
        self, limiter: RateLimiter, cost: Cost, timeout: float | None, lane: str | None = None
    ) -> None:
        self._limiter = limiter
        self._cost = cost
        self._timeout = timeout
        self._lane = lane

    def __await__(self) -> Generator[Any, None, Reservation]:
        return self._limiter._acquire(self._cost, self._timeout, self._lane).__await__()

    async def __aenter__(self) -> Reservation:
        # The uncontended path is inlined here: one coroutine frame fewer per call.
        limiter = self._limiter
        bucket = limiter._bucket
        if bucket is not None and not limiter._waiting:
            cost = self._cost
            amounts = bucket.amounts(cost)
            now = limiter._clock()  # type: ignore[misc]
            if bucket.try_take(amounts, now):
                limiter._granted += 1
                return MemoryReservation(limiter, cost, amounts, bucket.grant_mark(now), 0.0)
        return await limiter._acquire(self._cost, self._timeout)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> _Done:
        # Left open, the reservation keeps its estimate: whether the call reached the
        # server is unknown here, and charging it is the side that causes no 429s.
        # Nothing to await, so no coroutine is made for it.
        return _DONE


class RateLimiter:
    """Grant capacity over several dimensions (requests and tokens per minute, ...).

    Example::

        limiter = RateLimiter(Limits(rpm=500, tpm=200_000))

        async with limiter.acquire(Cost(requests=1, tokens=1_200)) as reservation:
            response = await call_the_api()
            reservation.settle(Cost(requests=1, tokens=response.usage.total_tokens))

    :param limits: a `Limits`, or the `Dimension` objects to enforce.
    :param clock: a monotonic clock in seconds. By default the running event loop's own
        clock is used (asyncio's ``loop.time``, trio's ``current_time``), which is what
        makes virtual-time tests (looptime, trio's ``MockClock``) work unchanged.
    :param initial_fill: how full the buckets start, from 0 to 1 (default full, as a
        fresh quota is).
    :param follow_server_limits: let a limit reported by the server's headers resize
        the matching dimension (on by default).
    :param lanes: priority lanes and their weights (see `Line`): when several lanes have
        callers waiting, each gets capacity in proportion to its weight, and FIFO order
        holds within a lane. Must include ``"default"``. By default `DEFAULT_LANES`.
    """

    __slots__ = (
        "__weakref__",
        "_abandoned",
        "_bucket",
        "_clock",
        "_dimensions",
        "_follow",
        "_granted",
        "_granted_after_wait",
        "_holding",
        "_initial_fill",
        "_line",
        "_queued",
        "_released",
        "_settled",
        "_time_waited",
        "_timed_out",
        "_waiting",
    )

    def __init__(
        self,
        limits: Limits | Sequence[Dimension],
        *,
        clock: Clock | None = None,
        initial_fill: float = 1.0,
        follow_server_limits: bool = True,
        lanes: Mapping[str, float] = DEFAULT_LANES,
    ) -> None:
        if isinstance(limits, Limits):
            dimensions = limits.dimensions()
        elif isinstance(limits, list | tuple) and all(isinstance(d, Dimension) for d in limits):
            dimensions = tuple(limits)
        else:
            raise TypeError(
                f"limits must be a Limits or a sequence of Dimension, got {type(limits).__name__}"
            )
        if clock is not None and not callable(clock):
            raise TypeError(
                f"clock must be a callable returning seconds, got {type(clock).__name__}"
            )
        if not isinstance(follow_server_limits, bool):
            kind = type(follow_server_limits).__name__
            raise TypeError(f"follow_server_limits must be a bool, got {kind}")
        self._dimensions = dimensions
        self._holding = tuple(d.holding for d in dimensions)
        self._clock = clock
        self._initial_fill = initial_fill
        self._follow = follow_server_limits
        # The bucket is made on first use, when the event loop's clock can be read.
        self._bucket: Bucket | None = None
        if clock is not None:
            self._bucket = Bucket(dimensions, clock(), fill=initial_fill)
        else:
            Bucket(dimensions, 0.0, fill=initial_fill)  # validate now, not on first use
        self._line = Line(check_lanes(lanes))
        # What the live waiters ask for in total, per dimension (for `expected_wait`).
        self._queued = [0.0] * len(dimensions)
        self._waiting = 0
        self._granted = 0
        self._granted_after_wait = 0
        self._abandoned = 0
        self._timed_out = 0
        self._settled = 0
        self._released = 0
        self._time_waited = 0.0

    # -- public API ----------------------------------------------------------------------

    def clock(self) -> float:
        """The limiter's clock, read now (the running loop's unless one was given)."""
        return self._now()

    @property
    def bucket(self) -> Bucket:
        """The bucket behind this limiter (made on first use)."""
        return self._bucket or self._start()

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions with their stated limits (the server's, once it stated them)."""
        bucket = self._bucket
        return self._dimensions if bucket is None else bucket.dimensions

    def paces(self) -> dict[str, float]:
        """The limit each dimension refills at now, by name (see `set_pace`)."""
        bucket = self._bucket
        if bucket is None:
            return {d.name: d.limit for d in self._dimensions}
        return dict(zip((d.name for d in bucket.dimensions), bucket.paces(), strict=True))

    def probing(self) -> tuple[str, ...]:
        """The dimensions still slow-starting: their depth not yet shown by the server."""
        bucket = self._bucket
        if bucket is None:
            return tuple(d.name for d in self._dimensions if d.opening is not None)
        names = (d.name for d in bucket.dimensions)
        return tuple(name for name, p in zip(names, bucket.probing(), strict=True) if p)

    def acquire(
        self, cost: Cost | None = None, *, timeout: float | None = None, lane: str | None = None
    ) -> _Acquire:
        """Wait until ``cost`` fits, take it, and return a `Reservation`.

        Use it as ``async with limiter.acquire(cost) as reservation:`` or
        ``reservation = await limiter.acquire(cost)``.

        :param cost: what the call spends (one request by default).
        :param timeout: give up after this many seconds; the place in line is released.
        :param lane: the priority lane to wait in; by default the one a surrounding
            `ratelimit_llm.lane` block names, else ``"default"``.
        :raises CapacityExceededError: at once, if ``cost`` can never fit.
        :raises AcquireTimeoutError: if ``timeout`` passed first.
        :raises ValueError: for a lane this limiter does not have.
        """
        if timeout is not None:
            timeout = check_number("timeout", timeout, low=0.0)
        if cost is not None and not isinstance(cost, Cost):
            raise TypeError(f"cost must be a Cost, got {type(cost).__name__}")
        return _Acquire(self, _DEFAULT_COST if cost is None else cost, timeout, lane)

    def limit(
        self,
        cost: Cost | Callable[..., Cost] | None = None,
        *,
        timeout: float | None = None,
        actual: Callable[[Any], Cost | None] | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate a coroutine function so that each call acquires ``cost`` first.

        Example::

            @limiter.limit(cost=lambda text, **_: Cost(tokens=len(text) // 4 + 256))
            async def summarize(text: str) -> ChatCompletion: ...

        The result's ``usage`` (or ``actual(result)``) settles the reservation. See
        `ratelimit_llm._decorator.limit`.
        """
        from ._decorator import limit

        return limit(self, cost, timeout=timeout, actual=actual)

    def acquire_nowait(self, cost: Cost | None = None) -> Reservation:
        """Take ``cost`` if it fits now and nobody is waiting.

        :raises WouldBlock: if the call would have to wait.
        :raises CapacityExceededError: if ``cost`` can never fit.
        """
        cost = _DEFAULT_COST if cost is None else cost
        bucket = self._bucket or self._start()
        amounts = bucket.amounts(cost)
        now = self._now()
        if not self._waiting and bucket.try_take(amounts, now):
            return self._grant(cost, amounts, 0.0)
        bucket.check_fits(amounts)
        raise WouldBlock

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
        """Correct one dimension from the server's view (see `Bucket.observe`).

        Say what the numbers already count as `observe_snapshot` does (``reservation``
        or ``since``). Returns the dimension's name, or ``None`` if no dimension counts
        ``metric`` over that window.
        """
        return self._observe(
            [(metric, limit, remaining, window, reset, False)], reservation, since
        )[0]

    def observe_snapshot(
        self,
        snapshot: RateLimitSnapshot,
        reservation: Reservation | None = None,
        *,
        since: float | None = None,
    ) -> list[str]:
        """Apply every dimension of a parsed header snapshot (see `observe`).

        Say what the snapshot already counts: with ``reservation``, everything up to
        that call's grant (the server took it on admission); with ``since``, everything
        sent from here by that clock time (the server took it when it answered; calls
        are counted as sent by `Reservation.sent`, or when granted if nothing ever says
        so); with neither, everything granted so far. Only the organisation-level triplets
        and the project-token triplet are used (both are enforced; the lower wins).
        Returns the names of the dimensions that were corrected.
        """
        readings = [
            (
                d.metric,
                d.limit if d.scope == "" else None,
                d.remaining,
                d.window,
                d.reset,
                d.window_known,
            )
            for d in snapshot.dimensions
            if d.scope in ("", "project")
        ]
        names = self._observe(readings, reservation, since)
        return [name for name in names if name is not None]

    def _observe(
        self,
        readings: Sequence[Reading],
        reservation: Reservation | None,
        since: float | None,
    ) -> list[str | None]:
        """Apply (metric, limit, remaining, window, reset, window_known) readings."""
        bucket = self._bucket or self._start()
        if reservation is not None:
            mark: Mark | None = reservation.mark
        elif since is not None:
            # Discount what was sent after ``since``, or granted and not yet sent then;
            # without any send recorded (no transport), what was granted after it.
            mark = bucket.sent_at(since) or bucket.mark_at(since)
        else:
            mark = None
        now = self._now()
        before = bucket.dimensions
        names = [
            bucket.observe(
                metric,
                now=now,
                limit=limit,
                remaining=remaining,
                window=window,
                reset=reset,
                mark=mark,
                resize=self._follow,
                window_known=window_known,
            )
            for metric, limit, remaining, window, reset, window_known in readings
        ]
        if bucket.dimensions is not before:
            # A stated limit changed: waiters it can no longer serve fail at once.
            self._fail_oversized()
        # A new limit or an opened depth may let the head through sooner, and an answer
        # ends slow start's wait for refill. A lowered level only delays the head, which
        # finds that out when it looks again.
        self._wake_head()
        return names

    def hold(self, seconds: float, *, metric: str | None = None, cost: Cost | None = None) -> None:
        """Grant nothing that needs ``cost`` for ``seconds``: the server said "try again in".

        Dimensions counting ``metric`` (all when ``None``) are lowered so that ``cost``
        fits only after ``seconds``; everyone in line waits behind that, which is what
        stops a 429 storm. Never raises a level.
        """
        bucket = self._bucket or self._start()
        amounts = () if cost is None else bucket.amounts(cost)
        bucket.hold(seconds, self._now(), metric=metric, amounts=amounts)
        self._wake_head()

    def expected_wait(self, cost: Cost | None = None) -> float:
        """Seconds until ``cost`` would be granted if it joined the line now.

        An estimate (refill at the current rate, everyone ahead served in order), used
        to route a call to the key that can serve it soonest. ``math.inf`` if it never
        fits.
        """
        bucket = self._bucket or self._start()
        amounts = bucket.amounts(_DEFAULT_COST if cost is None else cost)
        now = self._now()
        if not self._waiting:
            return bucket.delay(amounts, now)
        if bucket.delay(amounts, now) == math.inf:
            return math.inf
        backlog = tuple(a + q for a, q in zip(amounts, self._queued, strict=True))
        return bucket.delay(backlog, now, within_capacity=False)

    def resize(self, name: str, limit: float) -> None:
        """Set a new stated limit for dimension ``name`` (e.g. ``"tokens/min"``).

        Waiters whose cost no longer fits the new capacity fail at once with
        `CapacityExceededError`; those behind them go on.
        """
        bucket = self._bucket or self._start()
        bucket.resize(name, limit, self._now())
        self._fail_oversized()
        self._wake_head()

    def set_pace(self, name: str, limit: float, cost: Cost | None = None) -> None:
        """Refill dimension ``name`` as if its limit were ``limit``: an inferred limit.

        For what is only learned (a server without limit headers refusing at a pace
        below the configured one): it slows the bucket from now on without changing
        the stated limit, so it never refuses a call that the stated limit admits, nor
        changes the wait ``cost`` already has (see `Bucket.set_pace`).
        """
        bucket = self._bucket or self._start()
        amounts = bucket.amounts(_DEFAULT_COST if cost is None else cost)
        index = bucket._index(name)
        bucket.set_pace(name, limit, self._now(), amount=amounts[index])
        self._wake_head()

    def in_flight(self) -> tuple[float, float] | None:
        """Calls in flight now and the cap in force, if a dimension counts them."""
        bucket = self._bucket or self._start()
        count = bucket.in_flight()
        if count is None:
            return None
        index = self._holding.index(True)
        return count, bucket.depths()[index]

    def set_concurrency(self, limit: float) -> None:
        """Let at most ``limit`` calls be in flight from now (an inferred cap, >= 1).

        Never above the stated ``Limits(concurrency=...)``; calls already in flight stay.
        """
        bucket = self._bucket or self._start()
        for dim in bucket.dimensions:
            if dim.holding:
                bucket.set_depth(dim.name, limit)
        self._wake_head()

    def answered(self) -> None:
        """Say that the server answered a call: slow start's wait for refill ends."""
        bucket = self._bucket or self._start()
        bucket.resume_refill(self._now())
        self._wake_head()

    def grow(self, reservation: Reservation, *, factor: float = 2.0) -> tuple[str, ...]:
        """The call of ``reservation`` was answered without refusal: open slow start.

        Only for dimensions whose depth no header showed (see `Bucket.grow`). Returns
        the names of the dimensions that grew.
        """
        bucket = self._bucket or self._start()
        amounts = bucket.amounts(reservation.cost)
        grown = bucket.grow(amounts, reservation.mark, self._now(), factor=factor)
        self._wake_head()
        return grown

    def fall_back(self, metric: str | None = None) -> tuple[str, ...]:
        """A refusal during slow start: ``metric``'s probing dimensions give the last probe back.

        Returns the names of the dimensions that fell back (see `Bucket.fall_back`).
        """
        bucket = self._bucket or self._start()
        fell = bucket.fall_back(self._now(), metric=metric)
        self._wake_head()
        return fell

    def mark(self) -> tuple[float, ...]:
        """How much has been taken so far per dimension (comparable with `Reservation.mark`)."""
        bucket = self._bucket or self._start()
        return bucket.mark()

    def set_level(self, name: str, level: float) -> None:
        """Put dimension ``name`` at ``level`` now (see `Bucket.set_level`)."""
        bucket = self._bucket or self._start()
        bucket.set_level(name, level, self._now())
        self._wake_head()

    def statistics(self) -> LimiterStatistics:
        """Counters and levels at this moment."""
        bucket = self._bucket
        dims = self._dimensions if bucket is None else bucket.dimensions
        if bucket is None:
            levels: Sequence[float] = [
                (d.capacity if d.opening is None else d.opening) * self._initial_fill for d in dims
            ]
            estimated = refunded = actual = (0.0,) * len(dims)
        else:
            levels = bucket.levels(self._now())
            estimated, refunded, actual = bucket.totals()
        names = [d.name for d in dims]
        if bucket is None:
            depths: Sequence[float] = [d.capacity if d.opening is None else d.opening for d in dims]
            paces: Sequence[float] = [d.limit for d in dims]
            probing = tuple(d.name for d in dims if d.opening is not None)
        else:
            depths, paces = bucket.depths(), bucket.paces()
            probing = tuple(n for n, p in zip(names, bucket.probing(), strict=True) if p)
        return LimiterStatistics(
            tasks_waiting=self._waiting,
            granted=self._granted,
            granted_after_wait=self._granted_after_wait,
            abandoned=self._abandoned,
            timed_out=self._timed_out,
            settled=self._settled,
            released=self._released,
            time_waited=self._time_waited,
            refunded=dict(zip(names, refunded, strict=True)),
            estimated=dict(zip(names, estimated, strict=True)),
            actual=dict(zip(names, actual, strict=True)),
            levels=dict(zip(names, levels, strict=True)),
            limits={d.name: d.limit for d in dims},
            depths=dict(zip(names, depths, strict=True)),
            paces=dict(zip(names, paces, strict=True)),
            probing=probing,
        )

    async def aclose(self) -> None:
        """Wait for updates still being applied (none here; a shared backend may have some).

        Call it before a process exits so that the last settles reach a shared quota.
        """
        return None

    def __repr__(self) -> str:
        dims = ", ".join(f"{d.name}={d.limit:g}" for d in self.bucket.dimensions)
        return f"<RateLimiter {dims} waiting={self._waiting}>"

    # -- internals -----------------------------------------------------------------------

    def _start(self) -> Bucket:
        if self._clock is None:
            self._clock = _event_loop_clock()
        self._bucket = Bucket(self._dimensions, self._clock(), fill=self._initial_fill)
        return self._bucket

    def _now(self) -> float:
        clock = self._clock
        if clock is None:
            self._start()
            clock = self._clock
            assert clock is not None
        return clock()

    def _grant(self, cost: Cost, amounts: tuple[float, ...], waited: float) -> MemoryReservation:
        self._granted += 1
        bucket = self._bucket
        assert bucket is not None
        assert self._clock is not None
        return MemoryReservation(self, cost, amounts, bucket.grant_mark(self._clock()), waited)

    async def _acquire(
        self, cost: Cost, patience: float | None, lane: str | None = None
    ) -> Reservation:
        bucket = self._bucket or self._start()
        amounts = bucket.amounts(cost)
        assert self._clock is not None
        now = self._clock()
        line = self._line
        lane = lane or current_lane() or DEFAULT_LANE
        line.check(lane)
        if not self._waiting:
            if bucket.try_take(amounts, now):
                return self._grant(cost, amounts, 0.0)
        else:
            # Others wait: this call goes now only if its turn comes before theirs (a
            # lane of more weight) and it fits; never past a waiter of its own lane.
            head = line.head()
            if head is not None and line.tag_for(lane) < head.tag and bucket.try_take(amounts, now):
                line.served_at_once(lane, self._size(amounts))
                return self._grant(cost, amounts, 0.0)
        bucket.check_fits(amounts)
        if patience == 0:
            self._timed_out += 1
            raise AcquireTimeoutError(0.0)
        return await self._wait_in_line(cost, amounts, now, patience, lane)

    async def _wait_in_line(
        self,
        cost: Cost,
        amounts: tuple[float, ...],
        now: float,
        patience: float | None,
        lane: str,
    ) -> Reservation:
        waiter = _Waiter(amounts, now, lane)
        line = self._line
        if not self._waiting:
            line.clear()  # only abandoned waiters were left in it
        line.push(waiter, self._size(amounts))
        self._waiting += 1
        queued = self._queued
        for i, amount in enumerate(amounts):
            queued[i] += amount
        deadline = math.inf if patience is None else now + patience
        clock = self._clock
        assert clock is not None
        try:
            while True:
                if line.head() is waiter:
                    # The head owns the one timer: serve whoever fits, then sleep until
                    # this waiter will fit (or until something changes and wakes it).
                    now = clock()
                    self._serve(now)
                    if waiter.state == _GRANTED:
                        break
                    sleep = min(self.bucket.delay(amounts, now), deadline - now)
                else:
                    sleep = deadline - clock()
                if sleep <= 0:
                    self._timed_out += 1
                    raise AcquireTimeoutError(math.inf if patience is None else patience)
                waiter.event = event = anyio.Event()
                if sleep == math.inf:
                    await event.wait()
                else:
                    with anyio.move_on_after(sleep):
                        await event.wait()
                if waiter.state == _GRANTED:
                    break
                if waiter.state == _FAILED:
                    assert waiter.error is not None
                    raise waiter.error
        except BaseException:
            if waiter.state != _FAILED:
                self._leave(waiter)
            raise
        waited = clock() - waiter.enqueued
        self._granted_after_wait += 1
        self._time_waited += waited
        return self._grant(cost, amounts, waited)

    def _serve(self, now: float) -> None:
        """Grant waiters from the head for as long as they fit, then wake the new head."""
        line = self._line
        bucket = self._bucket
        assert bucket is not None
        while True:
            head = line.head()
            if head is None or not bucket.try_take(head.amounts, now):
                break
            line.pop(head)
            head.state = _GRANTED
            self._waiting -= 1
            self._unqueue(head.amounts)
            if head.event is not None:
                head.event.set()
        self._wake_head()

    def _fail_oversized(self) -> None:
        """Fail every waiter whose cost a (shrunken) stated capacity can never serve.

        Runs only when a stated limit changes, so its scan of the line costs nothing on
        the hot path; the waiters behind a failed one move up at once.
        """
        bucket = self._bucket
        if bucket is None or not self._waiting:
            return
        for waiter in list(self._line):
            if bucket.fits(waiter.amounts):
                continue
            try:
                bucket.check_fits(waiter.amounts)
            except CapacityExceededError as error:
                waiter.error = error
            waiter.state = _FAILED
            self._waiting -= 1
            self._unqueue(waiter.amounts)
            if waiter.event is not None:
                waiter.event.set()

    def _wake_head(self) -> None:
        """Let the head re-check the bucket (it may have become head, or room appeared)."""
        if not self._waiting:
            return
        head = self._line.head()
        if head is not None:
            event = head.event
            if event is not None:
                event.set()

    def _size(self, amounts: Sequence[float]) -> float:
        """What ``amounts`` cost in seconds of refill at the stated rates (the line's unit)."""
        size = 0.0
        for amount, dim in zip(amounts, self.dimensions, strict=True):
            rate = dim.rate
            if rate > 0:
                size = max(size, amount / rate)
        return size

    def _unqueue(self, amounts: tuple[float, ...]) -> None:
        queued = self._queued
        for i, amount in enumerate(amounts):
            queued[i] -= amount
        if not self._waiting:
            # Exact zero when the line is empty, whatever float error accumulated.
            self._queued = [0.0] * len(queued)

    def _leave(self, waiter: _Waiter) -> None:
        """Undo a waiter that will not return a reservation (cancelled or timed out)."""
        bucket = self._bucket
        assert bucket is not None and self._clock is not None
        if waiter.state == _GRANTED:
            # Served, but cancelled before it could take the reservation: give it back.
            bucket.give_back(waiter.amounts, self._clock())
        else:
            waiter.state = _GONE
            self._waiting -= 1
            self._unqueue(waiter.amounts)
        self._abandoned += 1
        self._wake_head()

    def _release(self, reserved: tuple[float, ...]) -> None:
        bucket = self._bucket
        assert bucket is not None and self._clock is not None
        bucket.give_back(reserved, self._clock())
        self._released += 1
        self._wake_head()


def _event_loop_clock() -> Clock:
    """The running event loop's own clock, read without anyio's per-call dispatch.

    ``anyio.current_time()`` looks the backend up on every call (about 1 us); binding
    the loop's clock once keeps it off the hot path and keeps virtual clocks working.
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            "RateLimiter needs a running event loop on first use, or an explicit clock="
        ) from None
    if library == "asyncio":
        import asyncio

        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    return anyio.current_time
