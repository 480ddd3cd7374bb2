"""AdaptiveBackoff: retry what waiting can cure, after exactly the wait the server names.

The SDK's own retry loop treats every 429 alike and backs off blindly. This retry policy
reads the classified error instead (`ErrorInfo`):

* a rate limit whose wait the server names ("Please try again in 210ms",
  ``retry-after-ms``) is retried as soon as the bucket grants again: the learner has put
  that wait on the bucket (`Learner`), so every caller queued on that key and model waits
  it too, which is what stops a 429 storm;
* errors no wait can fix (quota, billing, a refused key, a request too large) are never
  retried;
* anything else retryable gets exponential backoff with full jitter, within a budget of
  attempts and of time.

It decides only. What an answer teaches about the limits (headers, named waits, a pace
learned from refusals, slow start) is the `Learner`'s, applied whatever strategy runs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from .._classify import RETRYABLE_KINDS, ErrorKind
from .._strategy import Attempt, Decision, Strategy, retry_kind
from .._validate import check_int, check_number

__all__ = ["RETRY_BUDGETS", "AdaptiveBackoff"]

#: How many times one call is retried for each kind of failure, by default. Throttling
#: is cheap to retry (the server names its wait and the bucket honours it); too many
#: calls in flight clears as soon as one finishes; an overloaded or failing server and a
#: broken connection get the SDK's cookbook budget; quota and a request too large are
#: never cured by waiting.
RETRY_BUDGETS: Mapping[str, int] = {
    "throttling": 8,
    "concurrency": 10,
    "overload": 5,
    "flex": 5,
    "connection": 5,
    "quota": 0,
    "too_large": 0,
}


# A refused credential or a malformed request: no budget makes retrying them right.
_NEVER = frozenset({ErrorKind.AUTHENTICATION, ErrorKind.CLIENT_ERROR})


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
    * a 429 rate limit with a named wait: retry as soon as the bucket grants (the
      learner holds the bucket for that wait).
    * another retryable error (flex ``resource_unavailable``, 503/529 overloaded,
      ``slow_down``, 5xx, 408, 409, a connection error) with a named wait: retry after
      exactly that wait; without one: after ``rng.uniform(0, min(cap, base * 2**(n-1)))``
      seconds, ``n`` being the number of the attempt that failed.
    * give up once the call's retries for that kind of failure reach their budget
      (``retries``, see `RETRY_BUDGETS`), ``max_attempts`` attempts were made in all, or
      the next attempt would begin more than ``max_elapsed`` seconds after the first (so
      a named wait longer than the budget, or an absurd one, gives the call up at once
      with the server's answer).

    Every strategy is followed by a default ``AdaptiveBackoff()`` unless the composition
    already has one (a composition decides nothing about retries otherwise); pass
    ``AdaptiveBackoff(max_attempts=1)`` for no retries at all.

    Defaults, and why:

    :param retries: retries per kind of failure, merged over `RETRY_BUDGETS`: kinds
        ``"throttling"`` (429 rate limits, OpenRouter's budget waits), ``"concurrency"``
        (too many calls in flight), ``"overload"`` (5xx, 503 overloaded and slow_down,
        408, 409), ``"flex"`` (flex capacity), ``"connection"`` (no answer at all),
        ``"quota"`` and ``"too_large"`` (0: never). Each kind is counted on its own, in
        `RouteStatistics.retries_by_kind` too.
    :param max_attempts: attempts in all, whatever the kinds; ``None`` (the default)
        leaves it to the per-kind budgets and ``max_elapsed``.
    :param max_elapsed: 300 s: five full per-minute windows, time for any per-minute
        limit to refill several times over; a call still failing after that is better
        handed back. ``None``: no limit on time. One of the two bounds must be set:
        with neither, a server that keeps failing would keep a call forever.
    :param base: 0.5 s, the first backoff ceiling, as the SDK's initial retry delay.
    :param cap: 30 s, the largest backoff: half a per-minute window, by which time half
        of any per-minute budget has refilled (the SDK caps at 8 s, which rarely clears
        a minute's limit; the cookbook at 60 s, a whole window).
    :param rng: the source of jitter (seed one for reproducible tests); by default a
        private `random.Random`.
    :raises ValueError: for a bound out of range, or both bounds ``None``.
    :raises TypeError: for a bound of the wrong type.
    """

    decides_retries = True

    def __init__(
        self,
        *,
        retries: Mapping[str, int] | None = None,
        max_attempts: int | None = None,
        max_elapsed: float | None = 300.0,
        base: float = 0.5,
        cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        budgets = dict(RETRY_BUDGETS)
        if retries is not None:
            if not isinstance(retries, Mapping):
                kind = type(retries).__name__
                raise TypeError(f"AdaptiveBackoff.retries must be a mapping, got {kind}")
            for name, count in retries.items():
                if name not in RETRY_BUDGETS:
                    raise ValueError(
                        f"AdaptiveBackoff.retries: unknown kind {name!r}; "
                        f"expected one of {sorted(RETRY_BUDGETS)}"
                    )
                budgets[name] = check_int(f"AdaptiveBackoff.retries[{name!r}]", count, low=0)
        self.retries: Mapping[str, int] = budgets
        if max_attempts is not None:
            check_int("AdaptiveBackoff.max_attempts", max_attempts, low=1)
        self.max_attempts = max_attempts
        self.max_elapsed = (
            None
            if max_elapsed is None
            else check_number("AdaptiveBackoff.max_elapsed", max_elapsed, low=0.0, low_open=True)
        )
        self.base = check_number("AdaptiveBackoff.base", base, low=0.0, low_open=True)
        self.cap = check_number("AdaptiveBackoff.cap", cap, low=0.0, low_open=True)
        if rng is not None and not isinstance(rng, random.Random):
            kind = type(rng).__name__
            raise TypeError(f"AdaptiveBackoff.rng must be a random.Random, got {kind}")
        self._rng = rng if rng is not None else random.Random()

    # -- the hook ------------------------------------------------------------------------

    def after_response(self, attempt: Attempt) -> Decision | None:
        if attempt.succeeded:
            return None
        error = attempt.error
        if error is None:
            exception = attempt.exception
            if not isinstance(exception, Exception):
                return None  # nothing failed (a 1xx/3xx), or not ours to retry
            return self._backoff(attempt, f"connection error ({type(exception).__name__})")
        label = f"{error.kind.value} ({error.status})"
        kind = retry_kind(error)
        if error.kind in _NEVER or (self.retries[kind] == 0 and error.kind not in RETRYABLE_KINDS):
            return Decision.give_up(reason=f"{label}: final")
        if error.kind in RETRYABLE_KINDS and not error.retryable:
            why = "the server said not to retry" if error.should_retry is False else "final"
            return Decision.give_up(reason=f"{label}: {why}")
        named = error.retry_after
        if named is None:
            return self._backoff(attempt, label)
        reason = f"{label}: waiting {named:.3g} s as the server asked"
        if error.kind is ErrorKind.RATE_LIMIT and attempt.held > 0:
            # The learner held the bucket for the named wait (up to its bound): the bucket
            # makes this call wait that long (longer if others queue ahead); only what
            # the hold did not cover is slept here.
            return self._bounded(
                attempt, delay=max(0.0, named - attempt.held), wait=named, reason=reason
            )
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
        kind = retry_kind(attempt.error)
        if attempt.retried.get(kind, 0) >= self.retries[kind]:
            return Decision.give_up(
                reason=f"{reason}; {attempt.retried.get(kind, 0)} {kind} retries made "
                f"(retries[{kind!r}])"
            )
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

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.retries.items() if RETRY_BUDGETS[k] != v}
        retries = f"retries={changed!r}, " if changed else ""
        return (
            f"AdaptiveBackoff({retries}max_attempts={self.max_attempts}, "
            f"max_elapsed={self.max_elapsed!r}, base={self.base:g}, cap={self.cap:g})"
        )
