"""What a request may cost before it is sent, and what its answer cost.

Prices come from `batch.PriceTable` (USD per 1M tokens at synchronous list prices, a
batch discount, cached-input prices; shipped defaults dated `batch.PRICES_AS_OF`).

**Before a send: an upper bound, not a guess.** A dollar budget that must never be
overshot cannot reserve the usual estimate (prompt characters / 4), which a prompt in
Chinese or full of code outgrows by a factor of three. It reserves what the request can
cost at most: every prompt token is at least one byte of the body the server reads
(byte-level BPE), so the body's UTF-8 bytes plus the estimator's framing and image
tokens bound the prompt; the requested output (``max_tokens`` and friends, times
``max(n, best_of)``) bounds the output, which the server enforces. The one thing that
is not bounded is a request that names no output limit: it reserves the estimator's
``default_max_output_tokens`` (1,024), as the rate limiter does. The bound is four to
five times an English prompt's real cost, but it is held only while the call is in
flight: settling returns the difference, so it costs concurrency at the budget's very
end, never money.

**After the answer: the real price**, from its ``usage``: uncached prompt tokens at the
input price, cached ones (``prompt_tokens_details.cached_tokens``,
``input_tokens_details.cached_tokens``) at the cached-input price, output at the output
price; the batch discount when the Batch API answered.

Amounts are integers of nano-dollars (1e-9 USD): a budget compared against a sum of a
million floats would drift; integers do not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._estimate import CostEstimator, cost_from_usage
from ..batch._cost import ModelPrice, PriceTable

__all__ = ["NANO", "bound_nano", "nano_of_usage", "to_usd"]

#: Nano-dollars per dollar.
NANO = 1_000_000_000

_ESTIMATOR = CostEstimator()


def to_usd(nano: int | float) -> float:
    return float(nano) / NANO


def _discount(table: PriceTable, via: str) -> float:
    return 1.0 - table.batch_discount if via == "batch" else 1.0


def bound_nano(
    table: PriceTable,
    price: ModelPrice,
    body: Mapping[str, Any],
    body_bytes: int,
    endpoint: str,
    via: str,
) -> int:
    """The most ``body`` can cost (see the module docstring), in nano-dollars, rounded up."""
    estimate = _ESTIMATOR.estimate(body, endpoint=endpoint)
    prompt = body_bytes + (estimate.input_tokens or 0.0)
    output = estimate.output_tokens or 0.0
    usd = (prompt * price.input + output * price.output) / 1e6 * _discount(table, via)
    return math.ceil(usd * NANO)


def _cached_tokens(usage: Mapping[str, Any]) -> float:
    for name in ("prompt_tokens_details", "input_tokens_details"):
        details = usage.get(name)
        if isinstance(details, Mapping):
            cached = details.get("cached_tokens")
            if isinstance(cached, int | float) and not isinstance(cached, bool) and cached > 0:
                return float(cached)
    return 0.0


def nano_of_usage(
    table: PriceTable, price: ModelPrice, usage: Mapping[str, Any] | None, via: str
) -> int | None:
    """What an answer with this ``usage`` cost, in nano-dollars; None if it has no usage."""
    cost = cost_from_usage(usage)
    if cost is None or usage is None:
        return None
    prompt = cost.input_tokens if cost.input_tokens is not None else cost.tokens
    output = cost.output_tokens or 0.0
    cached = min(_cached_tokens(usage), prompt)
    cached_price = price.input if price.cached_input is None else price.cached_input
    usd = ((prompt - cached) * price.input + cached * cached_price + output * price.output) / 1e6
    return round(usd * _discount(table, via) * NANO)
