"""The learner: the one owner of what the server says about the buckets.

Every correction of a bucket passes through here, whatever strategy is composed:

* the ``x-ratelimit-*`` headers of every answer (levels, stated limits, the depth they
  show, which ends slow start);
* the wait a 429 names ("try again in 210ms", ``retry-after-ms``), put on the bucket so
  that everyone queued on that key and model waits it, bounded by `Learner.max_hold`;
* slow start for servers that send no headers: each answer without refusal opens the
  burst further, a refusal halves it;
* a pace learned from refusals when the server states no limit (multiplicative
  decrease, additive recovery, as TCP does), and OpenAI's ``slow_down`` hold;
* the cap on calls in flight (``Limits(concurrency=...)``): a refusal that names
  concurrency cuts it, latency that climbs while throughput does not (a server that
  queues rather than refuses, as vLLM does) takes it back to where throughput was best,
  answers raise it slowly.

Strategies (`AdaptiveBackoff`, `KeyRotation`, `FixedDelay`, yours) only decide: wait,
retry after N, route to a key, give up. They read the same `Attempt`; none of them writes
to a bucket. What is learned here only ever lowers the pace or the burst: the largest
call let through stays what the user or the server stated.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

from ._classify import ErrorInfo, ErrorKind
from ._headers import RateLimitSnapshot
from ._interface import Limiter
from ._strategy import Attempt
from ._telemetry import Event
from ._types import Dimension
from ._validate import check_number

__all__ = ["MAX_HOLD", "Learner"]

_MINUTE = 60.0
_DAY = 86_400.0

#: The longest one refusal may hold a bucket, by default (see `Learner.max_hold`).
MAX_HOLD = 60.0


@dataclass(slots=True)
class _Learned:
    """A pace this learner set on one dimension of one limiter."""

    #: The pace to recover to: the largest stated limit seen for the dimension.
    ceiling: float
    #: The pace this learner wants in force now.
    target: float
    #: The stated limit when the target was set: if it changes, the user or the server
    #: said something new, and (but for slow_down) what was learned is dropped.
    stated: float
    #: Cut for a 503 slow_down: kept even against the limits in the headers (those say
    #: what the quota allows, slow_down says what the service can take right now).
    slow_down: bool = False
    #: No additive recovery before this time (the slow_down hold).
    hold_until: float = -math.inf
    #: How much the bucket had granted (summed over dimensions) at the last cut. A
    #: failure of a call granted before it says nothing new about the cut pace.
    cut_mark: float = -math.inf


class Learner:
    """Turns every answer into corrections of the bucket it was charged to.

    `RateLimitedTransport` (and so `wrap`) calls `learn` after each attempt that got an
    answer, before the strategy decides. The defaults suit OpenAI and the providers in
    ``docs/providers.md``; change them with ``wrap(..., learner=Learner(...))``.

    :param max_hold: the longest one refusal may hold a bucket (60 s: a per-minute bucket
        refills whole in a minute, so a longer "try again in" is about a per-day limit,
        or absurd: ``retry-after: 999999999`` must not stop a bucket for years). The call
        itself is still given up by its strategy when the wait is beyond its budget.
    :param growth: slow start, for a server whose headers do not show the depth: each
        round trip answered without refusal lets the bucket go deeper, by one call the
        first time and by ``growth`` times the previous step after that (2: doubling, as
        TCP's slow start). A refusal gives the last step back and ends the probing.
    :param decrease: 0.7, the multiplicative decrease of TCP CUBIC (RFC 8312), applied to
        the pace when a server that states no limit refuses a call. Gentler than halving
        because the named wait already stops the storm; the cut only corrects the pace.
    :param recovery: 0.02: each success gives back 2 % of the stated limit, so one cut
        is undone after 15 successes; ``0`` never recovers.
    :param floor: 0.05: never below 5 % of the stated limit, so that 429s caused by
        someone else burning a shared quota cannot leave the client crawling.
    :param slow_down_factor: 0.5: OpenAI asks to "return to the previous rate" after a
        503 ``slow_down``; halving undoes a doubling.
    :param slow_down_hold: 900 s: OpenAI asks to hold the reduced rate "15+ minutes".
    """

    __slots__ = (
        "_cut_marks",
        "_learned",
        "_throughput",
        "decrease",
        "floor",
        "growth",
        "max_hold",
        "recovery",
        "slow_down_factor",
        "slow_down_hold",
    )

    def __init__(
        self,
        *,
        max_hold: float = MAX_HOLD,
        growth: float = 2.0,
        decrease: float = 0.7,
        recovery: float = 0.02,
        floor: float = 0.05,
        slow_down_factor: float = 0.5,
        slow_down_hold: float = 900.0,
    ) -> None:
        self.max_hold = check_number("Learner.max_hold", max_hold, low=0.0, low_open=True)
        self.growth = check_number("Learner.growth", growth, low=1.0, high=16.0)
        self.decrease = check_number(
            "Learner.decrease", decrease, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.recovery = check_number("Learner.recovery", recovery, low=0.0, high=1.0)
        self.floor = check_number("Learner.floor", floor, low=0.0, high=1.0, low_open=True)
        self.slow_down_factor = check_number(
            "Learner.slow_down_factor", slow_down_factor, low=0.0, high=1.0, low_open=True
        )
        self.slow_down_hold = check_number("Learner.slow_down_hold", slow_down_hold, low=0.0)
        # Per limiter, per dimension name; weak, so a learner shared by several clients
        # does not keep their limiters alive.
        self._learned: weakref.WeakKeyDictionary[Limiter, dict[str, _Learned]] = (
            weakref.WeakKeyDictionary()
        )
        # Per limiter: what had been granted at the last cut of the in-flight cap, and
        # the best delivery rate seen (calls a second) with the calls in flight then.
        self._cut_marks: weakref.WeakKeyDictionary[Limiter, dict[str, float]] = (
            weakref.WeakKeyDictionary()
        )
        self._throughput: weakref.WeakKeyDictionary[Limiter, tuple[float, float]] = (
            weakref.WeakKeyDictionary()
        )

    def learn(self, attempt: Attempt, *, since: float | None = None) -> None:
        """Apply what the answer to ``attempt`` says to the bucket it was charged to.

        ``since`` is when the server took the numbers in its headers, on the limiter's
        clock (see `Limiter.observe_snapshot`); without it, the headers are taken
        to count everything up to this attempt's grant.
        """
        limiter = attempt.limiter
        attempt.held = 0.0
        if limiter is None or attempt.status is None:
            return
        snapshot = attempt.snapshot
        if snapshot is not None and not snapshot.is_empty:
            reservation = None if since is not None else attempt.reservation
            before = limiter.dimensions
            limiter.observe_snapshot(snapshot, reservation, since=since)
            self._emit_stated_changes(attempt, before, limiter.dimensions)
        else:
            limiter.answered()
        if limiter in self._learned:
            self._follow_stated(limiter, attempt)
        error = attempt.error
        if attempt.succeeded:
            # Latency first: a server that queues must stop the probe this answer
            # would otherwise extend.
            self._in_flight_answered(limiter, attempt)
            if attempt.reservation is not None:
                limiter.grow(attempt.reservation, factor=self.growth)
            if limiter in self._learned:
                self._recover(limiter, attempt)
        elif error is not None and error.kind is ErrorKind.RATE_LIMIT:
            self._refused(limiter, attempt, error)
        elif error is not None and error.kind is ErrorKind.SLOW_DOWN:
            self._slow_down(limiter, attempt)
        elif error is not None and error.kind is ErrorKind.CONCURRENCY:
            self._too_many_in_flight(limiter, attempt, "a refusal that names concurrency")

    def hold_seconds(self, named: float) -> float:
        """What a named wait of ``named`` seconds may hold a bucket for (at most `max_hold`)."""
        return min(named, self.max_hold) if named > 0 else 0.0

    # -- refusals ------------------------------------------------------------------------

    def _refused(self, limiter: Limiter, attempt: Attempt, error: ErrorInfo) -> None:
        dims = _dimensions_of(limiter, error)
        if error.retry_after is not None:
            hold = self.hold_seconds(error.retry_after)
            metric = error.metric
            if metric is not None and not any(d.metric == metric for d in dims):
                metric = None
            limiter.hold(hold, metric=metric, cost=attempt.cost)
            attempt.held = hold
        probing = set(limiter.probing())
        slow_starting = [d for d in dims if d.name in probing]
        if slow_starting:
            # The burst was too deep for this server: that explains the refusal, the
            # pace is not to blame.
            for dim in slow_starting:
                for name in limiter.fall_back(dim.metric):
                    self._emit(attempt, dim, f"{name}: slow start stopped by a refusal")
            return
        self._cut(limiter, attempt, error, dims)

    def _cut(
        self, limiter: Limiter, attempt: Attempt, error: ErrorInfo, dims: list[Dimension]
    ) -> None:
        """Lower the pace where the server refused without stating its limit."""
        states = self._learned.setdefault(limiter, {})
        paces = limiter.paces()
        for dim in dims:
            if _in_force(attempt.snapshot, dim):
                continue  # the server stated its limit and the bucket follows it
            state = states.get(dim.name)
            if state is not None and _granted_before_cut(attempt, state):
                continue  # sent under the old pace: the cut already accounts for it
            pace = paces[dim.name]
            named = error.limit if error.metric == dim.metric and error.period else None
            if named is not None and named < pace:
                # The message says the limit outright: take it, and recover no higher.
                new, ceiling, why = named, named, "limit named in the 429 message"
            else:
                ceiling = dim.limit if state is None else max(state.ceiling, dim.limit)
                new = max(self.floor * ceiling, pace * self.decrease)
                why = "429 without limit headers"
            if state is None:
                state = states[dim.name] = _Learned(ceiling=ceiling, target=pace, stated=dim.limit)
            state.ceiling = ceiling
            state.cut_mark = sum(limiter.mark())
            if new < pace and not _same(new, pace):
                state.target = new
                limiter.set_pace(dim.name, new, attempt.cost)
                self._emit(attempt, dim, f"{dim.name} pace {_fmt(pace)} -> {_fmt(new)} ({why})")

    def _slow_down(self, limiter: Limiter, attempt: Attempt) -> None:
        states = self._learned.setdefault(limiter, {})
        now = attempt.clock()
        paces = limiter.paces()
        for dim in limiter.dimensions:
            if not _same(dim.window, _MINUTE):
                continue
            state = states.get(dim.name)
            if state is not None and state.slow_down and _granted_before_cut(attempt, state):
                continue
            pace = paces[dim.name]
            if state is None:
                state = _Learned(ceiling=dim.limit, target=pace, stated=dim.limit)
                states[dim.name] = state
            state.ceiling = max(state.ceiling, dim.limit)
            state.target = min(pace, max(self.floor * state.ceiling, pace * self.slow_down_factor))
            state.slow_down = True
            state.hold_until = now + self.slow_down_hold
            state.cut_mark = sum(limiter.mark())
            if not _same(state.target, pace):
                limiter.set_pace(dim.name, state.target, attempt.cost)
                why = f"503 slow_down; held {self.slow_down_hold:g} s"
                self._emit(
                    attempt, dim, f"{dim.name} pace {_fmt(pace)} -> {_fmt(state.target)} ({why})"
                )

    # -- calls in flight ------------------------------------------------------------------

    def _too_many_in_flight(self, limiter: Limiter, attempt: Attempt, why: str) -> None:
        """Cut the cap on calls in flight, once per round of calls granted under it."""
        state = limiter.in_flight()
        if state is None:
            return  # nothing counts calls in flight: Limits(concurrency=...) would
        marks = self._cut_marks.setdefault(limiter, {})
        reservation = attempt.reservation
        if reservation is not None and sum(reservation.mark) <= marks.get("concurrency", -1.0):
            return  # sent under the cap being cut: already accounted for
        marks["concurrency"] = sum(limiter.mark())
        if "concurrency" in limiter.probing():
            # The other refusals of this probe's round are the same news: the fall back
            # answers them all (the mark above), so none of them cuts again.
            for name in limiter.fall_back("concurrency"):
                self._emit_in_flight(attempt, f"{name}: probing stopped by {why}")
            return
        _, cap = state
        new = max(1.0, math.floor(cap * self.decrease))
        if new < cap:
            limiter.set_concurrency(new)
            self._emit_in_flight(attempt, f"concurrency {_fmt(cap)} -> {_fmt(new)} ({why})")

    def _in_flight_answered(self, limiter: Limiter, attempt: Attempt) -> None:
        """An answer: raise a binding cap slowly, or cut it once more calls in flight stop
        buying throughput.

        By Little's law a server delivers ``in flight / latency`` calls a second. The best
        rate seen, and the cap it came at, are kept; when half again as many calls in
        flight bring no tenth more, the server only queues (vLLM refuses nothing, it
        queues): the cap goes back to where the rate was best.
        """
        state = limiter.in_flight()
        if state is None:
            return
        in_flight, cap = state
        probing = "concurrency" in limiter.probing()
        latency = attempt.latency
        # The concurrency this call met: the calls in flight when it left, itself included.
        concurrent = attempt.in_flight if attempt.in_flight is not None else in_flight + 1
        if latency is not None and latency > 0:
            best_rate, best_at = self._throughput.get(limiter, (0.0, concurrent))
            rate = concurrent / latency
            if rate > best_rate * 1.1:
                self._throughput[limiter] = (rate, concurrent)
            elif concurrent >= 1.5 * best_at and cap > best_at:
                if probing:
                    limiter.fall_back("concurrency")
                limiter.set_concurrency(best_at)
                self._emit_in_flight(
                    attempt,
                    f"concurrency {_fmt(cap)} -> {_fmt(best_at)} (latency climbs, "
                    f"throughput stays at {rate:.3g}/s)",
                )
                return
        if not probing and concurrent >= cap:
            # The cap binds and answers come: one more call in flight per round of them.
            limiter.set_concurrency(cap + 1.0 / cap)

    def _emit_in_flight(self, attempt: Attempt, detail: str) -> None:
        attempt.telemetry.emit(
            Event(
                "limit_changed",
                key=attempt.key_name,
                model=attempt.model,
                attempt=max(attempt.number, 1),
                status=attempt.status,
                metric="concurrency",
                detail=detail,
            )
        )

    # -- after every answer --------------------------------------------------------------

    def _follow_stated(self, limiter: Limiter, attempt: Attempt) -> None:
        """Reconcile what was learned with the stated limits in force after this answer."""
        states = self._learned[limiter]
        current = {d.name: d for d in limiter.dimensions}
        paces = limiter.paces()
        for name, state in list(states.items()):
            dim = current.get(name)
            if dim is None:
                del states[name]
                continue
            if _same(dim.limit, state.stated):
                continue
            if not state.slow_down:
                # The server's headers (or the user) stated a new limit: theirs wins.
                del states[name]
                continue
            # slow_down stays in force against a newly stated quota, below it.
            state.stated = dim.limit
            state.ceiling = dim.limit
            state.target = min(state.target, dim.limit)
            if not _same(paces[name], state.target):
                limiter.set_pace(name, state.target, attempt.cost)

    def _recover(self, limiter: Limiter, attempt: Attempt) -> None:
        now = attempt.clock()
        current = {d.name: d for d in limiter.dimensions}
        states = self._learned[limiter]
        for name, state in list(states.items()):
            if now < state.hold_until:
                continue
            before = state.target
            state.target = min(state.ceiling, before + self.recovery * state.ceiling)
            if state.target != before:
                limiter.set_pace(name, state.target, attempt.cost)
            if state.target >= state.ceiling:
                del states[name]
                self._emit(
                    attempt,
                    current[name],
                    f"{name} pace {_fmt(before)} -> {_fmt(state.target)} (recovered)",
                )

    # -- events --------------------------------------------------------------------------

    def _emit_stated_changes(
        self, attempt: Attempt, before: tuple[Dimension, ...], after: tuple[Dimension, ...]
    ) -> None:
        if before is after:
            return
        for old, new in zip(before, after, strict=True):
            if not _same(old.limit, new.limit):
                change = f"{_fmt(old.limit)} -> {_fmt(new.limit)}"
                self._emit(attempt, new, f"{new.name} {change} (server headers)")

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
            f"Learner(max_hold={self.max_hold:g}, growth={self.growth:g}, "
            f"decrease={self.decrease:g}, recovery={self.recovery:g})"
        )


def _dimensions_of(limiter: Limiter, error: ErrorInfo) -> list[Dimension]:
    """The dimensions a rate-limit refusal speaks of (by metric and period)."""
    window = _DAY if error.period == "day" else _MINUTE
    dims = [d for d in limiter.dimensions if _same(d.window, window)]
    if error.metric is None:
        return [d for d in dims if d.metric in ("requests", "tokens")]
    matching = [d for d in dims if d.metric == error.metric]
    if not matching and error.metric in ("input_tokens", "output_tokens"):
        matching = [d for d in dims if d.metric == "tokens"]
    return matching


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
    """Whether the headers stated ``dim``'s limit and it is the one in force.

    With ``follow_server_limits=False`` the bucket does not adopt stated limits; then a
    429 is as informative as from a server that states none.
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
