"""Cost from usage: batch price, synchronous price, the saving, unpriced models."""

from __future__ import annotations

import pytest

from ratelimit_llm.batch import BatchCost, ModelPrice, ModelUsage, PriceTable


def test_batch_costs_half_of_sync_with_the_default_table() -> None:
    cost = BatchCost.compute([ModelUsage("gpt-4o-mini", 10, 1_000_000, 1_000_000)])
    assert cost.sync_usd == pytest.approx(0.15 + 0.60)
    assert cost.batch_usd == pytest.approx(0.375)
    assert cost.saving_usd == pytest.approx(0.375)
    assert cost.requests == 10
    assert "saved $0.3750" in cost.summary()


def test_snapshots_are_priced_as_their_family_and_unknown_models_listed() -> None:
    cost = BatchCost.compute(
        [
            ModelUsage("gpt-4o-2024-08-06", 1, 1_000_000, 0),
            ModelUsage("mystery", 1, 5, 5),
            ModelUsage("text-embedding-3-small", 1, 1_000_000, 0),
        ]
    )
    assert cost.sync_usd == pytest.approx(2.50 + 0.02)
    assert cost.unpriced_models == ("mystery",)
    assert "no price for mystery" in cost.summary()


def test_a_custom_table_and_discount() -> None:
    table = PriceTable({"m": ModelPrice(10.0, 20.0)}, batch_discount=0.25)
    cost = BatchCost.compute([ModelUsage("m", 1, 100_000, 50_000)], table)
    assert cost.sync_usd == pytest.approx(2.0)
    assert cost.batch_usd == pytest.approx(1.5)
    with pytest.raises(ValueError):
        PriceTable(batch_discount=2)
