"""AdaptiveBackoff: retry what waiting can cure, wait what the server names, learn limits.

The SDK's own retry loop treats every 429 alike and backs off blindly. This strategy
reads the classified error instead (`ErrorInfo`):

* a wait the server names ("Please try again in 210ms", ``retry-after-ms``) is waited
  exactly, and for a rate limit it is put on the shared bucket (`RateLimiter.hold`) so
  that every caller queued on that key and model waits too, which is what stops a 429
  storm;
* errors no wait can fix (quota, billing, a refused key, a request too large) are never
  retried;
* anything else retryable gets exponential backoff with full jitter, within a budget of
  attempts and of time.

It also learns. A 429 from a server that sends no limit headers means the configured
limit is too high: the matching dimension is cut multiplicatively and grows back
additively with each success (AIMD, as TCP does with its window). A 503 ``slow_down``
halves the rate and holds it for 15 minutes before ramping up again, as OpenAI asks.
When the server does report its limits, the transport applies them and nothing here
argues with them.
"""

from __future__ import annotations

import math
import random
import weakref
from dataclasses import dataclass

from .._classify import RETRYABLE_KINDS, ErrorInfo, ErrorKind
from .._headers import RateLimitSnapshot
from .._limiter import RateLimiter
from .._strategy import Attempt, Decision, Strategy
from .._telemetry import Event
from .._types import Dimension

__all__ = ["AdaptiveBackoff"]

_MINUTE = 60.0
_DAY = 86_400.0


@dataclass(slots=True)
class _Learned:
    """What this strategy changed about one dimension of one limiter."""

    #: The limit to recover to: the largest one seen for the dimension.
    ceiling: float
    #: The limit this strategy wants in force now.
    target: float
    #: Cut for a 503 slow_down: kept even against the limits in the headers (those say
    #: what the quota allows, slow_down says what the service can take right now).
    slow_down: bool = False
    #: No additive recovery before this time (the slow_down hold).
    hold_until: float = -math.inf
    #: How much the bucket had granted (summed over dimensions) at the last cut. A
    #: failure of a call granted before it says nothing new about the cut limit.
    cut_mark: float = -math.inf


