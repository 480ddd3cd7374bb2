"""Recipe: distilabel with a pause between batches and several keys (docs/integrations.md)."""

# mypy: disable-error-code="import-not-found, import-untyped", allow-subclassing-any

from typing import Any

from pydantic import Field, SecretStr

from ratelimit_llm import AdaptiveBackoff, FixedDelay, KeyRotation
from ratelimit_llm.strategies import Strategy

from .distilabel_llm import RateLimitedOpenAILLM


class PacedOpenAILLM(RateLimitedOpenAILLM):
    batch_delay: float = 0.0  # seconds of quiet after each batch of batch_size sends
    batch_size: int = 1
    api_keys: list[SecretStr] = Field(default_factory=list)  # each with a quota of its own

    def limits(self) -> dict[str, Any]:
        strategy: Strategy = FixedDelay(self.batch_delay, every=self.batch_size)
        if self.api_keys:  # after the pause, the key that can send soonest
            strategy += KeyRotation([key.get_secret_value() for key in self.api_keys])
        return {**super().limits(), "strategy": strategy + AdaptiveBackoff()}
