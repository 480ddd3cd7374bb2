"""The connection side of the Redis backend: client, scripts, gate, outages, errors.

`RedisBackend` owns what every limiter of one Redis shares: the client (made from a URL
with a bounded pool, or given), the Lua scripts (``lua/*.lua``, each registered once
and run with ``EVALSHA``), a first-come-first-served *gate* in front of the pool, and
the outage state. The limiters themselves (``_redis_limiter.py``) only ask it to run a
script.

Outages are decided here, once for everyone: the first call that fails to reach Redis
or gets no answer within ``timeout`` marks the backend *down* for ``retry_after``
seconds. Every caller still queued at the gate, and every acquire of every limiter of
this backend still waiting for an answer, is failed (or sent to its local share) at
that moment, not one socket timeout after another; calls made while the backend is
down do not try Redis at all. After ``retry_after`` the next call tries again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .._exceptions import BackendError, BackendUnavailableError
from .._line import DEFAULT_LANES
from .._types import Dimension, Limits
from .._validate import check_choice, check_int, check_number, check_type

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from ._redis_limiter import RedisRateLimiter

__all__ = ["OutagePolicy", "RedisBackend"]

_log = logging.getLogger("ratelimit_llm.redis")

#: What to do while Redis is unreachable: raise, or serve from a local share.
OutagePolicy = Literal["fail", "local"]

_SCRIPTS = ("acquire", "settle", "update")


def script_source(name: str) -> str:
    """The Lua of script ``name``: the shared quota rules (``_quota.lua``), then its own."""
    lua = resources.files(__package__).joinpath("lua")
    shared = lua.joinpath("_quota.lua").read_text("utf-8")
    return shared + "\n" + lua.joinpath(f"{name}.lua").read_text("utf-8")


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
    :param max_connections: connections in the pool the backend makes from ``url``
        (and at most this many calls in flight at once); callers beyond it queue, first
        come, first served.
    :param lease_ttl: seconds a place in flight (``Limits(concurrency=...)``, a lease
        in Redis, renewed every third of it while held) outlives a process that died
        holding it.
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
        lease_ttl: float = 30.0,
    ) -> None:
        if url is not None:
            check_type("url", url, str)
        check_type("namespace", namespace, str)
        if not namespace:
            raise ValueError("namespace must not be empty")
        if "{" in namespace or "}" in namespace:
            raise ValueError("namespace must not contain '{' or '}' (they mark the hash tag)")
        check_choice("on_outage", on_outage, ("fail", "local"))
        self.local_share = check_number(
            "local_share", local_share, low=0.0, high=1.0, low_open=True
        )
        self.retry_after = check_number("retry_after", retry_after, low=0.0, low_open=True)
        self.timeout = check_number("timeout", timeout, low=0.0, low_open=True)
        self.ttl = math.ceil(check_number("ttl", ttl, low=0.0, low_open=True))
        self.history = check_int("history", history, low=1)
        self.max_connections = check_int("max_connections", max_connections, low=1)
        self.lease_ttl = check_number("lease_ttl", lease_ttl, low=0.0, low_open=True)
        if client is None:
            if url is None:
                raise TypeError("RedisBackend needs a Redis url or client=")
            client = _client_from_url(url, self.timeout, self.max_connections)
            self._where = _describe(url)
            self._owns_client = True
        else:
            if url is not None:
                raise TypeError("give RedisBackend a url or client=, not both")
            if not callable(getattr(client, "register_script", None)):
                raise TypeError(
                    f"client must be a redis.asyncio.Redis, got {type(client).__name__}"
                )
            self._where = _describe_client(client)
            self._owns_client = False
        self._client = client
        self.namespace = namespace
        self.on_outage: OutagePolicy = on_outage
        # Until when (time.monotonic) the backend counts as down, and why.
        self._down_until = -math.inf
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate]
        self._gates = weakref.WeakKeyDictionary()
        self._limiters: weakref.WeakSet[RedisRateLimiter] = weakref.WeakSet()
        # Registered once: each call is an EVALSHA, loading the script again only if the
        # server lost its script cache (a restart).
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name)) for name in _SCRIPTS
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBackend:
        """The backend for ``url`` (see the class for ``options``)."""
        return cls(url, **options)

    @property
    def client(self) -> Redis:
        """The ``redis.asyncio.Redis`` client the scripts run on."""
        return self._client

    @property
    def where(self) -> str:
        """The server, as ``scheme://host:port/db`` (never with a user or password)."""
        return self._where

    @property
    def down(self) -> bool:
        """Whether the backend counts as down now (an outage less than ``retry_after`` ago)."""
        return time.monotonic() < self._down_until

    def keys(self, scope: str) -> tuple[str, str]:
        """The state hash and grant-history keys of ``scope``.

        Both carry the same hash tag, ``{namespace:scope}``, so one quota lives in one
        slot of a Redis Cluster and its scripts can touch both keys atomically.
        """
        check_type("scope", scope, str)
        tag = f"{self.namespace}:{scope.replace('{', '(').replace('}', ')')}"
        return f"rlm:{{{tag}}}:state", f"rlm:{{{tag}}}:grants"

    def limiter(
        self,
        limits: Limits | Sequence[Dimension],
        *,
        scope: str,
        clock: Callable[[], float] | None = None,
        follow_server_limits: bool = True,
        lanes: Mapping[str, float] = DEFAULT_LANES,
    ) -> RedisRateLimiter:
        """A limiter on quota ``scope``; ``limits`` create the quota if Redis has none.

        Once a quota exists in Redis its limits are Redis's (changed by `resize` and by
        the server's headers); ``clock`` is ignored, as time comes from Redis.
        ``lanes`` are checked as in memory; Redis grants the rate FIFO across processes
        whatever the lane; calls in flight (``Limits(concurrency=...)``) are capped
        across processes by leases (see `RedisRateLimiter`).
        """
        from ._redis_limiter import RedisRateLimiter

        del clock  # the shared quota keeps Redis's time
        limiter = RedisRateLimiter(
            self, limits, scope=scope, follow_server_limits=follow_server_limits, lanes=lanes
        )
        self._limiters.add(limiter)
        return limiter

    async def run(self, script: str, keys: Sequence[str], args: Sequence[str]) -> str:
        """Run one of the scripts through the gate; driver failures become our errors.

        :raises BackendUnavailableError: Redis is down (now, or since less than
            ``retry_after`` ago); the backend is marked down when this call finds it so.
        :raises BackendError: Redis answered with a refusal (credentials, a key of the
            wrong type, out of memory, ...).
        """
        if self.down:
            raise self.unavailable()
        gate = self._gate()
        await gate.acquire()
        try:
            if self.down:
                raise self.unavailable()
            try:
                reply = await self._scripts[script](keys=list(keys), args=list(args))
            except Exception as exc:
                translated = self._translate(exc)
                if isinstance(translated, BackendUnavailableError):
                    self._went_down(exc)
                if translated is exc:
                    raise
                raise translated from None
        finally:
            gate.release()
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def unavailable(self) -> BackendUnavailableError:
        """The error for a call made while the backend is down (a fresh one each time)."""
        return BackendUnavailableError(f"Redis at {self._where} is unavailable")

    def _went_down(self, cause: BaseException) -> None:
        """An outage: fail every caller queued here at once, and tell every limiter."""
        first = not self.down
        self._down_until = time.monotonic() + self.retry_after
        if first:
            _log.warning(
                "Redis at %s is unavailable (%s); retrying in %g s",
                self._where,
                type(cause).__name__,
                self.retry_after,
            )
        for gate in list(self._gates.values()):
            gate.fail_all(self.unavailable)
        for limiter in list(self._limiters):
            limiter._backend_down()

    def _translate(self, exc: Exception) -> Exception:
        """Our typed error for a driver's exception (never the driver's own, never a secret)."""
        return translate_error(exc, self._where)

    def _gate(self) -> _Gate:
        """The gate of the running event loop (asyncio futures bind to one loop)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = _Gate(self.max_connections)
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


class _Gate:
    """At most ``permits`` calls in flight, the rest served first come, first served.

    redis-py's blocking pool lets a newcomer take a freed connection ahead of a caller
    woken for it, which left some waiting for seconds; here a freed permit goes to the
    oldest waiter. `fail_all` fails every waiter at once (an outage).
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, permits: int) -> None:
        self._free = permits
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            # Handed a permit, then cancelled before using it: pass it on.
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def fail_all(self, error: Callable[[], BaseException]) -> None:
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_exception(error())


