"""The batch path's value types: what goes in, what comes out, and the limits in between.

All are frozen: a result handed to the caller cannot drift from what the journal holds,
and a `BatchLimits` validated once stays valid for the whole run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ENDPOINTS",
    "BatchJob",
    "BatchLimits",
    "BatchLineError",
    "BatchRequest",
    "BatchResult",
    "ChunkStatus",
    "JobStatus",
    "normalize_endpoint",
]

#: The endpoints the Batch API accepts, as they appear in an input line's ``url``.
ENDPOINTS: frozenset[str] = frozenset(
    {
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    }
)


def normalize_endpoint(endpoint: str) -> str:
    """``endpoint`` as the Batch API spells it: ``/v1/chat/completions``.

    Accepts ``/chat/completions``, ``chat/completions`` and the ``/v1/...`` form.

    :raises ValueError: for an endpoint the Batch API does not serve.
    """
    path = "/" + str(endpoint).strip().strip("/")
    if not path.startswith("/v1/"):
        path = "/v1" + path
    if path not in ENDPOINTS:
        raise ValueError(
            f"the Batch API does not serve {endpoint!r}; use one of {', '.join(sorted(ENDPOINTS))}"
        )
    return path


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request for the Batch API.

    ``custom_id`` may be left out: the runner then names it ``request-<index>`` from the
    request's position in the inputs, so a resume over the same inputs maps the same way.

    Example::

        BatchRequest(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            endpoint="/v1/chat/completions",
            custom_id="greeting-1",
        )
    """

    body: Mapping[str, Any]
    endpoint: str = "/v1/chat/completions"
    custom_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchLineError:
    """Why one request failed: its HTTP status (None for a non-HTTP failure such as
    ``batch_expired``), the error ``code`` and ``message``, and whether a resubmission
    could succeed.

    A result carries one only once the failure is final: a retryable error is resubmitted
    until the retry budget (`BatchLimits.max_retries`) is spent.
    """

    status_code: int | None
    code: str | None
    message: str
    retryable: bool
    type: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The final answer to one request: exactly one of ``response`` and ``error`` is set.

    ``response`` is the response body (what the synchronous endpoint would have returned,
    as a dict); ``usage`` is its ``usage``, if any; ``batch_id`` the batch that answered.
    """

    custom_id: str
    response: dict[str, Any] | None
    error: BatchLineError | None
    batch_id: str | None
    usage: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How inputs are split into batches, and how hard failures are retried.

    The defaults are OpenAI's documented per-batch limits, with a margin on the bytes
    (the 200 MB limit is in bytes, and being refused at validation costs a round trip).
    Tests use tiny values.

    - ``max_requests``: lines per batch file (OpenAI: 50,000).
    - ``max_bytes``: bytes per batch file (OpenAI: 200 MB; default 190 MB).
    - ``max_embedding_inputs``: embedding inputs per batch (OpenAI: 50,000).
    - ``enqueued_tokens``: per-model budget of estimated tokens in unfinished batches
      (``None``: unlimited, the default), or a mapping of model to budget (``"*"`` for
      the rest). A batch failing with ``token_limit_exceeded`` halves the model's budget
      (never below one request) and its lines are resubmitted.
    - ``max_retries``: resubmissions of a request after a retryable line error (408, 429,
      5xx) or a missing output line; then the error is final.
    - ``max_expired_resubmits``: resubmissions after ``batch_expired`` / ``batch_cancelled``
      (not charged to ``max_retries``: the request itself did nothing wrong).
    - ``max_token_limit_failures``: consecutive ``token_limit_exceeded`` failures of a
      one-request batch with nothing else queued before `BatchFailedError`.
    """

    max_requests: int = 50_000
    max_bytes: int = 190_000_000
    max_embedding_inputs: int = 50_000
    enqueued_tokens: int | Mapping[str, int] | None = None
    max_retries: int = 3
    max_expired_resubmits: int = 5
    max_token_limit_failures: int = 3

    def __post_init__(self) -> None:
        _positive("max_requests", self.max_requests)
        _positive("max_bytes", self.max_bytes)
        _positive("max_embedding_inputs", self.max_embedding_inputs)
        _positive("max_token_limit_failures", self.max_token_limit_failures)
        for name in ("max_retries", "max_expired_resubmits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        budget = self.enqueued_tokens
        if isinstance(budget, Mapping):
            checked = {str(k): _positive(f"enqueued_tokens[{k!r}]", v) for k, v in budget.items()}
            object.__setattr__(self, "enqueued_tokens", checked)
        elif budget is not None:
            _positive("enqueued_tokens", budget)

    def budget_for(self, model: str) -> float:
        """The configured enqueued-token budget of ``model`` (``inf``: unlimited)."""
        budget = self.enqueued_tokens
        if isinstance(budget, Mapping):
            value = budget.get(model, budget.get("*"))
            return math.inf if value is None else float(value)
        return math.inf if budget is None else float(budget)


@dataclass(frozen=True, slots=True)
class BatchJob:
    """A handle on submitted work: the journal path and the batches it created.

    It holds no client and no key; `results` and `status` reopen the journal from
    ``journal`` in any process.
    """

    journal: Path
    batch_ids: tuple[str, ...]
    requests: int

    @classmethod
    def of(cls, journal: str | os.PathLike[str]) -> BatchJob:
        """A handle naming only the journal (ids are read from it when needed)."""
        return cls(Path(journal), (), 0)


@dataclass(frozen=True, slots=True)
class ChunkStatus:
    """One batch file as the journal (and, after a refresh, the server) knows it."""

    chunk: int
    endpoint: str
    model: str
    state: str
    batch_id: str | None
    remote_status: str | None
    requests: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Where a journal's work stands: requests by state, and every batch file."""

    journal: Path
    total: int
    pending: int
    queued: int
    succeeded: int
    failed: int
    cancelled: bool
    chunks: tuple[ChunkStatus, ...] = field(default=())

    @property
    def done(self) -> int:
        """Requests with a final answer (success or final error)."""
        return self.succeeded + self.failed

    @property
    def finished(self) -> bool:
        """Whether every request has its final answer."""
        return self.done == self.total
