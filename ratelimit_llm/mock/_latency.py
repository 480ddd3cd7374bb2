"""How long one request takes, drawn from the latency model.

Generation dominates real latency, and a limiter that holds permits while a response
streams has to cope with that, so the mock reproduces it: a time to first token that
grows with the prompt, then tokens at a steady rate, both with seeded jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ._config import LatencyModel

__all__ = ["Timing", "timing"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Delays for one request, already multiplied by the latency scale."""

    first_token: float
    per_token: float

    def total(self, tokens: int) -> float:
        """Seconds until the last of ``tokens`` output tokens is ready."""
        return self.first_token + tokens * self.per_token


def timing(model: LatencyModel, prompt_tokens: int, rng: random.Random) -> Timing:
    """Draw this request's delays; two draws from ``rng`` whatever the scale, for stability."""
    first_jitter = 1 + model.jitter * (2 * rng.random() - 1)
    rate_jitter = 1 + model.jitter * (2 * rng.random() - 1)
    if model.scale == 0:
        return Timing(0.0, 0.0)
    first = (model.ttft + model.per_prompt_token * prompt_tokens) * first_jitter * model.scale
    per_token = model.scale / (model.tokens_per_second * rate_jitter)
    return Timing(first, per_token)
