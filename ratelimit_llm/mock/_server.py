"""Running the mock on a real loopback socket, for tests and benchmarks that need one.

uvicorn runs as a task in the caller's event loop, so a test can start the server, talk
to it and stop it without threads or subprocesses. The socket is bound here (port 0 picks
a free port, known before the server starts) and only to loopback addresses: a mock with
no authentication has no business on a network interface.

The protocol subclass exists for one fault: a connection reset. ASGI has no way to close
a connection without answering, so the protocol offers the app an ``abort`` callable in
the scope's extensions, which resets the socket with an RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._app import create_app
from ._config import MockConfig
from ._faults import ABORT_EXTENSION
from ._state import Clock, MockState, Sleep

__all__ = ["MockServer", "run_server", "serve"]

_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 5.0


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"host must be a loopback address such as 127.0.0.1, got {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(f"the mock server binds loopback addresses only, got {host!r}")


class _ResettableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a way for the app to reset the connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = scope.setdefault("extensions", {})
            extensions[ABORT_EXTENSION] = self._reset
            await inner(scope, receive, send)

        self.app = app

    def _reset(self) -> None:
        transport = self.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns the close into an RST, which is what a dropped connection is.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class MockServer:
    """A running mock server: its base URL (ending in ``/v1``), app and state."""

    url: str
    host: str
    port: int
    app: Starlette
    state: MockState

    @property
    def origin(self) -> str:
        """``http://host:port``, for the ``/mock/*`` endpoints and the Azure paths."""
        return self.url.removesuffix("/v1")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets
    # that say so, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serve(
    config: MockConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> AsyncIterator[MockServer]:
    """Serve a mock on ``host:port`` (loopback only) while the block runs.

    Example::

        async with serve(MockConfig(), port=0) as server:
            client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.url)
    """
    _check_loopback(host)
    app = create_app(config, clock=clock, sleep=sleep)
    sock = _bind("127.0.0.1" if host == "localhost" else host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    uv_config = uvicorn.Config(
        app,
        http=_ResettableH11Protocol,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(_SHUTDOWN_TIMEOUT),
    )
    server = _EmbeddedServer(uv_config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _wait_started(server, task)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield MockServer(
            f"http://{shown}:{bound_port}/v1", bound_host, bound_port, app, app.state.mock
        )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, _SHUTDOWN_TIMEOUT * 2)
        except TimeoutError:
            pass  # wait_for has cancelled the stuck server; nothing else to do
        finally:
            sock.close()


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_TIMEOUT
    while not server.started:
        if task.done():
            task.result()  # re-raise why it stopped
            raise RuntimeError("the mock server stopped during startup")
        if loop.time() > deadline:
            raise RuntimeError("the mock server did not start in time")
        await asyncio.sleep(0.005)


def run_server(
    config: MockConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[MockServer], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM: the CLI's blocking runner.

    ``on_ready`` is called with the running server once it accepts connections.
    """

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, done.set)
        try:
            async with serve(config, host=host, port=port) as server:
                if on_ready is not None:
                    on_ready(server)
                await done.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)

    asyncio.run(main())
