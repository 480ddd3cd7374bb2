"""One job, one journal, one driver: other inputs and a second runner are refused.

Other inputs on a journal (another job's, a subset of it, a changed body) raise before
anything is sent, naming the journal; a second runner on a journal someone drives (in
this process, or the command in another) is refused with `JournalLockedError`, and the
first goes on undisturbed.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

import ratelimit_llm
from ratelimit_llm.batch import DuplicateCustomIdError, JournalLockedError, JournalMismatchError
from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

from ._process import journal_states, mock_stats, start_run, wait_until
from ._support import each_once, lines, output_lines, run_mock, states, write_jsonl


@pytest.mark.anyio
async def test_other_inputs_on_a_journal_are_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=6_000, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(20), journal=journal) as job:
            await job.wait()
        served = await m.chat_requests()
        with pytest.raises(JournalMismatchError, match="another job"):
            async with ratelimit_llm.run(client, lines(20, start=500), journal=journal) as job:
                await job.wait()
        with pytest.raises(JournalMismatchError, match="do not name"):
            async with ratelimit_llm.run(client, lines(10), journal=journal) as job:
                await job.wait()
        assert await m.chat_requests() == served
    assert states(journal) == {"done": 20}


@pytest.mark.anyio
async def test_a_second_runner_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=60, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(50), journal=journal, concurrency=2) as first:
            results = first.__aiter__()
            await results.__anext__()  # the first runner is under way
            with pytest.raises(JournalLockedError, match="another process is driving"):
                async with ratelimit_llm.run(client, lines(50), journal=journal) as second:
                    await second.wait()
            first.stop()
            async for _ in results:
                pass
    assert "online" not in states(journal)


@pytest.mark.anyio
async def test_a_changed_body_under_a_known_custom_id_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with run_mock() as m:
        client = ratelimit_llm.wrap(m.client, rpm=6_000, tpm=1_000_000)
        async with ratelimit_llm.run(client, lines(10), journal=journal) as job:
            await job.wait()
        changed = list(lines(10))
        changed[3]["body"]["max_tokens"] = 99
        with pytest.raises(DuplicateCustomIdError, match="r-00003"):
            async with ratelimit_llm.run(client, changed, journal=journal) as job:
                await job.wait()
        assert await m.chat_requests() == 10
    assert states(journal) == {"done": 10}


def test_the_command_refuses_a_second_process_and_other_inputs(tmp_path: Path) -> None:
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel(scale=0.05),
    )
    source = write_jsonl(tmp_path / "requests.jsonl", lines(300))
    other = write_jsonl(tmp_path / "other.jsonl", lines(300, start=1_000))
    out, journal = tmp_path / "results.jsonl", tmp_path / "job.db"
    first_log, second_log, third_log = (tmp_path / f"{n}.log" for n in ("a", "b", "c"))
    # A minute of quota at most up front, then one a second: the first run is still
    # going when the second starts.
    pace = ("--rpm", "60", "--tpm", "1000000000", "--concurrency", "8", "--grace", "5")
    with mock_server_process(config) as base_url:
        first = start_run(base_url, source, out, journal, first_log, *pace)
        try:
            assert wait_until(first, journal, 5, 30), first_log.read_text()
            second = start_run(base_url, source, out, journal, second_log, *pace)
            assert second.wait(30) == 1
            said = second_log.read_text()
            assert f"another process is driving {journal}" in said, said
            assert first.poll() is None  # undisturbed
            first.send_signal(signal.SIGINT)
            assert first.wait(30) == 130, first_log.read_text()
        finally:
            for process in (first,):
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
        served = int(mock_stats(base_url)["requests"])
        assert served == journal_states(journal)["done"] == len(output_lines(out))

        third = start_run(base_url, other, out, journal, third_log, *pace)
        try:
            assert third.wait(30) == 1
        except subprocess.TimeoutExpired:
            third.kill()
            raise
        said = third_log.read_text()
        assert f"{journal} is the journal of another job" in said, said
        assert "nothing was sent" in said
        assert int(mock_stats(base_url)["requests"]) == served
    each_once([line["custom_id"] for line in output_lines(out)], served)
