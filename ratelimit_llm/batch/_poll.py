"""How long to wait before asking the server about a batch again.

A batch takes from minutes to 24 hours, and OpenAI shows no output until it is over, so
a fixed interval is either wasteful (thousands of GETs against a day-long batch) or slow
(a one-minute batch waited on for ten). `AdaptivePoll` starts short and grows while
nothing changes, and starts short again whenever the server reports progress
(``request_counts`` or status moved): progress means an end may be near.

"Full jitter" (a uniform draw in ``[0, interval]``) keeps many processes polling the same
account from marching in step. A policy is any object with ``next_interval(changed)``,
so tests inject one that returns 0.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["AdaptivePoll", "FixedPoll", "PollPolicy"]


class PollPolicy(Protocol):
    """Says how long to sleep before the next poll round."""

    def next_interval(self, changed: bool) -> float:
        """Seconds to wait; ``changed`` is whether the last round saw any progress."""
        ...


@dataclass
class AdaptivePoll:
    """Grow from ``initial`` toward ``maximum`` by ``factor`` while nothing changes.

    Example::

        AdaptivePoll(initial=1.0, maximum=60.0)          # the default
        AdaptivePoll(initial=0.01, maximum=0.05, jitter=False)
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 1.5
    jitter: bool = True
    random: Callable[[], float] = field(default=random.random, repr=False)
    _current: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("initial", "maximum"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if self.maximum < self.initial:
            raise ValueError("maximum must be >= initial")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")

    def next_interval(self, changed: bool) -> float:
        """The next wait: reset on progress, otherwise one step longer (capped)."""
        if changed or self._current == 0.0:
            self._current = self.initial
        else:
            self._current = min(self._current * self.factor, self.maximum)
        if not self.jitter:
            return self._current
        # Full jitter, but never below a tenth of the step: a zero wait would turn a
        # quiet stretch into a busy loop of GETs.
        return self._current * (0.1 + 0.9 * self.random())


@dataclass(frozen=True)
class FixedPoll:
    """The same wait every time (``0`` in tests)."""

    interval: float = 0.0

    def next_interval(self, changed: bool) -> float:
        """Always ``interval``."""
        return self.interval
