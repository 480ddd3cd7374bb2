"""A run without its journal adopts the job's batches instead of paying for them twice.

The journal is deleted (or truncated, or replaced by an older copy) while batches run;
the next run of the same inputs finds them by the job fingerprint in their metadata,
reads which requests each holds from its input file, and submits only the rest. The
mock server must then have seen no second batch for any chunk already submitted.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ratelimit_llm import batch
from ratelimit_llm.mock import BatchConfig

from ._support import CHAT, BatchMock, batch_mock, chat_bodies, fast
from .test_run_mock import Crash, assert_each_once, assert_no_duplicate_batches

pytestmark = pytest.mark.anyio

COUNT = 200
CHUNK = 20  # ten batches
SLOW = BatchConfig(lines_per_second=2, validation_seconds=1)


def lose(journal: Path) -> None:
    """Delete the journal and SQLite's files beside it (the driver still has it open)."""
    for suffix in ("", "-wal", "-shm"):
        journal.with_name(journal.name + suffix).unlink(missing_ok=True)


async def crash_after(
    m: BatchMock, journal: Path, step: str, nth: int, damage: Any, **options: Any
) -> None:
    """Run the job until the ``nth`` step ``step``, damage the journal there, and crash."""
    hits = Counter[str]()

    def checkpoint(name: str) -> None:
        hits[name] += 1
        if name == step and hits[name] == nth:
            damage(journal)
            raise Crash(name)

    with pytest.raises(Crash):
        async for _ in batch.run(
            m.client,
            chat_bodies(COUNT),
            journal=journal,
            endpoint=CHAT,
            checkpoint=checkpoint,
            **{**fast(max_requests=CHUNK), **options},
        ):
            pass


async def finish(
    m: BatchMock, journal: Path, stats: batch.BatchStatistics, **options: Any
) -> list[batch.BatchResult]:
    results = [
        r
        async for r in batch.run(
            m.client,
            chat_bodies(COUNT),
            journal=journal,
            endpoint=CHAT,
            statistics=stats,
            **{**fast(max_requests=CHUNK), **options},
        )
    ]
    assert_each_once(results, COUNT)
    assert all(result.ok for result in results)
    return results


