"""The run's part of the job's journal: online answers beside the Batch API's, one file.

A job is one journal (`batch._journal.Journal`): its ``requests`` table holds every
request, its state and its final answer, whichever path gave it. A run adds four
columns to that table (once, on first use; older journals are brought up to date) and
one table::

    requests.via       'online' | 'batch': the path that answered
    requests.sends     how many times the online driver dispatched it (over all runs)
    requests.nano_usd  its price (nano-dollars) once done; while in flight, its reservation
    requests.out_seq   its place in the output file (set when its answer is journaled)
    run_chunks         (chunk_id, nano_usd): what each batch on the server may cost

and ``meta`` keys ``run_shard``, ``run_out_path``, ``run_out_bytes``, ``run_out_seq``
(the output's fsync'd cursor) and ``run_unresolved_nano``.

One more request state beside the batch path's ``pending``, ``queued`` and ``done``::

    pending ──claim (committed before the send)──► online ──answer──► done
       ▲                                             │
       └──── a new run finds it still 'online' ──────┘  (the call was cut by a kill:
             its reservation stays spent, ``sends`` says it went out before)

Every claim names ``state = 'pending'`` and every answer ``state = 'online'``, so a
request is claimed by one driver at a time and answered once; the batch path's updates
name ``state = 'queued'`` and their chunk, so the two paths never write the same row.

All methods are blocking and short; the run calls them through the batch runner's
``db`` (one worker thread at a time, on the journal's one connection).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._classify import classify_error
from ..batch._cost import PriceTable
from ..batch._errors import JournalMismatchError
from ..batch._journal import ACTIVE_CHUNK_STATES, Journal
from ._prices import nano_of_usage, to_usd
from ._types import RunError, RunResult, Via

__all__ = ["Answer", "Done", "Pending", "RunJournal", "Totals", "error_json", "line_of"]

_COLUMNS = (
    ("via", "TEXT"),
    ("sends", "INTEGER NOT NULL DEFAULT 0"),
    ("nano_usd", "INTEGER"),
    ("out_seq", "INTEGER"),
)

_META_SET = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

_CLAIM = (
    "UPDATE requests SET state = 'online', sends = sends + 1, nano_usd = ? "
    "WHERE id = ? AND state = 'pending'"
)
_ANSWER = (
    "UPDATE requests SET state = 'done', ok = ?, status_code = ?, response = ?, error = ?, "
    "usage = ?, input_tokens = ?, output_tokens = ?, batch_id = NULL, via = 'online', "
    "nano_usd = ?, out_seq = ? WHERE id = ? AND state = 'online'"
)
_UNCLAIM = (
    "UPDATE requests SET state = 'pending', nano_usd = NULL WHERE id = ? AND state = 'online'"
)
_UNSEND = (
    "UPDATE requests SET state = 'pending', nano_usd = NULL, sends = sends - 1 "
    "WHERE id = ? AND state = 'online'"
)
_DONE_COLUMNS = "id, custom_id, ok, response, error, usage, batch_id, via, nano_usd, out_seq"

#: Batch-path error codes that are not HTTP statuses, and the kind they are.
_BATCH_KINDS = {
    "batch_expired": "batch_expired",
    "batch_cancelled": "batch_cancelled",
    "missing_result": "missing_result",
}


@dataclass(frozen=True, slots=True)
class Pending:
    """A request waiting for the online driver (its body stays text until it is sent)."""

    id: int
    custom_id: str
    endpoint: str
    model: str
    body: str
    tokens: int
    size: int


@dataclass(slots=True)
class Answer:
    """An online answer, ready to be journaled (``out_seq`` is given at the commit)."""

    id: int
    model: str
    tokens: int
    ok: bool
    status_code: int | None
    response: str | None
    error: str | None
    usage: str | None
    input_tokens: int | None
    output_tokens: int | None
    nano: int | None
    #: The output line, without its newline.
    line: str
    result: RunResult


@dataclass(frozen=True, slots=True)
class Done:
    """An answer the journal holds, as a result and as its output line."""

    seq: int
    line: str
    result: RunResult
    #: The request's model and estimated tokens, where the reader needs them.
    model: str | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over the journal, for the ledger and the summary."""

    total: int
    pending: int
    succeeded: int
    failed: int
    online: int
    batch: int
    resent: int
    tokens_estimated: float
    tokens_actual: float
    nano_online: int
    nano_batch: int
    nano_unresolved: int
    nano_reserved_batch: int
    failed_by_kind: dict[str, int]
    unpriced_models: tuple[str, ...]


