"""The run tests' files live in memory (tmpfs) when the machine has one (see the batch
tests' conftest: these tests are about what the journal and the output say, not about
how fast a shared disk syncs)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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
