"""The compat suite's fixtures.

The suite runs in venvs holding only the project, its ``mock`` extra, one openai major
and pytest (``scripts/test-compat``), with this conftest alone (``--confcutdir``): the
main one's trio is not there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from ._support import MockFactory, running_mock


@pytest.fixture
def mock_server() -> Iterator[MockFactory]:
    """Start mock servers (one per config asked for), all stopped after the test."""
    with ExitStack() as stack:
        yield lambda config: stack.enter_context(running_mock(config))
