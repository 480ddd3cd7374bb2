"""The journal: an SQLite file holding every request, its batch, its state and its result.

A batch job outlives processes (a batch may take 24 hours), so its truth lives on disk,
and it is written *before* each remote call, never after only: a process killed at any
instant leaves an intent the next run can finish. The schema::

    meta     (key, value)                 schema version, ingest generation, job
                                          fingerprint, cancelled flag
    requests one row per request          custom_id (unique), endpoint, model, body (JSON),
                                          body_hash, tokens, inputs, size, state, chunk_id,
                                          retries, expiries, the result columns
    chunks   one row per batch file       nonce (unique), state, file and batch ids,
                                          remote status and counts
    budgets  per-model enqueued-token budget learned from ``token_limit_exceeded``
    unadopted batches of this job found on the server that could not be adopted

A request's state::

    pending ──plan──► queued (chunk_id = its chunk) ──result──► done (final: ok or error)
       ▲                 │
       └─────────────────┘  retryable error (budget left), missing line, expired,
                            token_limit_exceeded, batch failed, cancelled before create

A chunk's state (each arrow is one committed transaction; the remote call follows it)::

    uploading ─file id─► uploaded ─intent─► creating ─batch id─► submitted
        │ (crash: re-upload)                  │ (crash: find by nonce in batches.list)
                                                                     │ terminal status
    collected ◄─missing requeued─ collecting ◄───────────────────────┘
    requeued (token_limit_exceeded) · failed (validation) · abandoned (cancelled before create)

Every update of a request names the chunk it expects the request in and ``state =
'queued'``, so replaying a chunk's collection after a crash changes nothing twice, and a
stray line from an older batch cannot overwrite a newer answer.

**The main file alone is the record wherever the server is changed.** A driving
connection runs in WAL mode, and before each remote call that changes something (an
upload, a ``batches.create``, a cancel, a file deletion) the runner calls `sync`:
``wal_checkpoint(TRUNCATE)`` copies every commit into the main file, syncs it and empties
the ``-wal``. So ``job.db`` alone holds every intent the server has acted on, and losing
``job.db-wal`` loses only commits since the last change on the server (a poll's status,
part of a collection: replayed from the batch's files, which are deleted only after a
sync). Why there, and not after every commit or with a rollback journal: a run commits
about ten times a batch (each state, each page of 1,000 results, each status change)
but syncs three times (before the upload and the create, and once its results are in,
before they are handed out and its files deleted), and every sync is an fsync or two;
on 20,000 requests in 100 batches that is 302 syncs instead of 1,003.
A rollback journal (``DELETE``, ``synchronous=FULL``) would sync on every commit, hold
readers off while it commits, and let a large transaction (the ingest of 200,000
requests) spill into the main file before it commits, so that a kill during it leaves a
main file only the hot ``-journal`` can repair; under WAL the main file changes only
during a checkpoint. A clean close switches the file back to ``journal_mode=DELETE``, so
at rest it is one self-contained file that a read-only opener reads without creating a
``-wal`` or ``-shm``. Measured costs: ``docs/batch.md``.

All methods are blocking and short; the runner calls them through one worker thread at
a time. Opening, validating and creating a journal for a job is `_open`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._errors import (
    DuplicateCustomIdError,
    JournalCorruptError,
    JournalError,
    JournalMismatchError,
)
from ._fingerprint import Fingerprint, fingerprint_of
from ._lines import LineOutcome, missing_error
from ._split import PreparedRequest, RowSize, line_prefix, take
from ._types import BatchLimits, BatchLineError, BatchResult, ChunkStatus, JobStatus

__all__ = ["ACTIVE_CHUNK_STATES", "Chunk", "Journal", "sqlite_error", "sqlite_errors", "wal_path"]

logger = logging.getLogger("ratelimit_llm.batch")

SCHEMA_VERSION = "1"

#: Chunk states whose lines are (or may be) on the server.
ACTIVE_CHUNK_STATES = ("uploading", "uploaded", "creating", "submitted", "collecting")

_TABLES = frozenset({"meta", "requests", "chunks", "budgets"})

# SQLite's primary result codes for a damaged file.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    custom_id TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    inputs INTEGER NOT NULL,
    size INTEGER NOT NULL,
    seen_gen INTEGER NOT NULL,
    seen_pos INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    chunk_id INTEGER,
    retries INTEGER NOT NULL DEFAULT 0,
    expiries INTEGER NOT NULL DEFAULT 0,
    ok INTEGER,
    status_code INTEGER,
    response TEXT,
    error TEXT,
    usage TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state, endpoint, model, id);
CREATE INDEX IF NOT EXISTS requests_by_chunk ON requests (chunk_id, state);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    nonce TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    input_file_id TEXT,
    batch_id TEXT UNIQUE,
    remote_status TEXT,
    output_file_id TEXT,
    error_file_id TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    files_deleted INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS budgets (
    model TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS unadopted (batch_id TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""

# Added after the first journals were written; a writer adds it to an older journal.
_LATER_TABLES = (
    "CREATE TABLE IF NOT EXISTS unadopted (batch_id TEXT PRIMARY KEY, reason TEXT NOT NULL)"
)

_UPSERT = """
INSERT INTO requests
    (custom_id, endpoint, model, body, body_hash, tokens, inputs, size, seen_gen, seen_pos)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (custom_id) DO UPDATE SET seen_gen = excluded.seen_gen, seen_pos = excluded.seen_pos
