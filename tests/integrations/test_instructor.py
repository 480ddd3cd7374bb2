"""instructor on a wrapped client: every completion, re-asks included, paced."""

# mypy: disable-error-code="import-not-found, import-untyped"

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from ._support import Mock, assert_every_call_paced, close, need

need("instructor")

import instructor  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

import ratelimit_llm  # noqa: E402

from .recipes.instructor_client import City, extract_city, rate_limited_instructor  # noqa: E402


def count_attempts(client: instructor.AsyncInstructor) -> list[dict[str, Any]]:
    """The completions instructor makes, as its own hook reports them."""
    attempts: list[dict[str, Any]] = []
    client.on("completion:kwargs", lambda *args, **kwargs: attempts.append(kwargs))
    return attempts


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "mode", [instructor.Mode.TOOLS, instructor.Mode.JSON, instructor.Mode.JSON_SCHEMA]
)
async def test_every_extraction_is_paced(mock: Mock, mode: instructor.Mode) -> None:
    client = rate_limited_instructor(mode)
    attempts = count_attempts(client)
    try:
        cities = [await extract_city(client, f"Tell me about city number {i}") for i in range(3)]
    finally:
        await close(client.client)

    assert all(isinstance(city, City) for city in cities)
    assert len(attempts) == 3
    assert_every_call_paced(mock, client.client, calls=3)


class NeverValid(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def refuse(cls, value: str) -> str:
        raise ValueError("not good enough, try again")


@pytest.mark.asyncio
async def test_re_asks_after_a_validation_error_are_paced_too(mock: Mock) -> None:
    client = rate_limited_instructor()
    attempts = count_attempts(client)
    try:
        with pytest.raises(instructor.core.InstructorRetryException):
            await client.chat.completions.create(
                model="gpt-4o-mini",
                response_model=NeverValid,
                messages=[{"role": "user", "content": "A name"}],
                max_retries=2,
            )
    finally:
        await close(client.client)

    assert len(attempts) == 3  # the first try and two re-asks
    assert_every_call_paced(mock, client.client, calls=3)


@pytest.mark.asyncio
async def test_a_patched_client_cannot_be_wrapped(mock: Mock) -> None:
    patched = instructor.from_openai(AsyncOpenAI())
    try:
        with pytest.raises(TypeError, match="Wrap first, then patch"):
            ratelimit_llm.wrap(patched)
    finally:
        await close(patched.client)
