"""Recipe: the OpenAI Agents SDK, every call paced (docs/integrations.md#openai-agents-sdk)."""

# mypy: disable-error-code="import-not-found, import-untyped"

from agents import set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

import ratelimit_llm


def use_rate_limited_client() -> AsyncOpenAI:
    client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)
    set_default_openai_client(client, use_for_tracing=False)  # every agent's model calls
    set_tracing_disabled(True)  # traces go to OpenAI, not through the limiter
    return client
