"""The run tests' files live in memory (tmpfs) when the machine has one (see the batch
tests' conftest: these tests are about what the journal and the output say, not about
how fast a shared disk syncs)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio.testing

_TMPFS = Path("/dev/shm")


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (_TMPFS.is_dir() and os.access(_TMPFS, os.W_OK)):
        yield tmp_path_factory.mktemp("runs")
        return
    directory = Path(tempfile.mkdtemp(prefix="ratelimit-llm-runs-", dir=_TMPFS))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# The journal runs in worker threads. With ``autojump_threshold=0`` trio jumps the
# clock the instant every task waits, so while a thread commits, the loop spins from
# deadline to deadline and contends for the GIL with that thread: on an idle two-core
# machine the thread then crawls and a test can run for minutes (under load it passes
# in seconds). One millisecond of real idleness before each jump lets the thread finish
# first; time stays virtual.
@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0.001)})
