"""Helpers for the mock-server tests: virtual time and SDK clients wired to the app.

Every test runs the app in virtual time: `FakeClock` is both the app's clock and its
sleep, and sleeping just moves the clock, so latency and refill are exact and nothing
waits for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio.lowlevel
import httpx2
import openai
from starlette.applications import Starlette

from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits, MockState, create_app

__all__ = ["KEY", "OTHER_KEY", "FakeClock", "Mock", "instant", "mock"]

KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa1234"
OTHER_KEY = "sk-test-bbbbbbbbbbbbbbbbbbbb5678"


@dataclass
class FakeClock:
    """A settable clock whose sleep advances it (and records what was asked)."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def instant(**changes: object) -> MockConfig:
    """A config with no latency (plus ``changes``), the usual starting point."""
    values: dict[str, object] = {"latency": LatencyModel.instant()}
    values.update(changes)
    return MockConfig(**values)  # type: ignore[arg-type]


@dataclass
class Mock:
    """An app, its state and clock, an SDK client and a raw HTTP client for it."""

    app: Starlette
    state: MockState
    clock: FakeClock
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient

    def sdk(self, api_key: str, **headers: str) -> openai.AsyncOpenAI:
        """Another SDK client on the same app (same transport), with its own key."""
        return self.client.with_options(api_key=api_key, default_headers=headers or None)


@asynccontextmanager
async def mock(
    config: MockConfig | None = None, *, limits: MockLimits | None = None, api_key: str = KEY
) -> AsyncIterator[Mock]:
    """Serve ``config`` in-process in virtual time; clients are closed on exit."""
    if config is None:
        config = instant(limits=limits or MockLimits(rpm=500, tpm=200_000))
    clock = FakeClock()
    app = create_app(config, clock=clock, sleep=clock.sleep)
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://mock.test") as http,
        openai.AsyncOpenAI(
            api_key=api_key,
            base_url="http://mock.test/v1",
            http_client=openai.DefaultAsyncHttpx2Client(transport=transport),
            max_retries=0,
        ) as client,
    ):
        yield Mock(app, app.state.mock, clock, client, http)
