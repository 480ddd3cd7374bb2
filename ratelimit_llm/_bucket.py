"""The pure core: a token bucket over several named dimensions at once.

Nothing here reads a clock or awaits anything: every method takes ``now`` (seconds on any
monotonic scale) and answers at once. That keeps the arithmetic testable in virtual time
and lets the async limiter (and, later, other backends) decide how to wait.

Model, per dimension (see ``docs/concepts.md``)::

    level(now) = min(capacity, level(then) + rate * (now - then))

A call is granted only when every dimension has room for its amount, and then it takes
from all of them together. A level may go below zero when a settled call turns out to
have cost more than was reserved: that debt is repaid by refill before anyone else is
served, which is how the server sees it too.

Why this is hand-written: ``aiolimiter`` holds one dimension and cannot refund, resize or
take corrections from the server, and no maintained library offers all of that over
several dimensions with reservations (see ``../shared/research/peers.md``).
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Sequence

from ._exceptions import CapacityExceededError
from ._types import Cost, Dimension

__all__ = ["Bucket", "Mark"]

#: A snapshot of how much had been sent per dimension when a reservation was taken. It
#: lets a later header snapshot be discounted by what was sent after it (see `observe`).
Mark = tuple[float, ...]

# How many grants `mark_at` remembers: at a thousand calls a second, the last 16 s,
# while a snapshot is at most one response's round trip old.
_HISTORY_GRANTS = 16_384

# Levels and amounts are floats refilled by multiplication, so "exactly enough" can come
# out a hair short; a relative tolerance keeps that from costing a spurious timer round.
_EPSILON = 1e-9


class Bucket:
    """Several continuous-refill token buckets that grant and refund together.

    Example::

        bucket = Bucket(Limits(rpm=500, tpm=200_000).dimensions(), now=0.0)
        amounts = bucket.amounts(Cost(requests=1, tokens=1_200))
        if bucket.try_take(amounts, now=0.0):
            ...
        else:
            wait = bucket.delay(amounts, now=0.0)
    """

    __slots__ = (
        "_anchors",
        "_capacity",
        "_dimensions",
        "_history",
        "_levels",
        "_metrics",
        "_rates",
        "_read_plain",
        "_refunded",
        "_sent",
        "_spent",
        "_updated",
        "_wire_history",
        "_wired",
    )

    def __init__(self, dimensions: Sequence[Dimension], now: float, *, fill: float = 1.0) -> None:
        if not dimensions:
            raise ValueError("a bucket needs at least one dimension")
        names = [d.name for d in dimensions]
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names must be unique, got {names}")
        if not (0.0 <= fill <= 1.0):
            raise ValueError(f"fill must be between 0 and 1, got {fill!r}")
        self._dimensions: tuple[Dimension, ...] = tuple(dimensions)
        self._metrics = tuple(d.metric for d in dimensions)
        # Requests and tokens are plain attributes of a Cost; reading them directly keeps
        # the per-call path short (input/output tokens need Cost.amount's fallback).
        plain = all(m in ("requests", "tokens") for m in self._metrics)
        self._read_plain: Callable[[Cost], tuple[float, ...]] | None = None
        if plain and len(self._metrics) > 1:
            self._read_plain = operator.attrgetter(*self._metrics)
        self._rates = [d.rate for d in dimensions]
        self._capacity = [d.capacity for d in dimensions]
        self._levels = [d.capacity * fill for d in dimensions]
        # Running totals per dimension: taken (estimates), given back, and spent as
        # reported by settles. `_sent` also serves as the mark that discounts headers.
        self._sent = [0.0] * len(dimensions)
        self._refunded = [0.0] * len(dimensions)
        self._spent = [0.0] * len(dimensions)
        # The server's last word per dimension: (level it implied, when, `_sent` then).
        # Refunds are never allowed to lift a level above it projected to the present.
        self._anchors: list[tuple[float, float, float] | None] = [None] * len(dimensions)
        # (grant time, `_sent` just after it) for the most recent grants.
        self._history: deque[tuple[float, Mark]] = deque(maxlen=_HISTORY_GRANTS)
        # What actually left for the server, per dimension, and (send time, `_wired` just
        # after it) for the most recent sends; see `wire`.
        self._wired = [0.0] * len(dimensions)
        self._wire_history: deque[tuple[float, Mark]] = deque(maxlen=_HISTORY_GRANTS)
        self._updated = now

    # -- reading -------------------------------------------------------------------------

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions, with their current (possibly server-adjusted) limits."""
        return self._dimensions

    def amounts(self, cost: Cost) -> tuple[float, ...]:
        """What ``cost`` takes from each dimension, in dimension order."""
        if self._read_plain is not None:
            return self._read_plain(cost)
        return tuple([cost.amount(metric) for metric in self._metrics])

    def levels(self, now: float) -> tuple[float, ...]:
        """How much each dimension holds at ``now`` (negative while in debt)."""
        self._refill(now)
        return tuple(self._levels)

    def totals(self) -> tuple[Mark, Mark, Mark]:
        """Running totals per dimension: (taken, given back, spent according to settles)."""
        return tuple(self._sent), tuple(self._refunded), tuple(self._spent)

    def mark(self) -> Mark:
        """How much has been taken so far per dimension; see `observe`."""
        return tuple(self._sent)

    def mark_at(self, when: float) -> Mark:
        """How much had been taken per dimension at time ``when`` (a recent past).

        Read from a short history of grants, so that a server snapshot known to date
        from ``when`` can be discounted by what was granted here after it. Older than
        the history, it answers with the oldest it has (which discounts more: the
        safe side).
        """
        history = self._history
        if not history:
            return tuple(self._sent)
        # Everything recorded is later than ``when``: the oldest record is the nearest.
        return _latest_by(history, when, history[0][1])

    def wire(self, amounts: Sequence[float], now: float) -> None:
        """Record that a call granted ``amounts`` left for the server at ``now``.

        A call may wait after its grant (for a free connection, behind a cap on calls in
        flight, on a busy event loop) and reach the server long after. A snapshot the
        server took meanwhile does not count it, so what discounts a snapshot is
        everything granted minus what had been *sent* by then (`sent_at`), not what had
        been granted by then (`mark_at`).
        """
        wired = self._wired
        for i, amount in enumerate(amounts):
            wired[i] += amount
        self._wire_history.append((now, tuple(wired)))

    def sent_at(self, when: float) -> Mark | None:
        """What had been sent per dimension by ``when``; ``None`` if no send was recorded.

        With it, `observe` discounts a snapshot by every grant not yet sent at ``when``
        as well as every grant made since (see `wire`).
        """
        history = self._wire_history
        if not history:
            return None
        # Earlier than every send recorded: nothing had left, unless records were dropped.
        before_all = (0.0,) * len(self._wired) if len(history) < _HISTORY_GRANTS else history[0][1]
        return _latest_by(history, when, before_all)

    def check_fits(self, amounts: Sequence[float]) -> None:
        """Raise `CapacityExceededError` if some amount could never be granted."""
        for amount, capacity, dim in zip(amounts, self._capacity, self._dimensions, strict=True):
            if amount > capacity * (1 + _EPSILON):
                raise CapacityExceededError(dim.name, amount, capacity)

    def delay(self, amounts: Sequence[float], now: float, *, within_capacity: bool = True) -> float:
        """Seconds from ``now`` until every dimension has room for ``amounts``.

        Assumes nothing else is taken meanwhile; ``math.inf`` if it can never fit. With
        ``within_capacity=False`` the amounts may exceed capacity: the answer is then how
        long refill takes to produce them (a backlog served piece by piece).
        """
        self._refill(now)
        wait = 0.0
        for amount, level, rate, capacity in zip(
            amounts, self._levels, self._rates, self._capacity, strict=True
        ):
            if within_capacity and amount > capacity * (1 + _EPSILON):
                return math.inf
            short = amount - level
            if short > _EPSILON * max(1.0, amount):
                wait = max(wait, short / rate)
        return wait

    # -- changing ------------------------------------------------------------------------

    def try_take(self, amounts: Sequence[float], now: float) -> bool:
        """Take ``amounts`` from every dimension if all have room; report whether it did."""
        # Refill, check and take in one pass (this runs on every call). A refusal leaves
        # the state untouched, which is still exact: refill is a function of elapsed time.
        elapsed = now - self._updated
        if elapsed < 0:
            elapsed = 0.0
        levels, rates, capacity = self._levels, self._rates, self._capacity
        after = []
        for i, amount in enumerate(amounts):
            level = levels[i] + rates[i] * elapsed
            if level > capacity[i]:
                level = capacity[i]
            if amount > level and amount - level > _EPSILON * (amount if amount > 1.0 else 1.0):
                return False
            after.append(level - amount)
        self._levels = after
        if elapsed:
            self._updated = now
        sent = self._sent
        for i, amount in enumerate(amounts):
            sent[i] += amount
        return True

    def grant_mark(self, now: float) -> Mark:
        """Record that a take at ``now`` was granted; returns `mark` (as it is now).

        The limiter calls it after every successful `try_take`, so that `mark_at` can
        later tell what had been taken by any recent moment.
        """
        mark = tuple(self._sent)
        self._history.append((now, mark))
        return mark

    def give_back(self, amounts: Sequence[float], now: float) -> None:
        """Return ``amounts`` that were taken but not spent (a refund).

        A level never rises above capacity, so taking and then giving back leaves the
        bucket exactly where it would be had the take never happened.
        """
        self._refill(now)
        levels, capacity, refunded, sent = self._levels, self._capacity, self._refunded, self._sent
        for i, amount in enumerate(amounts):
            levels[i] = min(capacity[i], levels[i] + amount)
            refunded[i] += amount
            # Never sent, so not "sent after" any snapshot either.
            sent[i] -= amount

    def settle(self, reserved: Sequence[float], actual: Sequence[float], now: float) -> None:
        """Reconcile a reservation with what the call really cost.

        What was reserved but not spent goes back, what was spent beyond the reservation
        is debited even if that puts a level in debt. A refund never lifts a level above
        the server's last reported figure projected to ``now`` (its remaining, plus
        refill since, minus what was sent since): a server that does not refund unused
        output itself would otherwise be overrun until its next headers arrive.
        """
        elapsed = now - self._updated
        if elapsed < 0:
            elapsed = 0.0
        else:
            self._updated = now
        levels, rates, capacity = self._levels, self._rates, self._capacity
        refunded, spent, anchors = self._refunded, self._spent, self._anchors
        for i, cost in enumerate(actual):
            unspent = reserved[i] - cost
            level = levels[i] + rates[i] * elapsed
            if level > capacity[i]:
                level = capacity[i]
            if unspent > 0:
                refunded[i] += unspent
                raised = level + unspent
                anchor = anchors[i]
                if anchor is not None:
                    server_level, then, sent_then = anchor
                    projected = server_level + rates[i] * (now - then) - (self._sent[i] - sent_then)
                    if raised > projected:
                        raised = projected if projected > level else level
                level = raised
            else:
                level += unspent
            levels[i] = capacity[i] if level > capacity[i] else level
            spent[i] += cost

    def observe(
        self,
        metric: str,
        *,
        now: float,
        limit: float | None = None,
        remaining: float | None = None,
        window: float | None = None,
        reset: float | None = None,
        mark: Mark | None = None,
        resize: bool = True,
    ) -> str | None:
        """Correct the local view from what the server reported for one dimension.

        ``remaining`` lowers the level (never raises it: the snapshot is stale and other
        calls may be in flight) to what the server had left minus what was taken here
        after the call that produced the snapshot (``mark``, taken with `mark` when that
        call was granted). A ``limit`` that differs from ours resizes the dimension when
        ``resize`` is true, and so does a burst depth that differs from ours: ``reset``
        is the time until the bucket is full, so at the dimension's refill rate it holds
        ``remaining + reset * rate`` when full. A server that enforces a minute's limit
        per second ("quantized") shows up that way, with a window far below a minute.
        Returns the name of the dimension that was corrected, or ``None`` when no
        dimension matches.
        """
        index = self._match(metric, limit, window)
        if index is None:
            return None
        self._refill(now)
        if resize and limit is not None and limit > 0:
            self._resize(index, limit)
            if reset is not None and remaining is not None and reset > 0 and remaining < limit:
                self._learn_capacity(index, remaining + reset * self._rates[index])
        if remaining is not None and remaining >= 0:
            sent_after = 0.0 if mark is None else max(0.0, self._sent[index] - mark[index])
            server_level = remaining - sent_after
            self._levels[index] = min(self._levels[index], server_level)
            self._anchors[index] = (server_level, now, self._sent[index])
        return self._dimensions[index].name

    def hold(
        self,
        seconds: float,
        now: float,
        *,
        metric: str | None = None,
        amounts: Sequence[float] = (),
    ) -> None:
        """Make sure ``amounts`` cannot be granted for ``seconds`` from ``now``.

        This is what a server means by "try again in X": the request fits in X seconds,
        not sooner. Dimensions counting ``metric`` (all of them when ``None``) are lowered
        so that their level reaches ``amounts`` (zero where not given) only after
        ``seconds``. Like `observe`, it never raises a level.
        """
        if not seconds > 0 or math.isinf(seconds):
            return
        self._refill(now)
        for i, rate in enumerate(self._rates):
            if metric is None or self._metrics[i] == metric:
                amount = amounts[i] if i < len(amounts) else 0.0
                self._levels[i] = min(self._levels[i], amount - rate * seconds)

    def set_level(self, name: str, level: float, now: float) -> None:
        """Put dimension ``name`` at ``level`` (at most its capacity; below zero is debt).

        For strategies that change a limit and want to choose what that does to the
        present (see `AdaptiveBackoff`); ordinary corrections go through `observe`.
        """
        index = self._index(name)
        self._refill(now)
        self._levels[index] = min(level, self._capacity[index])

    def resize(self, name: str, limit: float, now: float) -> None:
        """Give dimension ``name`` a new limit, keeping what has been used of it."""
        index = self._index(name)
        self._refill(now)
        self._resize(index, limit)

    def _index(self, name: str) -> int:
        for index, dim in enumerate(self._dimensions):
            if dim.name == name:
                return index
        raise KeyError(name)

    # -- internals -----------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed <= 0:
            # A clock that stands still (or steps back) must not drain the bucket.
            return
        self._updated = now
        levels, rates, capacity = self._levels, self._rates, self._capacity
        for i in range(len(levels)):
            level = levels[i] + rates[i] * elapsed
            levels[i] = capacity[i] if level > capacity[i] else level

    def _resize(self, index: int, limit: float) -> None:
        old = self._dimensions[index]
        if math.isclose(old.limit, limit, rel_tol=1e-6):
            return
        new = old.resized(limit)
        dims = list(self._dimensions)
        dims[index] = new
        self._dimensions = tuple(dims)
        self._rates[index] = new.rate
        # What was used stays used: the level moves by the change in capacity.
        self._levels[index] = min(new.capacity, self._levels[index] + new.capacity - old.capacity)
        self._capacity[index] = new.capacity

    def _learn_capacity(self, index: int, capacity: float) -> None:
        """Adopt a burst depth the server revealed, if it differs by more than 10 %."""
        old = self._dimensions[index]
        capacity = min(old.limit, capacity)
        if capacity <= 0 or abs(capacity - old.capacity) <= 0.1 * old.capacity:
            return
        new = Dimension(old.name, old.metric, old.limit, old.window, capacity)
        dims = list(self._dimensions)
        dims[index] = new
        self._dimensions = tuple(dims)
        self._capacity[index] = capacity
        self._levels[index] = min(self._levels[index], capacity)

    def _match(self, metric: str, limit: float | None, window: float | None) -> int | None:
        """Which dimension a server snapshot speaks of.

        A known window picks the dimension whose window is nearest (within a factor of
        two); a window far shorter than a minute, with the limit of our per-minute
        dimension, is that dimension enforced in slices (quantized). Without a window,
        only a dimension with exactly that limit matches (or, when the server sent no
        limit, the per-minute one): a requests triplet may really be per day (Groq, or
        OpenAI when RPD binds), so an unknown window never resizes anything.
        """
        candidates = [i for i, m in enumerate(self._metrics) if m == metric]
        if not candidates:
            return None
        if window is not None and window > 0:
            best = min(candidates, key=lambda i: abs(math.log(self._dimensions[i].window / window)))
            ratio = self._dimensions[best].window / window
            if 0.5 <= ratio <= 2.0:
                return best
            if window < 30.0:
                for i in candidates:
                    dim = self._dimensions[i]
                    if dim.window == 60.0 and (
                        limit is None or math.isclose(dim.limit, limit, rel_tol=1e-6)
                    ):
                        return i
            return None
        if limit is not None:
            for i in candidates:
                if math.isclose(self._dimensions[i].limit, limit, rel_tol=1e-6):
                    return i
            return None
        for i in candidates:
            if self._dimensions[i].window == 60.0:
                return i
        return None


def _latest_by(history: deque[tuple[float, Mark]], when: float, before_all: Mark) -> Mark:
    """The totals of the last record at or before ``when`` (newest first: ``when`` is recent)."""
    for at, totals in reversed(history):
        if at <= when:
            return totals
    return before_all
