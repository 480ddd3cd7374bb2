"""The pure core: a token bucket over several named dimensions at once.

Nothing here reads a clock or awaits anything: every method takes ``now`` (seconds on any
monotonic scale) and answers at once. That keeps the arithmetic testable in virtual time
and lets the async limiter (and other backends) decide how to wait.

Model, per dimension (see ``docs/concepts.md``)::

    level(now) = min(depth, level(then) + pace * (now - then))

A call is granted only when every dimension has room for its amount, and then it takes
from all of them together. A level may go below zero when a settled call turns out to
have cost more than was reserved: that debt is repaid by refill before anyone else is
served, which is how the server sees it too.

What the account is *stated* to allow (by the user, or by the server's headers) is kept
apart from what the limiter only *infers*:

* ``capacity`` (stated) is the largest amount one call may take: a call above it fails at
  once (`CapacityExceededError`).
* ``depth`` (inferred) is how much may be spent at once: the slow-start allowance until
  the server has shown the bucket's depth, the depth its headers reveal (a server that
  enforces a minute's limit per second), or a depth halved after a refusal. A call
  between the two is not refused: it is granted when the bucket is full at its depth,
  going into debt, and the server's answer then confirms or corrects the estimate.
* ``pace`` (inferred) is the refill rate in force, the stated rate unless a refusal
  from a server without limit headers taught a lower one.

So an estimate lowers the pace and the burst, never the largest request let through.

Slow start: a dimension whose depth is unknown (``Dimension.opening``) starts at its
opening allowance and its refill waits for the first answer (at most
`FIRST_ANSWER_GRACE` after the first grant): before that moment the server may not even
have seen the first request, and refilling here while its bucket sits full there is what
let the first second overshoot.

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

__all__ = ["FIRST_ANSWER_GRACE", "Bucket", "Mark"]

#: A snapshot of how much had been sent per dimension when a reservation was taken. It
#: lets a later header snapshot be discounted by what was sent after it (see `observe`).
Mark = tuple[float, ...]

#: While a bucket slow-starts, its refill waits for the first answer, or this many
#: seconds after the first grant if no answer comes sooner (a caller that never reports
#: an answer must not wait for ever). One second: the opening allowance is one second's
#: worth, so a server that admitted it has refilled it by then.
FIRST_ANSWER_GRACE = 1.0

# How many grants `mark_at` remembers: at a thousand calls a second, the last 16 s,
# while a snapshot is at most one response's round trip old.
_HISTORY_GRANTS = 16_384

# Levels and amounts are floats refilled by multiplication, so "exactly enough" can come
# out a hair short; a relative tolerance keeps that from costing a spurious timer round.
_EPSILON = 1e-9

# A reported remaining this close to the stated capacity shows the whole depth.
_NEAR_FULL = 0.9


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
        "_depth",
        "_dimensions",
        "_history",
        "_holding",
        "_levels",
        "_metrics",
        "_opening",
        "_paces",
        "_probe",
        "_probe_mark",
        "_probing",
        "_rates",
        "_read_plain",
        "_refunded",
        "_resume_at",
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
        if isinstance(fill, bool) or not isinstance(fill, int | float):
            raise TypeError(f"fill must be a number, got {type(fill).__name__}")
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
        # Calls in flight: taken with a grant, given back by `finish`, never refilled.
        self._holding = [d.holding for d in dimensions]
        # The limit each refills at (its stated limit unless `set_pace` lowered it); kept
        # as given, so that reading it back involves no rounding.
        self._paces = [d.limit for d in dimensions]
        self._capacity = [d.capacity for d in dimensions]
        self._opening = [d.opening or 0.0 for d in dimensions]
        self._probing = [d.opening is not None for d in dimensions]
        self._depth = [d.capacity if d.opening is None else d.opening for d in dimensions]
        self._levels = [depth * fill for depth in self._depth]
        # Slow start's last probe per dimension (how much deeper it let the bucket go)
        # and `_sent` when it was made: only calls granted after it can confirm it.
        self._probe = [0.0] * len(dimensions)
        self._probe_mark = [0.0] * len(dimensions)
        # Slow start holds refill from the first grant until the first answer; `None`
        # until that grant, `-inf` once refill runs freely (see `resume_refill`).
        self._resume_at: float | None = None if any(self._probing) else -math.inf
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
        """The dimensions, with their current stated limits (the server's, once it said)."""
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

    def depths(self) -> tuple[float, ...]:
        """How much each dimension lets be spent at once now (at most its capacity)."""
        return tuple(self._depth)

    def paces(self) -> tuple[float, ...]:
        """The limit each dimension refills at now (its stated limit unless cut)."""
        return tuple(self._paces)

    def probing(self) -> tuple[bool, ...]:
        """Which dimensions still slow-start (their depth not yet shown by the server)."""
        return tuple(self._probing)

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
        """Raise `CapacityExceededError` if some amount is above its stated capacity."""
        for amount, capacity, dim in zip(amounts, self._capacity, self._dimensions, strict=True):
            if amount > capacity * (1 + _EPSILON):
                raise CapacityExceededError(dim.name, amount, capacity)

    def fits(self, amounts: Sequence[float]) -> bool:
        """Whether every amount is within its stated capacity (see `check_fits`)."""
        return all(
            amount <= capacity * (1 + _EPSILON)
            for amount, capacity in zip(amounts, self._capacity, strict=True)
        )

    def delay(self, amounts: Sequence[float], now: float, *, within_capacity: bool = True) -> float:
        """Seconds from ``now`` until every dimension has room for ``amounts``.

        Assumes nothing else is taken meanwhile; ``math.inf`` if it can never fit. With
        ``within_capacity=False`` the amounts may exceed capacity: the answer is then how
        long refill takes to produce them (a backlog served piece by piece).
        """
        self._refill(now)
        paused = self._resume_at
        hold = paused - now if paused is not None and paused > now else 0.0
        wait = 0.0
        for amount, level, rate, capacity, depth in zip(
            amounts, self._levels, self._rates, self._capacity, self._depth, strict=True
        ):
            if within_capacity:
                if amount > capacity * (1 + _EPSILON):
                    return math.inf
                # Above the inferred depth, a full bucket is room enough (see `try_take`).
                if amount > depth:
                    amount = depth
            short = amount - level
            if short > _EPSILON * max(1.0, amount):
                if rate <= 0:
                    return math.inf  # calls in flight: only a finished call makes room
                wait = max(wait, hold + short / rate)
        return wait

    # -- changing ------------------------------------------------------------------------

    def try_take(self, amounts: Sequence[float], now: float) -> bool:
        """Take ``amounts`` from every dimension if all have room; report whether it did.

        Room means a level of at least the amount, or, for an amount above the
        dimension's inferred depth (but within its stated capacity), a full bucket: the
        call goes, the level goes into debt, and the answer tells whether the depth was
        underestimated. Amounts above the stated capacity are never taken.
        """
        # Refill, check and take in one pass (this runs on every call). A refusal leaves
        # the state untouched, which is still exact: refill is a function of elapsed time.
        start = self._updated
        resume = self._resume_at
        if resume is not None and resume > start:
            start = resume
        elapsed = now - start
        if elapsed < 0:
            elapsed = 0.0
        levels, rates, depth = self._levels, self._rates, self._depth
        after = []
        for i, amount in enumerate(amounts):
            level = levels[i] + rates[i] * elapsed
            if level > depth[i]:
                level = depth[i]
            need = amount
            if need > depth[i]:
                if need > self._capacity[i] * (1 + _EPSILON):
                    return False
                need = depth[i]
            if need > level and need - level > _EPSILON * (need if need > 1.0 else 1.0):
                return False
            after.append(level - amount)
        self._levels = after
        if now > self._updated:
            self._updated = now
        if resume is None:
            # The first grant of a slow-starting bucket: refill waits for an answer.
            self._resume_at = now + FIRST_ANSWER_GRACE
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

    def resume_refill(self, now: float) -> None:
        """An answer came: from ``now`` on, refill runs (it may have waited; see module)."""
        resume = self._resume_at
        if resume is not None and resume > now:
            self._refill(now)
            self._resume_at = now

    def give_back(self, amounts: Sequence[float], now: float) -> None:
        """Return ``amounts`` that were taken but not spent (a refund).

        A level never rises above its depth, so taking and then giving back leaves the
        bucket exactly where it would be had the take never happened.
        """
        self._refill(now)
        levels, depth, refunded, sent = self._levels, self._depth, self._refunded, self._sent
        for i, amount in enumerate(amounts):
            levels[i] = min(depth[i], levels[i] + amount)
            refunded[i] += amount
            # Never sent, so not "sent after" any snapshot either.
            sent[i] -= amount

    def settle(self, reserved: Sequence[float], actual: Sequence[float], now: float) -> None:
        """Reconcile a reservation with what the call really cost.

        What was reserved but not spent goes back, what was spent beyond the reservation
        is debited even if that puts a level in debt. A refund never lifts a level above
        the server's last reported figure projected to ``now`` (its remaining, plus
        refill since, minus what was sent since): a server that does not refund unused
        output itself would otherwise be overrun until its next headers arrive. A settle
        is an answer, so it also ends slow start's wait for refill (`resume_refill`).
        """
        self.resume_refill(now)
        self._refill(now)
        levels, rates, depth = self._levels, self._rates, self._depth
        refunded, spent, anchors, holding = (
            self._refunded,
            self._spent,
            self._anchors,
            self._holding,
        )
        for i, cost in enumerate(actual):
            if holding[i]:
                continue  # calls in flight come back with `finish`, not with a settle
            unspent = reserved[i] - cost
            level = levels[i]
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
            levels[i] = depth[i] if level > depth[i] else level
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
        window_known: bool = False,
    ) -> str | None:
        """Correct the local view from what the server reported for one dimension.

        ``remaining`` lowers the level (the snapshot is stale and other calls may be in
        flight) to what the server had left minus what was taken here after the call
        that produced the snapshot (``mark``, taken with `mark` when that call was
        granted). A ``limit`` that differs from ours resizes the dimension when
        ``resize`` is true.

        The depth: ``reset`` is the time until the server's bucket is full, so at the
        stated rate it holds ``remaining + reset * rate`` when full; a ``remaining``
        near the capacity shows the whole depth too. A server that enforces a minute's
        limit per second ("quantized") shows up as a depth far below a minute's.
        A slow-starting dimension *opens* to the depth shown (its level may then rise,
        to the server's remaining net of later sends); an open one adopts a depth that
        differs by more than 10 %, without a free burst.

        With ``window_known`` the reading's ``limit`` counts per its own ``window``
        (Together's requests per second): for a per-minute dimension that is a limit
        enforced in slices, so it states ``limit * 60 / window`` per minute, and the slice
        is the depth. Returns the name of the dimension that was corrected, or ``None``
        when no dimension matches.
        """
        index = self._match(metric, limit, window, window_known=window_known)
        if index is None:
            return None
        if window_known and window and limit is not None and limit > 0:
            ours = self._dimensions[index].window
            if not 0.5 <= ours / window <= 2.0:
                limit = limit * ours / window
        self.resume_refill(now)
        self._refill(now)
        if resize and limit is not None and limit > 0:
            self._resize(index, limit)
        if remaining is None or remaining < 0:
            return self._dimensions[index].name
        sent_after = 0.0 if mark is None else max(0.0, self._sent[index] - mark[index])
        server_level = remaining - sent_after
        shown = self._shown_depth(index, limit, remaining, reset)
        if self._probing[index]:
            if shown is not None:
                self._probing[index] = False
                self._depth[index] = shown
                # Open: the server's word, net of what it had not seen, is the level now.
                self._levels[index] = min(shown, server_level)
            else:
                # Only a lower bound on the depth: the server holds at least this much.
                self._depth[index] = min(self._capacity[index], max(self._depth[index], remaining))
                self._levels[index] = min(self._levels[index], server_level)
        else:
            if shown is not None and abs(shown - self._depth[index]) > 0.1 * self._depth[index]:
                self._depth[index] = shown
            self._levels[index] = min(self._levels[index], self._depth[index], server_level)
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
        ``seconds``. Like `observe`, it never raises a level. A refusal is an answer, so
        it also ends slow start's wait for refill.
        """
        if not seconds > 0 or math.isinf(seconds):
            return
        self.resume_refill(now)
        self._refill(now)
        for i, rate in enumerate(self._rates):
            if self._holding[i]:
                continue  # a named wait is about a rate, not about calls in flight
            if metric is None or self._metrics[i] == metric:
                amount = amounts[i] if i < len(amounts) else 0.0
                amount = min(amount, self._depth[i])
                self._levels[i] = min(self._levels[i], amount - rate * seconds)

    def grow(
        self, amounts: Sequence[float], mark: Mark, now: float, *, factor: float = 2.0
    ) -> tuple[str, ...]:
        """A call of ``amounts`` (granted at ``mark``) was answered without refusal.

        For a server whose headers never show the depth, slow start probes it the way
        TCP's slow start probes a network: one round trip at a time. A call granted
        after the last probe coming back unrefused means that probe was taken: every
        still-probing dimension may then spend more at once, by one call's amount the
        first time and ``factor`` times the previous probe after that (its depth and its
        level grow together, up to the stated capacity, which ends probing). What was
        granted beyond refill never exceeds the capacity, so a server whose bucket is
        as deep as stated refuses nothing; one that is shallower refuses at most the
        last probe (see `fall_back`). Returns the names of the dimensions that grew.
        """
        self.resume_refill(now)
        self._refill(now)
        grown = []
        for i, amount in enumerate(amounts):
            if not self._probing[i] or amount <= 0 or mark[i] <= self._probe_mark[i]:
                continue
            if self._holding[i] and self._depth[i] - self._levels[i] < self._depth[i] / 2:
                # Calls in flight grow only while the cap is used: answers from a few
                # calls say nothing about whether many more could be in flight (TCP's
                # window-limited rule, RFC 7661).
                continue
            step = max(amount, self._probe[i] * factor)
            depth = min(self._capacity[i], self._depth[i] + step)
            self._levels[i] = min(depth, self._levels[i] + depth - self._depth[i])
            self._probe[i] = depth - self._depth[i]
            self._depth[i] = depth
            self._probe_mark[i] = self._sent[i]
            if depth >= self._capacity[i]:
                self._probing[i] = False
            grown.append(self._dimensions[i].name)
        return tuple(grown)

    def fall_back(self, now: float, *, metric: str | None = None) -> tuple[str, ...]:
        """A refusal while probing: the last probe was too deep; stop probing.

        Dimensions counting ``metric`` (all when ``None``) that still slow-start give the
        last probe back (the server's depth lies below it) and stop probing. Returns the
        names of those that fell back.
        """
        self.resume_refill(now)
        self._refill(now)
        fell = []
        for i, metric_i in enumerate(self._metrics):
            if not self._probing[i] or (metric is not None and metric_i != metric):
                continue
            self._probing[i] = False
            depth = max(self._opening[i], self._depth[i] - self._probe[i])
            if self._holding[i]:
                # The level counts free places: what is in flight stays in flight (the
                # level may go below zero until enough of it is over).
                self._levels[i] += depth - self._depth[i]
            else:
                self._levels[i] = min(self._levels[i], depth)
            self._depth[i] = depth
            fell.append(self._dimensions[i].name)
        return tuple(fell)

    def finish(self, amounts: Sequence[float]) -> None:
        """A call granted ``amounts`` is over: its places among the calls in flight return."""
        levels, depth = self._levels, self._depth
        for i, holding in enumerate(self._holding):
            if holding:
                levels[i] = min(depth[i], levels[i] + amounts[i])

    def in_flight(self) -> float | None:
        """Calls in flight now (the first dimension counting them), or ``None`` if none does."""
        for i, holding in enumerate(self._holding):
            if holding:
                return self._depth[i] - self._levels[i]
        return None

    def set_depth(self, name: str, depth: float) -> None:
        """Let dimension ``name`` hold ``depth`` at once from now (an inferred depth).

        For calls in flight this is the cap in force: within [1, capacity], and what is
        in flight stays in flight (the level moves by the change).
        """
        index = self._index(name)
        depth = min(self._capacity[index], max(1.0, depth))
        self._levels[index] += depth - self._depth[index]
        self._depth[index] = depth

    def set_level(self, name: str, level: float, now: float) -> None:
        """Put dimension ``name`` at ``level`` (at most its depth; below zero is debt).

        For callers that change a limit and want to choose what that does to the
        present; ordinary corrections go through `observe`.
        """
        index = self._index(name)
        self._refill(now)
        self._levels[index] = min(level, self._depth[index])

    def resize(self, name: str, limit: float, now: float) -> None:
        """Give dimension ``name`` a new stated limit, keeping what has been used of it."""
        index = self._index(name)
        self._refill(now)
        self._resize(index, limit)

    def set_pace(self, name: str, limit: float, now: float, *, amount: float = 0.0) -> None:
        """Refill dimension ``name`` as if its limit were ``limit`` (an inferred limit).

        The stated limit and capacity stay: a pace learned from refusals slows the
        bucket, it never refuses a call that the stated limit admits. Where ``amount``
        does not fit now, the level becomes the one from which it fits after the same
        wait at the new pace (an earlier `hold` stays exact); where it fits, the level
        stays, so that recovering gives no free burst either. At most the stated limit.
        """
        index = self._index(name)
        self._refill(now)
        dim = self._dimensions[index]
        limit = min(limit, dim.limit)
        old_rate, new_rate = self._rates[index], limit / dim.window
        amount = min(amount, self._depth[index])
        level = self._levels[index]
        if level < amount:
            self._levels[index] = amount - (amount - level) * new_rate / old_rate
        self._rates[index] = new_rate
        self._paces[index] = limit

    def _index(self, name: str) -> int:
        for index, dim in enumerate(self._dimensions):
            if dim.name == name:
                return index
        raise KeyError(name)

    # -- internals -----------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        start = self._updated
        resume = self._resume_at
        if resume is not None and resume > start:
            start = resume
        if now > self._updated:
            self._updated = now
        elapsed = now - start
        if elapsed <= 0:
            # A clock that stands still (or steps back) must not drain the bucket, and
            # slow start's wait for an answer refills nothing.
            return
        levels, rates, depth = self._levels, self._rates, self._depth
        for i in range(len(levels)):
            level = levels[i] + rates[i] * elapsed
            levels[i] = depth[i] if level > depth[i] else level

    def _resize(self, index: int, limit: float) -> None:
        old = self._dimensions[index]
        if math.isclose(old.limit, limit, rel_tol=1e-6):
            return
        new = old.resized(limit)
        dims = list(self._dimensions)
        dims[index] = new
        self._dimensions = tuple(dims)
        share = limit / old.limit
        # A stated limit replaces whatever pace was inferred for the old one.
        self._rates[index] = new.rate
        self._paces[index] = new.limit
        self._capacity[index] = new.capacity
        self._opening[index] = new.opening or 0.0
        old_depth = self._depth[index]
        depth = min(new.capacity, old_depth * share)
        # What was used stays used: the level moves by the change in depth.
        self._levels[index] = min(depth, self._levels[index] + depth - old_depth)
        self._depth[index] = depth

    def _shown_depth(
        self, index: int, limit: float | None, remaining: float, reset: float | None
    ) -> float | None:
        """The depth a snapshot reveals (at most the capacity); ``None`` if it shows none."""
        dim = self._dimensions[index]
        capacity = self._capacity[index]
        if reset is not None and reset > 0 and (limit is None or remaining < limit):
            shown = remaining + reset * dim.rate
        elif remaining >= _NEAR_FULL * capacity:
            shown = capacity
        else:
            return None
        return min(capacity, max(shown, _EPSILON))

    def _match(
        self,
        metric: str,
        limit: float | None,
        window: float | None,
        *,
        window_known: bool = False,
    ) -> int | None:
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
            if window < 30.0 and window_known:
                # A limit the provider counts per second: our per-minute bucket, sliced.
                for i in candidates:
                    if self._dimensions[i].window == 60.0:
                        return i
                return None
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
