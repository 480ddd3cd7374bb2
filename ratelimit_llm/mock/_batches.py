"""The Batch API's engine: batches that validate, run, finalize, expire and cancel in clock time.

There are no background tasks. Every batch's progress is a function of the server clock
(``validation_seconds``, then ``lines_per_second``, then ``finalizing_seconds``), and the
engine catches up lazily whenever the API looks at batches. Catching up replays the
events of all running batches in time order, so a batch whose validation ends after
another batch finished sees that batch's enqueued tokens released, whichever of the two
was read first.

Lines are answered when the clock says they have run, on whichever read notices it; the
results are kept as rendered bytes and become the output and error files when the batch
ends. As on OpenAI, the files appear only then, never while a batch is running.

Example::

    engine = BatchEngine(MockConfig(), clock=time.monotonic, new_id=state.new_id)
    upload = engine.files.add(data, filename="in.jsonl", purpose="batch", created_at=0)
    batch = engine.create(upload.id, "/v1/chat/completions", "24h", None, organization="org")
    engine.retrieve(batch["id"])["status"]
"""

from __future__ import annotations

import math
import random
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from ._batch_lines import BATCH_ENDPOINTS, LineRenderer, validate_input
from ._config import BatchConfig, MockConfig
from ._errors import error_body
from ._files import FileStore, StoredFile

__all__ = ["BatchApiError", "BatchEngine", "check_metadata"]

# Running batches hold their tokens against the model's enqueued-token limit.
_HOLDING = frozenset({"in_progress", "finalizing", "cancelling"})
_TIMES = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
_EXPIRED = "This request could not be executed before the completion window expired."
_CANCELLED = "This request was not executed because the batch was cancelled."
# Floating-point slack when turning elapsed time into a count of finished lines.
_EPSILON = 1e-9


