"""Reading one line of a batch's output or error file, and deciding what it means.

Output and error files share one line shape::

    {"id": "batch_req_...", "custom_id": "...",
     "response": {"status_code": 200, "request_id": "...", "body": {...}} | null,
     "error": {"code": "...", "message": "..."} | null}

Failures come in two shapes: an HTTP-level one (``response.status_code`` >= 400 and the
usual ``{"error": {...}}`` envelope in ``response.body``, ``error`` null) and a non-HTTP
one (``response`` null, ``error.code`` such as ``batch_expired``). `parse_line` reads
either and sorts it into one of four kinds:

* ``ok``: a 2xx response; final.
* ``final``: a failure no resubmission can fix (400 context length exceeded, 404
  ``model_not_found``, 401, insufficient quota).
* ``retry``: a failure a resubmission may fix (408, 429, 5xx, an unexplained error);
  charged to the request's retry budget.
* ``expired``: the batch ran out of time or was cancelled before the request ran
  (``batch_expired``, ``batch_cancelled``); the request did nothing wrong, so it is
  resubmitted without spending its retry budget.

The status decides through `classify_error`, the limiter's own classifier, so a 429
``insufficient_quota`` is final here just as it is on the synchronous path. A line that
is not JSON or has no ``custom_id`` yields ``None``: the caller logs and skips it, and the
request it belonged to is later found missing and resubmitted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._classify import classify_error, classify_error_payload
from ._types import BatchLineError

__all__ = ["EXPIRED_CODES", "LineOutcome", "missing_error", "parse_line"]

logger = logging.getLogger("ratelimit_llm.batch")

#: Non-HTTP error codes that mean "never ran", not "failed".
EXPIRED_CODES = frozenset({"batch_expired", "batch_cancelled"})

OutcomeKind = Literal["ok", "final", "retry", "expired"]

_MAX_MESSAGE = 2_000


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """One parsed result line."""

    custom_id: str
    kind: OutcomeKind
    status_code: int | None
    response: dict[str, Any] | None
    error: BatchLineError | None
    usage: dict[str, Any] | None


def missing_error(expired: bool) -> BatchLineError:
    """The error recorded for a request found in neither file."""
    if expired:
        return BatchLineError(
            None, "batch_expired", "the batch ended before this request ran", True
        )
    return BatchLineError(
        None, "missing_result", "the request is in neither the output nor the error file", True
    )


def _line_error(status: int | None, error: Mapping[str, Any] | None) -> tuple[BatchLineError, bool]:
    """The error and whether it is retryable, from a status and an error object."""
    code = error.get("code") if error is not None else None
    code = None if code is None else str(code)
    message = error.get("message") if error is not None else None
    kind = error.get("type") if error is not None else None
    if status is not None:
        info = classify_error(status, None, {"error": dict(error)} if error is not None else None)
    else:
        info = classify_error_payload({"error": dict(error or {})})
    retryable = bool(info is not None and info.retryable)
    if code in EXPIRED_CODES:
        retryable = True
    text = (
        (info.message if info is not None else None)
        or (str(message) if message else None)
        or (f"HTTP {status}" if status else "unknown error")
    )
    return (
        BatchLineError(
            status_code=status,
            code=code,
            message=text[:_MAX_MESSAGE],
            retryable=retryable,
            type=None if kind is None else str(kind),
        ),
        retryable,
    )


def parse_line(line: str | bytes) -> LineOutcome | None:
    """Parse one line; ``None`` for a blank or malformed one (logged)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    text = line.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        logger.warning("skipping a malformed result line (%d characters)", len(text))
        return None
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        logger.warning("skipping a result line without a custom_id")
        return None
    custom_id: str = record["custom_id"]
    response = record.get("response")
    error = record.get("error")
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body")
        if isinstance(status, bool) or not isinstance(status, int):
            status = None
        if status is not None and 200 <= status < 300 and isinstance(body, dict):
            usage = body.get("usage")
            return LineOutcome(
                custom_id, "ok", status, body, None, usage if isinstance(usage, dict) else None
            )
        envelope = body.get("error") if isinstance(body, dict) else None
        if not isinstance(envelope, Mapping):
            envelope = error if isinstance(error, Mapping) else None
        line_error, retryable = _line_error(status if status else 500, envelope)
        return LineOutcome(
            custom_id, "retry" if retryable else "final", status, None, line_error, None
        )
    if isinstance(error, Mapping):
        line_error, retryable = _line_error(None, error)
        if line_error.code in EXPIRED_CODES:
            kind: OutcomeKind = "expired"
        else:
            kind = "retry" if retryable else "final"
        return LineOutcome(custom_id, kind, None, None, line_error, None)
    logger.warning("skipping result line for %r: neither a response nor an error", custom_id)
    return None