WHERE requests.body_hash = excluded.body_hash AND requests.seen_gen != excluded.seen_gen
"""

_DONE_COLUMNS = "id, custom_id, ok, response, error, usage, batch_id"


def wal_path(path: Path) -> Path:
    """SQLite's write-ahead log beside ``path``."""
    return path.with_name(path.name + "-wal")


def sqlite_error(path: Path, exc: sqlite3.Error) -> JournalError:
    """A typed error naming ``path`` for what SQLite raised while using the journal."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return JournalCorruptError(path, f"damaged (SQLite: {exc})")
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return JournalError(
            path, f"{path} stayed locked by another connection for 30 s ({exc}); try again"
        )
    return JournalError(path, f"SQLite failed on {path}: {exc}")


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn what SQLite raises about the file into `sqlite_error`'s typed error.

    An ``IntegrityError`` or ``ProgrammingError`` is a bug in the SQL, not a fact about
    the file: it passes through as it is.
    """
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
            raise
        raise sqlite_error(path, exc) from exc


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that never writes a byte (nor creates a ``-wal`` or ``-shm``).

    A file last closed in WAL mode whose ``-wal`` is gone (copied alone, or left by a
    process that died) cannot be read through SQLite's shared memory without creating
    it; no driver holds such a file (a driver always has its ``-wal``), so it is opened
    as immutable instead.
    """
    uri = path.absolute().as_uri() + "?mode=ro"
    with open(path, "rb") as handle:
        header = handle.read(20)
    if header[18:20] == b"\x02\x02" and not wal_path(path).exists():
        uri += "&immutable=1"
    return sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
    )


@dataclass
class _Ingest:
    """What one ingest learned so far (see `Journal.finish_ingest`)."""

    generation: int
    rows_before: int
    last_id_before: int
    fingerprint: Fingerprint = field(default_factory=Fingerprint)
    changed: int = 0
    first_changed: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One batch file's row in the journal."""

    id: int
    endpoint: str
    model: str
    nonce: str
    state: str
    requests: int
    tokens: int
    bytes: int
    input_file_id: str | None
    batch_id: str | None
    remote_status: str | None
    output_file_id: str | None
    error_file_id: str | None
    completed: int
    failed: int
    files_deleted: bool

    @property
    def file_name(self) -> str:
        """The upload's file name; it carries the nonce, so an orphan can be recognised."""
        return f"ratelimit-llm-{self.nonce}.jsonl"


_CHUNK_COLUMNS = (
    "id, endpoint, model, nonce, state, requests, tokens, bytes, input_file_id, batch_id, "
    "remote_status, output_file_id, error_file_id, completed, failed, files_deleted"
)


def _chunk(row: Sequence[Any]) -> Chunk:
    values = list(row)
    values[-1] = bool(values[-1])
    return Chunk(*values)


def _error_json(error: BatchLineError) -> str:
    return json.dumps(
        {
            "status_code": error.status_code,
            "code": error.code,
            "message": error.message,
            "retryable": error.retryable,
            "type": error.type,
        }
    )


def _error_from_json(text: str) -> BatchLineError:
    data = json.loads(text)
    return BatchLineError(
        status_code=data.get("status_code"),
        code=data.get("code"),
        message=data.get("message") or "",
        retryable=bool(data.get("retryable")),
        type=data.get("type"),
    )


