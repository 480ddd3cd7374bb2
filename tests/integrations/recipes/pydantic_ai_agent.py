"""Recipe: a pydantic-ai agent, every call paced (docs/integrations.md#pydantic-ai)."""

# mypy: disable-error-code="import-not-found, import-untyped"

from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import ratelimit_llm


def rate_limited_provider() -> OpenAIProvider:
    return OpenAIProvider(openai_client=ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000))


class City(BaseModel):
    name: str
    population: int


def city_agent() -> Agent[None, City]:
    # OpenAIResponsesModel takes the same provider, for the Responses API.
    model = OpenAIChatModel("gpt-4o-mini", provider=rate_limited_provider())
    return Agent(model, output_type=City)
