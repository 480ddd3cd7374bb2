"""What a call costs before it is sent, and what it really cost after.

The transport estimates every request the way the server charges it (prompt characters
/ 4, plus the output asked for) and settles against the answer's ``usage``. These are
the same functions, for `RateLimiter.acquire` around calls of your own::

    estimator = CostEstimator()
    async with limiter.acquire(estimator.estimate(body)) as reservation:
        completion = await other_sdk.complete(**body)
        reservation.settle(cost_from_usage(completion.usage))
"""

from __future__ import annotations

from ._estimate import CostEstimator, cost_from_usage, estimate_cost

__all__ = ["CostEstimator", "cost_from_usage", "estimate_cost"]
