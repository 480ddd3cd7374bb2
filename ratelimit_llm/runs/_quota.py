"""How long the quota needs for some work: the ETA, the auto rule and the ideal time.

The limiter knows the limits it paces by (stated, or learned from the server's headers)
and how much each bucket holds now. Work of ``R`` requests and ``T`` estimated tokens
on one model needs, in each dimension of that model's buckets, ``(amount - what the
bucket holds) / refill rate`` seconds, and the binding dimension decides; models have
buckets of their own, so they proceed side by side and the slowest decides. Several
credentials for one model (`KeyRotation`) add their rates. This is right from the first
second of a run, before any result could show a pace.

Tokens are the estimates the server charges at admission (prompt characters / 4 plus
the requested output), which is what binds a TPM bucket; a dimension counting input or
output tokens apart is given the whole estimate (the safe side).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._credentials import redact_key
from .._transport import RateLimitedTransport

__all__ = ["Rate", "quota_rates", "quota_seconds"]


@dataclass(frozen=True, slots=True)
class Rate:
    """One dimension of one model's buckets, over every credential."""

    metric: str
    #: Units refilled per second.
    per_second: float
    #: Units the buckets hold now.
    level: float
    #: Units they hold when full.
    capacity: float


def quota_rates(
    transport: RateLimitedTransport, models: Iterable[str], *, default_key: str | None = None
) -> dict[str, list[Rate]]:
    """Each model's dimensions, from the client's limiter (buckets made if missing).

    A model not sent yet has no bucket; one is made for each credential already seen
    (or for ``default_key``), as its first call would make it.
    """
    pool = transport.pool
    limiters = transport.limiters()
    credentials = {credential for credential, group in limiters if group is not None}
    if not credentials and default_key:
        credentials = {redact_key(default_key)}
    out: dict[str, list[Rate]] = {}
    for model in models:
        group = pool.group(model)
        by_name: dict[str, list[float]] = {}
        metrics: dict[str, str] = {}
        for credential in sorted(credentials):
            limiter = limiters.get((credential, group)) or pool.get(credential, model)
            stats = limiter.statistics()
            for dimension in limiter.dimensions:
                name = dimension.name
                pace = stats.paces.get(name, dimension.limit)
                row = by_name.setdefault(name, [0.0, 0.0, 0.0])
                row[0] += pace / dimension.window
                row[1] += max(stats.levels.get(name, 0.0), 0.0)
                row[2] += dimension.capacity
                metrics[name] = dimension.metric
        out[model] = [Rate(metrics[n], r, lvl, cap) for n, (r, lvl, cap) in by_name.items()]
    return out


def quota_seconds(
    work: Mapping[str, tuple[float, float]],
    rates: Mapping[str, list[Rate]],
    *,
    from_full: bool = False,
) -> float | None:
    """Seconds the quota needs for ``work`` (model -> (requests, estimated tokens)).

    From the buckets' levels now, or (``from_full``) from full buckets: the ideal time
    of work that started on a rested quota. ``None`` when a model has no known limit.
    """
    slowest = 0.0
    for model, (requests, tokens) in work.items():
        if requests <= 0 and tokens <= 0:
            continue
        dimensions = rates.get(model)
        if dimensions is None:
            return None
        for rate in dimensions:
            amount = requests if rate.metric == "requests" else tokens
            if amount <= 0:
                continue
            if rate.per_second <= 0:
                return math.inf
            held = rate.capacity if from_full else rate.level
            slowest = max(slowest, max(amount - held, 0.0) / rate.per_second)
    return slowest
