"""Fixtures for the backends: a real Redis (never a fake), and one namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from ratelimit_llm.backends import RedisBackend
from ratelimit_llm.testing import LocalRedisServer


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` if set, else a redis-server started for this test session."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = LocalRedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


@pytest_asyncio.fixture
async def redis_backend(redis_url: str) -> AsyncIterator[RedisBackend]:
    """A backend on the session's Redis, in a namespace of its own."""
    backend = RedisBackend(redis_url, namespace=f"test-{uuid.uuid4().hex[:12]}")
    try:
        yield backend
    finally:
        await backend.aclose()
