"""``@limiter.limit(cost=...)``: rate-limit any coroutine that spends quota.

For work that does not go through a wrapped client (another SDK, a raw HTTP call, a
batch of embeddings computed elsewhere), the decorator acquires the cost before the
call and settles it after: from ``actual(result)`` when given, else from the result's
``usage`` when it has one (an openai response does), else the estimate stands.

The decorator sees no headers, so it tells slow start what it can: a call that returned
was answered without refusal (the bucket may go deeper), and one that raised an error
carrying HTTP status 429 (``openai.RateLimitError`` and the like) was refused.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._estimate import cost_from_usage
from ._types import Cost

if TYPE_CHECKING:
    from ._interface import Limiter

__all__ = ["limit"]

P = ParamSpec("P")
R = TypeVar("R")

CostSpec = Cost | Callable[..., Cost] | None


def limit(
    limiter: Limiter,
    cost: CostSpec = None,
    *,
    timeout: float | None = None,
    actual: Callable[[Any], Cost | None] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a coroutine function so each call acquires ``cost`` first.

    :param cost: a `Cost`, or a function of the call's arguments returning one
        (``lambda prompt, **kw: Cost(tokens=len(prompt) // 4 + 500)``). Default: one request.
    :param timeout: give up waiting after this many seconds (`AcquireTimeoutError`).
    :param actual: the real cost from the call's result; by default read from the
        result's ``usage`` if it has one.
    """
    if cost is not None and not isinstance(cost, Cost) and not callable(cost):
        raise TypeError(f"cost must be a Cost or a callable returning one, got {cost!r}")

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            wanted = cost(*args, **kwargs) if callable(cost) else cost
            if wanted is not None and not isinstance(wanted, Cost):
                raise TypeError(f"the cost function returned {wanted!r}, not a Cost")
            async with limiter.acquire(wanted, timeout=timeout) as reservation:
                reservation.sent()
                try:
                    result = await func(*args, **kwargs)
                except Exception as error:
                    if _status_of(error) == 429:
                        limiter.fall_back()
                    else:
                        limiter.answered()
                    raise
                spent = actual(result) if actual is not None else _usage_cost(result)
                if spent is not None:
                    reservation.settle(spent)
                limiter.grow(reservation)
                return result

        return limited

    return decorate


def _usage_cost(result: object) -> Cost | None:
    usage = getattr(result, "usage", None)
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None)
        usage = dump() if callable(dump) else getattr(usage, "__dict__", None)
    return cost_from_usage(usage) if isinstance(usage, Mapping) else None


def _status_of(error: BaseException) -> int | None:
    """The HTTP status an SDK's error carries (``status_code``, or its response's)."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None
