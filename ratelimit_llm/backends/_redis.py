"""One quota shared by many processes and hosts, kept in Redis.

Every operation on the quota is one atomic Lua script (``lua/*.lua``), registered once
per client and run with ``EVALSHA``: an acquire is one round trip, whatever the number of
dimensions. The scripts read the time from Redis (``TIME``), so the clocks of different
hosts never disagree about when capacity refills. There is no lock: an acquire *reserves*
capacity at once, letting levels go below zero, and the caller sleeps out the wait Redis
computed for it. Every later caller sees the lower level and waits longer, so waiters are
served in the order they arrived, a large request included (token-throttle instead polls
a Redis lock and collapses on a hot bucket).

Settles, header corrections and resizes are sent in the background (they never make a
caller wait); `RedisRateLimiter.aclose` waits for the last of them.

When Redis cannot be reached or does not answer within ``timeout``, the backend either
fails closed (`BackendUnavailableError`, the default) or serves calls from a local bucket
holding ``local_share`` of the quota, trying Redis again every ``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import anyio
import sniffio

from .._exceptions import (
    AcquireTimeoutError,
    BackendError,
    BackendUnavailableError,
    CapacityExceededError,
    ReservationError,
    WouldBlock,
)
from .._interface import Reservation
from .._limiter import LimiterStatistics, MemoryReservation, RateLimiter, _Acquire
from .._types import Cost, Dimension, Limits

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["OutagePolicy", "RedisBackend", "RedisRateLimiter"]

_log = logging.getLogger("ratelimit_llm.redis")

#: What to do while Redis is unreachable: raise, or serve from a local share.
OutagePolicy = Literal["fail", "local"]

_DEFAULT_COST = Cost(requests=1)
#: Seconds after which the estimate of Redis's clock is renewed from any reply.
_OFFSET_MAX_AGE = 5.0
_SCRIPTS = ("acquire", "settle", "observe", "resize")


def _script_source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


def _fmt(value: float) -> str:
    return repr(float(value))


class RedisBackend:
    """Quota state in Redis, shared by every limiter (in any process) with the same scope.

    Example::

        backend = RedisBackend("redis://:secret@redis.internal:6379/0")
        client = wrap(AsyncOpenAI(), limits=Limits(rpm=5_000, tpm=2_000_000), backend=backend)

    :param url: ``redis://``, ``rediss://`` (TLS) or ``unix://``, with the password in it
        if there is one; or pass ``client=`` a ready ``redis.asyncio.Redis``.
    :param namespace: prefix of every key, so that several applications share a server.
    :param on_outage: ``"fail"`` raises `BackendUnavailableError` when Redis cannot be
        reached; ``"local"`` serves calls from a local bucket with ``local_share`` of the
        quota (give each of N workers about 1/N) and returns to Redis when it answers.
    :param local_share: the fraction of each limit the local fallback may spend.
    :param retry_after: seconds between attempts to reach Redis again during an outage.
    :param timeout: seconds a Redis call may take before it counts as an outage.
    :param ttl: seconds after which an unused quota's keys expire.
    :param history: grants remembered per quota, to place header snapshots in time.
    :param max_connections: connections in the pool the backend makes from ``url``;
        callers beyond it queue for a free one.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        namespace: str = "ratelimit-llm",
        on_outage: OutagePolicy = "fail",
        local_share: float = 0.25,
        retry_after: float = 1.0,
        timeout: float = 1.0,
        ttl: float = 3600.0,
        history: int = 4096,
        max_connections: int = 64,
    ) -> None:
        if on_outage not in ("fail", "local"):
            raise ValueError(f"on_outage must be 'fail' or 'local', got {on_outage!r}")
        if not 0 < local_share <= 1:
            raise ValueError(f"local_share must be in (0, 1], got {local_share!r}")
        for label, value in (("retry_after", retry_after), ("timeout", timeout), ("ttl", ttl)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections!r}")
        if "{" in namespace or "}" in namespace:
            raise ValueError("namespace must not contain '{' or '}' (they mark the hash tag)")
        if client is None:
            if url is None:
                raise TypeError("give a Redis url or client=")
            client = _client_from_url(url, timeout, max_connections)
            self._where = _describe(url)
            self._owns_client = True
        else:
            self._where = _describe_client(client)
            self._owns_client = False
        self._client = client
        self.namespace = namespace
        self.on_outage: OutagePolicy = on_outage
        self.local_share = local_share
        self.retry_after = retry_after
        self.timeout = timeout
        self.ttl = math.ceil(ttl)
        self.history = history
        self.max_connections = max_connections
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()
        # Registered once: each call is an EVALSHA, falling back to EVAL only if the
        # server lost its script cache (a restart).
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(_script_source(name)) for name in _SCRIPTS
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBackend:
        """The backend for ``url`` (see the class for ``options``)."""
        return cls(url, **options)

    @property
    def client(self) -> Redis:
        """The ``redis.asyncio.Redis`` client the scripts run on."""
        return self._client

    def keys(self, scope: str) -> tuple[str, str]:
        """The state hash and grant-history keys of ``scope``.

        Both carry the same hash tag, ``{namespace:scope}``, so one quota lives in one
        slot of a Redis Cluster and its scripts can touch both keys atomically.
        """
        tag = f"{self.namespace}:{scope.replace('{', '(').replace('}', ')')}"
        return f"rlm:{{{tag}}}:state", f"rlm:{{{tag}}}:grants"

    def limiter(
        self,
        limits: Limits | Sequence[Dimension],
        *,
        scope: str,
        clock: Callable[[], float] | None = None,
        follow_server_limits: bool = True,
        lanes: Mapping[str, float] | None = None,
    ) -> RedisRateLimiter:
        """A limiter on quota ``scope``; ``limits`` create the quota if Redis has none.

        Once a quota exists in Redis its limits are Redis's (changed by `resize` and by
        the server's headers); ``clock`` is ignored, as time comes from Redis.
        """
        del clock  # the shared quota keeps Redis's time
        return RedisRateLimiter(
            self, limits, scope=scope, follow_server_limits=follow_server_limits
        )

    async def run(self, script: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run one of the scripts, turning any driver failure into our typed errors."""
        reply, _, _ = await self.run_timed(script, keys, args)
        return reply

    async def run_timed(
        self, script: str, keys: Sequence[str], args: Sequence[str]
    ) -> tuple[Any, float, float]:
        """`run`, with the monotonic times just before the call and just after its reply.

        The times leave out the wait for a connection, so that the round trip they
        bracket is the network's and Redis's, not the local queue's.
        """
        # The socket timeouts bound each call; waiting for a free connection is local
        # congestion, not an outage, so it is not timed. The gate queues callers first
        # come, first served: redis-py's blocking pool lets a newcomer take a freed
        # connection ahead of the caller woken for it, which left some waiting seconds.
        try:
            async with self._gate():
                sent = time.monotonic()
                reply = await self._scripts[script](keys=list(keys), args=list(args))
                return reply, sent, time.monotonic()
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from None

    def _translate(self, exc: Exception) -> Exception:
        """Our typed error for a driver's exception (never the driver's own, never a secret)."""
        from redis import exceptions

        refused = (
            exceptions.AuthenticationError,
            exceptions.AuthorizationError,
            exceptions.NoPermissionError,
        )
        if isinstance(exc, refused):
            return BackendError(
                f"Redis at {self._where} refused the credentials or the rights to run "
                f"scripts ({type(exc).__name__}); check the URL's user and password"
            )
        if _is_outage(exc):
            return BackendUnavailableError(
                f"Redis at {self._where} is unavailable ({type(exc).__name__})"
            )
        if isinstance(exc, exceptions.RedisError):
            return BackendError(f"Redis at {self._where} answered {type(exc).__name__}: {exc}")
        return exc

    def _gate(self) -> asyncio.Semaphore:
        """The FIFO gate of the running event loop (asyncio primitives bind to one loop)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.max_connections)
        return gate

    async def ping(self) -> bool:
        """Whether Redis answers now (within ``timeout``)."""
        try:
            return bool(await self._client.ping())
        except Exception as exc:
            if _is_outage(exc):
                return False
            raise

    async def aclose(self) -> None:
        """Close the connection pool (only if the backend made the client)."""
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        where, namespace = self._where, self.namespace
        return f"<RedisBackend {where} namespace={namespace!r} on_outage={self.on_outage}>"


