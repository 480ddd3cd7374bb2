"""Memory figures shared by the benchmark scripts (``batch_memory.py``, ``run_dataset.py``).

Peak RSS from ``getrusage`` (always there, imports included) and, when psutil is
installed, RSS sampled in a thread, whose peak is the run's own.
"""

from __future__ import annotations

import importlib
import resource
import sys
import threading
from typing import Any

__all__ = ["RssSampler", "max_rss_mb"]


def max_rss_mb() -> float:
    """Peak RSS of this process so far (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class RssSampler:
    """This process's RSS every ``interval`` seconds, in a thread (no-op without psutil).

    Use it as a context manager; ``peak_mb`` (``None`` without psutil) and ``samples``
    are read after it.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb: float | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: Any = None
        try:
            psutil: Any = importlib.import_module("psutil")  # optional, untyped
        except ImportError:
            return
        self._process = psutil.Process()

    def current_mb(self) -> float | None:
        """RSS now, in MiB (``None`` without psutil)."""
        if self._process is None:
            return None
        return float(self._process.memory_info().rss) / (1024 * 1024)

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = self.current_mb()
            if rss is not None:
                self.samples += 1
                self.peak_mb = rss if self.peak_mb is None else max(self.peak_mb, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        if self._process is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
