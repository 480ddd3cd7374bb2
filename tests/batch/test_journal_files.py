"""The journal is one file that tells the truth, and a file that cannot is an error.

* After every commit the main file alone holds it (the ``-wal`` is empty), and at rest
  the journal is that file only.
* Empty, truncated, not-SQLite, foreign, job-less or damaged files are typed errors
  naming the path, never a fresh start: the file is left as it was and nothing is sent.
* Another job's inputs on a journal are refused with nothing sent.
* Readers (status, results without waiting, cost) create and change nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from ratelimit_llm import batch
from ratelimit_llm.batch._fingerprint import Fingerprint, fingerprint_of
from ratelimit_llm.batch._journal import Journal, sqlite_errors
from ratelimit_llm.batch._split import prepare
from ratelimit_llm.mock import BatchConfig

from ._support import CHAT, KEY, BatchMock, batch_mock, chat_bodies, fast

pytestmark = pytest.mark.anyio


def listing(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` with the SHA-256 of its bytes."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def dump(journal: Path, *, immutable: bool = False) -> str:
    """The journal's contents as SQL (equal dumps: nothing in it changed).

    ``immutable``: the main file only, as if nothing else were beside it.
    """
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    db = sqlite3.connect(f"file:{journal}?{flags}", uri=True)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def run_all(m: BatchMock, journal: Path, count: int = 12, **options: Any) -> list[Any]:
    return [
        r
        async for r in batch.run(
            m.client,
            chat_bodies(count),
            journal=journal,
            endpoint=CHAT,
            **{**fast(max_requests=5), **options},
        )
    ]


async def nothing_sent(m: BatchMock) -> bool:
    return m.files() == [] and await m.batches() == []


# -- the main file alone is the record ----------------------------------------------------


class CopyAtEachChange(httpx2.AsyncBaseTransport):
    """Before each request that changes the server, compares the journal's main file alone
    (copied, as if the ``-wal`` were lost) with what the journal has committed."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, journal: Path) -> None:
        self.inner = inner
        self.journal = journal
        self.checked: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method in ("POST", "DELETE") and self.journal.exists():
            self.check(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)

    def check(self, what: str) -> None:
        copy = self.journal.with_name("main-file-only.db")
        shutil.copyfile(self.journal, copy)
        try:
            committed = dump(self.journal)  # through SQLite: sees the -wal too
            alone = dump(copy, immutable=True)  # the main file, nothing else
        finally:
            copy.unlink()
        assert alone == committed, f"the main file lacked commits before {what}"
        self.checked.append(what)


