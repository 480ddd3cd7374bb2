"""What the tests of the journal's users (``tests/batch``, ``tests/runs``) share: their
files, their clock and the mock server they run against in process.

Their files live in memory (tmpfs) when the machine has one. The journal syncs its main
file before every change on the server (an fsync or two each time); these tests are
about what the journal says, not how fast a disk is: on a VM disk shared with other work
an fsync can take a second, and a test that syncs a hundred times would then fail on a
slow machine for nothing it checks. So their ``tmp_path`` is a fresh directory under
``/dev/shm`` (same SQLite, same locks, same renames; no disk), or pytest's own where
there is no tmpfs. The benchmarks measure the disk.

The journal runs in worker threads. With ``autojump_threshold=0`` trio jumps the clock
the instant every task waits, so while a thread commits, the loop spins from deadline to
deadline and contends for the GIL with that thread: on an idle two-core machine the
thread then crawls and a test can run for minutes (under load it passes in seconds). One
millisecond of real idleness before each jump lets the thread finish first; time stays
virtual.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import trio.testing
from starlette.applications import Starlette

from ratelimit_llm.mock import MockConfig, create_app

_TMPFS = Path("/dev/shm")


def in_memory_directory(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh directory under tmpfs (else pytest's), removed afterwards."""
    if not (_TMPFS.is_dir() and os.access(_TMPFS, os.W_OK)):
        yield factory.mktemp(name)
        return
    directory = Path(tempfile.mkdtemp(prefix=f"ratelimit-llm-{name}-", dir=_TMPFS))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def threaded_trio_backend() -> tuple[str, dict[str, Any]]:
    """trio on a virtual clock that lets worker threads finish before it jumps."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0.001)})


@asynccontextmanager
async def in_process_mock(
    settings: MockConfig, key: str, *, sleep: Callable[[float], Awaitable[None]] | None = None
) -> AsyncIterator[tuple[Starlette, openai.AsyncOpenAI, httpx2.AsyncClient]]:
    """The mock app on trio's clock, an SDK client on it (no retries, not wrapped) and a
    raw client for its ``/mock/*`` routes."""
    app = create_app(settings, clock=trio.current_time, sleep=sleep)
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://mock.test") as http,
        openai.AsyncOpenAI(
            api_key=key,
            base_url="http://mock.test/v1",
            http_client=openai.DefaultAsyncHttpx2Client(transport=transport),
            max_retries=0,
        ) as client,
    ):
        yield app, client, http
