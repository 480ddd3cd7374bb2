"""``ratelimit-llm batch``: submit, status, results and cancel against a mock server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import CHAT, KEY, chat_bodies


@pytest.fixture
def server_url() -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ratelimit_llm.cli",
            "mock-server",
            "--batch-validation-seconds",
            "0",
            "--batch-finalizing-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "ratelimit_llm.cli", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_submit_status_results_cancel(tmp_path: Path, server_url: str) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps(body) + "\n" for body in chat_bodies(30)))
    journal = str(tmp_path / "job.db")

    done = cli(
        "submit",
        str(inputs),
        "--journal",
        journal,
        "--endpoint",
        CHAT,
        "--max-requests",
        "10",
        url=server_url,
    )
    assert done.returncode == 0, done.stderr
    assert "journaled 30 requests" in done.stderr

    shown = cli("status", "--journal", journal, url=server_url)
    assert shown.returncode == 0, shown.stderr
    assert "queued 30" in shown.stderr

    out = tmp_path / "out.jsonl"
    got = cli("results", "--journal", journal, "--out", str(out), url=server_url)
    assert got.returncode == 0, got.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == sorted(f"request-{i}" for i in range(30))
    assert "saved $" in got.stderr
    assert KEY not in got.stderr + got.stdout + shown.stderr + done.stderr

    stopped = cli("cancel", "--journal", journal, url=server_url)
    assert stopped.returncode == 0, stopped.stderr
    offline = cli("results", "--journal", journal, "--no-wait", url=server_url)
    assert len(offline.stdout.splitlines()) == 30
