"""Synchronous clients: ``wrap(OpenAI())``, LangChain's ``.invoke()``, thread pools.

Every sync call of the process goes through one event loop that runs in a thread of its
own (an anyio blocking portal): the very pipeline the async clients use (strategies, the
learner, retries, headers, statistics) runs there, and every thread that calls waits in
the same FIFO line for the same buckets. Only the network I/O leaves that loop: each
request is sent by the user's own sync transport in a worker thread, and its body is
read in the caller's thread as the SDK reads it.

Why a loop thread rather than a second, threaded limiter: one implementation of the
rules, one FIFO line however many threads call, and the Redis backend (asyncio) works
for sync clients unchanged. The cost is a thread hop or two per call, microseconds
against a call that takes seconds.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread

from ._interface import Limiter
from ._learner import Learner
from ._line import current_lane
from ._pool import LimiterPool
from ._providers import Provider
from ._strategy import Strategy
from ._telemetry import RouteStatistics, Telemetry
from ._transport import LANE_HEADER, RateLimitedTransport

__all__ = ["SyncRateLimitedTransport"]

T = TypeVar("T")


class _LoopThread:
    """The process's one event loop thread for sync clients, started on first use.

    Its loop lives as long as the process (the buckets' clocks are bound to it); a forked
    child starts a loop of its own. It is stopped at interpreter exit.
    """

    _lock = threading.Lock()
    _portal: anyio.from_thread.BlockingPortal | None = None
    _manager: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
    _pid: int | None = None

    @classmethod
    def portal(cls) -> anyio.from_thread.BlockingPortal:
        portal = cls._portal
        if portal is not None and cls._pid == os.getpid():
            return portal
        with cls._lock:
            if cls._portal is None or cls._pid != os.getpid():
                manager = anyio.from_thread.start_blocking_portal("asyncio")
                cls._portal = manager.__enter__()
                cls._manager = manager
                cls._pid = os.getpid()
            return cls._portal

    @classmethod
    def stop(cls) -> None:
        with cls._lock:
            manager, cls._manager, cls._portal = cls._manager, None, None
            if manager is not None and cls._pid == os.getpid():
                manager.__exit__(None, None, None)


atexit.register(_LoopThread.stop)


def run_in_loop(func: Callable[..., T], *args: Any) -> T:
    """Run the sync ``func`` on the loop thread (where the buckets live) and return."""
    return _LoopThread.portal().call(func, *args)


class _ThreadedTransport:
    """The user's sync transport seen from the loop: each send runs in a worker thread."""

    def __init__(self, inner: Any, threads: int) -> None:
        self._inner = inner
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    async def handle_async_request(self, request: Any) -> Any:
        if self._limiter is None:
            # Made on the loop thread, where it is used; sized for every call in flight.
            self._limiter = anyio.CapacityLimiter(self._threads)
        return await anyio.to_thread.run_sync(
            self._inner.handle_request, request, limiter=self._limiter
        )

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._inner.close)


if TYPE_CHECKING:
    from httpx2 import BaseTransport as _TransportBase
else:
    try:
        from httpx2 import BaseTransport as _TransportBase
    except ImportError:
        _TransportBase = object


class SyncRateLimitedTransport(_TransportBase):
    """A sync httpx / httpx2 transport that rate-limits what passes through it.

    Usually built by `ratelimit_llm.wrap` for an ``OpenAI`` client, or by
    `ratelimit_llm.http_client` with ``sync=True``. It takes the same options as
    `RateLimitedTransport` and shares its behaviour; see the module docstring for how.

    :param inner: the sync transport that really sends (``httpx2.HTTPTransport()``,
        ``httpx.HTTPTransport()``, a router over a client's mounts, or a mock).
    :param threads: worker threads for sends in flight at once (at least the number of
        threads that call; the in-flight cap, when set, is also the bound).
    """

    def __init__(self, inner: Any, *, threads: int = 256, **options: Any) -> None:
        max_in_flight = options.get("max_in_flight")
        if max_in_flight is not None:
            threads = max(1, min(threads, int(max_in_flight)))
        self._async = RateLimitedTransport(_ThreadedTransport(inner, threads), **options)
        self._async._run_in_loop = run_in_loop

    # -- the transport interface ------------------------------------------------------

    def handle_request(self, request: Any) -> Any:
        """Send ``request`` through the limiter, waiting on this thread for the answer."""
        lane = current_lane()
        if lane is not None and LANE_HEADER not in request.headers:
            # The loop thread does not see this thread's `lane` block: say it in the request.
            request.headers[LANE_HEADER] = lane
        portal = _LoopThread.portal()
        future = portal.start_task_soon(self._async.handle_async_request, request)
        try:
            return future.result()
        except BaseException:
            # Interrupted here (Ctrl-C): the call leaves the line, nothing stays taken.
            future.cancel()
            raise

    def close(self) -> None:
        """Close the inner transport, after the buckets' last updates."""
        _LoopThread.portal().call(self._async.aclose)

    def __enter__(self) -> SyncRateLimitedTransport:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- the same read side as the async transport --------------------------------------

    @property
    def transport(self) -> RateLimitedTransport:
        """The async pipeline this transport runs on its loop thread."""
        return self._async

    @property
    def pool(self) -> LimiterPool:
        return self._async.pool

    @property
    def strategy(self) -> Strategy:
        return self._async.strategy

    @property
    def learner(self) -> Learner:
        return self._async.learner

    @property
    def telemetry(self) -> Telemetry:
        return self._async.telemetry

    @property
    def max_in_flight(self) -> int | None:
        return self._async.max_in_flight

    @property
    def provider(self) -> Provider | None:
        return self._async.provider

    def statistics(self) -> list[RouteStatistics]:
        """Per-(credential, model) counters; see `Telemetry.statistics`."""
        return run_in_loop(self._async.statistics)

    def limiters(self) -> dict[tuple[str, str | None], Limiter]:
        """The buckets made so far, by (credential name, model group)."""
        return run_in_loop(self._async.limiters)
