"""Server-side enforcement: the buckets the mock admits requests against.

Every capture of OpenAI's headers and 429 messages fits a continuously refilled token
bucket (rate ``limit / window``, capacity ``limit`` unless enforcement is quantized), so
that is what this module keeps, one set per (scope, model group) plus an optional
project-wide token bucket. The other providers' buckets are the same kind with another
window or another thing counted: Together's per second, Anthropic's and Fireworks'
input and output tokens apart. Admission is all-or-nothing over every bucket the request
touches; since the event loop runs one handler at a time and admission never awaits,
the check and the debit are atomic without a lock.

Nothing here reads a clock: every call takes ``now``, which is what lets the tests run
in virtual time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ._config import MockLimits

__all__ = [
    "DAY",
    "INPUT_TPM",
    "MINUTE",
    "OUTPUT_TPM",
    "PROJECT_TPM",
    "RPD",
    "RPM",
    "RPS",
    "SECOND",
    "TPD",
    "TPM",
    "TPS",
    "Admission",
    "Bucket",
    "BucketSet",
    "Charge",
    "Enforcer",
    "Refusal",
    "dimensions_of",
]

SECOND = 1.0
MINUTE = 60.0
DAY = 86_400.0

RPM = "requests/min"
RPD = "requests/day"
TPM = "tokens/min"
TPD = "tokens/day"
PROJECT_TPM = "project-tokens/min"
RPS = "requests/sec"
TPS = "tokens/sec"
INPUT_TPM = "input-tokens/min"
OUTPUT_TPM = "output-tokens/min"

#: The metrics that count tokens of some kind (everything but requests).
TOKEN_METRICS = frozenset({"tokens", "input_tokens", "output_tokens"})


class Charge(NamedTuple):
    """What admission takes from each kind of bucket, besides one request.

    ``tokens`` is the charge rule's figure (the ``tpm``/``tpd``/``tps`` buckets);
    ``input_tokens`` the prompt estimate and ``output_tokens`` the reserved output (the
    ``input_tpm`` and ``output_tpm`` buckets). ``output_later`` says the output bucket is
    charged only once the output is known (the profile's ``output_charge="usage"``):
    admission then only asks that bucket not to be spent.
    """

    tokens: int
    input_tokens: int = 0
    output_tokens: int = 0
    output_later: bool = False

    def amount(self, metric: str) -> int:
        """What a bucket counting ``metric`` is charged at admission."""
        if metric == "requests":
            return 1
        if metric == "input_tokens":
            return self.input_tokens
        if metric == "output_tokens":
            return 0 if self.output_later else self.output_tokens
        return self.tokens


class Bucket:
    """One continuously refilled bucket: ``limit`` units per ``window`` seconds."""

    __slots__ = ("capacity", "level", "limit", "metric", "name", "stamp", "window")

    def __init__(
        self, name: str, metric: str, limit: int, window: float, capacity: float, now: float
    ) -> None:
        self.name = name
        self.metric = metric
        self.limit = limit
        self.window = window
        self.capacity = capacity
        self.level = capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        """Add what flowed in since the last call, up to the capacity."""
        elapsed = now - self.stamp
        if elapsed > 0:
            if self.level < self.capacity:
                self.level = min(self.capacity, self.level + elapsed * self.limit / self.window)
            self.stamp = now

    def seconds_for(self, units: float) -> float:
        """Seconds for ``units`` to flow in (exact decimal arithmetic where the inputs are)."""
        return units * self.window / self.limit

    def remaining(self) -> int:
        """Whole units available now, never negative: what the headers report."""
        return max(0, math.floor(self.level))

    def time_to_full(self) -> float:
        """Seconds until the bucket is full again (the ``x-ratelimit-reset-*`` value)."""
        return self.seconds_for(self.capacity - self.level) if self.level < self.capacity else 0.0

    def used(self) -> float:
        """Fraction of the burst depth in use, for the peak-usage statistics."""
        return (self.capacity - self.level) / self.capacity

    def resize(self, limit: int, capacity: float) -> None:
        """Take a new limit, keeping what was used: a lower limit can leave the bucket in debt."""
        spent = self.capacity - self.level
        self.limit = limit
        self.capacity = capacity
        self.level = max(-capacity, capacity - spent)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A bucket that could not take a request, in the numbers a 429 message quotes.

    ``used`` is ``limit - remaining`` and ``wait`` is computed from the quoted integers,
    ``(used + requested - limit) / rate``, so the message's arithmetic is exact.
    ``project`` is true when the bucket is project-scoped (the message names the project).
    """

    name: str
    metric: str
    limit: int
    used: int
    requested: int
    capacity: float
    wait: float
    project: bool


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of one admission check.

    ``refusal`` is the refusing bucket with the longest wait (its message is the one sent);
    ``retry_after`` covers every refusing bucket. ``too_large`` is set when the request
    exceeds a bucket's capacity, which no amount of waiting can fix.
    """

    admitted: bool
    refusal: Refusal | None = None
    too_large: Refusal | None = None
    retry_after: float = 0.0


class BucketSet:
    """The buckets one request is checked against: its scope's, plus the project's."""

    __slots__ = ("buckets", "project", "project_scoped")

    def __init__(
        self, buckets: dict[str, Bucket], project: Bucket | None, project_scoped: bool
    ) -> None:
        self.buckets = buckets
        self.project = project
        self.project_scoped = project_scoped

    def __iter__(self) -> Iterator[Bucket]:
        yield from self.buckets.values()
        if self.project is not None:
            yield self.project

    def get(self, name: str) -> Bucket | None:
        """The bucket called ``name`` (one of the module's dimension constants), if any."""
        if name == PROJECT_TPM:
            return self.project
        return self.buckets.get(name)

    def refill(self, now: float) -> None:
        for bucket in self:
            bucket.refill(now)

    def is_project(self, bucket: Bucket) -> bool:
        return self.project_scoped or bucket is self.project


def dimensions_of(limits: MockLimits) -> list[tuple[str, str, int, float, float]]:
    """(name, metric, limit, window, capacity) of every scope bucket ``limits`` asks for.

    ``burst_seconds`` shrinks the per-minute buckets only: a per-second bucket already
    holds one second's worth, a per-day one the whole day.
    """
    share = 1.0 if limits.burst_seconds is None else limits.burst_seconds / MINUTE
    out: list[tuple[str, str, int, float, float]] = []
    if limits.rpm is not None:
        # A request is indivisible: a bucket shallower than one request would never admit.
        out.append((RPM, "requests", limits.rpm, MINUTE, max(1.0, limits.rpm * share)))
    if limits.rpd is not None:
        out.append((RPD, "requests", limits.rpd, DAY, float(limits.rpd)))
    if limits.rps is not None:
        out.append((RPS, "requests", limits.rps, SECOND, float(limits.rps)))
    if limits.tpm is not None:
        out.append((TPM, "tokens", limits.tpm, MINUTE, limits.tpm * share))
    if limits.tpd is not None:
        out.append((TPD, "tokens", limits.tpd, DAY, float(limits.tpd)))
    if limits.tps is not None:
        out.append((TPS, "tokens", limits.tps, SECOND, float(limits.tps)))
    if limits.input_tpm is not None:
        out.append((INPUT_TPM, "input_tokens", limits.input_tpm, MINUTE, limits.input_tpm * share))
    if limits.output_tpm is not None:
        capacity = limits.output_tpm * share
        out.append((OUTPUT_TPM, "output_tokens", limits.output_tpm, MINUTE, capacity))
    return out


def _project_capacity(limits: MockLimits) -> float:
    assert limits.project_tpm is not None
    share = 1.0 if limits.burst_seconds is None else limits.burst_seconds / MINUTE
    return limits.project_tpm * share


class Enforcer:
    """Creates buckets on first use and admits, charges and settles requests against them.

    ``limits_for(group)`` gives the limits of a model group; it is consulted when a bucket
    set is first created and again by `apply_limits` after the limits change.
    """

    def __init__(
        self, limits_for: Callable[[str], MockLimits], *, project_scoped: bool = False
    ) -> None:
        self._limits_for = limits_for
        self._project_scoped = project_scoped
        self._scopes: dict[tuple[str, str], dict[str, Bucket]] = {}
        self._projects: dict[tuple[str, str], Bucket] = {}

    def bucket_set(self, principal: str, project: str | None, group: str, now: float) -> BucketSet:
        """The buckets of ``principal`` (and ``project``) for ``group``, created full if new."""
        limits = self._limits_for(group)
        scope = self._scopes.get((principal, group))
        if scope is None:
            scope = {
                name: Bucket(name, metric, limit, window, capacity, now)
                for name, metric, limit, window, capacity in dimensions_of(limits)
            }
            self._scopes[(principal, group)] = scope
        project_bucket: Bucket | None = None
        if project is not None and limits.project_tpm is not None:
            project_bucket = self._projects.get((project, group))
            if project_bucket is None:
                capacity = _project_capacity(limits)
                project_bucket = Bucket(
                    PROJECT_TPM, "tokens", limits.project_tpm, MINUTE, capacity, now
                )
                self._projects[(project, group)] = project_bucket
        return BucketSet(scope, project_bucket, self._project_scoped)

    def admit(
        self, buckets: BucketSet, charge: Charge, now: float, *, soft_limit: float = 0.0
    ) -> Admission:
        """Take 1 request and ``charge`` from every bucket, or from none of them.

        ``soft_limit`` is the share of a token bucket's capacity a request may borrow
        past empty (the bucket then reads as over its limit until it refills).
        """
        buckets.refill(now)
        too_large: Refusal | None = None
        refusals: list[Refusal] = []
        for bucket in buckets:
            amount = charge.amount(bucket.metric)
            # What must be there: the amount itself, or (for output charged later) one
            # unit of room, so that a spent output bucket still refuses.
            needed = amount if amount > 0 else 1
            room = bucket.level
            if soft_limit and bucket.metric in TOKEN_METRICS:
                room += soft_limit * bucket.capacity
            if amount > bucket.capacity:
                too_large = too_large or self._refusal(buckets, bucket, amount)
            elif needed > room:
                refusals.append(self._refusal(buckets, bucket, needed, room - bucket.level))
        if too_large is not None:
            return Admission(False, too_large=too_large)
        if refusals:
            worst = max(refusals, key=lambda r: r.wait)
            return Admission(False, refusal=worst, retry_after=worst.wait)
        for bucket in buckets:
            bucket.level -= charge.amount(bucket.metric)
        return Admission(True)

    @staticmethod
    def _refusal(buckets: BucketSet, bucket: Bucket, amount: int, borrow: float = 0.0) -> Refusal:
        used = bucket.limit - math.floor(bucket.level)
        # Round away float noise before the caller truncates to milliseconds.
        wait = round(max(0.0, bucket.seconds_for(used + amount - bucket.limit - borrow)), 9)
        return Refusal(
            name=bucket.name,
            metric=bucket.metric,
            limit=bucket.limit,
            used=used,
            requested=amount,
            capacity=bucket.capacity,
            wait=wait,
            project=buckets.is_project(bucket),
        )

    @staticmethod
    def charge_failure(buckets: BucketSet, now: float) -> None:
        """A refused or failed request still spends a request slot (never below empty)."""
        for bucket in buckets.buckets.values():
            if bucket.metric == "requests":
                bucket.refill(now)
                if bucket.level > 0:
                    bucket.level = max(0.0, bucket.level - 1)

    @staticmethod
    def refund_tokens(buckets: BucketSet, tokens: float, now: float) -> None:
        """Give ``tokens`` back to every token bucket (negative takes more), capped at full."""
        Enforcer.credit(buckets, "tokens", tokens, now)

    @staticmethod
    def credit(buckets: BucketSet, metric: str, amount: float, now: float) -> None:
        """Give ``amount`` back to every bucket counting ``metric`` (negative takes more).

        Capped at full; taking more may leave a bucket in debt, as output charged after
        the fact does.
        """
        for bucket in buckets:
            if bucket.metric == metric:
                bucket.refill(now)
                bucket.level = min(bucket.capacity, bucket.level + amount)

    @staticmethod
    def refund(buckets: BucketSet, charge: Charge, now: float) -> None:
        """Give back everything ``charge`` took at admission, except the request slot."""
        for metric in TOKEN_METRICS:
            amount = charge.amount(metric)
            if amount:
                Enforcer.credit(buckets, metric, amount, now)

    def apply_limits(self) -> None:
        """Resize every existing bucket to the current limits; add and drop dimensions."""
        for (_principal, group), scope in self._scopes.items():
            limits = self._limits_for(group)
            wanted = {
                name: (metric, limit, window, cap)
                for name, metric, limit, window, cap in dimensions_of(limits)
            }
            for name in list(scope):
                if name not in wanted:
                    del scope[name]
            for name, (metric, limit, window, capacity) in wanted.items():
                bucket = scope.get(name)
                if bucket is None:
                    # Stamp from a sibling so the new bucket starts full "now", not at zero.
                    stamp = next((b.stamp for b in scope.values()), 0.0)
                    scope[name] = Bucket(name, metric, limit, window, capacity, stamp)
                else:
                    bucket.resize(limit, capacity)
        for (_project, group), bucket in list(self._projects.items()):
            limits = self._limits_for(group)
            if limits.project_tpm is None:
                del self._projects[(_project, group)]
            else:
                bucket.resize(limits.project_tpm, _project_capacity(limits))

    def clear(self) -> None:
        """Forget every bucket: the next request of each scope finds them full."""
        self._scopes.clear()
        self._projects.clear()

    def __len__(self) -> int:
        return len(self._scopes) + len(self._projects)
