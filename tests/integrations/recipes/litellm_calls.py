"""Recipe: LiteLLM, every call paced (docs/integrations.md#litellm)."""

# mypy: disable-error-code="import-not-found, import-untyped"

import litellm
from openai import AsyncOpenAI

import ratelimit_llm


def rate_limited_client() -> AsyncOpenAI:
    return ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)


async def ask(client: AsyncOpenAI, question: str) -> str | None:
    # "openai/": LiteLLM's OpenAI provider, which sends the call through client.
    response = await litellm.acompletion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        client=client,
        max_retries=0,  # else LiteLLM sets the client's own retries to 2
    )
    answer: str | None = response.choices[0].message.content
    return answer


def pace_every_litellm_call() -> None:
    # Or once for all: the HTTP clients LiteLLM gives each openai client it builds.
    litellm.aclient_session = ratelimit_llm.http_client(rpm=500, tpm=200_000, library="httpx")
    litellm.client_session = ratelimit_llm.http_client(
        rpm=500, tpm=200_000, sync=True, library="httpx"
    )
