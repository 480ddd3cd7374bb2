"""The limiter side of the Redis backend: `RedisRateLimiter` and `RedisReservation`.

A sibling of the memory `RateLimiter`, not a child: it implements the same `Limiter`
interface, with the bucket's rules kept in Redis (``lua/*.lua``) so that every process
on one quota obeys one copy of them, atomically, on Redis's (bounded) clock.

How a call is granted. There is no lock: an acquire *reserves* capacity at once, letting
levels go below zero, and the caller sleeps out the wait Redis computed for it
(reserve-then-sleep). Every later caller sees the lower level and waits longer, so
callers are served in the order they reached Redis, a large request included. The
acquires a process makes while its previous one is on the wire are sent together, as
one script call, so a hot quota costs one round trip per batch, not one per call, and
each acquire still costs exactly one round trip.

What stays local. The limiter keeps a *view* of what Redis last reported (stated limits,
levels, depths, paces, slow start), refreshed by every reply: it matches header
snapshots to dimensions, turns costs into amounts and answers `statistics`,
`expected_wait`, `probing` and `paces` without a round trip. It never writes its own
depth or pace into Redis: every correction is sent as an operation that Redis applies to
its own state (``update.lua``), a learner step being one round trip.

What never leaks. A caller cancelled or timed out at any point (queued, on the wire,
asleep) leaves nothing taken: the round trip runs in the limiter's own task, and a
reservation Redis made for a caller who has gone is given back when the reply arrives.

Calls in flight. ``Limits(concurrency=...)`` counts places that come back when a call
ends, not a rate that refills. A call first takes its place in this process's line (a
memory `RateLimiter` over just those dimensions: lanes share the places by weight, and
``concurrency="auto"`` learns the cap here), then a *lease* on the same cap in Redis
(`RedisLeases`: every process's calls in flight together never pass the cap, and a
killed process's places come back within ``RedisBackend.lease_ttl``), then its share of
the rate. Lanes are checked as in memory, but Redis grants the rate in the order
requests reach it (FIFO, within a process and across processes): a lane's weight orders
the wait for a place in flight, never the shared rate.

Faults (see ``docs/distributed.md`` for the guarantees and the measured figures):
a quota lost to a restart or a flush is re-created empty and owed every reservation
still sleeping; the local fallback's spending is debited when Redis returns; Redis's
clock moves the quota's own clock by at most `MAX_CLOCK_STEP` unless a live process
vouches for more; an outage fails (or sends to the local share) every waiting caller at
once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio
import sniffio

from .._bucket import FIRST_ANSWER_GRACE, Bucket
from .._exceptions import (
    AcquireTimeoutError,
    BackendError,
    BackendUnavailableError,
    CapacityExceededError,
    ReservationError,
)
from .._interface import Mark, Reservation
from .._limiter import LimiterStatistics, MemoryReservation, RateLimiter, Reading
from .._line import DEFAULT_LANES, Line, check_lanes
from .._types import Cost, Dimension, Limits
from .._validate import check_instance, check_number, check_type

if TYPE_CHECKING:
    from .._headers import RateLimitSnapshot
from ._redis_connection import RedisBackend
from ._redis_leases import RedisLeases

__all__ = ["MAX_CLOCK_STEP", "RedisRateLimiter", "RedisReservation"]

#: The lease cap of a dimension of calls in flight stated without a bound.
_NO_CAP = 2**31 - 1

_log = logging.getLogger("ratelimit_llm.redis")

P = ParamSpec("P")
R = TypeVar("R")

#: The most one script call moves a quota's clock forward unless a witness independent
#: of Redis's clock confirms more: a process that saw the quota's time in a reply and has
#: measured the time since on its own monotonic clock, or the calling host's wall clock.
#: So a jump of Redis's clock alone refills at most one second's worth of each limit
#: (the same as slow start's opening), plus any disagreement between the callers' clocks.
MAX_CLOCK_STEP = 1.0

#: The most acquires sent in one script call (the rest go in the next one).
MAX_BATCH = 256

_DEFAULT_COST = Cost(requests=1)
_EPSILON = 1e-9
_NEAR_FULL = 0.9
#: While callers here sleep through slow start's pause, how often to ask Redis whether
#: an answer (to any process) ended it: the pause lasts at most a second.
_PEEK_EVERY = 0.05
#: Numbers per dimension in a reply (its packed state, see lua/_quota.lua).
_PACKED = 15
#: Seconds after which the estimate of Redis's clock is renewed from any reply.
_OFFSET_MAX_AGE = 5.0

# Request states.
_PENDING, _SENT, _GONE, _ABANDONED, _ANSWERED = 0, 1, 2, 3, 4
# Reservation states.
_OPEN, _SETTLED, _RELEASED = 0, 1, 2


class _Verdict:
    """Why a request got no reservation (the caller raises, or goes local)."""

    __slots__ = ("detail", "kind")

    def __init__(self, kind: str, detail: Any = None) -> None:
        self.kind = kind
        self.detail = detail


_EXPIRED = _Verdict("expired")
_TOO_LONG = _Verdict("too_long")
_LOCAL = _Verdict("local")
_OUTAGE = _Verdict("outage")


class _Sleeper:
    """A reservation granted by Redis whose wait has not elapsed yet."""

    __slots__ = (
        "amounts",
        "epoch",
        "future",
        "grant",
        "handle",
        "paused_until",
        "usable",
        "wake_at",
    )

    def __init__(self, amounts: tuple[float, ...], epoch: str) -> None:
        self.amounts = amounts
        self.grant: _Grant | None = None
        #: When its capacity becomes usable, in Redis's time, and the same on the loop's.
        self.usable = 0.0
        self.wake_at = 0.0
        #: The planned end of slow start's pause its wait counted on (None: no pause).
        self.paused_until: float | None = None
        #: The quota lifetime its amount is charged to (moved when a lost quota is
        #: re-created and owed it).
        self.epoch = epoch
        self.future: asyncio.Future[BaseException | None] | None = None
        self.handle: asyncio.TimerHandle | None = None


class _Grant:
    """What Redis reserved for one request."""

    __slots__ = ("dropped", "epoch", "mark", "sleeper", "vt", "wait")

    def __init__(
        self, wait: float, mark: Mark, epoch: str, vt: float, sleeper: _Sleeper | None
    ) -> None:
        self.wait = wait
        self.mark = mark
        self.epoch = epoch
        self.vt = vt
        self.sleeper = sleeper
        #: Given back (its caller left, or a shrunken capacity failed it).
        self.dropped = False


class _Request:
    """One acquire on its way to Redis."""

    __slots__ = ("amounts", "deadline", "future", "state", "timer")

    def __init__(
        self,
        amounts: tuple[float, ...],
        deadline: float | None,
        future: asyncio.Future[_Grant | _Verdict],
    ) -> None:
        self.amounts = amounts
        self.deadline = deadline
        self.future = future
        self.state = _PENDING
        self.timer: asyncio.TimerHandle | None = None


class _View:
    """The quota as Redis last reported it (its levels at Redis time ``at``)."""

    __slots__ = ("at", "depth", "dims", "level", "pace", "pause", "probe_mark", "probing", "taken")

    def __init__(self, dims: tuple[Dimension, ...]) -> None:
        self.dims = dims
        self.depth = [d.capacity if d.opening is None else d.opening for d in dims]
        self.pace = [d.limit for d in dims]
        self.probing = [d.opening is not None for d in dims]
        self.level = list(self.depth)
        self.taken = [0.0] * len(dims)
        self.probe_mark = [0.0] * len(dims)
        self.at: float | None = None
        self.pause: tuple[float, float] | None = None

    def refill_seconds(self, now: float) -> float:
        """Seconds of refill between the report and ``now`` (slow start's pause left out)."""
        if self.at is None:
            return 0.0
        elapsed = now - self.at
        if self.pause is not None:
            start, end = self.pause
            overlap = min(now, end) - max(self.at, start)
            if overlap > 0:
                elapsed -= overlap
        return elapsed

    def levels(self, now: float) -> list[float]:
        elapsed = self.refill_seconds(now)
        if elapsed <= 0:
            return list(self.level)
        return [
            min(depth, level + pace / dim.window * elapsed)
            for dim, depth, level, pace in zip(
                self.dims, self.depth, self.level, self.pace, strict=True
            )
        ]

    def delay(self, amounts: Sequence[float], now: float, *, within_depth: bool) -> float:
        """Seconds until ``amounts`` would fit from the reported levels (see acquire.lua)."""
        levels = self.levels(now)
        hold_until = self.pause[1] if self.pause is not None else -math.inf
        starts = self.pause[0] if self.pause is not None else -math.inf
        wait = 0.0
        for i, amount in enumerate(amounts):
            if within_depth and amount > self.depth[i]:
                amount = self.depth[i]
            short = amount - levels[i]
            if short > _EPSILON * max(1.0, amount):
                need = short / (self.pace[i] / self.dims[i].window)
                if hold_until > now:
                    before = max(0.0, starts - now)
                    need = need if need <= before else hold_until - now + need - before
                wait = max(wait, need)
        return wait


class RedisReservation:
    """A `Reservation` on a Redis quota: its settle and release reach Redis in the background.

    A limiter that also counts calls in flight (``Limits(concurrency=...)``) returns a
    reservation made of one of these and the place held in this process; it is used the
    same way (settle, release, finish reach both parts).
    """

    __slots__ = ("_amounts", "_limiter", "_mark", "_state", "cost", "epoch", "granted_at", "waited")

    def __init__(
        self,
        limiter: RedisRateLimiter,
        cost: Cost,
        amounts: tuple[float, ...],
        mark: Mark,
        waited: float,
        epoch: str,
        granted_at: float,
    ) -> None:
        self._limiter = limiter
        self._amounts = amounts
        self._mark = mark
        self._state = _OPEN
        #: The cost that was reserved.
        self.cost = cost
        #: Seconds the reservation waited (queued, on the wire and asleep).
        self.waited = waited
        #: The lifetime of the quota it was charged to (see ``docs/distributed.md``).
        self.epoch = epoch
        #: When the capacity became usable, in Redis's time.
        self.granted_at = granted_at

    @property
    def mark(self) -> Mark:
        """The running totals taken from the quota just after this grant, per dimension."""
        return self._mark

    @property
    def closed(self) -> bool:
        """Whether the reservation was settled or released."""
        return self._state != _OPEN

    def settle(self, actual: Cost) -> None:
        """Reconcile with what the call really cost (sent to Redis in the background).

        :raises ReservationError: if it was already settled or released.
        """
        if self._state != _OPEN:
            raise ReservationError("reservation already closed")
        check_instance("actual", actual, Cost, "a Cost")
        self._state = _SETTLED
        self._limiter._settle(self, self._limiter._amounts_of(actual))

    def release(self) -> None:
        """Give the whole reservation back: the call was never sent.

        :raises ReservationError: if it was already settled or released.
        """
        if self._state != _OPEN:
            raise ReservationError("reservation already closed")
        self._state = _RELEASED
        limiter = self._limiter
        limiter._released += 1
        limiter._give_back(self._amounts, self.epoch)

    def sent(self) -> None:
        """Redis places snapshots by grant time (a known limit: ``docs/distributed.md``)."""
        return None

    def finish(self) -> None:
        """Nothing in flight is counted in this part (a limiter's places are leases)."""
        return None

    def __repr__(self) -> str:
        state = ("open", "settled", "released")[self._state]
        return f"<RedisReservation {self.cost!r} {state}>"


class _HeldReservation:
    """A reservation of a limiter that counts calls in flight: a place held in this
    process (``held``, of the local `RateLimiter`) and a share of the rate (``shared``,
    Redis's, or the outage fallback's). Every call reaches both; ``mark`` is theirs end
    to end, as `RedisRateLimiter.mark` is.
    """

    __slots__ = ("_lease", "_leases", "cost", "held", "shared", "waited")

    def __init__(
        self,
        shared: Reservation,
        held: MemoryReservation,
        waited: float,
        leases: RedisLeases | None = None,
        lease: str | None = None,
    ) -> None:
        self.shared = shared
        self.held = held
        # The place in flight across processes (a lease in Redis), if one was taken.
        self._leases = leases
        self._lease = lease
        #: The cost that was reserved.
        self.cost = shared.cost
        #: Seconds the reservation waited (for its place in flight, then for the rate).
        self.waited = waited

    @property
    def mark(self) -> Mark:
        """The shared part's mark, then the place in flight's."""
        return (*self.shared.mark, *self.held.mark)

    @property
    def closed(self) -> bool:
        """Whether the reservation was settled or released."""
        return self.shared.closed

    def settle(self, actual: Cost) -> None:
        """Reconcile the shared part with ``actual``; the place in flight comes back.

        :raises ReservationError: if it was already settled or released.
        """
        self.shared.settle(actual)
        if not self.held.closed:
            self.held.settle(actual)
        self._give_lease_back()

    def release(self) -> None:
        """Give both parts back: the call was never sent.

        :raises ReservationError: if it was already settled or released.
        """
        self.shared.release()
        if not self.held.closed:
            self.held.release()
        self._give_lease_back()

    def sent(self) -> None:
        """The call leaves now (see `MemoryReservation.sent`)."""
        self.shared.sent()
        self.held.sent()

    def finish(self) -> None:
        """The call is over: its place in flight comes back (idempotent)."""
        self.held.finish()
        self._give_lease_back()

    def _give_lease_back(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None and self._leases is not None:
            self._leases.release_soon(lease)

    def __repr__(self) -> str:
        return f"<RedisReservation {self.cost!r} {'closed' if self.closed else 'open'} +in flight>"


class _Done:
    """An awaitable that is already finished (cheaper than a coroutine)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_DONE = _Done()


class _RedisAcquire:
    """What `RedisRateLimiter.acquire` returns: await it, or use it as ``async with``."""

    __slots__ = ("_cost", "_lane", "_limiter", "_timeout")

    def __init__(
        self, limiter: RedisRateLimiter, cost: Cost, timeout: float | None, lane: str
    ) -> None:
        self._limiter = limiter
        self._cost = cost
        self._timeout = timeout
        self._lane = lane

    def __await__(self) -> Generator[Any, None, Reservation]:
        return self._limiter._acquire(self._cost, self._timeout, self._lane).__await__()

    async def __aenter__(self) -> Reservation:
        return await self._limiter._acquire(self._cost, self._timeout, self._lane)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> _Done:
        # Left open, the reservation keeps its estimate (the side that causes no 429s).
        return _DONE


class RedisRateLimiter:
    """A `Limiter` whose quota lives in Redis; made by `RedisBackend.limiter`.

    The same interface as the memory `RateLimiter` (the transport, the learner, the
    strategies, the decorator and the batch runner take either), with these differences:
    there is no ``acquire_nowait`` (use ``await limiter.acquire(cost, timeout=0)``: one
    round trip, granted only if no wait is needed); corrections reach Redis in the
    background (`aclose` waits for them); `statistics` counts this process's calls, with
    the levels Redis last reported.

    Calls in flight (``Limits(concurrency=...)``) wait in a memory `RateLimiter` held
    inside (``in_flight``, ``set_concurrency`` are its), then take a lease in Redis, so
    the cap holds across processes (see the module docstring).
    ``lanes`` are checked as in memory and order the wait for a place in flight; the
    shared rate is granted FIFO, within a process and across processes, whatever the
    lane (a lane's weighted share is not enforced through Redis).
    """

    __slots__ = (
        "__weakref__",
        "_abandoned",
        "_actual",
        "_backend",
        "_best_trip",
        "_client_id",
        "_dropped",
        "_epoch",
        "_estimated",
        "_fallback",
        "_follow",
        "_granted",
        "_granted_after_wait",
        "_inflight",
        "_keys",
        "_lanes",
        "_leases",
        "_local",
        "_local_at",
        "_local_owed",
        "_local_waiters",
        "_lost",
        "_matcher",
        "_names",
        "_offset",
        "_offset_at",
        "_ops",
        "_outstanding",
        "_owed",
        "_peeking",
        "_pending",
        "_refunded",
        "_released",
        "_seen",
        "_sending",
        "_settled",
        "_settling",
        "_sleepers",
        "_spec",
        "_tasks",
        "_time_waited",
        "_timed_out",
        "_undone",
        "_updating",
        "_view",
        "_waiting",
        "scope",
    )

    def __init__(
        self,
        backend: RedisBackend,
        limits: Limits | Sequence[Dimension],
        *,
        scope: str,
        follow_server_limits: bool = True,
        lanes: Mapping[str, float] = DEFAULT_LANES,
    ) -> None:
        check_type("scope", scope, str)
        check_type("follow_server_limits", follow_server_limits, bool)
        if isinstance(limits, Limits):
            dims = limits.dimensions()
        else:
            check_instance("limits", limits, (list, tuple), "a Limits or a sequence of Dimension")
            dims = tuple(limits)
            for dim in dims:
                check_instance("limits", dim, Dimension, "a Limits or a sequence of Dimension")
        for dim in dims:
            if "\t" in dim.name or "\n" in dim.name:
                raise ValueError(f"a dimension name must not hold a tab or newline: {dim.name!r}")
        Bucket(dims, 0.0)  # checks: some dimensions, unique names
        self._lanes = Line(check_lanes(lanes))
        # Calls in flight are places that come back, not a rate: counted in this process.
        held = tuple(d for d in dims if d.holding)
        dims = tuple(d for d in dims if not d.holding)
        if not dims:
            raise ValueError(
                "limits: a Redis quota needs a rate (rpm, tpm, ...) beside calls in flight"
            )
        self._matcher = Bucket(dims, 0.0)
        self._backend = backend
        self.scope = scope
        self._keys = list(backend.keys(scope))
        self._follow = follow_server_limits
        self._client_id = uuid.uuid4().hex[:12]
        # ARGV[2] and ARGV[3] of every script: the names, and what creates a dimension.
        self._names = "\n".join(d.name for d in dims)
        self._spec = " ".join(
            f"{d.limit!r} {d.window!r} {d.capacity!r} {float(d.opening or 0)!r}" for d in dims
        )
        self._view = _View(dims)
        n = len(dims)
        # The quota's lifetime this limiter knows (None: it has never seen the quota).
        self._epoch: str | None = None
        # (epoch, Redis time, monotonic time it arrived) of the latest reply: the base
        # of this process's vouching for the time that passed since.
        self._seen: tuple[str, float, float] | None = None
        # Redis time, estimated as the monotonic clock plus an offset measured on replies;
        # `clock()` returns it so that the transport's timestamps compare with Redis's.
        self._offset = time.time() - time.monotonic()
        self._offset_at = -math.inf
        self._best_trip = math.inf
        self._pending: deque[_Request] = deque()
        self._inflight: list[_Request] = []
        self._sending = False
        self._sleepers: set[_Sleeper] = set()
        self._outstanding = [0.0] * n
        # What settles owe the current lifetime: (refund, give, untake) per dimension.
        self._owed: tuple[list[float], list[float], list[float]] | None = None
        self._settling = False
        self._ops: list[str] = []
        self._updating = False
        self._peeking = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._fallback: RateLimiter | None = None
        self._local_owed = [0.0] * n
        self._local_at = 0.0
        self._local_waiters: set[anyio.CancelScope] = set()
        self._waiting = 0
        self._granted = 0
        self._granted_after_wait = 0
        self._abandoned = 0
        self._timed_out = 0
        self._settled = 0
        self._released = 0
        self._time_waited = 0.0
        self._estimated = [0.0] * n
        self._refunded = [0.0] * n
        self._actual = [0.0] * n
        self._dropped = 0
        self._lost = 0
        self._undone = 0
        # On this limiter's clock (Redis's time as estimated here), so the places in
        # flight and the shared part read one time.
        self._local = RateLimiter(held, clock=self.clock, lanes=lanes) if held else None
        # ... and capped across processes: each place is also a lease in Redis, which a
        # killed process gives back when it expires (``backend.lease_ttl``).
        self._leases = (
            RedisLeases(
                backend.client,
                self._keys[0].removesuffix(":state") + ":flight",
                ttl=backend.lease_ttl,
            )
            if held
            else None
        )

    # -- the interface: reading ----------------------------------------------------------

    def clock(self) -> float:
        """Redis's time, estimated here (reservations and header times use it)."""
        return time.monotonic() + self._offset

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions with their stated limits, as Redis last reported them (then
        those of calls in flight, counted in this process)."""
        local = self._local
        return self._view.dims if local is None else (*self._view.dims, *local.dimensions)

    def paces(self) -> dict[str, float]:
        """The limit each dimension refills at now, by name."""
        view = self._view
        paces = {d.name: pace for d, pace in zip(view.dims, view.pace, strict=True)}
        if self._local is not None:
            paces.update(self._local.paces())
        return paces

    def probing(self) -> tuple[str, ...]:
        """The dimensions still slow-starting (shared by every process on the quota; calls
        in flight, this process's)."""
        view = self._view
        shared = tuple(d.name for d, p in zip(view.dims, view.probing, strict=True) if p)
        return shared if self._local is None else (*shared, *self._local.probing())

    def mark(self) -> Mark:
        """The running totals taken from the quota, as Redis last reported them (then this
        process's calls in flight)."""
        local = self._local
        return tuple(self._view.taken) if local is None else (*self._view.taken, *local.mark())

    def in_flight(self) -> tuple[float, float] | None:
        """Calls in flight from this process and the cap in force (on all processes)."""
        return None if self._local is None else self._local.in_flight()

    def set_concurrency(self, limit: float) -> None:
        """Let at most ``limit`` calls be in flight from now (>= 1), this process's
        leases counted against the same cap in Redis."""
        if self._local is not None:
            self._local.set_concurrency(limit)

    def expected_wait(self, cost: Cost | None = None) -> float:
        """Seconds until ``cost`` would be granted, from what Redis last reported.

        An estimate: the levels Redis reported (which count every process's
        reservations) refilled to now, plus this process's acquires not yet sent.
        """
        amounts = self._amounts_of(_DEFAULT_COST if cost is None else cost)
        view = self._view
        if any(a > d.capacity * (1 + _EPSILON) for a, d in zip(amounts, view.dims, strict=True)):
            return math.inf
        now = self.clock()
        held = 0.0 if self._local is None else self._local.expected_wait(cost)
        queued = [r for r in self._pending if r.state == _PENDING]
        if not queued:
            return max(held, view.delay(amounts, now, within_depth=True))
        backlog = list(amounts)
        for request in queued:
            for i, amount in enumerate(request.amounts):
                backlog[i] += amount
        return max(held, view.delay(backlog, now, within_depth=False))

    def statistics(self) -> LimiterStatistics:
        """This process's counters, and the quota as Redis last reported it."""
        view = self._view
        names = [d.name for d in view.dims]
        refunded = dict(zip(names, self._refunded, strict=True))
        estimated = dict(zip(names, self._estimated, strict=True))
        actual = dict(zip(names, self._actual, strict=True))
        levels = dict(zip(names, view.levels(self.clock()), strict=True))
        limits = {d.name: d.limit for d in view.dims}
        depths = dict(zip(names, view.depth, strict=True))
        paces = dict(zip(names, view.pace, strict=True))
        if self._local is not None:
            held = self._local.statistics()
            for ours, its in (
                (refunded, held.refunded),
                (estimated, held.estimated),
                (actual, held.actual),
                (levels, held.levels),
                (limits, held.limits),
                (depths, held.depths),
                (paces, held.paces),
            ):
                ours.update(its)
        return LimiterStatistics(
            tasks_waiting=self._waiting,
            granted=self._granted,
            granted_after_wait=self._granted_after_wait,
            abandoned=self._abandoned,
            timed_out=self._timed_out,
            settled=self._settled,
            released=self._released,
            time_waited=self._time_waited,
            refunded=refunded,
            estimated=estimated,
            actual=actual,
            levels=levels,
            limits=limits,
            depths=depths,
            paces=paces,
            probing=self.probing(),
        )

    @property
    def dropped(self) -> int:
        """Background updates lost to an outage (logged as they happened)."""
        return self._dropped

    @property
    def serving_locally(self) -> bool:
        """Whether calls are being served from the local fallback share right now."""
        return self._fallback is not None and self._backend.down

    # -- the interface: granting ---------------------------------------------------------

    def acquire(
        self, cost: Cost | None = None, *, timeout: float | None = None, lane: str | None = None
    ) -> _RedisAcquire:
        """Reserve ``cost`` in Redis, sleep out the wait, and return a `Reservation`.

        Use it as ``async with limiter.acquire(cost) as reservation:`` or
        ``reservation = await limiter.acquire(cost)``.

        :param timeout: give up after this many seconds, the round trip included; a
            reservation whose wait would exceed it is never made. ``0`` is a try: one
            round trip, granted only if no wait is needed.
        :param lane: the priority lane; by default the one a surrounding
            `ratelimit_llm.lane` block names, else ``"default"``. It orders the wait for
            a place in flight (``Limits(concurrency=...)``), in this process; Redis
            grants the rate FIFO whatever the lane.
        :raises CapacityExceededError: if ``cost`` is above a stated capacity.
        :raises AcquireTimeoutError: if ``timeout`` passed first (nothing is taken).
        :raises BackendUnavailableError: Redis is unreachable and the backend fails
            closed.
        :raises ValueError: for a lane this limiter does not have.
        :raises TypeError: for a lane that is not a string.
        """
        if cost is not None:
            check_instance("cost", cost, Cost, "a Cost or None")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"timeout must be a number or None, got {type(timeout).__name__}")
            if not timeout >= 0:
                raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
            timeout = None if math.isinf(timeout) else float(timeout)
        lane = self._lanes.check_call(lane)
        return _RedisAcquire(self, _DEFAULT_COST if cost is None else cost, timeout, lane)

    def limit(
        self,
        cost: Cost | Callable[..., Cost] | None = None,
        *,
        timeout: float | None = None,
        actual: Callable[[Any], Cost | None] | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate a coroutine function so that each call acquires ``cost`` first."""
        from .._decorator import limit

        return limit(self, cost, timeout=timeout, actual=actual)

    async def _acquire(self, cost: Cost, patience: float | None, lane: str) -> Reservation:
        if sniffio.current_async_library() != "asyncio":
            raise RuntimeError(
                "the Redis backend runs on asyncio (its client is redis.asyncio); "
                "under trio, use the memory backend"
            )
        loop = asyncio.get_running_loop()
        amounts = self._amounts_of(cost)
        self._check_fits(amounts)
        start = loop.time()
        deadline = None if patience is None else start + patience
        self._waiting += 1
        try:
            local = self._local
            if local is None:
                return await self._shared(loop, cost, amounts, deadline, patience)
            # A place in flight first, in this process's line (lanes apply), then the
            # shared rate: waiting for a place holds no shared capacity idle.
            try:
                held = await local.acquire(cost, timeout=patience, lane=lane)
            except AcquireTimeoutError:
                self._timed_out += 1
                raise
            assert isinstance(held, MemoryReservation)
            lease: str | None = None
            try:
                lease = await self._lease(loop, local, deadline)
                shared = await self._shared(loop, cost, amounts, deadline, patience)
            except BaseException:
                held.release()  # a timeout, a refusal, a cancel: the places come back
                if lease is not None and self._leases is not None:
                    self._leases.release_soon(lease)
                raise
            return _HeldReservation(shared, held, loop.time() - start, self._leases, lease)
        finally:
            self._waiting -= 1

    async def _lease(
        self, loop: asyncio.AbstractEventLoop, local: RateLimiter, deadline: float | None
    ) -> str | None:
        """A place in flight across processes: a lease on the cap in force here.

        Skipped while the backend is down (the outage policy decides, as for the rate);
        an outage met here fails closed, or goes on without a lease under
        ``on_outage="local"``.
        """
        leases = self._leases
        if leases is None or self._backend.down:
            return None

        def cap() -> int:
            # Asked at every try: "auto" may lower or raise the cap while this call waits.
            counted = local.in_flight()
            limit = 1.0 if counted is None else counted[1]
            return max(1, math.floor(limit)) if math.isfinite(limit) else _NO_CAP

        left = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await leases.acquire(cap, timeout=left)
        except AcquireTimeoutError:
            self._timed_out += 1
            raise
        except BackendUnavailableError:
            if self._backend.on_outage == "local":
                return None
            raise

    async def _shared(
        self,
        loop: asyncio.AbstractEventLoop,
        cost: Cost,
        amounts: tuple[float, ...],
        deadline: float | None,
        patience: float | None,
    ) -> Reservation:
        if self._backend.down:
            return await self._serve_locally(cost, amounts, deadline, patience)
        return await self._through_redis(loop, cost, amounts, deadline, patience)

    async def _through_redis(
        self,
        loop: asyncio.AbstractEventLoop,
        cost: Cost,
        amounts: tuple[float, ...],
        deadline: float | None,
        patience: float | None,
    ) -> Reservation:
        start = loop.time()
        request = _Request(amounts, deadline, loop.create_future())
        self._pending.append(request)
        if not self._sending:
            self._sending = True
            self._in_background(self._send_acquires())
        if deadline is not None and deadline > start:
            # A try (timeout 0) gets its round trip; any other wait is bounded here.
            request.timer = loop.call_at(deadline, self._expire, request)
        try:
            result = await request.future
        except BaseException:
            self._left(request)
            raise
        if request.timer is not None:
            request.timer.cancel()
        if isinstance(result, _Verdict):
            return await self._refused(result, cost, amounts, deadline, patience)
        sleeper = result.sleeper
        if sleeper is not None:
            assert sleeper.future is not None
            try:
                failure = await sleeper.future
            except BaseException:
                self._abandoned += 1
                self._drop(result, amounts)
                raise
            if failure is not None:
                raise failure
        waited = loop.time() - start
        self._granted += 1
        if result.wait > 0:
            self._granted_after_wait += 1
            self._time_waited += waited
        epoch = result.epoch if sleeper is None else sleeper.epoch
        return RedisReservation(
            self, cost, amounts, result.mark, waited, epoch, result.vt + result.wait
        )

    async def _refused(
        self,
        verdict: _Verdict,
        cost: Cost,
        amounts: tuple[float, ...],
        deadline: float | None,
        patience: float | None,
    ) -> Reservation:
        kind = verdict.kind
        if kind in ("expired", "too_long"):
            self._timed_out += 1
            raise AcquireTimeoutError(math.inf if patience is None else patience)
        if kind == "capacity":
            index, capacity = verdict.detail
            raise CapacityExceededError(self._view.dims[index].name, amounts[index], capacity)
        if kind == "error":
            raise BackendError(str(verdict.detail)) from None
        return await self._serve_locally(cost, amounts, deadline, patience)

    def _expire(self, request: _Request) -> None:
        """A caller's deadline passed before Redis answered for it."""
        if request.future.done():
            return
        request.state = _GONE if request.state == _PENDING else _ABANDONED
        request.future.set_result(_EXPIRED)

    def _left(self, request: _Request) -> None:
        """The caller of ``request`` was cancelled: it must leave nothing taken."""
        if request.timer is not None:
            request.timer.cancel()
        future = request.future
        if future.done() and not future.cancelled():
            result = future.result()
            if isinstance(result, _Grant):
                self._drop(result, request.amounts)
        elif request.state == _PENDING:
            request.state = _GONE
        elif request.state == _SENT:
            request.state = _ABANDONED  # the reply gives back what Redis reserved
        self._abandoned += 1

    def _drop(
        self, grant: _Grant, amounts: tuple[float, ...], failure: BaseException | None = None
    ) -> None:
        """Give back a reservation its caller will never use (it left, or ``failure``)."""
        if grant.dropped:
            return
        grant.dropped = True
        sleeper = grant.sleeper
        epoch = grant.epoch
        if sleeper is not None:
            epoch = sleeper.epoch
            self._wake(sleeper, failure)
        if failure is None:
            self._undone += 1
        self._give_back(amounts, epoch)

    def _wake(self, sleeper: _Sleeper, failure: BaseException | None) -> None:
        """A sleeper's wait is over (or it failed): it no longer counts as outstanding."""
        if sleeper.handle is not None:
            sleeper.handle.cancel()
        if sleeper in self._sleepers:
            self._sleepers.discard(sleeper)
            if self._sleepers:
                for i, amount in enumerate(sleeper.amounts):
                    self._outstanding[i] -= amount
            else:
                self._outstanding = [0.0] * len(self._outstanding)
        future = sleeper.future
        if future is not None and not future.done():
            future.set_result(failure)

    async def _send_acquires(self) -> None:
        """Send the queued acquires, a batch per round trip, until none is left."""
        loop = asyncio.get_running_loop()
        pending = self._pending
        backend = self._backend
        try:
            while pending:
                if backend.down:
                    self._backend_down()
                    break
                batch: list[_Request] = []
                words: list[str] = []
                now = loop.time()
                while pending and len(batch) < MAX_BATCH:
                    request = pending.popleft()
                    if request.state != _PENDING:
                        continue
                    request.state = _SENT
                    batch.append(request)
                    deadline = request.deadline
                    words.append("-1" if deadline is None else repr(max(0.0, deadline - now)))
                    words.extend([repr(a) for a in request.amounts])
                if not batch:
                    continue
                local = self._take_local_owed(now)
                debts = [*self._outstanding, *local]
                args = [
                    self._header(),
                    self._names,
                    self._spec,
                    " ".join(words),
                    " ".join(map(repr, debts)),
                ]
                self._inflight = batch
                sent = time.monotonic()
                try:
                    reply = await backend.run("acquire", self._keys, args)
                except BackendUnavailableError:
                    self._put_local_owed(local)
                    self._backend_down()
                    continue
                except BackendError as exc:
                    for request in batch:
                        self._resolve(request, _Verdict("error", str(exc)))
                    continue
                except BaseException as exc:
                    # Not an outage nor a refusal (a bug, or this task cancelled): say so
                    # to everyone waiting here rather than leave them waiting for ever.
                    verdict = _Verdict("error", f"Redis call failed: {exc!r}")
                    for request in [*batch, *pending]:
                        if not request.future.done():
                            request.state = _ABANDONED if request.state == _SENT else _GONE
                            request.future.set_result(verdict)
                    pending.clear()
                    raise
                finally:
                    self._inflight = []
                try:
                    self._read_acquired(reply, batch, sent, time.monotonic())
                except Exception as exc:  # a reply we cannot read: fail loudly, hang nobody
                    _log.exception("unreadable reply from Redis for quota %r", self.scope)
                    for request in batch:
                        self._resolve(request, _Verdict("error", f"unreadable reply: {exc!r}"))
        finally:
            self._sending = False

    def _resolve(self, request: _Request, verdict: _Verdict) -> None:
        if request.state == _SENT and not request.future.done():
            request.future.set_result(verdict)
        request.state = _ANSWERED

    def _read_acquired(
        self, reply: str, batch: list[_Request], sent: float, received: float
    ) -> None:
        parts = reply.split(" ")
        epoch = parts[0]
        vt = float(parts[1])
        if epoch != self._epoch:
            if self._epoch is not None:
                # The quota was lost (a restart, a flush) and re-created: our sleeping
                # reservations were debited from the new one; what settles owed the old
                # one is gone with it.
                _log.warning(
                    "quota %r was lost in Redis and re-created empty; %d reservations "
                    "still sleeping were charged to it",
                    self.scope,
                    len(self._sleepers),
                )
                for asleep in self._sleepers:
                    asleep.epoch = epoch
                self._owed = None
            self._epoch = epoch
            self._offset_at = -math.inf
        self._learn(epoch, vt, sent, received)
        self._read_view(parts, predicted=not self._ops and not self._updating)
        if self._fallback is not None:
            self._back_from_outage()
        n = len(self._view.dims)
        loop = asyncio.get_running_loop()
        base = 5 + _PACKED * n
        pause = self._view.pause
        paused_until = pause[1] if pause is not None and pause[1] > vt else None
        stride = n + 2
        estimated = self._estimated
        for j, request in enumerate(batch):
            at = base + j * stride
            status = parts[at]
            if status == "1":
                wait = float(parts[at + 1])
                mark = tuple([float(v) for v in parts[at + 2 : at + 2 + n]])
                amounts = request.amounts
                for i, amount in enumerate(amounts):
                    estimated[i] += amount
                sleeper: _Sleeper | None = None
                if wait > 0:
                    sleeper = _Sleeper(amounts, epoch)
                    sleeper.future = loop.create_future()
                    sleeper.usable = vt + wait
                    sleeper.wake_at = loop.time() + wait
                    if paused_until is not None and sleeper.usable >= paused_until:
                        sleeper.paused_until = paused_until
                    sleeper.handle = loop.call_at(sleeper.wake_at, self._wake, sleeper, None)
                    self._sleepers.add(sleeper)
                    for i, amount in enumerate(amounts):
                        self._outstanding[i] += amount
                grant = _Grant(wait, mark, epoch, vt, sleeper)
                if sleeper is not None:
                    sleeper.grant = grant
                if request.state == _SENT and not request.future.done():
                    request.future.set_result(grant)
                else:
                    # Its caller left while the request was on the wire.
                    self._drop(grant, amounts)
                request.state = _ANSWERED
            elif status == "0":
                self._resolve(request, _TOO_LONG)
            else:
                index = int(parts[at + 1]) - 1
                self._resolve(request, _Verdict("capacity", (index, float(parts[at + 2]))))
        self._watch_pause()

    # -- outages -------------------------------------------------------------------------

    def _backend_down(self) -> None:
        """The backend went down: every caller waiting on Redis fails or goes local now."""
        verdict = _LOCAL if self._backend.on_outage == "local" else _OUTAGE
        for request in [*self._pending, *self._inflight]:
            if request.future.done():
                continue
            request.state = _GONE if request.state == _PENDING else _ABANDONED
            request.future.set_result(verdict)
        self._pending.clear()

    async def _serve_locally(
        self,
        cost: Cost,
        amounts: tuple[float, ...],
        deadline: float | None,
        patience: float | None,
    ) -> Reservation:
        backend = self._backend
        if backend.on_outage == "fail":
            raise BackendUnavailableError(
                f"Redis at {backend.where} is unavailable; quota {self.scope!r} fails closed"
            ) from None
        fallback = self._fallback
        if fallback is None:
            share = backend.local_share
            _log.warning(
                "Redis at %s is unavailable; quota %r falls back to a local %.0f%% share",
                backend.where,
                self.scope,
                share * 100,
            )
            dims = [
                Dimension(d.name, d.metric, d.limit * share, d.window, d.capacity * share)
                for d in self._view.dims
            ]
            # Empty at first: the others may have spent the quota just before.
            fallback = self._fallback = RateLimiter(dims, initial_fill=0.0)
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        with anyio.CancelScope() as scope:
            self._local_waiters.add(scope)
            try:
                reservation = await fallback.acquire(cost, timeout=remaining)
            finally:
                self._local_waiters.discard(scope)
            self._spent_locally(fallback, amounts, loop.time())
            return reservation
        # Redis came back while this caller waited in the local line: ask Redis.
        return await self._through_redis(loop, cost, amounts, deadline, patience)

    def _spent_locally(self, fallback: RateLimiter, amounts: tuple[float, ...], now: float) -> None:
        """Count a local grant in what Redis will be debited when it returns.

        What is owed decays at the local share's rate: spending that the share's refill
        has covered since is no longer in the server's bucket.
        """
        elapsed = max(0.0, now - self._local_at)
        self._local_at = now
        owed = self._local_owed
        for i, dim in enumerate(fallback.dimensions):
            owed[i] = max(0.0, owed[i] - dim.rate * elapsed) + amounts[i]

    def _take_local_owed(self, now: float) -> list[float]:
        owed = self._local_owed
        if not any(owed):
            return owed[:]
        fallback_rates = [d.rate * self._backend.local_share for d in self._view.dims]
        elapsed = max(0.0, now - self._local_at)
        taken = [max(0.0, o - rate * elapsed) for o, rate in zip(owed, fallback_rates, strict=True)]
        self._local_owed = [0.0] * len(owed)
        self._local_at = now
        return taken

    def _put_local_owed(self, taken: list[float]) -> None:
        for i, amount in enumerate(taken):
            self._local_owed[i] += amount

    def _back_from_outage(self) -> None:
        _log.warning("Redis is back; quota %r is shared again", self.scope)
        self._fallback = None
        # Callers still in the local line go to Redis: the two must not both grant.
        for scope in list(self._local_waiters):
            scope.cancel()

    # -- settling ------------------------------------------------------------------------

    def _settle(self, reservation: RedisReservation, actual: tuple[float, ...]) -> None:
        self._settled += 1
        reserved = reservation._amounts
        owed = self._owed_for(reservation.epoch)
        for i, cost in enumerate(actual):
            self._actual[i] += cost
            unspent = reserved[i] - cost
            if unspent > 0:
                self._refunded[i] += unspent
            if owed is not None:
                owed[0][i] += unspent
        if owed is not None:
            self._flush_settles()

    def _give_back(self, amounts: tuple[float, ...], epoch: str) -> None:
        owed = self._owed_for(epoch)
        for i, amount in enumerate(amounts):
            self._refunded[i] += amount
            self._estimated[i] -= amount
            if owed is not None:
                owed[1][i] += amount
                owed[2][i] += amount
        if owed is not None:
            self._flush_settles()

    def _owed_for(self, epoch: str) -> tuple[list[float], list[float], list[float]] | None:
        """The sums owed to the current lifetime; ``None`` for a lost one (nothing to do)."""
        if epoch != self._epoch:
            self._lost += 1
            return None
        owed = self._owed
        if owed is None:
            n = len(self._view.dims)
            owed = self._owed = ([0.0] * n, [0.0] * n, [0.0] * n)
        return owed

    def _flush_settles(self) -> None:
        if not self._settling:
            self._settling = True
            self._in_background(self._send_settles())

    async def _send_settles(self) -> None:
        """Send what settles owe, summed while the previous call was on the wire.

        Thousands of settles a second on a hot quota cost a handful of script calls,
        and the connections stay free for the acquires, which make callers wait.
        """
        try:
            while self._owed is not None:
                refund, give, untake = self._owed
                self._owed = None
                words = []
                for values in zip(refund, give, untake, strict=True):
                    words.extend([repr(v) for v in values])
                args = [self._header(settle=True), self._names, self._spec, " ".join(words)]
                sent = time.monotonic()
                try:
                    reply = await self._backend.run("settle", self._keys, args)
                except (BackendUnavailableError, BackendError) as exc:
                    self._dropped += 1
                    _log.warning("settles for quota %r were not applied: %s", self.scope, exc)
                    continue
                self._read_reply(reply, sent, predicted=not self._ops and not self._updating)
        finally:
            self._settling = False

    # -- corrections (the learner's), sent as one update per step ------------------------

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
        """Correct one dimension from the server's view (see `Bucket.observe`)."""
        local = self._local
        if local is not None and any(d.metric == metric for d in local.dimensions):
            held = reservation.held if isinstance(reservation, _HeldReservation) else None
            return local.observe(
                metric, limit=limit, remaining=remaining, window=window, reset=reset,
                reservation=held, since=since,
            )  # fmt: skip
        reading = (metric, limit, remaining, window, reset, False)
        return self._observe([reading], reservation, since)[0]

    def observe_snapshot(
        self,
        snapshot: RateLimitSnapshot,
        reservation: Reservation | None = None,
        *,
        since: float | None = None,
    ) -> list[str]:
        """Apply every dimension of a parsed header snapshot (see `RateLimiter`)."""
        readings: list[Reading] = [
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
        return [name for name in self._observe(readings, reservation, since) if name]

    def _observe(
        self,
        readings: Sequence[Reading],
        reservation: Reservation | None,
        since: float | None,
    ) -> list[str | None]:
        """Apply (metric, limit, remaining, window, reset, window_known) readings."""
        view = self._view
        marks: Mark | None = None
        if isinstance(reservation, _HeldReservation):
            reservation = reservation.shared
        if isinstance(reservation, RedisReservation) and reservation._limiter is self:
            # From a lifetime of the quota that was lost, a mark counts for nothing.
            marks = (
                reservation.mark if reservation.epoch == self._epoch else (0.0,) * len(view.dims)
            )
        dims = list(view.dims)
        names: list[str | None] = []
        for metric, limit, remaining, window, reset, window_known in readings:
            name = self._matcher.observe(
                metric, now=0.0, limit=limit, window=window, resize=False, window_known=window_known
            )
            names.append(name)
            if name is None:
                continue
            i = self._index(name)
            dim = dims[i]
            per_own = window_known and window and limit is not None and limit > 0
            if per_own and window and limit and not 0.5 <= dim.window / window <= 2.0:
                # A limit per the reading's own window (see `Bucket.observe`): per ours.
                limit = limit * dim.window / window
            resize = self._follow and limit is not None and limit > 0
            if resize and limit is not None and not math.isclose(dim.limit, limit, rel_tol=1e-6):
                share = limit / dim.limit
                dims[i] = dim = dim.resized(limit)
                view.depth[i] = min(dim.capacity, view.depth[i] * share)
                view.pace[i] = dim.limit
            if remaining is not None and remaining >= 0:
                shown = _shown_depth(dim, limit, remaining, reset)
                if view.probing[i]:
                    if shown is not None:
                        view.probing[i] = False
                        view.depth[i] = shown
                elif shown is not None and abs(shown - view.depth[i]) > 0.1 * view.depth[i]:
                    view.depth[i] = shown
            if marks is not None:
                mark = f"m:{marks[i]!r}"
            elif since is not None:
                mark = f"s:{since!r}"
            else:
                mark = "-"
            self._queue_op(
                "h",
                name,
                _word(limit),
                _word(remaining),
                _word(reset),
                mark,
                "1" if resize else "0",
            )
        if tuple(dims) != view.dims:
            self._set_dims(tuple(dims))
        return names

    def hold(self, seconds: float, *, metric: str | None = None, cost: Cost | None = None) -> None:
        """Grant nothing that needs ``cost`` for ``seconds`` (Redis's depth and pace decide)."""
        if not seconds > 0 or math.isinf(seconds):
            return
        dims = self._view.dims
        amounts = (0.0,) * len(dims) if cost is None else self._amounts_of(cost)
        for dim, amount in zip(dims, amounts, strict=True):
            if metric is None or dim.metric == metric:
                self._queue_op("hold", dim.name, repr(float(seconds)), repr(amount))

    def resize(self, name: str, limit: float) -> None:
        """Set a new stated limit; sleeping callers it can no longer serve fail at once."""
        if self._is_local(name):
            assert self._local is not None
            self._local.resize(name, limit)
            return
        i = self._index(name)
        limit = check_number("limit", limit, low=0.0, low_open=True)
        view = self._view
        dims = list(view.dims)
        old = dims[i]
        if not math.isclose(old.limit, limit, rel_tol=1e-6):
            dims[i] = new = old.resized(limit)
            view.depth[i] = min(new.capacity, view.depth[i] * limit / old.limit)
            view.pace[i] = new.limit
            self._set_dims(tuple(dims))
        self._queue_op("resize", name, repr(limit))

    def set_pace(self, name: str, limit: float, cost: Cost | None = None) -> None:
        """Refill ``name`` as if its limit were ``limit`` (inferred; the stated limit stays)."""
        if self._is_local(name):
            assert self._local is not None
            self._local.set_pace(name, limit, cost)
            return
        i = self._index(name)
        limit = check_number("limit", limit, low=0.0, low_open=True)
        amount = self._amounts_of(_DEFAULT_COST if cost is None else cost)[i]
        self._view.pace[i] = min(limit, self._view.dims[i].limit)
        self._queue_op("pace", name, repr(limit), repr(amount))

    def set_level(self, name: str, level: float) -> None:
        """Put dimension ``name`` at ``level`` now (below zero is debt)."""
        if self._is_local(name):
            assert self._local is not None
            self._local.set_level(name, level)
            return
        self._index(name)
        level = check_number("level", level)
        self._queue_op("level", name, repr(level))

    def answered(self) -> None:
        """The server answered a call: slow start's pause ends (for every process)."""
        self._queue_op("answer")
        if self._local is not None:
            self._local.answered()

    def grow(self, reservation: Reservation, *, factor: float = 2.0) -> tuple[str, ...]:
        """The call of ``reservation`` was answered without refusal: open slow start.

        Redis decides from its own probe; the names returned are those this process
        expects to grow from what Redis last reported (then the calls in flight that grew
        here).
        """
        if isinstance(reservation, _HeldReservation):
            assert self._local is not None
            held = self._local.grow(reservation.held, factor=factor)
            return (*self.grow(reservation.shared, factor=factor), *held)
        if not (
            isinstance(reservation, RedisReservation)
            and reservation._limiter is self
            and reservation.epoch == self._epoch
        ):
            return ()
        view = self._view
        amounts = self._amounts_of(reservation.cost)
        grown = []
        for i, dim in enumerate(view.dims):
            if not view.probing[i] or amounts[i] <= 0:
                continue
            self._queue_op(
                "grow", dim.name, repr(amounts[i]), repr(reservation.mark[i]), repr(factor)
            )
            if reservation.mark[i] > view.probe_mark[i]:
                grown.append(dim.name)
                view.probe_mark[i] = view.taken[i]
        return tuple(grown)

    def fall_back(self, metric: str | None = None) -> tuple[str, ...]:
        """A refusal during slow start: give the last probe back and stop probing."""
        view = self._view
        fell = []
        for i, dim in enumerate(view.dims):
            if view.probing[i] and (metric is None or dim.metric == metric):
                view.probing[i] = False
                fell.append(dim.name)
                self._queue_op("fall", dim.name)
        if self._local is not None:
            fell.extend(self._local.fall_back(metric))
        return tuple(fell)

    def _queue_op(self, *fields: str) -> None:
        self._ops.append("\t".join(fields))
        if not self._updating:
            self._updating = True
            self._in_background(self._send_updates())

    async def _send_updates(self) -> None:
        """Send the queued corrections, all of them in one script call per round trip."""
        try:
            while self._ops:
                ops, self._ops = self._ops, []
                args = [self._header(), self._names, self._spec, *ops]
                sent = time.monotonic()
                try:
                    reply = await self._backend.run("update", self._keys, args)
                except (BackendUnavailableError, BackendError) as exc:
                    self._dropped += 1
                    _log.warning("corrections for quota %r were not applied: %s", self.scope, exc)
                    continue
                self._read_reply(reply, sent, predicted=not self._ops)
        finally:
            self._updating = False

    # -- replies -------------------------------------------------------------------------

    def _read_reply(self, reply: str, sent: float, *, predicted: bool) -> None:
        """Take in a settle's or an update's reply (only from the lifetime we know)."""
        parts = reply.split(" ")
        if parts[0] != self._epoch and self._epoch is not None:
            return  # a lost lifetime, or one not yet joined: the next acquire joins it
        if self._epoch is None:
            # The first script of a fresh limiter made (or found) the quota.
            self._epoch = parts[0]
        self._learn(parts[0], float(parts[1]), sent, time.monotonic())
        self._read_view(parts, predicted=predicted)

    def _read_view(self, parts: list[str], *, predicted: bool) -> None:
        """Refresh the view from a reply's head (see _quota.lua's layout and `view`).

        Levels and totals are Redis's; what this process predicts from its own
        corrections (stated limits, depths, paces, slow start) is taken from a reply only
        when no correction of ours is still on its way there.
        """
        view = self._view
        view.at = float(parts[1])
        pause = None if parts[2] == "-" else (float(parts[2]), float(parts[3]))
        if pause is not None and view.pause is not None and pause[0] == view.pause[0]:
            if pause[1] < view.pause[1]:
                self._pause_ended_early(view.pause[1], pause[1])
            else:
                pause = view.pause  # an older reply: the pause only ever gets shorter
        view.pause = pause
        dims = view.dims
        new_dims: list[Dimension] | None = None
        for i, dim in enumerate(dims):
            at = 5 + _PACKED * i
            if parts[at] == "-":
                continue
            # "limit window capacity opening depth pace probing probe probe_mark anchor
            # (3 numbers) level updated taken"
            view.level[i] = float(parts[at + 12])
            view.taken[i] = float(parts[at + 14])
            if not predicted:
                continue
            limit, window, capacity, opening = (float(v) for v in parts[at : at + 4])
            view.depth[i] = float(parts[at + 4])
            view.pace[i] = float(parts[at + 5])
            view.probing[i] = parts[at + 6] == "1"
            view.probe_mark[i] = float(parts[at + 8])
            stated = opening if opening > 0 else None
            if (limit, window, capacity, stated) != (
                dim.limit,
                dim.window,
                dim.capacity,
                dim.opening,
            ):
                if new_dims is None:
                    new_dims = list(dims)
                new_dims[i] = Dimension(dim.name, dim.metric, limit, window, capacity, stated)
        if new_dims is not None:
            self._set_dims(tuple(new_dims))
        if pause is not None:
            self._watch_pause()

    def _pause_ended_early(self, planned: float, ended: float) -> None:
        """Slow start's pause ended (an answer came) before the end the waits assumed.

        Every reservation granted during the pause was told to wait until the pause's
        planned end plus its refill; refill really began at ``ended``, so each of those
        wakes earlier by the difference, all by the same amount (the order stays), as
        memory's waiters are woken by the answer.
        """
        shift = planned - ended
        loop = asyncio.get_running_loop()
        now = loop.time()
        for sleeper in self._sleepers:
            # Both are the planned end as one reply reported it: the same float.
            if sleeper.paused_until == planned:
                sleeper.paused_until = None
                sleeper.usable -= shift
                sleeper.wake_at -= shift
                if sleeper.handle is not None:
                    sleeper.handle.cancel()
                sleeper.handle = loop.call_at(max(now, sleeper.wake_at), self._wake, sleeper, None)

    def _watch_pause(self) -> None:
        """While callers here sleep through slow start's pause, ask Redis now and then
        whether an answer ended it (any process's answer may: see `_pause_ended_early`).

        Only during the pause, at most a second at a quota's start.
        """
        view = self._view
        pause = view.pause
        if self._peeking or pause is None or view.at is None or pause[1] <= view.at:
            return
        if not any(sleeper.paused_until is not None for sleeper in self._sleepers):
            return
        self._peeking = True
        asyncio.get_running_loop().call_later(_PEEK_EVERY, self._peek)

    def _peek(self) -> None:
        self._peeking = False
        if self._sleepers:
            self._queue_op("peek")  # an update with nothing to change: its reply tells

    def _set_dims(self, dims: tuple[Dimension, ...]) -> None:
        """New stated limits: match headers against them; fail sleepers they cannot serve."""
        self._view.dims = dims
        self._matcher = Bucket(dims, 0.0)
        for sleeper in list(self._sleepers):
            for amount, dim in zip(sleeper.amounts, dims, strict=True):
                if amount > dim.capacity * (1 + _EPSILON) and sleeper.grant is not None:
                    failure = CapacityExceededError(dim.name, amount, dim.capacity)
                    self._drop(sleeper.grant, sleeper.amounts, failure)
                    break

    def _learn(self, epoch: str, vt: float, sent: float, received: float) -> None:
        """Keep the base of vouching, and estimate Redis's clock from the quickest trips.

        Redis read its clock somewhere between ``sent`` and ``received``, so at
        ``received`` its time was at least ``vt``: that is a bound this process can
        vouch for later (see `MAX_CLOCK_STEP`). For `clock`, the midpoint is off by at
        most half the round trip; a reply that waited on a busy event loop would skew
        it, so one is used only when its round trip is close to the quickest seen lately
        (or the last estimate is old).
        """
        self._seen = (epoch, vt, received)
        trip = received - sent
        if trip <= 2 * self._best_trip or received - self._offset_at > _OFFSET_MAX_AGE:
            self._offset = vt - (sent + received) / 2
            self._offset_at = received
            self._best_trip = trip if trip < self._best_trip else self._best_trip * 1.1

    def _header(self, *, settle: bool = False) -> str:
        """ARGV[1] of every script: "ttl history known vouch max_step grace client wall".

        ``known`` tells Redis that a missing quota was lost (and must come back empty);
        after ``ttl`` seconds without a word from it, it may simply have expired, so an
        acquire or a correction then lets a missing quota be created as configured.
        """
        seen = self._seen
        known = self._epoch or "-"
        backend = self._backend
        if not settle and seen is not None and time.monotonic() - seen[2] >= backend.ttl:
            known = "-"
        vouch = "-"
        if seen is not None and seen[0] == known:
            vouch = repr(seen[1] + (time.monotonic() - seen[2]))
        return (
            f"{backend.ttl} {backend.history} {known} {vouch} {MAX_CLOCK_STEP!r} "
            f"{FIRST_ANSWER_GRACE!r} {self._client_id} {time.time()!r}"
        )

    # -- plumbing ------------------------------------------------------------------------

    def _amounts_of(self, cost: Cost) -> tuple[float, ...]:
        return self._matcher.amounts(cost)

    def _check_fits(self, amounts: tuple[float, ...]) -> None:
        for amount, dim in zip(amounts, self._view.dims, strict=True):
            if amount > dim.capacity * (1 + _EPSILON):
                raise CapacityExceededError(dim.name, amount, dim.capacity)

    def _is_local(self, name: str) -> bool:
        """Whether ``name`` is a dimension of calls in flight (counted in this process)."""
        local = self._local
        return local is not None and any(d.name == name for d in local.dimensions)

    def _index(self, name: str) -> int:
        for index, dim in enumerate(self._view.dims):
            if dim.name == name:
                return index
        raise KeyError(name)

    def _in_background(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Wait until every acquire, settle and correction sent in the background is applied.

        Call it (or close the wrapped client) before a process exits, so that the last
        settles reach the shared quota.
        """
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._leases is not None:
            await self._leases.aclose()

    def __repr__(self) -> str:
        dims = ", ".join(f"{d.name}={d.limit:g}" for d in self.dimensions)
        return f"<RedisRateLimiter scope={self.scope!r} {dims} waiting={self._waiting}>"


def _shown_depth(
    dim: Dimension, limit: float | None, remaining: float, reset: float | None
) -> float | None:
    """The depth a snapshot reveals (the rule of `Bucket.observe`, for the local view)."""
    if reset is not None and reset > 0 and (limit is None or remaining < limit):
        shown = remaining + reset * dim.rate
    elif remaining >= _NEAR_FULL * dim.capacity:
        shown = dim.capacity
    else:
        return None
    return min(dim.capacity, max(shown, _EPSILON))


def _word(value: float | None) -> str:
    return "-" if value is None else repr(float(value))
