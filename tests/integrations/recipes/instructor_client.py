"""Recipe: instructor's structured output, every call paced (docs/integrations.md#instructor)."""

# mypy: disable-error-code="import-not-found, import-untyped"

import instructor
from openai import AsyncOpenAI
from pydantic import BaseModel

import ratelimit_llm


class City(BaseModel):
    name: str
    population: int


def rate_limited_instructor(
    mode: instructor.Mode = instructor.Mode.TOOLS,
) -> instructor.AsyncInstructor:
    # Wrap first, then patch: instructor's client is not an SDK client, wrap() refuses it.
    return instructor.from_openai(
        ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000), mode=mode
    )


async def extract_city(client: instructor.AsyncInstructor, text: str) -> City:
    city: City = await client.chat.completions.create(
        model="gpt-4o-mini",
        response_model=City,
        messages=[{"role": "user", "content": text}],
        max_retries=2,  # instructor's re-asks after a validation error: new, paced calls
    )
    return city
