"""Helpers of the compat suite: a mock server on 127.0.0.1 in a thread of its own.

A thread with its own event loop serves the mock, so a sync ``OpenAI`` client can call it
from the test's thread and an async one from the test's loop. What the server saw is read
over HTTP (``/mock/stats``), not from its state, which lives on the other thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ratelimit_llm.mock import MockConfig, MockServer, serve

_START_TIMEOUT = 15.0

#: What the ``mock_server`` fixture gives: start a server of this config.
MockFactory = Callable[[MockConfig], MockServer]


@contextmanager
def running_mock(config: MockConfig) -> Iterator[MockServer]:
    """Serve ``config`` on a free loopback port while the block runs."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def run() -> None:
        stop = asyncio.Event()
        async with serve(config, host="127.0.0.1", port=0) as server:
            box.update(server=server, loop=asyncio.get_running_loop(), stop=stop)
            ready.set()
            await stop.wait()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # handed to the test's thread, which raises it
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="mock-server", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT):
        raise RuntimeError("the mock server did not start in time")
    if "server" not in box:
        raise RuntimeError("the mock server failed to start") from box.get("error")
    try:
        yield box["server"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(_START_TIMEOUT)
        if "error" in box:
            raise box["error"]


def server_stats(server: MockServer) -> dict[str, Any]:
    """``GET /mock/stats``, through the standard library: no HTTP client is favoured."""
    with urllib.request.urlopen(f"{server.origin}/mock/stats", timeout=10) as answer:
        stats: dict[str, Any] = json.load(answer)
    return stats
