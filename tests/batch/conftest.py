"""The batch tests' files live in memory (tmpfs) when the machine has one.

The journal syncs its main file before every change on the server (an fsync or two each
time). These tests are about what the journal says, not how fast a disk is: on a VM disk
shared with other work an fsync can take a second, and a test that syncs a hundred
times would then fail on a slow machine for nothing it checks. ``tmp_path`` is
therefore a fresh directory under ``/dev/shm`` (same SQLite, same locks, same renames;
no disk), or pytest's own where there is no tmpfs. The benchmarks measure the disk.
"""

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
        yield tmp_path_factory.mktemp("batch")
        return
    directory = Path(tempfile.mkdtemp(prefix="ratelimit-llm-batch-", dir=_TMPFS))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
