"""Turning inputs into journal rows, and journal rows into batch files that fit.

Two jobs, both pure (no I/O), so they can be tested with tiny limits:

* `prepare` accepts the three input shapes (a plain body with the run's ``endpoint``, an
  input-line dict ``{"custom_id", "method", "url", "body"}``, a `BatchRequest`), names
  requests that have no ``custom_id`` after their position, and measures what the
  splitter needs: the line's bytes, its estimated enqueued tokens, its embedding inputs.
  The body is serialised once, here, with sorted keys: the same text is the hash that
  detects a changed request on resume and the bytes that are uploaded.
* `take` decides how many of the next pending rows of one (endpoint, model) fit in one
  file: OpenAI's 50,000 lines, 200 MB, 50,000 embedding inputs, and the model's
  remaining enqueued-token budget.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._estimate import estimate_cost
from ._types import BatchLimits, BatchRequest, normalize_endpoint

__all__ = [
    "PreparedRequest",
    "RowSize",
    "body_hash",
    "body_text",
    "count_embedding_inputs",
    "line_prefix",
    "prepare",
    "take",
]

#: The prefix of generated custom_ids: ``request-0``, ``request-1``, ...
GENERATED_PREFIX = "request-"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One input, ready for the journal."""

    position: int
    custom_id: str
    endpoint: str
    model: str
    body: str  # compact JSON, keys sorted
    body_hash: str
    tokens: int
    inputs: int
    size: int  # bytes of its line in the JSONL file, newline included


@dataclass(frozen=True, slots=True)
class RowSize:
    """What the splitter needs to know of one pending row."""

    tokens: int
    inputs: int
    size: int


def count_embedding_inputs(body: Mapping[str, Any]) -> int:
    """How many inputs an embeddings body holds: 1 for a string or one token array."""
    value = body.get("input")
    if isinstance(value, str):
        return 1
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, int) for item in value):
            return 1  # a single token array
        return max(len(value), 1)
    return 1


def line_prefix(custom_id: str, endpoint: str) -> str:
    """The start of an input line, up to the body (which is appended verbatim)."""
    return (
        f'{{"custom_id":{json.dumps(custom_id, ensure_ascii=False)},'
        f'"method":"POST","url":{json.dumps(endpoint)},"body":'
    )


def body_text(body: Mapping[str, Any]) -> str:
    """The body as the journal stores and uploads it: compact JSON, keys sorted.

    :raises TypeError: and ValueError, as ``json.dumps`` does for what JSON cannot hold.
    """
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def body_hash(endpoint: str, text: str) -> str:
    """The hash that identifies a request's endpoint and body (`body_text`)."""
    return hashlib.sha256(f"{endpoint}\n{text}".encode()).hexdigest()


def _unpack(item: object, endpoint: str | None) -> tuple[str | None, str, Mapping[str, Any]]:
    """``(custom_id, endpoint, body)`` of one input, whichever of the shapes it has."""
    if isinstance(item, BatchRequest):
        return item.custom_id, item.endpoint, item.body
    if not isinstance(item, Mapping):
        raise TypeError(
            f"a batch request must be a dict or a BatchRequest, got {type(item).__name__}"
        )
    if "body" in item and ("url" in item or "method" in item):
        method = item.get("method", "POST")
        if str(method).upper() != "POST":
            raise ValueError(f"the Batch API accepts only POST lines, got method {method!r}")
        body = item["body"]
        if not isinstance(body, Mapping):
            raise TypeError(f"an input line's body must be an object, got {type(body).__name__}")
        url = item.get("url", endpoint)
        if url is None:
            raise ValueError("an input line has no url and no endpoint= was given")
        custom_id = item.get("custom_id")
        return (None if custom_id is None else str(custom_id)), str(url), body
    if endpoint is None:
        raise ValueError("plain request bodies need endpoint= (e.g. '/v1/chat/completions')")
    custom_id = item.get("custom_id")
    if custom_id is not None:
        # A custom_id inside a plain body is ours to take: the API would refuse it.
        item = {key: value for key, value in item.items() if key != "custom_id"}
        custom_id = str(custom_id)
    return custom_id, endpoint, item


def prepare(item: object, position: int, endpoint: str | None) -> PreparedRequest:
    """Normalise and measure one input; ``position`` is its index in the inputs."""
    custom_id, url, body = _unpack(item, endpoint)
    url = normalize_endpoint(url)
    if custom_id is None:
        custom_id = f"{GENERATED_PREFIX}{position}"
    elif not custom_id:
        raise ValueError(f"request {position} has an empty custom_id")
    if body.get("stream"):
        raise ValueError(f"request {custom_id!r}: the Batch API does not stream (stream=true)")
    try:
        text = body_text(body)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"request {custom_id!r} is not JSON-serialisable: {exc}") from None
    model = body.get("model")
    digest = body_hash(url, text)
    estimate = estimate_cost(body, endpoint=url)
    tokens = estimate.tokens
    inputs = count_embedding_inputs(body) if url == "/v1/embeddings" else 1
    size = len(line_prefix(custom_id, url).encode()) + len(text.encode()) + 2  # "}\n"
    return PreparedRequest(
        position=position,
        custom_id=custom_id,
        endpoint=url,
        model="" if model is None else str(model),
        body=text,
        body_hash=digest,
        tokens=int(min(tokens, 2**62)) if math.isfinite(tokens) else 2**62,
        inputs=inputs,
        size=size,
    )


def take(
    rows: Iterable[RowSize],
    limits: BatchLimits,
    *,
    endpoint: str,
    token_room: float,
    force_first: bool,
) -> int:
    """How many of ``rows`` (in order) go into the next file.

    A row that alone breaks a limit still goes, alone, when ``force_first`` (nothing of
    its model is queued): the server then says what it thinks, and a request is never
    stuck forever. Without ``force_first`` the answer may be 0: wait for room.
    """
    count = tokens = inputs = size = 0
    count_inputs = endpoint == "/v1/embeddings"
    for row in rows:
        if count >= limits.max_requests:
            break
        fits = (
            size + row.size <= limits.max_bytes
            and tokens + row.tokens <= token_room
            and (not count_inputs or inputs + row.inputs <= limits.max_embedding_inputs)
        )
        if not fits:
            if count == 0 and force_first:
                return 1
            break
        count += 1
        tokens += row.tokens
        inputs += row.inputs
        size += row.size
    return count
