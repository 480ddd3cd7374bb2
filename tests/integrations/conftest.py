"""The recipes of docs/integrations.md, run for real against the mock server on loopback.

The frameworks (distilabel, LangChain, instructor, pydantic-ai, the OpenAI Agents SDK,
LiteLLM) are not in the dev extra, so these tests are collected only when
``RATELIMIT_LLM_INTEGRATIONS`` is set, as ``./scripts/test-integrations`` does in its own
virtualenv with the ``integrations`` extra. The main suite collects only the check that
the doc shows the recipes as they are. With ``RATELIMIT_LLM_INTEGRATIONS=1`` a test
whose framework is missing is skipped and says which; with ``=require`` (the script's)
it fails.

Loopback only: the frameworks' telemetry, tracing and downloads are switched off by
environment variables set here, before any of them is imported; beyond that, every
socket connection and name lookup to anywhere else is refused and recorded, and a test
during which one was tried fails, naming the address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ratelimit_llm.mock import MockConfig

from ._support import API_KEY, Mock, generous, serve_on_thread

MODE = os.environ.get("RATELIMIT_LLM_INTEGRATIONS", "")
ENABLED = MODE not in ("", "0")

_HERE = os.path.dirname(os.path.abspath(__file__))
DOC_CHECK = "test_docs_in_step.py"
collect_ignore = (
    []
    if ENABLED
    else [name for name in os.listdir(_HERE) if name.startswith("test_") and name != DOC_CHECK]
)

# Set before any framework is imported: no telemetry, tracing, hub or cost-map downloads.
OFFLINE = {
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "NO_PROXY": "127.0.0.1,localhost,::1",
}
_SCRATCH: str | None = None
if ENABLED:
    os.environ.update(OFFLINE)
    # distilabel's pipelines write their cache and a datasets cache: fresh ones per run.
    _SCRATCH = tempfile.mkdtemp(prefix="ratelimit-llm-integrations-")
    os.environ["HF_HOME"] = os.path.join(_SCRATCH, "hf")
    os.environ["DISTILABEL_CACHE_DIR"] = os.path.join(_SCRATCH, "distilabel")


# Warnings the frameworks' own code raises under the pydantic this venv resolves to;
# pyproject.toml makes every warning an error, which is right for our code only.
FRAMEWORK_WARNINGS = (
    # distilabel 1.5's models put Field(default=None) inside Optional[...]
    "ignore::pydantic.warnings.UnsupportedFieldAttributeWarning",
    # ... uses what pydantic and itself deprecated (distilabel.llms)
    "ignore::DeprecationWarning:distilabel",
    # ... and leaves its pipeline.log open at the end of a run
    r"ignore:unclosed file .*pipeline\.log:ResourceWarning",
    # LiteLLM's TypedDicts use ReadOnly items
    r"ignore:Items? .* (is|are) using the `ReadOnly` qualifier:UserWarning",
)


def pytest_configure(config: pytest.Config) -> None:
    if ENABLED:
        for line in FRAMEWORK_WARNINGS:
            config.addinivalue_line("filterwarnings", line)


# -- loopback only ---------------------------------------------------------------------

#: Hosts something tried to reach that are not loopback, in the order tried. Forked
#: workers (distilabel's) inherit the guard; what they try is refused there too.
BLOCKED: list[str] = []


def _is_loopback(host: Any) -> bool:
    if host is None or host == "":
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    return text in ("localhost", "::1") or text.startswith("127.")


def _guard(host: Any, family: int) -> None:
    if family == socket.AF_UNIX or _is_loopback(host):
        return  # multiprocessing's own sockets, or the mock
    BLOCKED.append(str(host))
    raise ConnectionRefusedError(f"the integration tests allow loopback only; refused {host!r}")


def _install_network_guard() -> None:
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> None:
        _guard(address[0] if isinstance(address, tuple) else address, self.family)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        _guard(address[0] if isinstance(address, tuple) else address, self.family)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _guard(host, socket.AF_INET)
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = guarded_getaddrinfo


if ENABLED:
    _install_network_guard()


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    before = len(BLOCKED)
    yield
    tried = BLOCKED[before:]
    assert not tried, f"a framework tried to reach the network: {tried}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if MODE == "require" and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(
            "FAILED: tests were skipped; under ./scripts/test-integrations every recipe must run",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SCRATCH is not None:
        shutil.rmtree(_SCRATCH, ignore_errors=True)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if MODE == "require" and skipped and session.exitstatus == pytest.ExitCode.OK:
        # The script promised every recipe a run: a skip is a recipe left untested.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- the mock server -------------------------------------------------------------------


@pytest.fixture
def start_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[MockConfig], Mock]]:
    """Start a mock with a given config; OPENAI_BASE_URL and OPENAI_API_KEY point at it."""
    with contextlib.ExitStack() as stack:

        def start(config: MockConfig) -> Mock:
            mock = stack.enter_context(serve_on_thread(config))
            monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
            monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
            return mock

        yield start


@pytest.fixture
def mock(start_mock: Callable[[MockConfig], Mock]) -> Mock:
    """A mock with the limits the recipes name (see `generous`)."""
    return start_mock(generous())
