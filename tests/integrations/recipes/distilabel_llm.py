"""Recipe: distilabel's OpenAILLM, every call paced (docs/integrations.md#distilabel)."""

# mypy: disable-error-code="import-not-found, import-untyped", allow-subclassing-any

from typing import Any

from distilabel.models.llms import OpenAILLM

import ratelimit_llm


class RateLimitedOpenAILLM(OpenAILLM):
    rpm: float = 500
    tpm: float = 200_000

    def load(self) -> None:
        # distilabel builds the AsyncOpenAI that agenerate() calls here, in each step's
        # worker process; for structured_output it patches it with instructor, which
        # keeps the plain client as .client. Wrap the plain client, then patch that.
        super().load()
        plain = getattr(self._aclient, "client", self._aclient)
        client = ratelimit_llm.wrap(plain, **self.limits())
        if self.structured_output:
            patched = self._prepare_structured_output(self.structured_output, client, "openai")
            client = patched["client"]
        self._aclient: Any = client

    def limits(self) -> dict[str, Any]:
        return {"rpm": self.rpm, "tpm": self.tpm}
