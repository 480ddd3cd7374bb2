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


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--offline"),
        ("status",),
        ("results", "--no-wait"),
        ("results",),
        ("cancel",),
    ],
)
def test_a_command_on_a_missing_journal_fails_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    journal = tmp_path / "typo.db"
    out = tmp_path / "out.jsonl"
    extra = ("--out", str(out)) if args[0] == "results" else ()
    # No server: the journal is checked before any client is made or anything is sent.
    done = cli(*args, "--journal", str(journal), *extra, url="http://127.0.0.1:9/v1")
    assert done.returncode == 1, done.stderr
    assert f"no journal at {journal}" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_command_on_a_damaged_journal_names_it(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    journal.write_bytes(b"")
    done = cli("status", "--offline", "--journal", str(journal), url="http://127.0.0.1:9/v1")
    assert done.returncode == 1
    assert f"{journal} is not a usable journal: empty (0 bytes)" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.db"]
    assert journal.read_bytes() == b""
