"""Opening a journal for a job: the one door, for this runner and any other built on it.

`open_journal` decides what a path means, and never guesses:

* **no file** and the job's inputs given: a new job. The journal is written whole beside
  the path (``job.db.partial``: schema, every request, the job's fingerprint, one
  commit) and renamed into place, so a file at the path is always a whole journal; a
  kill while the inputs stream in leaves only the ``.partial``, which the next run
  discards. No file and no inputs (a read, a resume without inputs, a cancel):
  `JournalNotFoundError`, and no file is created, not even the lock.
* **a file**: it must be a whole journal. Empty, truncated, not SQLite, an SQLite file
  without the journal's tables, a journal without a job record, damaged pages:
  `JournalCorruptError`; never a fresh start, since the file may be the only record of
  batches already paid for. With inputs, they must be the journal's job (the same
  requests, perhaps more): another job's journal is a `JournalMismatchError`, checked
  against the job's fingerprint, which is computed as the inputs stream in (O(1)
  memory) and stored in the journal.

Readers (``readonly=True``) take no lock and write nothing. Writers take an exclusive
``flock`` on ``job.db.lock``: one driver per journal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio
import anyio.to_thread

from ._errors import JournalCorruptError, JournalError, JournalLockedError, JournalNotFoundError
from ._journal import Journal, sqlite_errors, wal_path
from ._split import prepare

__all__ = ["JournalLock", "OpenedJournal", "check_file", "open_existing", "open_journal"]

T = TypeVar("T")

Requests = Iterable[Any] | AsyncIterable[Any]

_MAGIC = b"SQLite format 3\x00"
_INGEST_PAGE = 2_000


class JournalLock:
    """An exclusive advisory lock next to the journal: one driver per journal at a time.

    ``flock`` is released by the kernel when its holder dies, so a SIGKILLed run never
    leaves a stale lock behind. The lock file holds nothing and may be deleted while no
    process runs.
    """

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_name(journal.name + ".lock")
        self._handle: IO[bytes] | None = None

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return True
        handle = open(self.path, "ab")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass
class OpenedJournal:
    """A journal opened for a job: the journal, the lock held on it, what opening did."""

    journal: Journal
    lock: JournalLock | None
    #: Whether this call created the journal (from the inputs).
    created: bool
    #: How many inputs were read (0 without inputs).
    ingested: int

    @property
    def owner(self) -> bool:
        """Whether this process holds the driver's lock."""
        return self.lock is not None

    def close(self) -> None:
        try:
            self.journal.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def check_file(path: Path) -> None:
    """Refuse a file that cannot be a whole journal, before SQLite opens it.

    SQLite itself would take an empty file for a new database (and a writer would then
    fill it with an empty journal); this reads the 100-byte header instead: the magic
    string, and the size the header promises against the size on disk.

    :raises JournalNotFoundError: nothing at ``path``.
    :raises JournalCorruptError: empty, not a regular file, not SQLite, truncated.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise JournalNotFoundError(path) from None
    except OSError as exc:
        raise JournalError(path, f"cannot read {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise JournalCorruptError(path, "not a regular file")
    if info.st_size == 0:
        raise JournalCorruptError(path, "empty (0 bytes)")
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise JournalCorruptError(path, f"not an SQLite database ({info.st_size:,} bytes)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is trusted only when its "valid for" counter matches
    # (SQLite's own rule); with a -wal holding frames, the main file may lag the log.
    counted = pages > 0 and header[24:28] == header[92:96]
    wal = wal_path(path)
    frames = wal.exists() and wal.stat().st_size > 0
    expected = page_size * pages
    if counted and not frames and info.st_size < expected:
        raise JournalCorruptError(
            path, f"truncated ({info.st_size:,} of its {expected:,} bytes are left)"
        )


def open_existing(path: Path, *, readonly: bool) -> Journal:
    """Open the whole journal at ``path`` (see `check_file` and `Journal` with ``create=False``).

    :raises JournalNotFoundError, JournalCorruptError, JournalMismatchError, JournalError:
    """
    check_file(path)
    with sqlite_errors(path):
        return Journal(path, readonly=readonly, create=False)


async def open_journal(
    path: str | os.PathLike[str],
    requests: Requests | None = None,
    *,
    endpoint: str | None = None,
    readonly: bool = False,
    exclusive: bool = True,
) -> OpenedJournal:
    """Open, validate or create the journal at ``path`` for a job.

    :param requests: the job's inputs (bodies with ``endpoint``, input-line dicts or
        `BatchRequest`, iterable or async iterable), streamed into the journal: a new
        journal is created from them; an existing one must be their job.
    :param readonly: only read (no lock, no write, no inputs).
    :param exclusive: without the driver's lock, raise `JournalLockedError` (default);
        ``False`` opens anyway (``owner`` then says whether the lock is held), for a
        caller that only flags the journal, such as a cancel from another process.
    :raises JournalNotFoundError: no journal, and no inputs to make one.
    :raises JournalCorruptError: the file is not a whole journal.
    :raises JournalMismatchError: the inputs are another job's, or leave requests out.
    :raises DuplicateCustomIdError: (nothing changed) a custom_id repeats, or a body changed.
    :raises JournalLockedError: another process drives the journal.
    """
    path = Path(path)
    if readonly:
        if requests is not None:
            raise ValueError("a read-only open takes no requests")
        reader = await anyio.to_thread.run_sync(
            functools.partial(open_existing, path, readonly=True)
        )
        return OpenedJournal(reader, None, created=False, ingested=0)
    held, journal = await anyio.to_thread.run_sync(
        functools.partial(_lock_and_open, path, inputs=requests is not None, exclusive=exclusive)
    )
    try:
        if journal is not None:
            try:
                ingested = 0 if requests is None else await ingest(journal, requests, endpoint)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(journal.close)
                raise
            return OpenedJournal(journal, held, created=False, ingested=ingested)
        assert requests is not None
        journal, ingested = await _create(path, requests, endpoint)
        return OpenedJournal(journal, held, created=True, ingested=ingested)
    except BaseException:
        if held is not None:
            held.release()
        raise


def _lock_and_open(
    path: Path, *, inputs: bool, exclusive: bool
) -> tuple[JournalLock | None, Journal | None]:
    """Take the lock and open the journal if there is one (None: create it from inputs)."""
    if not inputs and not os.path.lexists(path):
        raise JournalNotFoundError(path)  # before the lock: a failed resume creates nothing
    if not path.parent.is_dir():
        raise JournalError(path, f"cannot create {path}: {path.parent} is not a directory")
    lock = JournalLock(path)
    held = lock if lock.acquire() else None
    if held is None and (exclusive or inputs):
        raise JournalLockedError(path)
    try:
        if os.path.lexists(path):
            return held, open_existing(path, readonly=False)
        if not inputs:
            raise JournalNotFoundError(path)  # it vanished since the check above
        return held, None
    except BaseException:
        lock.release()
        raise


async def _create(path: Path, requests: Requests, endpoint: str | None) -> tuple[Journal, int]:
    """Write a new journal beside ``path`` from the inputs, then rename it into place."""
    partial = path.with_name(path.name + ".partial")
    await anyio.to_thread.run_sync(_discard, partial)
    try:
        journal = await _call(partial, functools.partial(Journal, partial))
        try:
            ingested = await ingest(journal, requests, endpoint)
        finally:
            with anyio.CancelScope(shield=True):
                await _call(partial, journal.close)
        await anyio.to_thread.run_sync(_publish, partial, path)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_discard, partial)
        raise
    return await _call(path, functools.partial(open_existing, path, readonly=False)), ingested


def _discard(partial: Path) -> None:
    """Remove a journal that was never finished, with SQLite's side files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            partial.with_name(partial.name + suffix).unlink()


