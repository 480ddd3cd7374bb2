"""Ctrl-C on ``ratelimit-llm run``: admit nothing more, let the calls in flight finish
within the grace, journal them, print the command that resumes; the resume completes.

The command runs in a child process against the mock server in another; SIGINT lands
once the journal holds a seeded number of answers. Then:

* the run exits 130 and prints ``resume with: ratelimit-llm run ...``;
* nothing is left in flight in the journal, and every answer it holds is in the output
  (the calls in flight at the signal finished within the grace: none was lost);
* the server saw exactly the journaled answers: calls claimed but not yet granted by the
  limiter were withdrawn unsent;
* the resume sends only the rest: 1,000 calls in all, each ``custom_id`` once.

And a stop whose calls outlast the grace: they are cut when it ends (back to pending,
their reservations kept as spent), and the resume sends each once.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

from ._process import journal_states, mock_stats, run_to_end, start_run, wait_until
from ._support import lines, output_lines, write_jsonl

COUNT = 1_000
SEED = 1_202
STEP_TIMEOUT = 30.0
#: 500 a second through the limiter, calls ~20 ms long: a few dozen in flight at once.
LIMITS = ("--rpm", "30000", "--tpm", "1000000000", "--concurrency", "64", "--grace", "10")


def test_ctrl_c_keeps_every_answer_and_the_printed_command_resumes(tmp_path: Path) -> None:
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel(scale=0.05, jitter=0.5),
        seed=11,
    )
    source = write_jsonl(tmp_path / "requests.jsonl", lines(COUNT))
    out, journal = tmp_path / "results.jsonl", tmp_path / "job.db"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    target = random.Random(SEED).randint(200, 600)
    with mock_server_process(config) as base_url:
        process = start_run(base_url, source, out, journal, first_log, *LIMITS)
        try:
            assert wait_until(process, journal, target, STEP_TIMEOUT), first_log.read_text()
            process.send_signal(signal.SIGINT)
            process.wait(STEP_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        said = first_log.read_text()
        assert process.returncode == 130, said
        assert "stopping: no new requests" in said
        assert "resume with: ratelimit-llm run " in said and "--journal" in said
        stopped = journal_states(journal)
        assert "online" not in stopped, stopped
        done = stopped["done"]
        assert target <= done < COUNT
        assert len(output_lines(out)) == done
        assert int(mock_stats(base_url)["requests"]) == done

        process = start_run(base_url, source, out, journal, second_log, *LIMITS)
        run_to_end(process, STEP_TIMEOUT, second_log)
        served = int(mock_stats(base_url)["requests"])

    assert "resuming:" not in second_log.read_text()  # nothing was left in flight
    ids = Counter(line["custom_id"] for line in output_lines(out))
    assert len(ids) == COUNT and set(ids.values()) == {1}, ids.most_common(3)
    assert journal_states(journal) == {"done": COUNT}
    assert served == COUNT


def test_calls_past_the_grace_are_cut_and_the_resume_sends_them_once(tmp_path: Path) -> None:
    # Answers take 3 s, the grace is 0.5 s: the calls in flight at Ctrl-C are cut.
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel(ttft=3.0, jitter=0.0),
    )
    source = write_jsonl(tmp_path / "requests.jsonl", lines(40))
    out, journal = tmp_path / "results.jsonl", tmp_path / "job.db"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    pace = ("--rpm", "6000", "--tpm", "1000000000", "--budget-usd", "1")
    with mock_server_process(config) as base_url:
        process = start_run(
            base_url, source, out, journal, first_log, *pace, "--concurrency", "4", "--grace", "0.5"
        )
        try:
            deadline = time.monotonic() + STEP_TIMEOUT
            while journal_states(journal).get("online", 0) < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(1.0)  # sent, and still a couple of seconds from their answers
            process.send_signal(signal.SIGINT)
            process.wait(STEP_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        assert process.returncode == 130, first_log.read_text()
        assert int(mock_stats(base_url)["requests"]) == 4
        assert journal_states(journal) == {"pending": 40}
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            (sent,) = db.execute("SELECT COUNT(*) FROM requests WHERE sends = 1").fetchone()
            row = db.execute("SELECT value FROM meta WHERE key = 'run_unresolved_nano'").fetchone()
        assert sent == 4
        assert row is not None and int(row[0]) > 0  # their reservations stay charged

        process = start_run(
            base_url, source, out, journal, second_log, *pace, "--concurrency", "40"
        )
        run_to_end(process, STEP_TIMEOUT, second_log)
        served = int(mock_stats(base_url)["requests"])
    ids = Counter(line["custom_id"] for line in output_lines(out))
    assert len(ids) == 40 and set(ids.values()) == {1}
    assert served == 44  # the 4 cut calls went again, once
