"""Recipe: LangChain's ChatOpenAI, every call paced (docs/integrations.md#langchain)."""

# mypy: disable-error-code="import-not-found, import-untyped"

from langchain_openai import ChatOpenAI

import ratelimit_llm


def rate_limited_chat(model: str = "gpt-4o-mini") -> ChatOpenAI:
    # LangChain builds its own openai clients: hand it rate-limited HTTP clients, the
    # async one for ainvoke/abatch/astream, the sync one for invoke/batch/stream.
    return ChatOpenAI(
        model=model,
        http_async_client=ratelimit_llm.http_client(rpm=500, tpm=200_000),
        http_client=ratelimit_llm.http_client(rpm=500, tpm=200_000, sync=True),
        max_retries=0,  # the limiter retries, paced
    )