def _publish(partial: Path, path: Path) -> None:
    """Make the finished journal appear at ``path`` in one step, durably."""
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    if os.path.lexists(path):  # the lock is held: only something else put it there
        raise JournalError(path, f"{path} appeared while the journal was being written")
    os.replace(partial, path)
    with contextlib.suppress(OSError):  # not every platform can sync a directory
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


async def _call(path: Path, function: Callable[[], T]) -> T:
    """``function()`` in a worker thread, SQLite's errors named after ``path``."""
    with sqlite_errors(path):
        return await anyio.to_thread.run_sync(function)


async def ingest(journal: Journal, requests: Requests, endpoint: str | None) -> int:
    """Read every input into the journal (one transaction); returns how many were read.

    Runs before anything is uploaded, so a duplicate custom_id, a changed body or
    another job's inputs fail the call with nothing sent and the journal as it was.
    """
    path = journal.path
    generation = await _call(path, journal.begin_ingest)
    try:
        page: list[Any] = []
        position = 0
        async for item in _aiter(requests):
            page.append(prepare(item, position, endpoint))
            position += 1
            if len(page) >= _INGEST_PAGE:
                await _call(path, functools.partial(journal.ingest, generation, page))
                page = []
        if page:
            await _call(path, functools.partial(journal.ingest, generation, page))
        await _call(path, functools.partial(journal.finish_ingest, generation, complete=True))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(journal.abort_ingest)
        raise
    return position


async def _aiter(items: Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
