"""The runs tests' files live in memory, and their virtual clock lets the journal's
threads finish before it jumps (see ``tests/_journal_fixtures.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _journal_fixtures import in_memory_directory, threaded_trio_backend


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from in_memory_directory(tmp_path_factory, "runs")


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return threaded_trio_backend()