def error_json(error: RunError) -> str:
    return json.dumps(error.as_dict(), ensure_ascii=False, separators=(",", ":"))


def _error_of(text: str | None) -> RunError:
    data = json.loads(text or "{}")
    return RunError(
        kind=str(data.get("kind") or "unknown"),
        status_code=data.get("status_code"),
        code=data.get("code"),
        message=str(data.get("message") or ""),
        retryable=bool(data.get("retryable")),
        type=data.get("type"),
    )


def line_of(
    custom_id: str,
    via: str,
    batch_id: str | None,
    response: str | None,
    error: str | None,
    usage: str | None,
) -> str:
    """One output line (no newline), from the journal's JSON texts, without re-encoding."""
    return (
        f'{{"custom_id":{json.dumps(custom_id, ensure_ascii=False)},"via":"{via}",'
        f'"batch_id":{"null" if batch_id is None else json.dumps(batch_id)},'
        f'"response":{response or "null"},"error":{error or "null"},'
        f'"usage":{usage or "null"}}}'
    )


def batch_error_kind(data: dict[str, Any]) -> str:
    """The `RunError.kind` of an error the Batch API gave (its line's status and code)."""
    code = data.get("code")
    if isinstance(code, str) and code in _BATCH_KINDS:
        return _BATCH_KINDS[code]
    status = data.get("status_code")
    if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
        info = classify_error(
            status, None, {"error": {"code": code, "message": data.get("message")}}
        )
        if info is not None:
            return info.kind.value
    return "server_error" if data.get("retryable") else "client_error"


