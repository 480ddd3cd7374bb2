"""Calls in flight shared by every process of one scope, as expiring leases in Redis.

``Limits(concurrency=N)`` caps the calls in flight at once. In one process that is a
counter; across processes a counter in Redis would leak a place for every process that
dies holding one, and a shared cap that only shrinks is worse than none. So a place is
a *lease*: a member of the scope's sorted set, scored with its expiry on Redis's clock
(``TIME``), pushed back every ``ttl / 3`` seconds by the process that holds it. A
process that is killed stops renewing, and its places come back at most ``ttl``
seconds later, without anyone having to notice that it died.

The scripts (``lua/lease_*.lua``, each registered once and run with ``EVALSHA``) purge
the expired leases and then count, so that two processes can never both take the last
place. A caller that finds no room polls again after a capped, jittered backoff (and at
once when this object gives a place back), or when the earliest lease is due to expire.

What the TTL bounds, and what it does not:

* a killed (or partitioned) process's places return at most ``ttl`` seconds after its
  last renewal, so at most ``ttl`` after it died;
* a process whose event loop stalls for more than ``2/3 ttl`` (a long GC, a blocked
  loop, a Redis failover that lost the set) finds its leases gone at the next renewal:
  it logs a warning, and takes each one again if there is room. If there is none, that
  call runs without a place until one is free again (`RedisLeases.lost` lists it); the
  count in Redis never exceeds the cap.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    AcquireTimeoutError,
    BackendError,
    BackendUnavailableError,
    CapacityExceededError,
)
from .._validate import check_int, check_number, check_type
from ._redis_connection import _describe_client, translate_error

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisLeases"]

_log = logging.getLogger("ratelimit_llm.redis")

_SCRIPTS = ("lease_acquire", "lease_release", "lease_renew", "lease_count")

#: The longest pause between two tries of a waiting acquire (unless ``poll`` is longer).
MAX_POLL = 0.5


@functools.cache
def _source(name: str) -> str:
    """The Lua of script ``name``: the shared lease helpers, then its own."""
    lua = resources.files(__package__).joinpath("lua")
    shared = lua.joinpath("_lease.lua").read_text("utf-8")
    return shared + "\n" + lua.joinpath(f"{name}.lua").read_text("utf-8")


class RedisLeases:
    """Places in flight shared by every process of one scope, as expiring leases in Redis.

    Example::

        leases = RedisLeases(redis.asyncio.Redis.from_url(url), "rlm:{deepseek}:flight")
        lease = await leases.acquire(16, timeout=30)
        try:
            ...  # the call
        finally:
            await leases.release(lease)

    One object serves one event loop; make one per process (they share the places
    through ``key``). Its renewer runs while it holds a lease: `aclose` stops it and
    gives back what is still held.

    :param client: the ``redis.asyncio.Redis`` the scripts run on (not closed here).
    :param key: the scope's sorted set; every process sharing the places uses the same.
    :param ttl: seconds a lease lives without renewal: the longest a killed process's
        places stay taken. Renewed every ``ttl / 3``.
    :param poll: the first pause of a waiting acquire; it doubles up to `MAX_POLL`,
        jittered, and ends early when this object gives back a place.
    :param sleep: the pause of a waiting acquire (``asyncio.sleep``); the renewer always
        keeps real time, since leases expire on Redis's clock.
    :param clock: the clock of an acquire's ``timeout`` (``time.monotonic``).
    :param auto_renew: ``False`` leaves renewal to the caller (`renew`).
    """

    def __init__(
        self,
        client: Redis,
        key: str,
        *,
        ttl: float = 30.0,
        poll: float = 0.05,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        auto_renew: bool = True,
    ) -> None:
        if not callable(getattr(client, "register_script", None)):
            raise TypeError(f"client must be a redis.asyncio.Redis, got {type(client).__name__}")
        check_type("key", key, str)
        if not key:
            raise ValueError("key must not be empty")
        self.ttl = check_number("ttl", ttl, low=0.0, low_open=True)
        self.poll = check_number("poll", poll, low=0.0, low_open=True)
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be callable, got {type(sleep).__name__}")
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        check_type("auto_renew", auto_renew, bool)
        self.key = key
        self.auto_renew = auto_renew
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        self._where = _describe_client(client)
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(_source(name)) for name in _SCRIPTS
        }
        # lease id -> (weight, cap): what a renewal needs to take it again if it expired.
        self._held: dict[str, tuple[int, int]] = {}
        self._lost: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._renew_failing = False
        # Releases that must finish even if their caller was cancelled (kept referenced).
        self._cleanups: set[asyncio.Task[Any]] = set()
        self._wakers: deque[asyncio.Future[None]] = deque()
        self._rng = random.Random()

    @property
    def held(self) -> int:
        """How many leases this object holds."""
        return len(self._held)

    @property
    def lost(self) -> frozenset[str]:
        """Leases held here that expired and found no room to be taken again (yet)."""
        return frozenset(self._lost)

    async def acquire(
        self,
        cap: int | Callable[[], int],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - patience, as the limiters' acquire
        weight: int = 1,
    ) -> str:
        """A lease on ``weight`` of the ``cap`` places, once they are free; its id.

        :param cap: how many places there are, or a function that says it, asked again
            at every try: a cap that changes while the call waits (``concurrency=
            "auto"`` learning it) is then the one in force when the call gets in, not
            the one it began waiting under. A raised cap is seen at the next poll.
        :param timeout: seconds to wait for room (``None``: as long as it takes; ``0``:
            one try). A script call already on the wire is not cut short (its place
            would be unknown): the wait may end one round trip late.
        :raises CapacityExceededError: ``weight`` is more than ``cap``, so it would never
            be granted.
        :raises AcquireTimeoutError: no room within ``timeout``; nothing is left taken.
        :raises BackendUnavailableError: Redis could not be reached.
        :raises BackendError: Redis refused the script (a key of the wrong type, ...).
        """
        cap_now: Callable[[], int] = cap if callable(cap) else lambda: cap
        check_int("weight", weight, low=1)
        patience = None if timeout is None else check_number("timeout", timeout, low=0.0)
        deadline = self._clock() + (patience or 0.0)  # used only with a patience
        delay = self.poll
        longest = max(MAX_POLL, self.poll)
        while True:
            places = check_int("cap", cap_now(), low=1)
            if weight > places:
                raise CapacityExceededError("concurrency", weight, places)
            lease = secrets.token_hex(16)
            expires_in = await self._try(lease, places, weight)
            if expires_in is None:
                self._hold(lease, weight, places)
                return lease
            # A little past the earliest expiry, since that place may be free by then.
            pause = min(self._rng.uniform(delay / 2, delay), expires_in + 0.001)
            if patience is not None:
                left = deadline - self._clock()
                if left <= 0:
                    raise AcquireTimeoutError(patience)
                pause = min(pause, left)
            await self._pause(pause)
            delay = min(delay * 2, longest)

    @asynccontextmanager
    async def hold(
        self,
        cap: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - as acquire's
        weight: int = 1,
    ) -> AsyncIterator[str]:
        """`acquire` on entry, `release` on exit (also on an error or a cancellation)."""
        lease = await self.acquire(cap, timeout=timeout, weight=weight)
        try:
            yield lease
        finally:
            await self.release(lease)

    async def release(self, lease: str) -> None:
        """Give ``lease`` back. Again, or for a lease this object does not hold: nothing.

        The removal finishes even if the caller is cancelled meanwhile. If Redis cannot
        be reached the error is raised, and the lease expires within ``ttl``.
        """
        check_type("lease", lease, str)
        held = self._held.pop(lease, None)
        self._lost.discard(lease)
        if held is None:
            return
        await self._shielded(self._give_back([(lease, held[0])]))

    def release_soon(self, lease: str) -> None:
        """Give ``lease`` back without waiting (from synchronous code, such as a
        reservation's ``finish``): the removal runs in the background, and the place is
        free to this object's own waiters at once. A failure is logged; the lease then
        expires within ``ttl``. Again, or for a lease this object does not hold: nothing.
        """
        check_type("lease", lease, str)
        held = self._held.pop(lease, None)
        self._lost.discard(lease)
        if held is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop to send it: no longer renewed, it expires
            _log.debug("a lease on %s was given back outside an event loop", self.key)
            return
        self._spawn(self._give_back([(lease, held[0])]))

    async def renew(self) -> None:
        """Push back the expiry of every lease held here, in one script call.

        A lease found expired is taken again if there is room (else it is `lost` until
        a later renewal finds room), with one warning per renewal that finds any.
        """
        leases = list(self._held.items())
        if not leases:
            return
        args: list[object] = [self.ttl]
        for lease, (weight, cap) in leases:
            args += [lease, weight, cap]
        fates = await self._run("lease_renew", args)
        stray: list[tuple[str, int]] = []
        expired = retaken = 0
        for (lease, (weight, _cap)), fate in zip(leases, fates, strict=True):
            if lease not in self._held:
                # Released while this renewal was on the wire: whatever it re-took is
                # nobody's place. Give it back.
                if fate == "r":
                    stray.append((lease, weight))
                continue
            if fate == "l":
                if lease not in self._lost:
                    self._lost.add(lease)
                    expired += 1
                continue
            if fate == "r":
                if lease in self._lost:
                    self._lost.discard(lease)
                else:
                    expired += 1
                retaken += 1
        if expired:
            _log.warning(
                "%d lease(s) on %s expired while held (a pause longer than the %g s TTL?); "
                "%d taken again, %d waiting for room",
                expired,
                self.key,
                self.ttl,
                retaken,
                len(self._lost),
            )
        if stray:
            await self._shielded(self._give_back(stray))

    async def count(self) -> int:
        """How many places are taken now, by every process (expired leases purged)."""
        return int(await self._run("lease_count", []))

    async def aclose(self) -> None:
        """Stop the renewer and give back every lease still held (in one script call)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.wait({renewer})
        held = [(lease, weight) for lease, (weight, _cap) in self._held.items()]
        self._held.clear()
        self._lost.clear()
        if held:
            await self._shielded(self._give_back(held))
        while self._cleanups:  # one may start another (a reply, then its release)
            await asyncio.wait(set(self._cleanups))

    async def __aenter__(self) -> RedisLeases:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<RedisLeases {self._where} key={self.key!r} ttl={self.ttl:g} held={self.held}>"

    # -- internals

    async def _try(self, lease: str, cap: int, weight: int) -> float | None:
        """``None`` if ``lease`` was granted, else the seconds until the earliest expiry."""
        script = asyncio.ensure_future(self._run("lease_acquire", [cap, weight, self.ttl, lease]))
        try:
            reply = await asyncio.shield(script)
        except asyncio.CancelledError:
            # The script may have taken the place already, or will (it is on the wire):
            # give it back once the reply is in, or it would stay taken for a whole TTL.
            self._spawn(self._give_back_if_granted(script, lease, weight))
            raise
        if reply == "ok":
            return None
        return float(reply.split()[1])

    async def _give_back_if_granted(
        self, script: asyncio.Future[str], lease: str, weight: int
    ) -> None:
        try:
            reply = await script
        except Exception:
            return  # unknown whether it was granted: if it was, it expires within ttl
        if reply == "ok":
            await self._give_back([(lease, weight)])

    def _hold(self, lease: str, weight: int, cap: int) -> None:
        self._held[lease] = (weight, cap)
        if self.auto_renew and self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_while_held(), name=f"RedisLeases renewer ({self.key})"
            )

    async def _renew_while_held(self) -> None:
        try:
            while self._held:
                await asyncio.sleep(self.ttl / 3)
                if not self._held:
                    break
                try:
                    await self.renew()
                except (BackendError, BackendUnavailableError) as exc:
                    if not self._renew_failing:
                        _log.warning("renewing the leases on %s failed: %s", self.key, exc)
                    self._renew_failing = True
                else:
                    self._renew_failing = False
        finally:
            # No await between the last look at _held and this: a lease taken later
            # starts a new renewer.
            if self._renewer is asyncio.current_task():
                self._renewer = None

    async def _give_back(self, leases: Sequence[tuple[str, int]]) -> None:
        args: list[object] = []
        for lease, weight in leases:
            args += [lease, weight]
        await self._run("lease_release", args)
        self._wake(sum(weight for _lease, weight in leases))

    async def _shielded(self, work: Awaitable[None]) -> None:
        """Await ``work`` to its end even if the caller is cancelled meanwhile."""
        task = self._spawn(work)
        await asyncio.shield(task)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._cleanups.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._cleanups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its caller (if any) sees the error; a caller that left would not.
            _log.debug("giving leases back on %s failed: %r", self.key, task.exception())

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if this object gives a place back meanwhile."""
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wakers.append(wake)

        async def nap() -> None:
            await self._sleep(seconds)

        sleeper = asyncio.ensure_future(nap())
        try:
            await asyncio.wait((wake, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not wake.done():
                wake.cancel()
            with suppress(ValueError):
                self._wakers.remove(wake)
        if sleeper.done() and not sleeper.cancelled():
            sleeper.result()  # an error of the given sleep is the caller's

    def _wake(self, places: int) -> None:
        """Wake the ``places`` longest waiting acquires of this object to try again."""
        while places > 0 and self._wakers:
            wake = self._wakers.popleft()
            if not wake.done():
                wake.set_result(None)
                places -= 1

    async def _run(self, script: str, args: Sequence[object]) -> str:
        try:
            reply = await self._scripts[script](keys=[self.key], args=[str(a) for a in args])
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from None
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def _translate(self, exc: Exception) -> Exception:
        """Our typed error for a driver's exception (never the driver's own, never a secret)."""
        return translate_error(exc, self._where)