class BatchApiError(Exception):
    """A Files or Batch API call the service would refuse (``invalid_request_error``)."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, "invalid_request_error", self.param, self.code)


class _Batch:
    """One batch's record: identity, timeline, progress and the results rendered so far."""

    __slots__ = (
        "completed",
        "config",
        "created",
        "data",
        "endpoint",
        "err_chunks",
        "error_file_id",
        "errors",
        "failed",
        "id",
        "input_file_id",
        "input_lines",
        "input_tokens",
        "malformed_left",
        "metadata",
        "model",
        "order",
        "organization",
        "out_chunks",
        "output_file_id",
        "output_tokens",
        "rendered",
        "renderer",
        "starts",
        "status",
        "times",
        "tokens",
        "total",
    )

    def __init__(
        self,
        *,
        id_: str,
        endpoint: str,
        input_file_id: str,
        metadata: dict[str, str] | None,
        organization: str,
        created: float,
        config: BatchConfig,
        renderer: LineRenderer,
    ) -> None:
        self.id = id_
        self.endpoint = endpoint
        self.input_file_id = input_file_id
        self.metadata = metadata
        self.organization = organization
        self.created = created
        self.config = config
        self.renderer = renderer
        self.status = "validating"
        self.times: dict[str, float] = {}
        self.data = b""
        self.starts: array[int] = array("Q")
        self.order: array[int] = array("I")
        self.model: str | None = None
        self.tokens = 0
        self.input_lines = 0
        self.errors: list[dict[str, Any]] = []
        self.total = 0
        self.rendered = 0
        self.completed = 0
        self.failed = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.malformed_left = config.malformed_output_lines
        self.out_chunks: list[bytes] = []
        self.err_chunks: list[bytes] = []
        self.output_file_id: str | None = None
        self.error_file_id: str | None = None

    @property
    def expires(self) -> float:
        return self.created + self.config.expiry_seconds

    def next_event(self) -> float:
        """When the batch next changes status by itself (``inf`` once it has ended)."""
        config = self.config
        if self.status == "validating":
            return min(self.created + config.validation_seconds, self.expires)
        if self.status == "in_progress":
            done = self.times["in_progress_at"] + self.total / config.lines_per_second
            return min(done, self.expires)
        if self.status == "finalizing":
            return self.times["finalizing_at"] + config.finalizing_seconds
        if self.status == "cancelling":
            return self.times["cancelling_at"] + config.cancel_seconds
        return math.inf

    def lines_done_by(self, moment: float) -> int:
        elapsed = moment - self.times["in_progress_at"]
        return min(self.total, int(elapsed * self.config.lines_per_second + _EPSILON))

    def line(self, index: int) -> bytes:
        """The input line the batch runs ``index``-th."""
        start = self.starts[self.order[index]]
        end = self.data.find(b"\n", start)
        return self.data[start : end if end >= 0 else len(self.data)]

    def run(self, target: int, created: int) -> None:
        """Answer the lines up to ``target`` (exclusive) in the batch's running order."""
        renderer = self.renderer
        for index in range(self.rendered, target):
            answer = renderer.answer(self.line(index), created)
            if answer.ok:
                self.completed += 1
                self.input_tokens += answer.input_tokens
                self.output_tokens += answer.output_tokens
                text = answer.line
                if self.malformed_left:
                    # A damaged result: the request ran (and counts as completed), but its
                    # line no longer parses, as a truncated download would leave it.
                    self.malformed_left -= 1
                    text = text[: len(text) // 2] + b"\n"
                self.out_chunks.append(text)
            else:
                self.failed += 1
                self.err_chunks.append(answer.line)
        self.rendered = max(self.rendered, target)

    def abandon(self, code: str, message: str) -> None:
        """Write an error line for every line that never ran."""
        for index in range(self.rendered, self.total):
            self.err_chunks.append(self.renderer.unfinished(self.line(index), code, message))
            self.failed += 1
        self.rendered = self.total


class BatchEngine:
    """Files and batches of one mock server, advanced lazily from its clock.

    ``new_id(prefix, hex_digits)`` makes ids (the server's seeded sequence). ``config``
    is the `BatchConfig` new batches get; change it with `configure`.
    """

    def __init__(
        self,
        mock: MockConfig,
        *,
        clock: Callable[[], float],
        new_id: Callable[[str, int], str],
    ) -> None:
        self._mock = mock
        self._clock = clock
        self._new_id = new_id
        self._config = mock.batch
        self._epoch = time.time() - clock()
        self.files = FileStore(lambda: new_id("file-", 24))
        self._batches: dict[str, _Batch] = {}
        self._active: list[_Batch] = []

    # -- configuration and inspection -------------------------------------------------

    @property
    def config(self) -> BatchConfig:
        """The configuration batches created from now on get."""
        return self._config

    def configure(self, config: BatchConfig) -> None:
        """Use ``config`` for new batches, and its enqueued-token limits for every batch.

        Batches already created keep their pace, error rates and expiry.
        """
        self._config = config

    def unix(self, moment: float) -> int:
        """A clock reading as a Unix timestamp (the clock's origin is arbitrary)."""
        return int(self._epoch + moment)

    def clear(self) -> None:
        """Forget every batch and file."""
        self._batches.clear()
        self._active.clear()
        self.files.clear()

    def enqueued_tokens(self) -> dict[str, int]:
        """Tokens each model's running batches hold against its enqueued-token limit."""
        held: dict[str, int] = {}
        for batch in self._active:
            if batch.status in _HOLDING and batch.model is not None:
                held[batch.model] = held.get(batch.model, 0) + batch.tokens
        return held

    def inspect(self) -> dict[str, Any]:
        """Every batch ever created (oldest first), for ``GET /mock/batches``."""
        self.advance()
        data = [
            {
                "id": batch.id,
                "status": batch.status,
                "metadata": batch.metadata,
                "endpoint": batch.endpoint,
                "model": batch.model,
                "input_file_id": batch.input_file_id,
                "input_lines": batch.input_lines,
                "enqueued_tokens": batch.tokens,
                "request_counts": self._counts(batch),
                "output_file_id": batch.output_file_id,
                "error_file_id": batch.error_file_id,
                "created_at": self.unix(batch.created),
            }
            for batch in self._batches.values()
        ]
        return {"object": "list", "data": data, "enqueued_tokens": self.enqueued_tokens()}

    # -- the API ------------------------------------------------------------------------

    def upload(self, data: bytes, *, filename: str, purpose: str) -> StoredFile:
        """Store an uploaded file."""
        return self.files.add(
            data, filename=filename, purpose=purpose, created_at=self.unix(self._clock())
        )

    def create(
        self,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        *,
        organization: str,
    ) -> dict[str, Any]:
        """Create a batch from an uploaded file; it validates and runs as the clock moves.

        Raises `BatchApiError` for what the service refuses at once (a missing file, an
        unsupported endpoint); problems inside the file surface later as ``failed``.
        """
        if completion_window != "24h":
            raise BatchApiError(
                400,
                f"Invalid value for 'completion_window': expected '24h', got "
                f"{completion_window!r}.",
                "completion_window",
                "invalid_value",
            )
        if endpoint not in BATCH_ENDPOINTS:
            raise BatchApiError(
                400,
                f"Invalid value for 'endpoint': the mock runs batches for "
                f"{', '.join(BATCH_ENDPOINTS)}, got {endpoint!r}.",
                "endpoint",
                "invalid_value",
            )
        stored = self.files.get(input_file_id)
        if stored is None:
            raise BatchApiError(
                404, f"No such File object: {input_file_id}", "input_file_id", "not_found"
            )
        if stored.purpose != "batch":
            raise BatchApiError(
                400,
                f"The input file {input_file_id} must be uploaded with purpose 'batch', "
                f"not {stored.purpose!r}.",
                "input_file_id",
                "invalid_value",
            )
        self.advance()
        now = self._clock()
        config = self._config
        batch_id = self._new_id("batch_", 32)
        batch = _Batch(
            id_=batch_id,
            endpoint=endpoint,
            input_file_id=input_file_id,
            metadata=dict(metadata) if metadata is not None else None,
            organization=organization,
            created=now,
            config=config,
            renderer=LineRenderer(batch_id, endpoint, config, self._mock),
        )
        found = validate_input(stored.data, endpoint, config, self._mock)
        batch.model, batch.tokens, batch.errors = found.model, found.tokens, found.errors
        batch.input_lines = len(found.starts)
        if not found.errors:
            batch.data, batch.starts = stored.data, found.starts
        self._batches[batch_id] = batch
        self._active.append(batch)
        return self._render(batch)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        self.advance()
        return self._render(self._get(batch_id))

    def listing(self, *, after: str | None, limit: int) -> dict[str, Any]:
        """One page of batches, newest first, after the batch ``after``."""
        self.advance()
        newest_first = list(reversed(self._batches.values()))
        if after is not None:
            position = next((i for i, b in enumerate(newest_first) if b.id == after), None)
            newest_first = [] if position is None else newest_first[position + 1 :]
        page = newest_first[:limit]
        return {
            "object": "list",
            "data": [self._render(batch) for batch in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(newest_first) > limit,
        }

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Start cancelling a batch; it is ``cancelled`` ``cancel_seconds`` later.

        Cancelling a batch that is already cancelling or cancelled returns it as it is (so
        a retried call is harmless); one that completed, failed or expired is a 409.
        """
        self.advance()
        batch = self._get(batch_id)
        if batch.status in ("completed", "failed", "expired"):
            raise BatchApiError(
                409, f"Cannot cancel a batch with status '{batch.status}'.", None, None
            )
        if batch.status in ("validating", "in_progress", "finalizing"):
            now = self._clock()
            if batch.status == "in_progress":
                batch.run(batch.lines_done_by(now), self.unix(now))
            batch.status = "cancelling"
            batch.times["cancelling_at"] = now
        return self._render(batch)

    # -- time -----------------------------------------------------------------------------

    def advance(self) -> None:
        """Bring every batch up to the clock: replay due events in time order, run lines."""
        now = self._clock()
        while True:
            due: _Batch | None = None
            when = math.inf
            for batch in self._active:
                moment = batch.next_event()
                if moment <= now and moment < when:
                    due, when = batch, moment
            if due is None:
                break
            self._step(due, when)
        created = self.unix(now)
        for batch in self._active:
            if batch.status == "in_progress":
                batch.run(batch.lines_done_by(now), created)

    def _step(self, batch: _Batch, moment: float) -> None:
        """Apply the status change ``batch`` is due for at ``moment``."""
        status = batch.status
        if status == "validating":
            if batch.created + batch.config.validation_seconds > batch.expires:
                self._end(batch, "expired", moment)  # the window closed while validating
            elif batch.errors or self._over_token_limit(batch):
                self._end(batch, "failed", moment)
            else:
                self._start(batch, moment)
        elif status == "in_progress":
            if moment >= batch.expires and batch.lines_done_by(moment) < batch.total:
                batch.run(batch.lines_done_by(moment), self.unix(moment))
                batch.abandon("batch_expired", _EXPIRED)
                self._end(batch, "expired", moment)
            else:
                batch.run(batch.total, self.unix(moment))
                batch.status = "finalizing"
                batch.times["finalizing_at"] = moment
        elif status == "finalizing":
            self._end(batch, "completed", moment)
        elif status == "cancelling":
            batch.abandon("batch_cancelled", _CANCELLED)
            self._end(batch, "cancelled", moment)

    def _over_token_limit(self, batch: _Batch) -> bool:
        """Check the model's enqueued-token limit; note the error if the batch breaks it."""
        if batch.model is None:
            return False
        limit = self._config.enqueued_limit_for(batch.model)
        if limit is None:
            return False
        held = self.enqueued_tokens().get(batch.model, 0)
        if held + batch.tokens <= limit:
            return False
        message = (
            f"Enqueued token limit reached for {batch.model} in organization "
            f"{batch.organization}. Limit: {limit:,} enqueued tokens. Please try again once "
            "some in_progress batches have been completed."
        )
        batch.errors = [
            {"code": "token_limit_exceeded", "message": message, "param": None, "line": None}
        ]
        return True

    def _start(self, batch: _Batch, moment: float) -> None:
        batch.status = "in_progress"
        batch.times["in_progress_at"] = moment
        batch.total = len(batch.starts)
        # Results come back in no particular order, as OpenAI warns they may.
        order = array("I", range(batch.total))
        random.Random(f"{self._mock.seed}:{batch.id}").shuffle(order)
        batch.order = order

    def _end(self, batch: _Batch, status: str, moment: float) -> None:
        """Make ``status`` final: write the result files and free the input."""
        batch.status = status
        batch.times[f"{status}_at"] = moment
        created = self.unix(moment)
        if batch.out_chunks:
            output = self.files.add(
                b"".join(batch.out_chunks),
                filename=f"{batch.id}_output.jsonl",
                purpose="batch_output",
                created_at=created,
            )
            batch.output_file_id = output.id
        if batch.err_chunks:
            errors = self.files.add(
                b"".join(batch.err_chunks),
                filename=f"{batch.id}_error.jsonl",
                purpose="batch_output",
                created_at=created,
            )
            batch.error_file_id = errors.id
        batch.out_chunks, batch.err_chunks = [], []
        batch.data, batch.starts, batch.order = b"", array("Q"), array("I")
        self._active.remove(batch)

    # -- shapes ---------------------------------------------------------------------------

    def _get(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise BatchApiError(404, f"No batch found with id '{batch_id}'.", "batch_id", None)
        return batch

    @staticmethod
    def _counts(batch: _Batch) -> dict[str, int]:
        return {"total": batch.total, "completed": batch.completed, "failed": batch.failed}

    def _render(self, batch: _Batch) -> dict[str, Any]:
        """The ``batch`` object (`openai.types.Batch`)."""
        times: dict[str, int | None] = dict.fromkeys(_TIMES)
        for name, moment in batch.times.items():
            times[name] = self.unix(moment)
        prompt, output = batch.input_tokens, batch.output_tokens
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": (
                {"object": "list", "data": batch.errors}
                if batch.status == "failed" and batch.errors
                else None
            ),
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": self.unix(batch.created),
            "expires_at": self.unix(batch.expires),
            **times,
            "request_counts": self._counts(batch),
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + output,
            },
            "metadata": batch.metadata,
        }


def check_metadata(value: object) -> dict[str, str] | None:
    """Validate ``metadata`` as the API does: at most 16 string pairs, short keys and values."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BatchApiError(400, "Invalid type for 'metadata': expected an object.", "metadata")
    if len(value) > 16:
        raise BatchApiError(
            400,
            f"Invalid 'metadata': too many properties. Expected at most 16, got {len(value)}.",
            "metadata",
            "object_above_max_properties",
        )
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > 64:
            raise BatchApiError(
                400,
                "Invalid 'metadata': keys must be strings of at most 64 characters.",
                "metadata",
                "invalid_value",
            )
        if not isinstance(item, str) or len(item) > 512:
            raise BatchApiError(
                400,
                f"Invalid 'metadata.{key}': values must be strings of at most 512 characters.",
                "metadata",
                "invalid_value",
            )
    return dict(value)
