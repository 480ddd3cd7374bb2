"""The adaptive poll interval: short at first, longer while nothing moves, reset on progress."""

from __future__ import annotations

import pytest

from ratelimit_llm.batch import AdaptivePoll, FixedPoll


def test_grows_toward_the_cap_and_resets_on_change() -> None:
    policy = AdaptivePoll(initial=1.0, maximum=5.0, factor=2.0, jitter=False)
    waits = [policy.next_interval(False) for _ in range(5)]
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.next_interval(True) == 1.0
    assert policy.next_interval(False) == 2.0


def test_full_jitter_stays_within_the_step() -> None:
    draws = iter([0.0, 1.0, 0.5])
    policy = AdaptivePoll(initial=2.0, maximum=2.0, random=lambda: next(draws))
    assert policy.next_interval(False) == pytest.approx(0.2)
    assert policy.next_interval(False) == pytest.approx(2.0)
    assert policy.next_interval(False) == pytest.approx(1.1)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        AdaptivePoll(initial=2.0, maximum=1.0)
    with pytest.raises(ValueError):
        AdaptivePoll(factor=0.5)
    with pytest.raises(ValueError):
        AdaptivePoll(initial=float("nan"))


def test_fixed_poll() -> None:
    assert FixedPoll(0.25).next_interval(True) == 0.25
