"""What the batch cost, and what the same requests would have cost synchronously.

The price table is in USD per million tokens at *synchronous* prices, because that is
the figure people know; batch prices are derived from it by `PriceTable.batch_discount`
(OpenAI: 50%). Usage comes from each result line's ``usage`` (read through
`cost_from_usage`, so chat, Responses and embeddings all count), summed per model in the
journal. Models missing from the table are listed in `BatchCost.unpriced_models` rather
than guessed at.

The shipped prices are OpenAI's list prices as of `PRICES_AS_OF` (input, cached input
and output per model); pass your own table when they change or for another provider.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_PRICES", "PRICES_AS_OF", "BatchCost", "ModelPrice", "ModelUsage", "PriceTable"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Synchronous list prices of one model, USD per 1M tokens.

    ``cached_input`` is the price of prompt tokens served from the prompt cache
    (``usage.prompt_tokens_details.cached_tokens``); ``None`` prices them as ``input``.
    """

    input: float
    output: float = 0.0
    cached_input: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            if value is None and name == "cached_input":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"ModelPrice.{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"ModelPrice.{name} must be a finite number >= 0, got {value!r}")


#: When `DEFAULT_PRICES` were taken from OpenAI's pricing page (standard tier).
PRICES_AS_OF = "2026-06-21"

#: OpenAI's standard (synchronous) prices, USD per 1M tokens: input, output, cached input.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(0.15, 0.60, 0.075),
    "gpt-4o": ModelPrice(2.50, 10.00, 1.25),
    "gpt-4.1": ModelPrice(2.00, 8.00, 0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, 0.10),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40, 0.025),
    "o4-mini": ModelPrice(1.10, 4.40, 0.275),
    "text-embedding-3-small": ModelPrice(0.02),
    "text-embedding-3-large": ModelPrice(0.13),
}

# A dated snapshot ("gpt-4o-mini-2024-07-18") is priced as its family.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class PriceTable:
    """Model -> `ModelPrice`, with the batch discount.

    Example::

        PriceTable()                                          # shipped defaults
        PriceTable({**DEFAULT_PRICES, "my-model": ModelPrice(1.0, 2.0)})
    """

    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    batch_discount: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.batch_discount <= 1:
            raise ValueError(f"batch_discount must be in [0, 1], got {self.batch_discount!r}")

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of ``model``, of its undated family, or None."""
        price = self.prices.get(model)
        if price is None:
            price = self.prices.get(_SNAPSHOT.sub("", model))
        return price


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """Tokens one model spent over a journal's answered requests."""

    model: str
    requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class BatchCost:
    """Totals of a job: tokens, the batch cost, and the saving against the sync API."""

    requests: int
    input_tokens: int
    output_tokens: int
    batch_usd: float
    sync_usd: float
    unpriced_models: tuple[str, ...] = ()
    by_model: tuple[ModelUsage, ...] = ()

    @property
    def saving_usd(self) -> float:
        """What the synchronous API would have cost more."""
        return self.sync_usd - self.batch_usd

    @classmethod
    def compute(cls, usage: Iterable[ModelUsage], prices: PriceTable | None = None) -> BatchCost:
        """Price per-model usage with ``prices`` (default: the shipped table)."""
        table = prices or PriceTable()
        rows = tuple(usage)
        sync = 0.0
        unpriced: list[str] = []
        for row in rows:
            price = table.price_of(row.model)
            if price is None:
                if row.input_tokens or row.output_tokens:
                    unpriced.append(row.model)
                continue
            sync += (row.input_tokens * price.input + row.output_tokens * price.output) / 1e6
        return cls(
            requests=sum(row.requests for row in rows),
            input_tokens=sum(row.input_tokens for row in rows),
            output_tokens=sum(row.output_tokens for row in rows),
            batch_usd=sync * (1 - table.batch_discount),
            sync_usd=sync,
            unpriced_models=tuple(sorted(unpriced)),
            by_model=rows,
        )

    def summary(self) -> str:
        """One human line: ``1,000 requests, 52,000 tokens: $0.0123 (sync $0.0246, saved ...)``."""
        text = (
            f"{self.requests:,} requests, {self.input_tokens:,} input + "
            f"{self.output_tokens:,} output tokens: ${self.batch_usd:.4f} "
            f"(synchronous ${self.sync_usd:.4f}, saved ${self.saving_usd:.4f})"
        )
        if self.unpriced_models:
            text += f"; no price for {', '.join(self.unpriced_models)}"
        return text
