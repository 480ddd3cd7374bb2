"""SIGKILL ``ratelimit-llm run`` twice at seeded moments; resumed, it answers each once.

2,000 online requests from a JSONL file, the command in a child process against the
mock server in another (real sockets, a little latency so calls are in flight). Each
kill lands once the journal holds a seeded number of answers; the in-flight count the
journal records right after the kill is what a resume may send a second time. After a
last run to completion:

* the output file holds every ``custom_id`` exactly once (and the journal says done);
* the server saw at most 2,000 calls plus the calls in flight at each kill.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

from ._process import journal_states, mock_stats, run_to_end, start_run, wait_until
from ._support import lines, output_lines, write_jsonl

COUNT = 2_000
SEED = 20_261_201
#: Answers in the journal at which each of the two kills lands (seeded in these ranges).
KILL_WINDOWS = ((200, 800), (1_000, 1_600))
STEP_TIMEOUT = 20.0
#: The limiter paces: 1,200 a second, with calls ~20 ms long, ~25 in flight at once.
CONCURRENCY = 64
LIMITS = ("--rpm", "72000", "--tpm", "1000000000", "--concurrency", str(CONCURRENCY))


def test_two_sigkills_then_a_resume_answer_each_request_once(tmp_path: Path) -> None:
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel(scale=0.05, jitter=0.5),
        seed=7,
    )
    source = write_jsonl(tmp_path / "requests.jsonl", lines(COUNT))
    out, journal, log = tmp_path / "results.jsonl", tmp_path / "job.db", tmp_path / "run.log"
    rng = random.Random(SEED)
    in_flight_at_kills: list[int] = []
    with mock_server_process(config) as base_url:
        for low, high in KILL_WINDOWS:
            target = rng.randint(low, high)
            process = start_run(base_url, source, out, journal, log, *LIMITS)
            try:
                landed = wait_until(process, journal, target, STEP_TIMEOUT)
                assert landed, f"the run ended before {target} answers:\n{log.read_text()}"
                process.send_signal(signal.SIGKILL)
                process.wait(10)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
            assert process.returncode == -signal.SIGKILL
            states = journal_states(journal)
            in_flight_at_kills.append(states.get("online", 0))
            assert in_flight_at_kills[-1] <= CONCURRENCY  # claims count from the claim on
            assert states.get("done", 0) >= target
        process = start_run(base_url, source, out, journal, log, *LIMITS)
        run_to_end(process, STEP_TIMEOUT * 2, log)
        served = int(mock_stats(base_url)["requests"])

    ids = Counter(line["custom_id"] for line in output_lines(out))
    assert len(ids) == COUNT and set(ids.values()) == {1}, ids.most_common(3)
    assert set(ids) == {item["custom_id"] for item in lines(COUNT)}
    assert journal_states(journal) == {"done": COUNT}
    # A kill can lose the answers of the calls it cut, never one already journaled.
    assert COUNT <= served <= COUNT + sum(in_flight_at_kills), (served, in_flight_at_kills)
    # Each resume said how many calls it sends again.
    text = log.read_text()
    for count in in_flight_at_kills:
        if count:
            assert f"resuming: {count:,} call(s)" in text, text[-2_000:]
    print(f"\nin flight at the kills: {in_flight_at_kills}, served: {served}")