class AdaptiveBackoff(Strategy):
    """Retry with exponential backoff and full jitter; wait exactly what the server names.

    Example::

        client = ratelimit_llm.wrap(
            AsyncOpenAI(), rpm=500, tpm=200_000, strategy=AdaptiveBackoff(max_attempts=8)
        )

    What it decides after a failed attempt:

    * ``insufficient_quota``, request too large, 401/403, other 4xx, or any error the
      server marked ``x-should-retry: false``: give up (the SDK then raises its own typed
      error from the response).
    * a 429 rate limit with a named wait: hold the bucket for that wait, so every caller
      on that key and model waits, and retry as soon as the bucket grants.
    * another retryable error (flex ``resource_unavailable``, 503/529 overloaded,
      ``slow_down``, 5xx, 408, 409, a connection error) with a named wait: retry after
      exactly that wait; without one: after ``rng.uniform(0, min(cap, base * 2**(n-1)))``
      seconds, ``n`` being the number of the attempt that failed.
    * give up once ``max_attempts`` attempts were made, or when the next attempt would
      begin more than ``max_elapsed`` seconds after the first.

    What it learns (per limiter, that is per key and model):

    * a 429 whose response carries no limit header for the metric that ran out means
      the configured limit is too high: that dimension (both requests and tokens per
      minute when the metric is unknown) is multiplied by ``decrease``, never below
      ``floor`` times the limit it started from. A limit named in the message
      ("Limit 30000") is adopted as it is. Each success then gives back
      ``recovery`` times the starting limit, up to it.
    * a 503 ``slow_down`` cuts every per-minute dimension to ``slow_down_factor`` of its
      limit, holds it there ``slow_down_hold`` seconds, then recovers the same way.

    Defaults, and why:

    :param max_attempts: 6 attempts in all (the first and five retries), as the OpenAI
        cookbook's ``stop_after_attempt(6)``. ``None``: no limit on the count.
    :param max_elapsed: 300 s: five full per-minute windows, time for any per-minute
        limit to refill several times over; a call still failing after that is better
        handed back. ``None``: no limit on time. One of the two bounds must be set:
        with neither, a server that keeps failing would keep a call forever.
    :param base: 0.5 s, the first backoff ceiling, as the SDK's initial retry delay.
    :param cap: 30 s, the largest backoff: half a per-minute window, by which time half
        of any per-minute budget has refilled (the SDK caps at 8 s, which rarely clears
        a minute's limit; the cookbook at 60 s, a whole window).
    :param decrease: 0.7, the multiplicative decrease of TCP CUBIC (RFC 8312). Gentler
        than halving because the 429's named wait already stops the storm; the cut only
        has to correct the estimate.
    :param recovery: 0.02: each success gives back 2 % of the starting limit, so one cut
        is undone after 15 successes. A probe that goes too high costs one 429 whose wait
        the whole bucket honours, so probing briskly is cheap; ``0`` never recovers.
    :param floor: 0.05: never below 5 % of the starting limit (eight cuts in a row), so
        that 429s caused by someone else burning a shared quota cannot leave the client
        crawling long after they stop.
    :param slow_down_factor: 0.5. OpenAI asks to "return to the previous rate"; the rate
        before a sudden increase is unknown here, and halving undoes a doubling.
    :param slow_down_hold: 900 s: OpenAI asks to hold the reduced rate "15+ minutes"
        before ramping up.
    :param rng: the source of jitter (seed one for reproducible tests); by default a
        private `random.Random`.
    :raises ValueError: for a bound or factor out of range, or both bounds ``None``.
    """

    def __init__(
        self,
        *,
        max_attempts: int | None = 6,
        max_elapsed: float | None = 300.0,
        base: float = 0.5,
        cap: float = 30.0,
        decrease: float = 0.7,
        recovery: float = 0.02,
        floor: float = 0.05,
        slow_down_factor: float = 0.5,
        slow_down_hold: float = 900.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts is None and max_elapsed is None:
            raise ValueError("set max_attempts or max_elapsed (or both): retries need a bound")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an int >= 1 or None, got {max_attempts!r}")
        if max_elapsed is not None:
            _check("max_elapsed", max_elapsed, low=0.0, low_open=True)
        _check("base", base, low=0.0, low_open=True)
        _check("cap", cap, low=0.0, low_open=True)
        _check("decrease", decrease, low=0.0, high=1.0, low_open=True, high_open=True)
        _check("recovery", recovery, low=0.0, high=1.0)
        _check("floor", floor, low=0.0, high=1.0, low_open=True)
        _check("slow_down_factor", slow_down_factor, low=0.0, high=1.0, low_open=True)
        _check("slow_down_hold", slow_down_hold, low=0.0)
        self.max_attempts = max_attempts
        self.max_elapsed = None if max_elapsed is None else float(max_elapsed)
        self.base = float(base)
        self.cap = float(cap)
        self.decrease = float(decrease)
        self.recovery = float(recovery)
        self.floor = float(floor)
        self.slow_down_factor = float(slow_down_factor)
        self.slow_down_hold = float(slow_down_hold)
        self._rng = rng if rng is not None else random.Random()
        # Per limiter, per dimension name; weak, so a strategy shared by several clients
        # does not keep their limiters alive.
        self._learned: weakref.WeakKeyDictionary[RateLimiter, dict[str, _Learned]] = (
            weakref.WeakKeyDictionary()
        )

    # -- the hooks -----------------------------------------------------------------------

    def after_response(self, attempt: Attempt) -> Decision | None:
        limiter = attempt.limiter
        if limiter is not None and limiter in self._learned:
            self._follow_server(limiter, attempt)
        if attempt.succeeded:
            if limiter is not None and limiter in self._learned:
                self._recover(limiter, attempt)
            return None
        error = attempt.error
        if error is None:
            exception = attempt.exception
            if not isinstance(exception, Exception):
                return None  # nothing failed (a 1xx/3xx), or not ours to retry
            return self._backoff(attempt, f"connection error ({type(exception).__name__})")
        label = f"{error.kind.value} ({error.status})"
        if error.kind not in RETRYABLE_KINDS or not error.retryable:
            why = "the server said not to retry" if error.should_retry is False else "final"
            return Decision.give_up(reason=f"{label}: {why}")
        if limiter is not None:
            if error.kind is ErrorKind.RATE_LIMIT:
                self._learn_from_429(limiter, attempt, error)
            elif error.kind is ErrorKind.SLOW_DOWN:
                self._slow_down(limiter, attempt)
        named = error.retry_after
        if named is None:
            return self._backoff(attempt, label)
        reason = f"{label}: waiting {named:.3g} s as the server asked"
        if error.kind is ErrorKind.RATE_LIMIT and limiter is not None:
            # Everyone on this bucket waits, not only this call; the bucket then makes
            # this call wait exactly the named time (longer if others queue ahead).
            _hold(limiter, named, error.metric, attempt)
            return self._bounded(attempt, delay=0.0, wait=named, reason=reason)
        return self._bounded(attempt, delay=named, wait=named, reason=reason)

    # -- retry decisions -----------------------------------------------------------------

    def backoff_ceiling(self, number: int) -> float:
        """The largest backoff after attempt ``number`` failed: ``min(cap, base * 2**(n-1))``."""
        return min(self.cap, self.base * 2.0 ** min(max(number, 1) - 1, 64))

    def _backoff(self, attempt: Attempt, label: str) -> Decision:
        delay = self._rng.uniform(0.0, self.backoff_ceiling(attempt.number))
        reason = f"{label}: backoff {delay:.3g} s"
        return self._bounded(attempt, delay=delay, wait=delay, reason=reason)

    def _bounded(self, attempt: Attempt, *, delay: float, wait: float, reason: str) -> Decision:
        if self.max_attempts is not None and attempt.number >= self.max_attempts:
            return Decision.give_up(
                reason=f"{reason}; {attempt.number} attempts made (max_attempts)"
            )
        if self.max_elapsed is not None and attempt.elapsed + wait > self.max_elapsed:
            return Decision.give_up(
                reason=f"{reason}; the next attempt would start after {self.max_elapsed:g} s"
                " (max_elapsed)"
            )
        return Decision.retry(after=delay, reason=reason)

    # -- learning ------------------------------------------------------------------------

    def _learn_from_429(self, limiter: RateLimiter, attempt: Attempt, error: ErrorInfo) -> None:
        window = _DAY if error.period == "day" else _MINUTE
        dims = [d for d in limiter.bucket.dimensions if _same(d.window, window)]
        if error.metric is not None:
            matching = [d for d in dims if d.metric == error.metric]
            if not matching and error.metric in ("input_tokens", "output_tokens"):
                matching = [d for d in dims if d.metric == "tokens"]
            dims = matching
        else:
            dims = [d for d in dims if d.metric in ("requests", "tokens")]
        states = self._learned.setdefault(limiter, {})
        for dim in dims:
            if _in_force(attempt.snapshot, dim):
                continue  # the server said its limit and the transport applied it
            state = states.get(dim.name)
            if state is not None and _granted_before_cut(attempt, state):
                continue  # sent under the old limit: the cut already accounts for it
            named = error.limit if error.metric == dim.metric and error.period else None
            if named is not None and named < dim.limit:
                # The message says the limit outright: take it, and recover no higher.
                new, ceiling, why = named, named, "limit named in the 429 message"
            else:
                ceiling = dim.limit if state is None else max(state.ceiling, dim.limit)
                new = max(self.floor * ceiling, dim.limit * self.decrease)
                why = "429 without limit headers"
            if state is None:
                state = states[dim.name] = _Learned(ceiling=ceiling, target=dim.limit)
            state.ceiling = ceiling
            state.cut_mark = sum(limiter.mark())
            if new < dim.limit and not _same(new, dim.limit):
                state.target = new
                self._resize(limiter, attempt, dim, new, why)

    def _slow_down(self, limiter: RateLimiter, attempt: Attempt) -> None:
        states = self._learned.setdefault(limiter, {})
        now = attempt.clock()
        for dim in limiter.bucket.dimensions:
            if not _same(dim.window, _MINUTE):
                continue
            state = states.get(dim.name)
            if state is not None and state.slow_down and _granted_before_cut(attempt, state):
                continue
            if state is None:
                state = states[dim.name] = _Learned(ceiling=dim.limit, target=dim.limit)
            state.ceiling = max(state.ceiling, dim.limit)
            new = max(self.floor * state.ceiling, dim.limit * self.slow_down_factor)
            state.target = min(new, dim.limit)
            state.slow_down = True
            state.hold_until = now + self.slow_down_hold
            state.cut_mark = sum(limiter.mark())
            if not _same(state.target, dim.limit):
                why = f"503 slow_down; held {self.slow_down_hold:g} s"
                self._resize(limiter, attempt, dim, state.target, why)

    def _follow_server(self, limiter: RateLimiter, attempt: Attempt) -> None:
        """Reconcile what was learned with the limits in force after this response."""
        states = self._learned[limiter]
        current = {d.name: d for d in limiter.bucket.dimensions}
        for name, state in list(states.items()):
            dim = current.get(name)
            if dim is None:
                del states[name]
                continue
            if state.slow_down:
                if _in_force(attempt.snapshot, dim):
                    # The quota is the most to ever go back to; the transport has just
                    # resized to it, and the slow_down cut must stay in force.
                    state.ceiling = dim.limit
                    state.target = min(state.target, dim.limit)
                if not _same(dim.limit, state.target):
                    limiter.resize(name, state.target)
            elif not _same(dim.limit, state.target):
                # The server's headers (or the user) set this limit since: theirs wins.
                del states[name]

    def _recover(self, limiter: RateLimiter, attempt: Attempt) -> None:
        now = attempt.clock()
        current = {d.name: d for d in limiter.bucket.dimensions}
        for name, state in self._learned[limiter].items():
            if state.target >= state.ceiling or now < state.hold_until:
                continue
            before = state.target
            state.target = min(state.ceiling, before + self.recovery * state.ceiling)
            if state.target == before:
                continue
            limiter.rescale(name, state.target, attempt.cost)
            if state.target >= state.ceiling:
                state.slow_down = False
                dim = current[name]
                self._emit(
                    attempt, dim, f"{name} {_fmt(before)} -> {_fmt(state.target)} (recovered)"
                )

    def _resize(
        self, limiter: RateLimiter, attempt: Attempt, dim: Dimension, new: float, why: str
    ) -> None:
        limiter.rescale(dim.name, new, attempt.cost)
        self._emit(attempt, dim, f"{dim.name} {_fmt(dim.limit)} -> {_fmt(new)} ({why})")

    def _emit(self, attempt: Attempt, dim: Dimension, detail: str) -> None:
        attempt.telemetry.emit(
            Event(
                "limit_changed",
                key=attempt.key_name,
                model=attempt.model,
                attempt=max(attempt.number, 1),
                status=attempt.status,
                metric=dim.metric,
                detail=detail,
            )
        )

    def __repr__(self) -> str:
        return (
            f"AdaptiveBackoff(max_attempts={self.max_attempts}, "
            f"max_elapsed={self.max_elapsed!r}, base={self.base:g}, cap={self.cap:g})"
        )


def _hold(limiter: RateLimiter, seconds: float, metric: str | None, attempt: Attempt) -> None:
    """Hold ``limiter`` for ``seconds``, on ``metric``'s dimensions if it has any, else all."""
    if metric is not None and not any(d.metric == metric for d in limiter.bucket.dimensions):
        metric = None
    limiter.hold(seconds, metric=metric, cost=attempt.cost)


def _reported_limit(snapshot: RateLimitSnapshot | None, dim: Dimension) -> float | None:
    """The limit the headers gave for ``dim``'s metric and window, if they gave one."""
    if snapshot is None:
        return None
    for reported in snapshot.dimensions:
        if reported.scope != "" or reported.metric != dim.metric or reported.limit is None:
            continue
        if reported.window is None or dim.window / 2 <= reported.window <= dim.window * 2:
            return reported.limit
    return None


def _in_force(snapshot: RateLimitSnapshot | None, dim: Dimension) -> bool:
    """Whether the headers reported ``dim``'s limit and it is the one in force.

    With ``follow_server_limits=False`` the transport does not apply reported limits;
    then a 429 is as informative as from a server that reports none.
    """
    reported = _reported_limit(snapshot, dim)
    return reported is not None and _same(reported, dim.limit)


def _granted_before_cut(attempt: Attempt, state: _Learned) -> bool:
    reservation = attempt.reservation
    return reservation is not None and sum(reservation.mark) <= state.cut_mark


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _check(
    name: str,
    value: float,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or math.isinf(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open or math.isinf(high) else "]"
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value!r}")
