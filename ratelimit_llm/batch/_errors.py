"""The errors the batch path raises, all under `RateLimitLLMError`.

The tree::

    RateLimitLLMError
    └── BatchError
        ├── DuplicateCustomIdError (also ValueError)  two inputs share a custom_id
        ├── JournalMismatchError                      the journal is not for these inputs
        ├── BatchFailedError                          a batch failed for a reason a retry cannot fix
        └── JournalLockedError                        another process is driving the journal

Per-request failures are not exceptions: they arrive as `BatchLineError` inside a
`BatchResult`, because one bad line must never stop the other 49,999.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._exceptions import RateLimitLLMError

__all__ = [
    "BatchError",
    "BatchFailedError",
    "DuplicateCustomIdError",
    "JournalLockedError",
    "JournalMismatchError",
]


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


class JournalMismatchError(BatchError):
    """The journal was written for other inputs or by an incompatible version."""


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


class JournalLockedError(BatchError):
    """Another process is submitting or collecting through the same journal."""