async def test_a_deleted_journal_adopts_the_batches_already_submitted(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with batch_mock(SLOW) as m:
        await crash_after(m, journal, "submitted", 4, lose)
        assert not journal.exists()
        submitted = {b["id"] for b in await m.batches()}
        assert len(submitted) == 4

        stats = batch.BatchStatistics()
        await finish(m, journal, stats)
        batches = await assert_no_duplicate_batches(m)
        assert len(batches) == COUNT // CHUNK  # ten, not fourteen
        assert sum(b["input_lines"] for b in batches) == COUNT  # no request sent twice
        assert (stats.batches_adopted, stats.requests_adopted) == (4, 4 * CHUNK)
        assert stats.batches_created == 6 and stats.batches_not_adopted == 0
        # The adopted batches were collected by the new journal, and their files deleted.
        assert all(b["status"] == "completed" for b in batches) and m.files() == []
    status = await batch.status(None, journal)
    assert status.finished and {c.batch_id for c in status.chunks} >= submitted


async def test_a_truncated_journal_is_an_error_and_moving_it_aside_adopts(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"

    def truncate(path: Path) -> None:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)

    async with batch_mock(SLOW) as m:
        await crash_after(m, journal, "submitted", 3, lambda _: None)
        truncate(journal)  # after the process let go of it, as a bad copy or disk would
        with pytest.raises(batch.JournalCorruptError, match="truncated"):
            await finish(m, journal, batch.BatchStatistics())
        assert len(await m.batches()) == 3  # the error sent nothing

        journal.rename(tmp_path / "job.db.damaged")  # the remedy the error names
        stats = batch.BatchStatistics()
        await finish(m, journal, stats)
        batches = await assert_no_duplicate_batches(m)
        assert len(batches) == COUNT // CHUNK and stats.batches_adopted == 3
        assert sum(b["input_lines"] for b in batches) == COUNT


async def test_an_older_copy_adopts_the_batches_made_after_it(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    backup = tmp_path / "backup.db"
    async with batch_mock(SLOW) as m:
        hits = Counter[str]()

        def checkpoint(name: str) -> None:
            hits[name] += 1
            if name == "submitted" and hits[name] == 2:
                shutil.copyfile(journal, backup)  # a copy that knows two batches
            if name == "planned" and hits[name] == 5:
                raise Crash(name)  # the fifth chunk is planned, its file not yet uploaded

        with pytest.raises(Crash):
            async for _ in batch.run(
                m.client,
                chat_bodies(COUNT),
                journal=journal,
                endpoint=CHAT,
                checkpoint=checkpoint,
                **fast(max_requests=CHUNK),
            ):
                pass
        assert len(await m.batches()) == 4
        shutil.copyfile(backup, journal)  # restored from the older copy

        stats = batch.BatchStatistics()
        await finish(m, journal, stats)
        batches = await assert_no_duplicate_batches(m)
        assert len(batches) == COUNT // CHUNK and stats.batches_adopted == 2
        assert sum(b["input_lines"] for b in batches) == COUNT


async def test_a_batch_whose_create_an_older_copy_never_saw_answered_is_found(
    tmp_path: Path,
) -> None:
    """The copy holds the chunk as ``uploaded``; the server has its batch: no second one."""
    journal = tmp_path / "job.db"
    backup = tmp_path / "backup.db"
    async with batch_mock(SLOW) as m:
        hits = Counter[str]()

        def checkpoint(name: str) -> None:
            hits[name] += 1
            if name == "uploaded" and hits[name] == 3:
                shutil.copyfile(journal, backup)
            if name == "submitted" and hits[name] == 3:
                raise Crash(name)

        with pytest.raises(Crash):
            async for _ in batch.run(
                m.client,
                chat_bodies(COUNT),
                journal=journal,
                endpoint=CHAT,
                checkpoint=checkpoint,
                **fast(max_requests=CHUNK),
            ):
                pass
        shutil.copyfile(backup, journal)
        stats = batch.BatchStatistics()
        await finish(m, journal, stats, delete_files=False)
        batches = await assert_no_duplicate_batches(m)
        assert len(batches) == COUNT // CHUNK and stats.batches_found_by_nonce == 1
        assert stats.batches_adopted == 0


async def test_collected_batches_are_adopted_again_when_their_files_were_kept(
    tmp_path: Path,
) -> None:
    """With ``delete_files=False`` even answers the lost journal held are not paid again."""
    journal = tmp_path / "job.db"
    async with batch_mock(BatchConfig(lines_per_second=20, validation_seconds=0)) as m:
        await crash_after(m, journal, "collected", 2, lose, delete_files=False)
        first = await m.batches()
        stats = batch.BatchStatistics()
        await finish(m, journal, stats, delete_files=False)
        batches = await assert_no_duplicate_batches(m)
        assert len(batches) == COUNT // CHUNK and len(first) >= 2
        assert stats.batches_adopted == len(first) and stats.batches_not_adopted == 0
        assert sum(b["input_lines"] for b in batches) == COUNT


async def test_collected_batches_whose_files_were_deleted_are_sent_again(tmp_path: Path) -> None:
    """Their results went with the lost journal and their files with the cleanup."""
    journal = tmp_path / "job.db"
    async with batch_mock(BatchConfig(lines_per_second=20, validation_seconds=0)) as m:
        await crash_after(m, journal, "collected", 3, lose)
        first = await m.batches()
        kept = {f.id for f in m.files()}
        gone = [b for b in first if b["input_file_id"] not in kept]
        assert len(gone) == 2  # collected and cleaned up; the third crashed before cleanup
        stats = batch.BatchStatistics()
        await finish(m, journal, stats)
        assert stats.batches_not_adopted == len(gone)
        assert stats.batches_adopted == len(first) - len(gone)
        batches = await assert_no_duplicate_batches(m)
        # What the cleaned-up batches held is sent again; nothing else is.
        assert sum(b["input_lines"] for b in batches) == COUNT + len(gone) * CHUNK

        # The unadoptable batches are remembered: a later run does not read them again.
        again = batch.BatchStatistics()
        async for _ in batch.run(m.client, None, journal=journal, statistics=again, **fast()):
            pass
        assert again.batches_not_adopted == 0


async def test_no_adoption_when_asked_not_to(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with batch_mock(SLOW) as m:
        await crash_after(m, journal, "submitted", 4, lose)
        stats = batch.BatchStatistics()
        await finish(m, journal, stats, adopt=False)
        assert stats.batches_adopted == 0
        assert len(await m.batches()) == 4 + COUNT // CHUNK  # a deliberate second run


async def test_a_crash_while_adopting_adopts_the_rest_next_time(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with batch_mock(SLOW) as m:
        await crash_after(m, journal, "submitted", 5, lose)
        await crash_after(m, journal, "adopted", 2, lambda _: None)
        stats = batch.BatchStatistics()
        await finish(m, journal, stats)
        batches = await assert_no_duplicate_batches(m)
        assert len(batches) == COUNT // CHUNK and stats.batches_adopted == 3
        assert sum(b["input_lines"] for b in batches) == COUNT


async def test_another_jobs_batches_are_left_alone(tmp_path: Path) -> None:
    async with batch_mock(SLOW) as m:
        await crash_after(m, tmp_path / "a.db", "submitted", 2, lose)
        other = [{**body, "max_tokens": 3} for body in chat_bodies(COUNT)]
        stats = batch.BatchStatistics()
        results = [
            r
            async for r in batch.run(
                m.client,
                other,
                journal=tmp_path / "b.db",
                endpoint=CHAT,
                statistics=stats,
                **fast(max_requests=CHUNK),
            )
        ]
        assert_each_once(results, COUNT)
        assert stats.batches_adopted == 0 and stats.batches_created == COUNT // CHUNK
