"""Helpers for the recipe tests: the mock on a thread of its own, and what to assert.

The mock runs on a thread with its own event loop, so sync frameworks, async ones and
distilabel's forked worker processes all reach it the same way: over loopback, through
``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (set by the ``mock`` fixture), so each recipe
is written exactly as a user writes it against OpenAI.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import ratelimit_llm
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits, MockServer, serve

__all__ = [
    "API_KEY",
    "Mock",
    "assert_every_call_paced",
    "close",
    "close_now",
    "generous",
    "limiter_requests",
    "need",
    "serve_on_thread",
]

API_KEY = "sk-mock-integrations-0001"


def need(*modules: str) -> None:
    """Skip the calling module when one of ``modules`` is not installed, saying so; under
    ``./scripts/test-integrations`` (``RATELIMIT_LLM_INTEGRATIONS=require``) fail
    instead, since the ``integrations`` extra promised it. Without the variable, skip
    too: the frameworks' network switches and the loopback guard are not in place."""
    mode = os.environ.get("RATELIMIT_LLM_INTEGRATIONS", "")
    if mode in ("", "0"):
        pytest.skip(
            "framework tests run only with RATELIMIT_LLM_INTEGRATIONS=1 "
            "(./scripts/test-integrations sets it)",
            allow_module_level=True,
        )
    for module in modules:
        if importlib.util.find_spec(module) is not None:
            continue
        reason = f"{module} is not installed: pip install 'ratelimit-llm[integrations]'"
        if mode == "require":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)


def generous() -> MockConfig:
    """The limits every recipe names (500 RPM, 200,000 TPM), answered at once."""
    return MockConfig(limits=MockLimits(rpm=500, tpm=200_000), latency=LatencyModel.instant())


@dataclass
class Mock:
    """A mock server running on its own thread, and what it saw."""

    server: MockServer
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return self.server.url

    def stats(self) -> dict[str, Any]:
        """What ``GET /mock/stats`` answers, read on the server's own loop."""

        async def read() -> dict[str, Any]:
            return self.server.state.stats()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(timeout=10)


@contextlib.contextmanager
def serve_on_thread(config: MockConfig) -> Iterator[Mock]:
    """Run the mock on a thread with its own event loop while the block runs."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        async with serve(config, host="127.0.0.1", port=0) as server:
            box["server"] = server
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test below, not lost on the thread
            box["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=run, name="mock-server", daemon=True)
    thread.start()
    if not started.wait(30) or "server" not in box:
        raise RuntimeError(f"the mock server did not start: {box.get('error')!r}")
    try:
        yield Mock(box["server"], box["loop"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
    if "error" in box:
        raise RuntimeError("the mock server failed") from box["error"]


async def close(*clients: Any) -> None:
    """Close each client (an SDK client or an httpx/httpx2 one, sync or async), so that no
    socket is left for the garbage collector to warn about."""
    for client in clients:
        closer = getattr(client, "aclose", None) or client.close
        result = closer()
        if inspect.isawaitable(result):
            await result


def close_now(*clients: Any) -> None:
    """Close each sync client."""
    for client in clients:
        client.close()


def limiter_requests(*clients: Any) -> int:
    """Attempts that the limiters of ``clients`` (made by wrap or http_client) sent."""
    return sum(
        stats.requests
        for client in clients
        for stats in ratelimit_llm.transport_of(client).statistics()
    )


def assert_every_call_paced(mock: Mock, *clients: Any, calls: int) -> None:
    """The limiters of ``clients`` sent each of the ``calls`` the framework made, and the
    server saw the same calls, answered every one and refused none."""
    stats = mock.stats()
    assert limiter_requests(*clients) == calls
    assert stats["requests"] == calls, [(e["endpoint"], e["status"]) for e in stats["log"]]
    assert stats["accepted"] == calls
    assert stats["rejected"] == 0, stats["rejected_by_reason"]