def _usage_tokens(usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    from .._estimate import cost_from_usage

    cost = cost_from_usage(usage)
    if cost is None:
        return None, None

    def whole(value: float | None) -> int | None:
        return None if value is None or not math.isfinite(value) else int(value)

    return whole(cost.input_tokens), whole(cost.output_tokens)


class Journal:
    """An open journal file (see the module docstring for its schema and states).

    ``Journal(path)`` opens the file as it is, creating the schema in a new or empty
    file: the low-level door, for tests and for `_open`, which validates a journal before
    it lets anything write to it. ``create=False`` refuses a file without a valid
    journal (`JournalCorruptError`, `JournalMismatchError`) and checks SQLite's pages;
    ``readonly=True`` (implies ``create=False``) never writes a byte.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._ingest: _Ingest | None = None
        self._unsynced = False
        if readonly:
            self._db = _connect_readonly(self.path)
        else:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        try:
            if readonly or not create:
                self._validate()
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=OFF")
                if create:
                    self._create_schema()
                elif self._meta("job") is None or not self._has_table("unadopted"):
                    # Written before jobs had fingerprints: bring it up to date, once.
                    with self._transaction():
                        self._db.execute(_LATER_TABLES)
                        if self._meta("job") is None:
                            self._set_meta("job", self._fingerprint_of_rows())
        except BaseException:
            self._db.close()
            raise

    def _create_schema(self) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            version = self._meta("version")
            if version is None:
                self._set_meta("version", SCHEMA_VERSION)
                self._set_meta("generation", "0")
                self._set_meta("created", repr(time.time()))
            elif version != SCHEMA_VERSION:
                raise self._version_error(version)

    def _validate(self) -> None:
        """Refuse what is not a whole journal; reads only."""
        tables = {
            str(row[0])
            for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            raise JournalCorruptError(self.path, "an SQLite database with no tables")
        if not _TABLES.issubset(tables):
            found = ", ".join(sorted(tables))
            raise JournalCorruptError(
                self.path, f"an SQLite database without the journal's tables (it has {found})"
            )
        version = self._meta("version")
        if version is None:
            raise JournalCorruptError(self.path, "a journal without its schema version")
        if version != SCHEMA_VERSION:
            raise self._version_error(version)
        if self._meta("job") is None and self.count() == 0:
            # `_open` writes a journal whole (requests and job record in one commit) and
            # renames it into place, so this is never a job that was just starting.
            raise JournalCorruptError(self.path, "a journal that holds no job (no job record)")
        problems = [str(row[0]) for row in self._db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise JournalCorruptError(
                self.path, f"damaged (SQLite's check: {'; '.join(problems)[:500]})"
            )

    def _has_table(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def _version_error(self, version: str) -> JournalMismatchError:
        return JournalMismatchError(
            self.path,
            f"{self.path} has journal schema {version}; this version of ratelimit-llm reads "
            f"{SCHEMA_VERSION}: use the version that wrote it",
        )

    # ---------------------------------------------------------------- plumbing

    def close(self) -> None:
        """Close the connection (rolling back an ingest left open).

        A writer leaves the file in rollback mode, one self-contained file at rest, when
        it is the last connection; otherwise SQLite's last connection tidies up.
        """
        if self._ingest is not None:
            self.abort_ingest()
        if not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                self.sync()
                self._db.execute("PRAGMA busy_timeout = 0")  # another connection: leave it
                self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.close()

    class _Txn(contextlib.AbstractContextManager[sqlite3.Connection]):
        def __init__(self, journal: Journal) -> None:
            self.journal = journal

        def __enter__(self) -> sqlite3.Connection:
            self.journal._db.execute("BEGIN IMMEDIATE")
            return self.journal._db

        def __exit__(self, kind: object, value: object, tb: object) -> None:
            if kind is None:
                self.journal._commit()
            else:
                self.journal._db.execute("ROLLBACK")

    def _transaction(self) -> Journal._Txn:
        return Journal._Txn(self)

    # -- for a layer that keeps its own columns and tables in this file ----------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for a layer that keeps more of the same job in this file.

        `ratelimit_llm.runs` records online answers in the same journal (one job, one
        file): it adds columns and reads rows through this connection, always from the
        one worker thread at a time the runner's ``db`` gives, and writes only inside
        `transaction`.
        """
        return self._db

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """``with journal.transaction() as db:``: one ``BEGIN IMMEDIATE`` ... ``COMMIT``
        (rolled back on an error), counted for the next `sync` like every other commit."""
        return self._transaction()

    def _commit(self) -> None:
        self._db.execute("COMMIT")
        self._unsynced = True

    def sync(self) -> bool:
        """Make the main file alone hold every commit so far: call before a remote action.

        Returns whether it checkpointed (False: nothing to do, or a reader held it off).

        Copies every committed page into the main file (``wal_checkpoint(TRUNCATE)``),
        syncs it and empties the ``-wal``; nothing to do if nothing was committed since.
        A reader in another process holding an old snapshot makes SQLite wait (30 s); if
        it still holds it, the commits stay in the ``-wal`` (safe while the ``-wal`` stays
        beside the file) until the next sync, and a warning says so.
        """
        if self.readonly or not self._unsynced:
            return False
        busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            logger.warning(
                "%s: a reader kept the last commits from being copied into the main file; "
                "they stay in %s until the next sync",
                self.path,
                wal_path(self.path).name,
            )
            return False
        self._unsynced = False
        return True

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _fingerprint_of_rows(self) -> str:
        return fingerprint_of(self._db.execute("SELECT custom_id, body_hash FROM requests"))

    # ---------------------------------------------------------------- ingest

    def begin_ingest(self) -> int:
        """Open the ingest transaction; returns this ingest's generation number.

        The whole ingest is one transaction: a duplicate found on the last page, a
        mismatch, or a kill leaves the journal exactly as it was.
        """
        self._db.execute("BEGIN IMMEDIATE")
        generation = int(self._meta("generation") or "0") + 1
        rows, last_id = self._db.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM requests"
        ).fetchone()
        self._ingest = _Ingest(generation, int(rows), int(last_id))
        return generation

    def ingest(self, generation: int, requests: Sequence[PreparedRequest]) -> None:
        """Add (or, on resume, recognise) a page of requests.

        :raises DuplicateCustomIdError: a custom_id repeats in the inputs. The ingest is
            rolled back. (A body the journal holds differently is reported by
            `finish_ingest`, once it is known whether the inputs are this job at all.)
        """
        state = self._ingest
        assert state is not None and state.generation == generation, "no ingest is open"
        for request in requests:
            state.fingerprint.add(request.custom_id, request.body_hash)
        cursor = self._db.executemany(
            _UPSERT,
            [
                (
                    r.custom_id,
                    r.endpoint,
                    r.model,
                    r.body,
                    r.body_hash,
                    r.tokens,
                    r.inputs,
                    r.size,
                    generation,
                    r.position,
                )
                for r in requests
            ],
        )
        if cursor.rowcount == len(requests):
            return
        for request in requests:  # the slow path: find the offenders
            row = self._db.execute(
                "SELECT seen_gen, seen_pos, body_hash FROM requests WHERE custom_id = ?",
                (request.custom_id,),
            ).fetchone()
            if row is None or (row[0], row[1]) == (generation, request.position):
                continue
            if row[0] == generation:
                self.abort_ingest()
                raise DuplicateCustomIdError(request.custom_id, changed_body=False)
            if row[2] != request.body_hash:
                state.changed += 1
                if state.first_changed is None:
                    state.first_changed = request.custom_id

    def finish_ingest(self, generation: int, *, complete: bool) -> int:
        """Commit the ingest; returns how many requests the journal holds.

        With ``complete`` (the inputs were read to their end), the inputs must be this
        journal's job: every request the journal holds, with the same body, and perhaps
        new ones (which extend the job). Resuming must not submit work the caller has
        withdrawn, nor silently drop it. The job's fingerprint is then the inputs'.

        :raises JournalMismatchError: (and rolls back) the inputs share no request with
            the journal (another job's journal), or leave some of its requests out.
        :raises DuplicateCustomIdError: (and rolls back) an input changed a request's body.
        """
        state = self._ingest
        assert state is not None and state.generation == generation, "no ingest is open"
        if complete:
            stale, first_stale = self._db.execute(
                "SELECT COUNT(*), MIN(custom_id) FROM requests WHERE seen_gen != ?", (generation,)
            ).fetchone()
            if stale:
                matched = self._db.execute(
                    "SELECT COUNT(*) FROM requests WHERE seen_gen = ? AND id <= ?",
                    (generation, state.last_id_before),
                ).fetchone()[0]
                job = self._meta("job") or "unknown"
                self.abort_ingest()
                if not matched:
                    raise JournalMismatchError(
                        self.path,
                        f"{self.path} is the journal of another job: none of its "
                        f"{state.rows_before:,} requests is among these inputs (its job "
                        f"{job[:16]}, these inputs' {state.fingerprint.hexdigest()[:16]}); "
                        "nothing was sent. Use a new journal path for these inputs, or pass "
                        "the inputs this journal was made for (or requests=None to resume it)",
                    )
                if state.first_changed is not None:
                    raise DuplicateCustomIdError(state.first_changed, changed_body=True)
                raise JournalMismatchError(
                    self.path,
                    f"{self.path} holds {stale:,} request(s) the inputs do not name "
                    f"(e.g. {first_stale!r}); resume with the same inputs, with requests=None, "
                    "or use a new journal",
                )
            job = state.fingerprint.hexdigest()
        else:
            job = self._fingerprint_of_rows()
        previous = self._meta("job")
        if previous is not None and previous != job:
            logger.info(
                "%s: the inputs extend the job (%s -> %s)", self.path, previous[:16], job[:16]
            )
        self._set_meta("job", job)
        self._set_meta("generation", str(generation))
        self._ingest = None
        self._commit()
        return self.count()

    def abort_ingest(self) -> None:
        """Roll the ingest back (idempotent)."""
        if self._ingest is not None:
            self._ingest = None
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    # ---------------------------------------------------------------- the job

    def job_fingerprint(self) -> str:
        """The fingerprint of the job's requests (`Fingerprint`), as its batches carry it."""
        job = self._meta("job")
        return job if job is not None else self._fingerprint_of_rows()

    def known_batches(self) -> tuple[set[str], dict[str, int]]:
        """Batch ids the journal knows (recorded on a chunk, or found unadoptable), and
        the nonce of every chunk whose batch id is not recorded yet (to its chunk id)."""
        ids: set[str] = set()
        unrecorded: dict[str, int] = {}
        for chunk_id, batch_id, nonce in self._db.execute("SELECT id, batch_id, nonce FROM chunks"):
            if batch_id is None:
                unrecorded[str(nonce)] = int(chunk_id)
            else:
                ids.add(str(batch_id))
        ids.update(str(row[0]) for row in self._db.execute("SELECT batch_id FROM unadopted"))
        return ids, unrecorded

    def note_unadopted(self, batch_id: str, reason: str) -> None:
        """Remember a batch of this job that cannot be adopted, so it is not read again."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO unadopted (batch_id, reason) VALUES (?, ?) "
                "ON CONFLICT (batch_id) DO NOTHING",
                (batch_id, reason),
            )

    def chunk_fingerprint(self, chunk_id: int) -> str:
        """The fingerprint of the requests queued in a chunk (what its file holds)."""
        return fingerprint_of(
            self._db.execute(
                "SELECT custom_id, body_hash FROM requests WHERE chunk_id = ? AND state = 'queued'",
                (chunk_id,),
            )
        )

    def adopt_chunk(
        self,
        *,
        batch_id: str,
        nonce: str,
        input_file_id: str,
        remote_status: str,
        completed: int,
        failed: int,
        members: Sequence[tuple[str, str]],
    ) -> int:
        """Record a batch found on the server as a submitted chunk of its pending requests.

        ``members`` are the ``(custom_id, body_hash)`` pairs its input file holds; those
        still pending with that body are queued in the new chunk (one claimed by a newer
        batch, or answered, is not). Returns how many were claimed; none: no chunk.
        """
        with self._transaction() as db:
            now = time.time()
            cursor = db.execute(
                "INSERT INTO chunks (endpoint, model, nonce, state, requests, tokens, bytes, "
                "input_file_id, batch_id, remote_status, completed, failed, created, updated) "
                "VALUES ('', '', ?, 'submitted', 0, 0, 0, ?, ?, ?, ?, ?, ?, ?)",
                (nonce, input_file_id, batch_id, remote_status, completed, failed, now, now),
            )
            chunk_id = cursor.lastrowid
            claimed = db.executemany(
                "UPDATE requests SET state = 'queued', chunk_id = ? "
                "WHERE custom_id = ? AND body_hash = ? AND state = 'pending'",
                [(chunk_id, custom_id, digest) for custom_id, digest in members],
            ).rowcount
            if claimed <= 0:
                db.execute("DELETE FROM chunks WHERE id = ?", (chunk_id,))
                return 0
            endpoint, model, tokens, size = db.execute(
                "SELECT MIN(endpoint), MIN(model), SUM(tokens), SUM(size) FROM requests "
                "WHERE chunk_id = ? AND state = 'queued'",
                (chunk_id,),
            ).fetchone()
            db.execute(
                "UPDATE chunks SET endpoint = ?, model = ?, requests = ?, tokens = ?, bytes = ? "
                "WHERE id = ?",
                (endpoint, model, claimed, tokens, size, chunk_id),
            )
        return claimed

    # ---------------------------------------------------------------- flags

    def cancelled(self) -> bool:
        """Whether `cancel` stopped this job (a later `run` clears it)."""
        return self._meta("cancelled") == "1"

    def set_cancelled(self, value: bool) -> None:
        with self._transaction():
            self._set_meta("cancelled", "1" if value else "0")

    # ---------------------------------------------------------------- planning

    def pending_groups(self) -> list[tuple[str, str]]:
        """The (endpoint, model) pairs that have pending requests."""
        rows = self._db.execute(
            "SELECT DISTINCT endpoint, model FROM requests WHERE state = 'pending'"
        ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    def queued_tokens(self, model: str) -> int:
        """Estimated tokens of ``model`` in chunks that may be on the server."""
        marks = ",".join("?" * len(ACTIVE_CHUNK_STATES))
        row = self._db.execute(
            f"SELECT COALESCE(SUM(tokens), 0), COUNT(*) FROM chunks "
            f"WHERE model = ? AND state IN ({marks})",
            (model, *ACTIVE_CHUNK_STATES),
        ).fetchone()
        return int(row[0])

    def active_count(self, model: str) -> int:
        marks = ",".join("?" * len(ACTIVE_CHUNK_STATES))
        row = self._db.execute(
            f"SELECT COUNT(*) FROM chunks WHERE model = ? AND state IN ({marks})",
            (model, *ACTIVE_CHUNK_STATES),
        ).fetchone()
        return int(row[0])

    def budget(self, model: str, configured: float) -> float:
        """The model's enqueued-token budget: the configured one or the learned, smaller."""
        row = self._db.execute("SELECT tokens FROM budgets WHERE model = ?", (model,)).fetchone()
        return configured if row is None else min(configured, float(row[0]))

    def plan_chunk(
        self, endpoint: str, model: str, limits: BatchLimits, nonce: str
    ) -> Chunk | None:
        """Put the next pending requests of (endpoint, model) that fit into a new chunk.

        Returns None when nothing fits now (the model's token budget is taken by chunks
        in flight). Only the small columns are read; bodies stay on disk.
        """
        with self._transaction() as db:
            queued = self.queued_tokens(model)
            active = self.active_count(model)
            room = self.budget(model, limits.budget_for(model)) - queued
            rows = db.execute(
                "SELECT id, tokens, inputs, size FROM requests "
                "WHERE state = 'pending' AND endpoint = ? AND model = ? ORDER BY id LIMIT ?",
                (endpoint, model, limits.max_requests),
            ).fetchall()
            if not rows:
                return None
            count = take(
                (RowSize(r[1], r[2], r[3]) for r in rows),
                limits,
                endpoint=endpoint,
                token_room=room,
                force_first=active == 0,
            )
            if count == 0:
                return None
            chosen = rows[:count]
            now = time.time()
            cursor = db.execute(
                "INSERT INTO chunks (endpoint, model, nonce, state, requests, tokens, bytes, "
                "created, updated) VALUES (?, ?, ?, 'uploading', ?, ?, ?, ?, ?)",
                (
                    endpoint,
                    model,
                    nonce,
                    count,
                    sum(r[1] for r in chosen),
                    sum(r[3] for r in chosen),
                    now,
                    now,
                ),
            )
            chunk_id = cursor.lastrowid
            # The chosen rows are a prefix, in id order, of this group's pending rows.
            db.execute(
                "UPDATE requests SET state = 'queued', chunk_id = ? "
                "WHERE state = 'pending' AND endpoint = ? AND model = ? AND id <= ?",
                (chunk_id, endpoint, model, chosen[-1][0]),
            )
        assert chunk_id is not None
        return self.chunk(chunk_id)

    def write_chunk_file(self, chunk_id: int, out: IO[bytes]) -> int:
        """Stream the chunk's JSONL to ``out`` (row by row); returns the lines written."""
        lines = 0
        cursor = self._db.execute(
            "SELECT custom_id, endpoint, body FROM requests "
            "WHERE chunk_id = ? AND state = 'queued' ORDER BY id",
            (chunk_id,),
        )
        buffer: list[str] = []
        for custom_id, endpoint, body in cursor:
            buffer.append(f"{line_prefix(custom_id, endpoint)}{body}}}\n")
            lines += 1
            if len(buffer) >= 1_000:
                out.write("".join(buffer).encode())
                buffer.clear()
        out.write("".join(buffer).encode())
        return lines

    # ---------------------------------------------------------------- chunks

    def chunk(self, chunk_id: int) -> Chunk:
        row = self._db.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id = ?", (chunk_id,)
        ).fetchone()
        if row is None:
            raise KeyError(chunk_id)
        return _chunk(row)

    def chunks(self, states: Iterable[str] | None = None) -> list[Chunk]:
        if states is None:
            rows = self._db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY id").fetchall()
        else:
            wanted = tuple(states)
            marks = ",".join("?" * len(wanted))
            rows = self._db.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE state IN ({marks}) ORDER BY id",
                wanted,
            ).fetchall()
        return [_chunk(row) for row in rows]

    def update_chunk(self, chunk_id: int, **fields: object) -> None:
        """Set columns of a chunk in one commit (the runner's intents and records)."""
        names = sorted(fields)
        assignments = ", ".join(f"{name} = ?" for name in names)
        with self._transaction() as db:
            db.execute(
                f"UPDATE chunks SET {assignments}, updated = ? WHERE id = ?",
                (*(fields[name] for name in names), time.time(), chunk_id),
            )

    def release_chunk(self, chunk_id: int, state: str) -> int:
        """Put every still-queued line of a chunk back to pending; the chunk ends in ``state``.

        For a batch that failed (validation, token limit) or was never created. Returns
        how many lines went back.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE requests SET state = 'pending', chunk_id = NULL "
                "WHERE chunk_id = ? AND state = 'queued'",
                (chunk_id,),
            )
            db.execute(
                "UPDATE chunks SET state = ?, updated = ? WHERE id = ?",
                (state, time.time(), chunk_id),
            )
        return cursor.rowcount

    # ---------------------------------------------------------------- results

    def apply(
        self, chunk_id: int, batch_id: str, outcomes: Sequence[LineOutcome], limits: BatchLimits
    ) -> int:
        """Record a page of result lines of one chunk; returns how many matched a request.

        A line matches only a request queued in this chunk, so a duplicate line, a line
        for an unknown custom_id or a replay after a crash changes nothing.
        """
        ok_rows: list[tuple[Any, ...]] = []
        final_rows: list[tuple[Any, ...]] = []
        retry_rows: list[tuple[Any, ...]] = []
        expired_rows: list[tuple[Any, ...]] = []
        for outcome in outcomes:
            if outcome.kind == "ok":
                usage = outcome.usage
                inp, out = _usage_tokens(usage)
                ok_rows.append(
                    (
                        outcome.status_code,
                        json.dumps(outcome.response, ensure_ascii=False),
                        None if usage is None else json.dumps(usage),
                        inp,
                        out,
                        batch_id,
                        outcome.custom_id,
                        chunk_id,
                    )
                )
                continue
            assert outcome.error is not None
            row = (
                outcome.status_code,
                _error_json(outcome.error),
                batch_id,
                outcome.custom_id,
                chunk_id,
            )
            if outcome.kind == "final":
                final_rows.append(row)
            elif outcome.kind == "retry":
                retry_rows.append(row)
            else:
                expired_rows.append(row)
        matched = 0
        with self._transaction() as db:
            if ok_rows:
                matched += db.executemany(
                    "UPDATE requests SET state = 'done', ok = 1, status_code = ?, response = ?, "
                    "usage = ?, input_tokens = ?, output_tokens = ?, error = NULL, batch_id = ? "
                    "WHERE custom_id = ? AND chunk_id = ? AND state = 'queued'",
                    ok_rows,
                ).rowcount
            if final_rows:
                matched += db.executemany(
                    "UPDATE requests SET state = 'done', ok = 0, status_code = ?, error = ?, "
                    "batch_id = ? WHERE custom_id = ? AND chunk_id = ? AND state = 'queued'",
                    final_rows,
                ).rowcount
            if retry_rows:
                matched += db.executemany(
                    self._requeue_sql("retries"),
                    [(limits.max_retries, *row) for row in retry_rows],
                ).rowcount
            if expired_rows:
                matched += db.executemany(
                    self._requeue_sql("expiries"),
                    [(limits.max_expired_resubmits, *row) for row in expired_rows],
                ).rowcount
        return matched

    @staticmethod
    def _requeue_sql(counter: str) -> str:
        # SQLite evaluates every right-hand side on the row's old values, so the CASEs
        # all see the counter before its increment.
        return (
            f"UPDATE requests SET "
            f"state = CASE WHEN {counter} < ?1 THEN 'pending' ELSE 'done' END, "
            f"ok = CASE WHEN {counter} < ?1 THEN NULL ELSE 0 END, "
            f"chunk_id = CASE WHEN {counter} < ?1 THEN NULL ELSE chunk_id END, "
            f"{counter} = {counter} + 1, status_code = ?2, error = ?3, batch_id = ?4 "
            f"WHERE custom_id = ?5 AND chunk_id = ?6 AND state = 'queued'"
        )

    def finish_chunk(
        self, chunk_id: int, batch_id: str, limits: BatchLimits, *, expired: bool
    ) -> int:
        """Requeue the chunk's lines found in neither file; mark it collected.

        Returns how many were missing. For an expired or cancelled batch a missing line
        is an expiry (not charged to the retry budget), otherwise a missing result.
        """
        counter, bound = (
            ("expiries", limits.max_expired_resubmits)
            if expired
            else ("retries", limits.max_retries)
        )
        error = _error_json(missing_error(expired))
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE requests SET "
                f"state = CASE WHEN {counter} < ?1 THEN 'pending' ELSE 'done' END, "
                f"ok = CASE WHEN {counter} < ?1 THEN NULL ELSE 0 END, "
                f"chunk_id = CASE WHEN {counter} < ?1 THEN NULL ELSE chunk_id END, "
                f"{counter} = {counter} + 1, status_code = NULL, error = ?2, batch_id = ?3 "
                f"WHERE chunk_id = ?4 AND state = 'queued'",
                (bound, error, batch_id, chunk_id),
            )
            db.execute(
                "UPDATE chunks SET state = 'collected', updated = ? WHERE id = ?",
                (time.time(), chunk_id),
            )
        return cursor.rowcount

    def shrink_budget(self, model: str, configured: float, in_flight: float, *, alone: bool) -> int:
        """Halve ``model``'s budget after ``token_limit_exceeded``; returns the failure streak.

        ``in_flight`` is what was queued when the batch failed (the failed batch
        included): the server's limit is below it, so half of it is the new guess. The
        streak counts failures of a batch that was alone in the queue.
        """
        current = min(self.budget(model, configured), max(in_flight, 1.0))
        with self._transaction() as db:
            db.execute(
                "INSERT INTO budgets (model, tokens, failures) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (model) DO UPDATE SET tokens = excluded.tokens, "
                "failures = CASE WHEN ?3 THEN budgets.failures + 1 ELSE 0 END",
                (model, max(current / 2, 1.0), 1 if alone else 0),
            )
            row = db.execute("SELECT failures FROM budgets WHERE model = ?", (model,)).fetchone()
        return int(row[0])

    def reset_failures(self, model: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE budgets SET failures = 0 WHERE model = ?", (model,))

    # ---------------------------------------------------------------- reading

    def done_results(
        self,
        *,
        chunk_id: int | None = None,
        collected_only: bool = False,
        after: int = 0,
        limit: int = 1_000,
    ) -> tuple[list[BatchResult], int]:
        """A page of final results (by request id, after ``after``); and the last id read.

        ``chunk_id``: only those a chunk answered. ``collected_only``: only those of
        chunks whose collection finished (what a resume has to hand over first).
        """
        where = "state = 'done' AND id > ?"
        params: list[Any] = [after]
        if chunk_id is not None:
            where += " AND chunk_id = ?"
            params.append(chunk_id)
        if collected_only:
            where += " AND chunk_id IN (SELECT id FROM chunks WHERE state = 'collected')"
        rows = self._db.execute(
            f"SELECT {_DONE_COLUMNS} FROM requests WHERE {where} ORDER BY id LIMIT ?",
            (*params, limit),
        ).fetchall()
        results = [
            BatchResult(
                custom_id=custom_id,
                response=json.loads(response) if ok and response is not None else None,
                error=None if ok else _error_from_json(error or "{}"),
                batch_id=batch_id,
                usage=json.loads(usage) if usage else None,
            )
            for _, custom_id, ok, response, error, usage, batch_id in rows
        ]
        return results, (int(rows[-1][0]) if rows else after)

    def iter_done(self, **filters: Any) -> Iterator[list[BatchResult]]:
        """Every final result matching ``filters`` (see `done_results`), page by page."""
        after = 0
        while True:
            page, after = self.done_results(after=after, **filters)
            if not page:
                return
            yield page

    def count(self, state: str | None = None) -> int:
        if state is None:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
        row = self._db.execute("SELECT COUNT(*) FROM requests WHERE state = ?", (state,)).fetchone()
        return int(row[0])

    def status(self) -> JobStatus:
        """Counts by state and every chunk, from the journal alone."""
        counts = dict(
            self._db.execute(
                "SELECT CASE WHEN state = 'done' THEN 'done' || ok ELSE state END, COUNT(*) "
                "FROM requests GROUP BY 1"
            ).fetchall()
        )
        chunks = tuple(
            ChunkStatus(
                chunk=c.id,
                endpoint=c.endpoint,
                model=c.model,
                state=c.state,
                batch_id=c.batch_id,
                remote_status=c.remote_status,
                requests=c.requests,
                completed=c.completed,
                failed=c.failed,
            )
            for c in self.chunks()
        )
        return JobStatus(
            journal=self.path,
            total=sum(counts.values()),
            pending=counts.get("pending", 0),
            queued=counts.get("queued", 0),
            succeeded=counts.get("done1", 0),
            failed=counts.get("done0", 0),
            cancelled=self.cancelled(),
            chunks=chunks,
        )

    def usage_by_model(self) -> list[tuple[str, int, int, int]]:
        """(model, answered requests, input tokens, output tokens) over final results."""
        rows = self._db.execute(
            "SELECT model, COUNT(*), COALESCE(SUM(input_tokens), 0), "
            "COALESCE(SUM(output_tokens), 0) FROM requests WHERE state = 'done' "
            "GROUP BY model ORDER BY model"
        ).fetchall()
        return [(str(m), int(n), int(i), int(o)) for m, n, i, o in rows]