class RunJournal:
    """The run's reads and writes on a job's `Journal` (see the module docstring)."""

    def __init__(self, journal: Journal, prices: PriceTable) -> None:
        self.journal = journal
        self.prices = prices
        self._db = journal.connection

    # ---------------------------------------------------------------- set-up

    def prepare(self) -> None:
        """Add the run's columns and table to the journal (once; idempotent)."""
        have = {str(row[1]) for row in self._db.execute("PRAGMA table_info(requests)")}
        with self.journal.transaction() as db:
            for name, kind in _COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS run_chunks "
                "(chunk_id INTEGER PRIMARY KEY, nano_usd INTEGER NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS requests_by_out_seq ON requests (out_seq)")

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, **values: str) -> None:
        with self.journal.transaction() as db:
            db.executemany(_META_SET, list(values.items()))

    def check_shard(self, shard: str | None) -> None:
        """The journal is one shard's job: a resume must name the same shard.

        :raises JournalMismatchError: another shard (or none where it had one).
        """
        recorded = self.meta("run_shard")
        wanted = shard or "-"
        if recorded is None:
            self.set_meta(run_shard=wanted)
        elif recorded != wanted:

            def shown(value: str) -> str:
                return "no shard" if value == "-" else f"shard {value}"

            raise JournalMismatchError(
                self.journal.path,
                f"{self.journal.path} is the journal of {shown(recorded)}, not "
                f"{shown(wanted)}: each shard of a job keeps its own journal; nothing was sent",
            )

    def recover(self) -> tuple[int, int]:
        """Calls an earlier run left in flight (killed) go back to pending.

        Their reservations stay spent (``run_unresolved_nano``): the server may have
        answered and billed them. Returns (requests, nano-dollars).
        """
        count, nano = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(nano_usd), 0) FROM requests WHERE state = 'online'"
        ).fetchone()
        if count:
            with self.journal.transaction() as db:
                db.execute(
                    "UPDATE requests SET state = 'pending', nano_usd = NULL WHERE state = 'online'"
                )
                self._add_unresolved(db, int(nano))
        return int(count), int(nano)

    def active_chunks(self) -> int:
        marks = ",".join("?" * len(ACTIVE_CHUNK_STATES))
        row = self._db.execute(
            f"SELECT COUNT(*) FROM chunks WHERE state IN ({marks})", ACTIVE_CHUNK_STATES
        ).fetchone()
        return int(row[0])

    def reset_failed(self) -> int:
        """Every failed request back to pending, to be sent again (``--retry-failed``).

        What a failure was charged (a call whose outcome was lost keeps its reservation)
        stays spent. Returns how many go again.
        """
        count, nano = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(nano_usd), 0) FROM requests "
            "WHERE state = 'done' AND ok = 0"
        ).fetchone()
        if count:
            with self.journal.transaction() as db:
                db.execute(
                    "UPDATE requests SET state = 'pending', ok = NULL, status_code = NULL, "
                    "response = NULL, error = NULL, usage = NULL, input_tokens = NULL, "
                    "output_tokens = NULL, batch_id = NULL, chunk_id = NULL, via = NULL, "
                    "nano_usd = NULL, out_seq = NULL, retries = 0, expiries = 0 "
                    "WHERE state = 'done' AND ok = 0"
                )
                self._add_unresolved(db, int(nano))
        return int(count)

    def _add_unresolved(self, db: sqlite3.Connection, nano: int) -> None:
        if nano:
            current = int(self.meta("run_unresolved_nano") or "0")
            db.execute(_META_SET, ("run_unresolved_nano", str(current + nano)))

    # ---------------------------------------------------------------- the online path

    def pending_page(self, after: int, limit: int) -> list[Pending]:
        rows = self._db.execute(
            "SELECT id, custom_id, endpoint, model, body, tokens, size FROM requests "
            "WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Pending(*row) for row in rows]

    def commit(
        self,
        *,
        claims: Sequence[tuple[int, int]] = (),
        answers: Sequence[tuple[Answer, int]] = (),
        cut: Sequence[tuple[int, int]] = (),
        unsent: Sequence[int] = (),
        cursor: tuple[int, int] | None = None,
    ) -> None:
        """One transaction: claims (id, reservation), answers (with their out_seq), calls
        cut with their reservations kept, claims never sent, and the output's cursor.

        Claims go first: a claim withdrawn in the same group is then given back after it.
        """
        with self.journal.transaction() as db:
            if claims:
                claimed = db.executemany(
                    _CLAIM, [(nano, request_id) for request_id, nano in claims]
                ).rowcount
                if claimed != len(claims):  # pragma: no cover - one driver per journal
                    raise RuntimeError(f"{len(claims) - claimed} claim(s) found no pending row")
            if answers:
                updated = db.executemany(
                    _ANSWER,
                    [
                        (
                            int(a.ok),
                            a.status_code,
                            a.response,
                            a.error,
                            a.usage,
                            a.input_tokens,
                            a.output_tokens,
                            a.nano,
                            seq,
                            a.id,
                        )
                        for a, seq in answers
                    ],
                ).rowcount
                if updated != len(answers):  # pragma: no cover - a claim bookkeeping bug
                    raise RuntimeError(f"{len(answers) - updated} answer(s) matched no claim")
            if cut:
                db.executemany(_UNCLAIM, [(request_id,) for request_id, _ in cut])
                self._add_unresolved(db, sum(nano for _, nano in cut))
            if unsent:
                db.executemany(_UNSEND, [(request_id,) for request_id in unsent])
            if cursor is not None:
                db.executemany(
                    _META_SET,
                    [("run_out_bytes", str(cursor[0])), ("run_out_seq", str(cursor[1]))],
                )

    # ---------------------------------------------------------------- the batch path

    def hold_chunk(self, chunk_id: int, nano: int) -> None:
        with self.journal.transaction() as db:
            db.execute(
                "INSERT INTO run_chunks (chunk_id, nano_usd) VALUES (?, ?) "
                "ON CONFLICT (chunk_id) DO UPDATE SET nano_usd = excluded.nano_usd",
                (chunk_id, nano),
            )

    def chunk_bodies(self, chunk_id: int) -> list[tuple[str, str, str, int]]:
        """(endpoint, model, body, size) of the requests queued in a chunk."""
        rows = self._db.execute(
            "SELECT endpoint, model, body, size FROM requests "
            "WHERE chunk_id = ? AND state = 'queued' ORDER BY id",
            (chunk_id,),
        ).fetchall()
        return [(str(e), str(m), str(b), int(s)) for e, m, b, s in rows]

    def pending_bodies(self, endpoint: str, model: str, limit: int) -> list[tuple[str, int]]:
        """(body, size) of the next pending requests of (endpoint, model), in id order."""
        rows = self._db.execute(
            "SELECT body, size FROM requests WHERE state = 'pending' AND endpoint = ? "
            "AND model = ? ORDER BY id LIMIT ?",
            (endpoint, model, limit),
        ).fetchall()
        return [(str(b), int(s)) for b, s in rows]

    def release_chunks(self) -> list[tuple[int, int]]:
        """Forget the holds of chunks no longer on the server; returns (chunk, nano) freed."""
        marks = ",".join("?" * len(ACTIVE_CHUNK_STATES))
        rows = self._db.execute(
            f"SELECT r.chunk_id, r.nano_usd FROM run_chunks r JOIN chunks c ON c.id = r.chunk_id "
            f"WHERE c.state NOT IN ({marks})",
            ACTIVE_CHUNK_STATES,
        ).fetchall()
        if rows:
            with self.journal.transaction() as db:
                db.executemany(
                    "DELETE FROM run_chunks WHERE chunk_id = ?", [(row[0],) for row in rows]
                )
        return [(int(c), int(n)) for c, n in rows]

    def held_nano(self) -> int:
        row = self._db.execute("SELECT COALESCE(SUM(nano_usd), 0) FROM run_chunks").fetchone()
        return int(row[0])

    def finalize(self, next_seq: int, *, limit: int = 1_000) -> list[Done]:
        """Give answers journaled without a place in the output one (the Batch API's, as
        collected): their path, price, error kind and ``out_seq``, from ``next_seq`` on.

        Returns a page of them (call again until it is empty).
        """
        rows = self._db.execute(
            "SELECT id, custom_id, model, tokens, ok, response, error, usage, batch_id "
            "FROM requests WHERE state = 'done' AND out_seq IS NULL ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            return []
        updates: list[tuple[Any, ...]] = []
        done: list[Done] = []
        seq = next_seq
        for request_id, custom_id, model, tokens, ok, response, error, usage, batch_id in rows:
            via: Via = "batch" if batch_id is not None else "online"
            usage_data = json.loads(usage) if usage else None
            nano = self._price(str(model), usage_data, via) if ok else 0
            if not ok:
                data = json.loads(error or "{}")
                if "kind" not in data:
                    data = {"kind": batch_error_kind(data), **data}
                error = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            updates.append((via, nano, seq, error, request_id))
            row = (request_id, custom_id, ok, response, error, usage, batch_id, via, nano, seq)
            item = self._done(row)
            done.append(Done(item.seq, item.line, item.result, str(model), int(tokens)))
            seq += 1
        with self.journal.transaction() as db:
            db.executemany(
                "UPDATE requests SET via = ?, nano_usd = ?, out_seq = ?, error = ? WHERE id = ?",
                updates,
            )
        return done

    def _price(self, model: str, usage: dict[str, Any] | None, via: str) -> int | None:
        price = self.prices.price_of(model)
        if price is None:
            return None
        return nano_of_usage(self.prices, price, usage, via)

    # ---------------------------------------------------------------- reading

    def max_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(out_seq), 0) FROM requests").fetchone()
        return int(row[0])

    def done_page(self, after_seq: int, up_to: int, limit: int = 1_000) -> list[Done]:
        """Answers with ``after_seq < out_seq <= up_to``, in output order."""
        rows = self._db.execute(
            f"SELECT {_DONE_COLUMNS} FROM requests WHERE state = 'done' AND out_seq > ? "
            f"AND out_seq <= ? ORDER BY out_seq LIMIT ?",
            (after_seq, up_to, limit),
        ).fetchall()
        return [self._done(row) for row in rows]

    @staticmethod
    def _done(row: Sequence[Any]) -> Done:
        _, custom_id, ok, response, error, usage, batch_id, recorded, nano, seq = row
        via: Via = "batch" if recorded == "batch" else "online"
        result = RunResult(
            custom_id=str(custom_id),
            via=via,
            response=json.loads(response) if ok and response else None,
            error=None if ok else _error_of(error),
            usage=json.loads(usage) if usage else None,
            batch_id=batch_id,
            usd=None if nano is None else to_usd(nano),
        )
        line = line_of(
            str(custom_id), via, batch_id, response if ok else None, None if ok else error, usage
        )
        return Done(int(seq), line, result)

    def remaining_by_model(self) -> list[tuple[str, int, int]]:
        """(model, requests, estimated tokens) of every request without its answer."""
        rows = self._db.execute(
            "SELECT model, COUNT(*), COALESCE(SUM(tokens), 0) FROM requests "
            "WHERE state != 'done' GROUP BY model"
        ).fetchall()
        return [(str(m), int(n), int(t)) for m, n, t in rows]

    def unpriced_models(self, models: Iterable[str] | None = None) -> list[str]:
        if models is None:
            models = [
                str(row[0])
                for row in self._db.execute(
                    "SELECT DISTINCT model FROM requests WHERE state != 'done'"
                )
            ]
        return sorted({m for m in models if self.prices.price_of(m) is None})

    def totals(self) -> Totals:
        counts = self._db.execute(
            "SELECT COUNT(*), "
            "COALESCE(SUM(state != 'done'), 0), "
            "COALESCE(SUM(state = 'done' AND ok = 1), 0), "
            "COALESCE(SUM(state = 'done' AND ok = 0), 0), "
            "COALESCE(SUM(state = 'done' AND via = 'online'), 0), "
            "COALESCE(SUM(state = 'done' AND via = 'batch'), 0), "
            "COALESCE(SUM(sends > 1), 0), "
            "COALESCE(SUM(CASE WHEN state = 'done' AND ok = 1 THEN tokens END), 0), "
            "COALESCE(SUM(CASE WHEN state = 'done' AND ok = 1 "
            "THEN COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) END), 0), "
            "COALESCE(SUM(CASE WHEN state = 'done' AND via = 'online' THEN nano_usd END), 0), "
            "COALESCE(SUM(CASE WHEN state = 'done' AND via = 'batch' THEN nano_usd END), 0) "
            "FROM requests"
        ).fetchone()
        kinds = dict(
            self._db.execute(
                "SELECT COALESCE(json_extract(error, '$.kind'), 'unknown'), COUNT(*) "
                "FROM requests WHERE state = 'done' AND ok = 0 GROUP BY 1"
            ).fetchall()
        )
        unpriced = self._db.execute(
            "SELECT DISTINCT model FROM requests WHERE state = 'done' AND ok = 1 "
            "AND nano_usd IS NULL"
        ).fetchall()
        return Totals(
            total=int(counts[0]),
            pending=int(counts[1]),
            succeeded=int(counts[2]),
            failed=int(counts[3]),
            online=int(counts[4]),
            batch=int(counts[5]),
            resent=int(counts[6]),
            tokens_estimated=float(counts[7]),
            tokens_actual=float(counts[8]),
            nano_online=int(counts[9]),
            nano_batch=int(counts[10]),
            nano_unresolved=int(self.meta("run_unresolved_nano") or "0"),
            nano_reserved_batch=self.held_nano(),
            failed_by_kind={str(k): int(v) for k, v in kinds.items()},
            unpriced_models=tuple(sorted(str(row[0]) for row in unpriced)),
        )

    def settled_nano(self) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(nano_usd), 0) FROM requests WHERE state = 'done'"
        ).fetchone()
        return int(row[0])
