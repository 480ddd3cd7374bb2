"""Helpers for the run tests that drive ``ratelimit-llm run`` in a child process.

The command runs as ``python -c`` (the console script may not be on PATH in a
checkout), against the mock server in another process on a loopback port: real
sockets, real signals, a journal another process can read while the run writes it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["KEY", "journal_states", "mock_stats", "run_to_end", "start_run", "wait_until"]

KEY = "sk-test-runsrunsrunsruns0042"
_COMMAND = "import sys; from ratelimit_llm.cli import main; sys.exit(main(sys.argv[1:]))"


def start_run(
    base_url: str, source: Path, out: Path, journal: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``ratelimit-llm run`` in a child process; its stdout and stderr go to ``log``."""
    argv: Sequence[str] = [
        sys.executable,
        "-c",
        _COMMAND,
        "run",
        str(source),
        "--out",
        str(out),
        "--journal",
        str(journal),
        "--base-url",
        base_url,
        "--no-progress",
        *extra,
    ]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    env.pop("OPENAI_BASE_URL", None)
    with open(log, "ab") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)


def run_to_end(process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait ``timeout`` seconds for the run to end (killed if it does not), and check that
    it succeeded; the tail of its ``log`` says why it did not."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    assert process.returncode == 0, log.read_text()[-4_000:]


def journal_states(journal: Path) -> dict[str, int]:
    """Requests by state, read while (or after) another process writes the journal."""
    if not journal.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall()
    except sqlite3.OperationalError:  # the run is still creating it
        return {}
    return {str(state): int(count) for state, count in rows}


def mock_stats(base_url: str) -> dict[str, Any]:
    origin = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{origin}/mock/stats", timeout=30) as response:
        data: dict[str, Any] = json.load(response)
    return data


def wait_until(
    process: subprocess.Popen[bytes], journal: Path, done_at_least: int, timeout: float
) -> bool:
    """Until the journal holds ``done_at_least`` answers (True) or the process ends or
    ``timeout`` passes (False). Polls: another process is the one moving."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if journal_states(journal).get("done", 0) >= done_at_least:
            return True
        time.sleep(0.01)
    return False
