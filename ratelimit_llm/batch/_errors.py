"""The errors the batch path raises, all under `RateLimitLLMError`.

The tree::

    RateLimitLLMError
    └── BatchError
        ├── DuplicateCustomIdError (also ValueError)  two inputs share a custom_id
        ├── BatchFailedError                          a batch failed for a reason a retry cannot fix
        └── JournalError                              the journal cannot serve this call
            ├── JournalNotFoundError (also FileNotFoundError)  no journal at the path
            ├── JournalCorruptError                   empty, truncated, not a journal, damaged
            ├── JournalMismatchError                  the journal is another job's, or too new
            └── JournalLockedError                    another process is driving the journal

Every `JournalError` names the journal's path (``.path``) and says what to do. None of
them is ever answered by starting the job afresh: a journal that cannot be read is the
only record of batches that may already be paid for, so the runner stops and says so.

Per-request failures are not exceptions: they arrive as `BatchLineError` inside a
`BatchResult`, because one bad line must never stop the other 49,999.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .._exceptions import RateLimitLLMError

__all__ = [
    "BatchError",
    "BatchFailedError",
    "DuplicateCustomIdError",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalNotFoundError",
]

#: What to do with a journal that cannot be read: said by every error about damage.
_DAMAGE_REMEDY = (
    "nothing was sent. If it held a job, restore it from a copy (the main file alone is "
    "enough), or move it aside and run the same inputs again: the new journal adopts the "
    "job's batches still on the server instead of paying for them twice"
)


class BatchError(RateLimitLLMError):
    """Base class of the batch path's errors."""


class DuplicateCustomIdError(BatchError, ValueError):
    """Two requests carry the same ``custom_id`` (or a resume changed a request's body).

    Raised while the inputs are read into the journal, before anything is uploaded; the
    journal is left as it was before the call.
    """

    def __init__(self, custom_id: str, *, changed_body: bool) -> None:
        self.custom_id = custom_id
        self.changed_body = changed_body
        if changed_body:
            why = "the journal already holds a different request body under this custom_id"
        else:
            why = "it appears more than once in the inputs"
        super().__init__(f"duplicate custom_id {custom_id!r}: {why}")


class BatchFailedError(BatchError):
    """A batch failed validation for a reason resubmitting the same lines cannot fix.

    ``codes`` are the ``errors.data[].code`` values the server gave (``invalid_json_line``,
    ``model_mismatch``, ...). The lines are back in the journal as pending, so a corrected
    run can resume them. ``token_limit_exceeded`` never raises this: it is back-pressure.
    """

    def __init__(self, batch_id: str, codes: Sequence[str], messages: Sequence[str]) -> None:
        self.batch_id = batch_id
        self.codes = tuple(codes)
        self.messages = tuple(messages)
        detail = "; ".join(messages[:5]) or "no detail given"
        super().__init__(f"batch {batch_id} failed ({', '.join(codes) or 'unknown'}): {detail}")


class JournalError(BatchError):
    """The journal at ``path`` cannot serve this call; the message says why and what to do."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = Path(path)
        super().__init__(message)


class JournalNotFoundError(JournalError, FileNotFoundError):
    """No journal at ``path``, for a call that only reads or resumes one.

    Only `run` and `submit` given their inputs create a journal; `status`, `results`,
    `cost`, `cancel` and `run(client, None, ...)` need an existing one, and create no
    file when it is missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(
            path,
            f"no journal at {path}: check the path (status, results, cost, cancel and a "
            "resume without inputs read an existing journal; only run or submit with the "
            "job's inputs create one)",
        )


class JournalCorruptError(JournalError):
    """The file at ``path`` exists but is not a usable journal.

    ``reason`` says how: empty (0 bytes), truncated, not an SQLite database, an SQLite
    database without the journal's tables, a journal without its job record, or damaged
    pages (SQLite's own check failed). Never answered by starting afresh.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"{path} is not a usable journal: {reason}; {_DAMAGE_REMEDY}")


class JournalMismatchError(JournalError):
    """The journal was written for other inputs (another job) or by a newer version."""


class JournalLockedError(JournalError):
    """Another process is submitting or collecting through the same journal."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, f"another process is driving {path}; wait for it or stop it")
