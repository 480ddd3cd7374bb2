"""`http_client()` builds on the HTTP library of the installed openai, not on whichever
library happens to be installed: httpx2 can sit next to openai 1.x (brought in by
another package), which refuses an httpx2 client.

Needs both libraries (the dev venv, and ``scripts/test-compat``'s openai 1.x venv).
"""

from __future__ import annotations

from types import ModuleType

import openai
import pytest

from ratelimit_llm import http_client
from ratelimit_llm._clients import library_of_class, sdk_library

httpx = pytest.importorskip("httpx")
httpx2 = pytest.importorskip("httpx2")


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_http_client_follows_the_library_the_sdk_is_built_on(
    monkeypatch: pytest.MonkeyPatch, lib: ModuleType
) -> None:
    # openai's DefaultAsyncHttpxClient is a subclass of its library's AsyncClient.
    monkeypatch.setattr(
        openai, "DefaultAsyncHttpxClient", type("DefaultAsyncHttpxClient", (lib.AsyncClient,), {})
    )
    assert sdk_library() is lib
    assert type(http_client(rpm=60)) is lib.AsyncClient
    assert type(http_client(rpm=60, sync=True)) is lib.Client
    # A library named outright wins over the SDK's.
    other = httpx2 if lib is httpx else httpx
    assert type(http_client(rpm=60, library=other.__name__)) is other.AsyncClient


def test_without_the_sdks_default_client_httpx2_is_preferred(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(openai, "DefaultAsyncHttpxClient")
    assert sdk_library() is httpx2
    assert type(http_client(rpm=60)) is httpx2.AsyncClient


def test_a_class_belongs_to_the_library_it_derives_from() -> None:
    assert library_of_class(type("Mine", (httpx.Client,), {})) is httpx
    assert library_of_class(httpx2.AsyncClient) is httpx2
    assert library_of_class(dict) is None