def translate_error(exc: Exception, where: str) -> Exception:
    """Our typed error for a redis driver's exception, naming the server as ``where``
    (host and port, never a password); anything else is returned unchanged."""
    from redis import exceptions

    refused = (
        exceptions.AuthenticationError,
        exceptions.AuthorizationError,
        exceptions.NoPermissionError,
    )
    if isinstance(exc, refused):
        return BackendError(
            f"Redis at {where} refused the credentials or the rights to run "
            f"scripts ({type(exc).__name__}); check the URL's user and password"
        )
    if _is_outage(exc):
        return BackendUnavailableError(f"Redis at {where} is unavailable ({type(exc).__name__})")
    if isinstance(exc, exceptions.RedisError):
        return BackendError(f"Redis at {where} answered {type(exc).__name__}: {exc}")
    return exc


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "Redis is not reachable or too slow" (vs. a bug of ours)."""
    from redis import exceptions

    # asyncio's deadline raises the builtin TimeoutError; redis has its own classes.
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
        raise ValueError(f"url must start with redis://, rediss:// or unix://, got {scheme!r}")
    # A bounded pool: a thousand concurrent callers share a few dozen connections
    # instead of opening a thousand (or failing with "too many"). The gate keeps the
    # calls in flight within it, so the pool itself never makes anyone wait.
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
    """``scheme://host:port/db`` of ``url``, without user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    db = parts.path.lstrip("/") or "0"
    return f"{parts.scheme}://{host}:{port}/{db}"


def _describe_client(client: Any) -> str:
    try:
        kwargs = client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    except AttributeError:
        return "redis"
