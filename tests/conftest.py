"""Shared fixtures: virtual time for anyio tests.

Tests marked ``@pytest.mark.anyio`` run on trio with ``MockClock(autojump_threshold=0)``:
whenever every task is blocked the clock jumps to the next deadline, so rate-limit tests
run in virtual time and never sleep for real. asyncio tests use ``looptime`` instead.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
