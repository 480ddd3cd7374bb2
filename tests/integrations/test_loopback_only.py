"""The guard the conftest installs: nothing here reaches beyond loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx2
import pytest

from . import conftest
from ._support import Mock, need

need()  # no framework: only whether the guard is in place


@pytest.fixture
def forgotten() -> Iterator[None]:
    """Forget what this test tried on purpose, so the autouse check passes on the rest."""
    before = len(conftest.BLOCKED)
    yield
    del conftest.BLOCKED[before:]


def test_a_connection_beyond_loopback_is_refused_before_any_packet(forgotten: None) -> None:
    before = len(conftest.BLOCKED)
    with pytest.raises(ConnectionRefusedError, match="loopback only"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1
    assert conftest.BLOCKED[before:] == ["192.0.2.1"]


def test_a_name_lookup_is_refused(forgotten: None) -> None:
    before = len(conftest.BLOCKED)
    with pytest.raises(httpx2.ConnectError, match="loopback only"):
        httpx2.get("https://api.openai.com/v1/models", timeout=1)
    assert conftest.BLOCKED[before:] == ["api.openai.com"]


def test_the_mock_on_loopback_is_reached(mock: Mock) -> None:
    response = httpx2.get(mock.server.origin + "/mock/stats", timeout=5)
    assert response.status_code == 200