async def test_before_each_remote_change_the_main_file_alone_holds_everything(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "job.db"
    async with batch_mock(BatchConfig(line_error_rate=0.3, line_error_statuses=(500,))) as m:
        spy = CopyAtEachChange(httpx2.ASGITransport(app=m.app), journal)
        async with openai.AsyncOpenAI(
            api_key=KEY,
            base_url="http://mock.test/v1",
            http_client=openai.DefaultAsyncHttpx2Client(transport=spy),
            max_retries=0,
        ) as client:
            results = [
                r
                async for r in batch.run(
                    client,
                    chat_bodies(12),
                    journal=journal,
                    endpoint=CHAT,
                    **fast(max_requests=5, max_retries=5),
                )
            ]
    assert len(results) == 12 and all(r.ok for r in results)
    kinds = {what.split("/")[-1] if what.startswith("POST") else "DELETE" for what in spy.checked}
    assert kinds == {"files", "batches", "DELETE"}, spy.checked  # uploads, creates, deletions
    assert len([w for w in spy.checked if w == "POST /v1/batches"]) > 3  # retries went too
    # At rest the journal is one file, in rollback mode: nothing beside it is needed.
    assert names(tmp_path) == ["job.db", "job.db.lock"]
    assert journal.read_bytes()[18:20] == b"\x01\x01"


async def test_readers_create_and_change_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with batch_mock() as m:
        await run_all(m, journal)
        before = listing(tmp_path)
        status = await batch.status(None, journal)
        online = await batch.status(m.client, journal)
        pages = [page async for page in batch.results(None, journal, wait=False)]
        price = batch.cost(journal)
    assert status.finished and online.finished and price.requests == 12
    assert sum(len(page) for page in pages) == 12
    assert listing(tmp_path) == before


async def test_a_reader_of_a_main_file_copied_mid_run_creates_nothing(tmp_path: Path) -> None:
    """Copied while a driver had it in WAL mode: no -wal beside the copy, none created."""
    journal = tmp_path / "job.db"
    copy = tmp_path / "elsewhere" / "job.db"
    copy.parent.mkdir()

    def take(step: str) -> None:
        if step == "submitted" and not copy.exists():
            shutil.copyfile(journal, copy)

    async with batch_mock() as m:
        await run_all(m, journal, checkpoint=take)
    assert copy.read_bytes()[18:20] == b"\x02\x02"  # WAL mode, and no -wal beside it
    before = listing(copy.parent)
    status = await batch.status(None, copy)
    assert status.total == 12 and status.queued >= 5
    assert listing(copy.parent) == before


async def test_readers_of_a_missing_journal_raise_and_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    async with batch_mock() as m:
        with pytest.raises(batch.JournalNotFoundError) as caught:
            await batch.status(None, missing)
        assert caught.value.path == missing and str(missing) in str(caught.value)
        with pytest.raises(batch.JournalNotFoundError):
            await batch.status(m.client, missing)
        with pytest.raises(batch.JournalNotFoundError):
            [page async for page in batch.results(None, missing, wait=False)]
        with pytest.raises(batch.JournalNotFoundError):
            [page async for page in batch.results(m.client, missing, **fast())]
        with pytest.raises(batch.JournalNotFoundError):
            await batch.cancel(m.client, missing)
        with pytest.raises(batch.JournalNotFoundError):
            [r async for r in batch.run(m.client, None, journal=missing, **fast())]
        with pytest.raises(FileNotFoundError):  # it is one, too
            batch.cost(missing)
        assert await nothing_sent(m)
    assert names(tmp_path) == []


# -- damaged files are typed errors, never a fresh start ------------------------------------


def make_journal(path: Path, count: int = 12) -> None:
    """A small journal of ``count`` pending requests (the way `run` writes one)."""
    opened = Journal(path)
    generation = opened.begin_ingest()
    opened.ingest(generation, [prepare(b, i, CHAT) for i, b in enumerate(chat_bodies(count))])
    opened.finish_ingest(generation, complete=True)
    opened.close()


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def empty_database(path: Path) -> None:
    """What the operator found: the main file of a job whose state was all in its -wal."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    assert path.stat().st_size == 4096


def not_sqlite(path: Path) -> None:
    path.write_text('{"custom_id": "request-0"}\n' * 50)


def truncated(path: Path) -> None:
    make_journal(path, count=400)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)


def damaged(path: Path) -> None:
    make_journal(path, count=400)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 2 // 4096 * 4096)
        handle.write(b"\xff" * 8192)


def foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('mine')")
    db.commit()
    db.close()


def without_job(path: Path) -> None:
    Journal(path).close()  # the schema, but no requests and no job record


DAMAGE = {
    "empty file": (empty_file, "empty (0 bytes)"),
    "empty database": (empty_database, "no tables"),
    "not sqlite": (not_sqlite, "not an SQLite database"),
    "truncated": (truncated, "truncated"),
    "damaged": (damaged, "damaged"),
    "foreign database": (foreign, "without the journal's tables"),
    "no job": (without_job, "holds no job"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
async def test_a_file_that_is_not_a_whole_journal_is_a_typed_error(
    tmp_path: Path, kind: str
) -> None:
    journal = tmp_path / "job.db"
    spoil, reason = DAMAGE[kind]
    spoil(journal)
    before = listing(tmp_path)
    async with batch_mock() as m:
        with pytest.raises(batch.JournalCorruptError) as caught:
            await run_all(m, journal)
        error = caught.value
        assert error.path == journal and str(journal) in str(error)
        assert reason in str(error) and "adopts the job's batches" in str(error)
        assert isinstance(error, batch.JournalError) and isinstance(error, batch.BatchError)
        with pytest.raises(batch.JournalCorruptError):
            await batch.status(None, journal)
        with pytest.raises(batch.JournalCorruptError):
            batch.cost(journal)
        with pytest.raises(batch.JournalCorruptError):
            [r async for r in batch.run(m.client, None, journal=journal, **fast())]
        assert await nothing_sent(m)
    after = listing(tmp_path)
    after.pop("job.db.lock", None)  # the drivers' lock file: empty, not the journal
    assert after == before  # the file is left exactly as it was


async def test_a_damaged_journal_raises_no_raw_sqlite_error(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    damaged(journal)
    with pytest.raises(batch.JournalCorruptError) as caught:
        await batch.status(None, journal)
    assert not isinstance(caught.value, sqlite3.Error)
    assert "damaged (SQLite" in str(caught.value) and str(journal) in str(caught.value)


async def test_another_jobs_journal_is_refused_with_nothing_sent(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    async with batch_mock() as m:
        await run_all(m, journal)
        sent = len(await m.batches())
        before = dump(journal)
        other = [{**body, "max_tokens": 9} for body in chat_bodies(12, start=100)]
        with pytest.raises(batch.JournalMismatchError) as caught:
            [
                r
                async for r in batch.run(
                    m.client, other, journal=journal, endpoint=CHAT, **fast(max_requests=5)
                )
            ]
        assert caught.value.path == journal
        assert "another job" in str(caught.value) and str(journal) in str(caught.value)
        assert len(await m.batches()) == sent  # no batch created
        assert dump(journal) == before


async def test_a_changed_body_and_dropped_requests_keep_their_own_errors(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    make_journal(journal)
    async with batch_mock() as m:
        changed = list(chat_bodies(12))
        changed[3] = {**changed[3], "max_tokens": 99}
        with pytest.raises(batch.DuplicateCustomIdError) as duplicate:
            await batch.submit(m.client, changed, journal=journal, endpoint=CHAT)
        assert duplicate.value.custom_id == "request-3" and duplicate.value.changed_body
        with pytest.raises(batch.JournalMismatchError, match="do not name"):
            await batch.submit(m.client, chat_bodies(11), journal=journal, endpoint=CHAT)
        assert await nothing_sent(m)


async def test_a_new_journal_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"

    def inputs() -> Iterator[dict[str, Any]]:
        yield from chat_bodies(3000)
        raise KeyboardInterrupt  # the process stopped while the inputs streamed in

    async with batch_mock() as m:
        with pytest.raises(KeyboardInterrupt):
            await batch.submit(m.client, inputs(), journal=journal, endpoint=CHAT)
        assert not journal.exists()  # not an empty journal that would look like damage
        assert not journal.with_name("job.db.partial").exists()
        # A .partial a SIGKILL left behind is discarded by the next run.
        journal.with_name("job.db.partial").write_bytes(b"half a journal")
        job = await batch.submit(m.client, chat_bodies(12), journal=journal, endpoint=CHAT)
        assert job.requests == 12
    assert names(tmp_path) == ["job.db", "job.db.lock"]


# -- fingerprints and metadata ---------------------------------------------------------------


def test_the_fingerprint_is_of_the_set_and_streams() -> None:
    prepared = [prepare(b, i, CHAT) for i, b in enumerate(chat_bodies(50))]
    forward, backward = Fingerprint(), Fingerprint()
    for request in prepared:
        forward.add(request.custom_id, request.body_hash)
    for request in reversed(prepared):
        backward.add(request.custom_id, request.body_hash)
    assert forward.hexdigest() == backward.hexdigest() and forward.count == 50
    assert len(forward.hexdigest()) == 64
    fewer = fingerprint_of((r.custom_id, r.body_hash) for r in prepared[:49])
    assert fewer != forward.hexdigest()
    changed = prepare({**next(chat_bodies(1, start=49)), "max_tokens": 1}, 49, CHAT)
    other = fingerprint_of(
        [
            *((r.custom_id, r.body_hash) for r in prepared[:49]),
            (changed.custom_id, changed.body_hash),
        ]
    )
    assert other != forward.hexdigest()


async def test_each_batch_carries_the_job_and_its_chunk(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    job = fingerprint_of(
        (r.custom_id, r.body_hash)
        for r in (prepare(b, i, CHAT) for i, b in enumerate(chat_bodies(12)))
    )
    async with batch_mock() as m:
        await run_all(m, journal, delete_files=False, metadata={"team": "labels"})
        batches = await m.batches()
        assert len(batches) == 3
        for listed in batches:
            metadata = listed["metadata"]
            assert metadata["team"] == "labels" and metadata["ratelimit_llm_job"] == job
            assert len(metadata["ratelimit_llm_nonce"]) == 24
            content = await m.client.files.content(listed["input_file_id"])
            lines = [line for line in content.text.splitlines() if line]
            pairs = [prepare(json.loads(line), 0, None) for line in lines]
            assert metadata["ratelimit_llm_chunk"] == fingerprint_of(
                (p.custom_id, p.body_hash) for p in pairs
            )
    opened = Journal(journal, readonly=True)
    try:
        assert opened.job_fingerprint() == job
    finally:
        opened.close()


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({f"k{i}": "v" for i in range(14)}, ValueError),
        ({"ratelimit_llm_nonce": "mine"}, ValueError),
        ({"k": "v" * 513}, ValueError),
        ({"k": 1}, TypeError),
    ],
)
async def test_bad_metadata_is_refused_at_the_door(
    tmp_path: Path, metadata: dict[str, Any], error: type[Exception]
) -> None:
    async with batch_mock() as m:
        with pytest.raises(error, match="metadata"):
            await batch.submit(
                m.client,
                chat_bodies(2),
                journal=tmp_path / "j.db",
                endpoint=CHAT,
                metadata=metadata,
            )
        assert await nothing_sent(m)
    assert names(tmp_path) == []


def test_sqlite_errors_are_named_after_the_journal(tmp_path: Path) -> None:
    garbage = tmp_path / "job.db"
    garbage.write_bytes(b"\x00" * 4096)
    with pytest.raises(batch.JournalCorruptError) as caught, sqlite_errors(garbage):
        sqlite3.connect(garbage).execute("SELECT name FROM sqlite_master").fetchall()
    assert caught.value.path == garbage and str(garbage) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    # A bug in the SQL is not a fact about the file: it passes through as it is.
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x UNIQUE)")
    db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError), sqlite_errors(garbage):
        db.execute("INSERT INTO t VALUES (1)")


def test_extending_a_job_moves_its_fingerprint(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    make_journal(journal, count=3)
    opened = Journal(journal, create=False)
    try:
        first = opened.job_fingerprint()
        generation = opened.begin_ingest()
        opened.ingest(generation, [prepare(b, i, CHAT) for i, b in enumerate(chat_bodies(4))])
        assert opened.finish_ingest(generation, complete=True) == 4
        assert opened.job_fingerprint() != first
        assert opened.job_fingerprint() == fingerprint_of(
            (p.custom_id, p.body_hash)
            for p in (prepare(b, i, CHAT) for i, b in enumerate(chat_bodies(4)))
        )
    finally:
        opened.close()


async def test_a_journal_from_before_fingerprints_is_brought_up_to_date(tmp_path: Path) -> None:
    journal = tmp_path / "job.db"
    make_journal(journal)
    db = sqlite3.connect(journal)
    db.execute("DELETE FROM meta WHERE key = 'job'")
    db.execute("DROP TABLE unadopted")
    db.commit()
    db.close()
    assert (await batch.status(None, journal)).total == 12  # a reader copes as it is
    async with batch_mock() as m:
        results = await run_all(m, journal)
        assert len(results) == 12
        listed = await m.batches()
    expected = fingerprint_of(
        (p.custom_id, p.body_hash)
        for p in (prepare(b, i, CHAT) for i, b in enumerate(chat_bodies(12)))
    )
    assert {b["metadata"]["ratelimit_llm_job"] for b in listed} == {expected}