class RedisReservation(MemoryReservation):
    """A `Reservation` whose settle and release go to Redis (in the background)."""

    __slots__ = ("granted_at",)

    def __init__(
        self,
        limiter: RedisRateLimiter,
        cost: Cost,
        amounts: tuple[float, ...],
        mark: tuple[float, ...],
        waited: float,
        granted_at: float,
    ) -> None:
        super().__init__(limiter, cost, amounts, mark, waited)
        #: When the capacity became usable, in Redis's time.
        self.granted_at = granted_at

    def sent(self) -> None:
        # Redis's grant history is by grant time (a known limit: docs/distributed.md).
        return None

    def settle(self, actual: Cost) -> None:
        if self._state != 0:
            raise ReservationError("reservation already closed")
        self._state = 1
        limiter: RedisRateLimiter = self._limiter  # type: ignore[assignment]
        limiter._settle_remote(self._amounts, limiter.bucket.amounts(actual))

    def release(self) -> None:
        if self._state != 0:
            raise ReservationError("reservation already closed")
        self._state = 2
        limiter: RedisRateLimiter = self._limiter  # type: ignore[assignment]
        limiter._released += 1
        limiter._settle_remote(self._amounts, (0.0,) * len(self._amounts))


class _RedisAcquire(_Acquire):
    """What `RedisRateLimiter.acquire` returns: await it, or use it as ``async with``.

    The in-memory fast path of `_Acquire.__aenter__` would take from the local mirror,
    so entering always asks Redis.
    """

    __slots__ = ()

    async def __aenter__(self) -> Reservation:
        return await self._limiter._acquire(self._cost, self._timeout)


class RedisRateLimiter(RateLimiter):
    """A `RateLimiter` whose quota lives in Redis; made by `RedisBackend.limiter`.

    It is a `RateLimiter` (the same methods, the same errors) so everything that takes a
    limiter takes this one. The local `bucket` is a *mirror* of the quota's dimensions:
    it decides which dimension a header names and what a changed limit means, while the
    levels that grant capacity are Redis's. `acquire_nowait` cannot answer without a
    round trip; use ``await limiter.acquire(cost, timeout=0)``.
    """

    __slots__ = (
        "_backend",
        "_best_trip",
        "_down_until",
        "_dropped",
        "_fallback",
        "_flushing",
        "_keys",
        "_last_mark",
        "_levels_at",
        "_offset",
        "_offset_at",
        "_owed",
        "_pending",
        "_remote_levels",
        "scope",
    )

    def __init__(
        self,
        backend: RedisBackend,
        limits: Limits | Sequence[Dimension],
        *,
        scope: str,
        follow_server_limits: bool = True,
    ) -> None:
        # Redis time, estimated here as the monotonic clock plus an offset measured on
        # every reply; `clock()` returns it so that the transport's timestamps can be
        # compared with the grant history kept in Redis.
        self._offset = time.time() - time.monotonic()
        self._offset_at = -math.inf
        self._best_trip = math.inf
        super().__init__(limits, clock=self._redis_now, follow_server_limits=follow_server_limits)
        self._backend = backend
        self.scope = scope
        self._keys = backend.keys(scope)
        self._pending: set[asyncio.Task[None]] = set()
        self._fallback: RateLimiter | None = None
        self._down_until = 0.0
        self._dropped = 0
        self._remote_levels: tuple[float, ...] | None = None
        self._levels_at = 0.0
        self._last_mark: tuple[float, ...] | None = None
        self._owed: list[float] | None = None
        self._flushing = False

    # -- acquiring -----------------------------------------------------------------------

    def acquire(
        self, cost: Cost | None = None, *, timeout: float | None = None, lane: str | None = None
    ) -> _Acquire:
        if timeout is not None and not (timeout >= 0):
            raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        return _RedisAcquire(self, _DEFAULT_COST if cost is None else cost, timeout)

    def acquire_nowait(self, cost: Cost | None = None) -> Reservation:
        """Only while serving from the local fallback; otherwise Redis must be asked.

        :raises WouldBlock: always, outside an outage (use ``acquire(cost, timeout=0)``).
        """
        fallback = self._fallback
        if fallback is not None and time.monotonic() < self._down_until:
            return fallback.acquire_nowait(cost)
        raise WouldBlock

    async def _acquire(
        self, cost: Cost, patience: float | None, lane: str | None = None
    ) -> Reservation:
        if sniffio.current_async_library() != "asyncio":
            raise RuntimeError(
                "the Redis backend runs on asyncio (its client is redis.asyncio); "
                "under trio, use the memory backend"
            )
        bucket = self.bucket
        amounts = bucket.amounts(cost)
        bucket.check_fits(amounts)
        if self._fallback is not None and time.monotonic() < self._down_until:
            return await self._fallback.acquire(cost, timeout=patience)
        dims = bucket.dimensions
        args = [str(self._backend.ttl), "-1" if patience is None else _fmt(patience)]
        args += [str(self._backend.history), str(len(dims))]
        for dim, amount in zip(dims, amounts, strict=True):
            args += [dim.name, _fmt(dim.capacity), _fmt(dim.rate), _fmt(amount)]
        try:
            reply, sent, received = await self._backend.run_timed("acquire", self._keys, args)
        except BackendUnavailableError:
            return await self._outage(cost, patience)
        if self._fallback is not None:
            _log.warning("Redis is back; quota %r is shared again", self.scope)
            self._fallback = None
        status = int(reply[0])
        if status == -1:
            index = int(reply[1]) - 1
            raise CapacityExceededError(dims[index].name, amounts[index], float(reply[2]))
        wait, now = float(reply[1]), float(reply[2])
        self._learn_offset(now, sent, received)
        if status == 0:
            self._timed_out += 1
            raise AcquireTimeoutError(math.inf if patience is None else patience)
        values = [float(v) for v in reply[3:]]
        mark = tuple(values[0::2])
        self._last_mark = mark
        self._remote_levels = tuple(values[1::2])
        self._levels_at = now
        if wait > 0:
            try:
                await anyio.sleep(wait)
            except BaseException:
                self._abandoned += 1
                self._settle_remote(amounts, (0.0,) * len(amounts), count=False)
                raise
            self._granted_after_wait += 1
            self._time_waited += wait
        self._granted += 1
        return RedisReservation(self, cost, amounts, mark, wait, now + wait)

    def _learn_offset(self, redis_now: float, sent: float, received: float) -> None:
        """Estimate Redis's clock from a reply, trusting the quickest round trips most.

        Redis read its clock somewhere between ``sent`` and ``received``; the midpoint is
        off by at most half the round trip. A reply that waited on a busy event loop
        would skew the estimate, so one is used only when its round trip is close to the
        quickest seen lately (or the last estimate is old).
        """
        trip = received - sent
        if trip <= 2 * self._best_trip or received - self._offset_at > _OFFSET_MAX_AGE:
            self._offset = redis_now - (sent + received) / 2
            self._offset_at = received
            self._best_trip = trip if trip < self._best_trip else self._best_trip * 1.1

    async def _outage(self, cost: Cost, patience: float | None) -> Reservation:
        backend = self._backend
        if backend.on_outage == "fail":
            raise BackendUnavailableError(
                f"Redis at {backend._where} is unavailable; quota {self.scope!r} fails closed"
            ) from None
        if self._fallback is None:
            _log.warning(
                "Redis at %s is unavailable; quota %r falls back to a local %.0f%% share",
                backend._where,
                self.scope,
                backend.local_share * 100,
            )
            share = backend.local_share
            dims = [
                Dimension(d.name, d.metric, d.limit * share, d.window, d.capacity * share)
                for d in self.bucket.dimensions
            ]
            self._fallback = RateLimiter(dims, initial_fill=0.0)
        self._down_until = time.monotonic() + backend.retry_after
        return await self._fallback.acquire(cost, timeout=patience)

    # -- corrections, sent in the background ---------------------------------------------

    def _settle_remote(
        self, reserved: Sequence[float], actual: Sequence[float], *, count: bool = True
    ) -> None:
        """Queue what a settle gives back (or owes); one flush at a time sends the sum.

        On a hot quota thousands of settles a second would each cost a script call; summed
        while the previous flush is in flight, they cost one, and the acquires that do
        make callers wait keep the connections.
        """
        if count:
            self._settled += 1
        deltas = [spent - used for spent, used in zip(reserved, actual, strict=False)]
        if not any(deltas):
            return
        owed = self._owed
        if owed is None:
            self._owed = deltas
        else:
            for i, delta in enumerate(deltas):
                owed[i] += delta
        if not self._flushing:
            self._flushing = True
            self._in_background(self._flush_settles())

    async def _flush_settles(self) -> None:
        try:
            while self._owed is not None:
                owed, self._owed = self._owed, None
                args = [str(self._backend.ttl), "0"]
                n = 0
                for dim, delta in zip(self.bucket.dimensions, owed, strict=False):
                    if delta:
                        args += [dim.name, _fmt(delta)]
                        n += 1
                if n:
                    args[1] = str(n)
                    await self._run_quietly("settle", self._keys[:1], args)
        finally:
            self._flushing = False

    def _observe(
        self,
        readings: Sequence[
            tuple[str, float | None, float | None, float | None, float | None, bool]
        ],
        reservation: Reservation | None,
        since: float | None,
    ) -> list[str | None]:
        if isinstance(reservation, RedisReservation):
            since = reservation.granted_at
        bucket = self.bucket
        now = self._redis_now()
        names: list[str | None] = []
        args = [str(self._backend.ttl), "-1" if since is None else _fmt(since), "0"]
        n = 0
        for metric, limit, remaining, window, reset, window_known in readings:
            before = {d.name: d for d in bucket.dimensions}
            name = bucket.observe(
                metric,
                now=now,
                limit=limit,
                remaining=remaining,
                window=window,
                reset=reset,
                resize=self._follow,
                window_known=window_known,
            )
            names.append(name)
            if name is None:
                continue
            dim = next(d for d in bucket.dimensions if d.name == name)
            depth, rate = self._in_force(name)
            args += [
                name,
                _fmt(depth),
                _fmt(rate),
                "1" if dim != before[name] else "0",
                _fmt(remaining) if remaining is not None and remaining >= 0 else "none",
                "none",
            ]
            n += 1
        if n:
            args[2] = str(n)
            self._spawn("observe", self._keys, args)
        return names

    def hold(self, seconds: float, *, metric: str | None = None, cost: Cost | None = None) -> None:
        if not seconds > 0 or math.isinf(seconds):
            return
        dims = self.bucket.dimensions
        amounts = (0.0,) * len(dims) if cost is None else self.bucket.amounts(cost)
        args = [str(self._backend.ttl), "-1", "0"]
        n = 0
        for dim, amount in zip(dims, amounts, strict=True):
            if metric is None or dim.metric == metric:
                depth, rate = self._in_force(dim.name)
                ceiling = _fmt(min(amount, depth) - rate * seconds)
                args += [dim.name, _fmt(depth), _fmt(rate), "0", "none", ceiling]
                n += 1
        if n:
            args[2] = str(n)
            self._spawn("observe", self._keys, args)

    def resize(self, name: str, limit: float) -> None:
        bucket = self.bucket
        bucket.resize(name, limit, self._redis_now())
        self._write_dimension(name, "keep")

    def set_pace(self, name: str, limit: float, cost: Cost | None = None) -> None:
        bucket = self.bucket
        index = bucket._index(name)
        amount = bucket.amounts(_DEFAULT_COST if cost is None else cost)[index]
        bucket.set_pace(name, limit, self._redis_now(), amount=amount)
        self._write_dimension(name, f"rescale:{_fmt(amount)}")

    def _in_force(self, name: str) -> tuple[float, float]:
        """The depth and refill rate the mirror holds in force for dimension ``name``."""
        bucket = self.bucket
        index = bucket._index(name)
        dim = bucket.dimensions[index]
        return bucket.depths()[index], bucket.paces()[index] / dim.window

    def mark(self) -> tuple[float, ...]:
        """The running totals taken from the shared quota, as Redis last reported them."""
        return self._last_mark or (0.0,) * len(self.bucket.dimensions)

    def set_level(self, name: str, level: float) -> None:
        self.bucket.set_level(name, level, self._redis_now())
        self._write_dimension(name, _fmt(level))

    def _write_dimension(self, name: str, level: str) -> None:
        depth, rate = self._in_force(name)
        args = [str(self._backend.ttl), "1", name, _fmt(depth), _fmt(rate), level]
        self._spawn("resize", self._keys[:1], args)

    def _spawn(self, script: str, keys: Sequence[str], args: list[str]) -> None:
        """Run ``script`` without making the caller wait; failures are logged, counted."""
        self._in_background(self._run_quietly(script, keys, args))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run_quietly(self, script: str, keys: Sequence[str], args: list[str]) -> None:
        try:
            await self._backend.run(script, keys, args)
        except (BackendUnavailableError, BackendError) as exc:
            self._dropped += 1
            _log.warning("%s for quota %r was not applied: %s", script, self.scope, exc)

    async def aclose(self) -> None:
        """Wait until every settle and correction sent in the background has been applied."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- reading -------------------------------------------------------------------------

    def expected_wait(self, cost: Cost | None = None) -> float:
        """Seconds until ``cost`` would be granted, from the levels Redis last reported."""
        bucket = self.bucket
        amounts = bucket.amounts(_DEFAULT_COST if cost is None else cost)
        if any(a > d.capacity for a, d in zip(amounts, bucket.dimensions, strict=True)):
            return math.inf
        levels = self._current_levels()
        if levels is None:
            return 0.0
        wait = 0.0
        for amount, level, dim in zip(amounts, levels, bucket.dimensions, strict=True):
            if amount > level:
                wait = max(wait, (amount - level) / dim.rate)
        return wait

    def _current_levels(self) -> tuple[float, ...] | None:
        levels = self._remote_levels
        if levels is None or len(levels) != len(self.bucket.dimensions):
            return None
        elapsed = max(0.0, self._redis_now() - self._levels_at)
        return tuple(
            min(d.capacity, level + d.rate * elapsed)
            for level, d in zip(levels, self.bucket.dimensions, strict=True)
        )

    def statistics(self) -> LimiterStatistics:
        """Counters of this process's calls, and the levels Redis last reported."""
        dims = self.bucket.dimensions
        levels = self._current_levels() or tuple(d.capacity for d in dims)
        zeros = {d.name: 0.0 for d in dims}
        return LimiterStatistics(
            tasks_waiting=0,
            granted=self._granted,
            granted_after_wait=self._granted_after_wait,
            abandoned=self._abandoned,
            timed_out=self._timed_out,
            settled=self._settled,
            released=self._released,
            time_waited=self._time_waited,
            refunded=dict(zeros),
            estimated=dict(zeros),
            actual=dict(zeros),
            levels={d.name: level for d, level in zip(dims, levels, strict=True)},
            limits={d.name: d.limit for d in dims},
            depths=dict(zip((d.name for d in dims), self.bucket.depths(), strict=True)),
            paces=self.paces(),
            probing=self.probing(),
        )

    @property
    def dropped(self) -> int:
        """Background updates lost to an outage (logged as they happened)."""
        return self._dropped

    @property
    def serving_locally(self) -> bool:
        """Whether calls are being served from the local fallback share right now."""
        return self._fallback is not None and time.monotonic() < self._down_until

    def _redis_now(self) -> float:
        return time.monotonic() + self._offset

    def __repr__(self) -> str:
        dims = ", ".join(f"{d.name}={d.limit:g}" for d in self.bucket.dimensions)
        return f"<RedisRateLimiter scope={self.scope!r} {dims}>"


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "Redis is not reachable or too slow" (vs. a bug of ours)."""
    from redis import exceptions

    # anyio's deadline raises the builtin TimeoutError; redis has its own classes.
    outages = (
        exceptions.ConnectionError,
        exceptions.TimeoutError,
        exceptions.BusyLoadingError,
        TimeoutError,
        OSError,
    )
    return isinstance(exc, outages)


def _client_from_url(url: str, timeout: float, max_connections: int) -> Redis:
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError(
            "the Redis backend needs the redis package: pip install 'ratelimit-llm[redis]'"
        ) from None
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"a Redis url starts with redis://, rediss:// or unix://, got {scheme!r}")
    # A bounded pool that callers queue on: a thousand concurrent acquires share a few
    # dozen connections instead of opening a thousand (or failing with "too many").
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        decode_responses=True,
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it


def _describe(url: str) -> str:
    """``host:port/db`` of ``url``, without user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    db = parts.path.lstrip("/") or "0"
    return f"{parts.scheme}://{host}:{port}/{db}"


def _describe_client(client: Any) -> str:
    try:
        kwargs = client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    except AttributeError:
        return "redis"
