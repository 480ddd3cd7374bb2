"""The job's inputs, streamed: a JSONL file or any (async) iterable, one request at a time.

A request is the Batch API's input line (``{"custom_id", "method", "url", "body"}``), a
plain body (with the run's ``endpoint``) or a `BatchRequest`: the shapes
`batch._split.prepare` reads, which names a request without a ``custom_id`` after its
position (``request-<n>``), so the same inputs map the same way on every run. Nothing
here holds more than one request: a file of a million lines is read line by line into
the journal.

**Shards.** Several machines share one job by each taking a disjoint shard of the same
inputs (`Shard`): a request belongs to shard ``sha256(custom_id) mod count``, a pure
function of its name, so every machine agrees without talking to the others, and the
shards cover the job exactly once. Each machine keeps its own journal and output (a
shard *is* a job: its journal's fingerprint is its shard's requests), and they share the
quota through the Redis backend. Unnamed requests are named from their position in the
*whole* input before they are filtered, so ``request-17`` is the same request on every
machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from .._jsonl import read_jsonl
from ..batch._split import GENERATED_PREFIX
from ..batch._types import BatchRequest

__all__ = ["Requests", "Shard", "parse_shard", "shard_of", "stream_inputs"]

Requests = Iterable[Any] | AsyncIterable[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (``Shard(0, 4)`` is ``"0/4"``)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: object) -> Shard | None:
    """``None``, ``(index, count)`` or ``"index/count"`` as a `Shard`.

    :raises TypeError: another type.
    :raises ValueError: not ``0 <= index < count``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        index_text, slash, count_text = value.partition("/")
        try:
            if not slash:
                raise ValueError
            index, count = int(index_text), int(count_text)
        except ValueError:
            raise ValueError(
                f"shard must look like 'INDEX/COUNT' (e.g. '0/4'), got {value!r}"
            ) from None
    elif isinstance(value, tuple) and len(value) == 2:
        index, count = value
        for name, number in (("index", index), ("count", count)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f"shard {name} must be an int, got {type(number).__name__}")
    else:
        raise TypeError(
            f"shard must be (index, count) or 'index/count', got {type(value).__name__}"
        )
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must satisfy 0 <= index < count, got {index}/{count}")
    return Shard(index, count)


def shard_of(custom_id: str, count: int) -> int:
    """The shard of ``custom_id`` among ``count``: stable across machines and runs."""
    digest = hashlib.sha256(custom_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def _custom_id(item: object, position: int) -> str:
    """The name `prepare` will give ``item`` at ``position`` of the whole input."""
    if isinstance(item, BatchRequest):
        named = item.custom_id
    elif isinstance(item, Mapping):
        named = item.get("custom_id")
    else:
        named = None  # `prepare` refuses it with a clear TypeError
    return f"{GENERATED_PREFIX}{position}" if named is None else str(named)


def _named(item: object, custom_id: str) -> object:
    """``item`` with its custom_id written in, so a filtered stream keeps its names."""
    if isinstance(item, BatchRequest):
        return (
            item if item.custom_id is not None else dataclasses.replace(item, custom_id=custom_id)
        )
    if isinstance(item, Mapping) and item.get("custom_id") is None:
        return {**item, "custom_id": custom_id}
    return item


async def stream_inputs(
    requests: str | os.PathLike[str] | Requests, shard: Shard | None
) -> AsyncIterator[object]:
    """Every input (of the shard, if any), one at a time, from a path or an iterable."""
    if isinstance(requests, str | os.PathLike):
        items: Requests = read_jsonl(Path(requests))
    else:
        items = requests
    position = 0
    if isinstance(items, AsyncIterable):
        async for item in items:
            kept = _keep(item, position, shard)
            position += 1
            if kept is not None:
                yield kept
    else:
        for item in items:
            kept = _keep(item, position, shard)
            position += 1
            if kept is not None:
                yield kept


def _keep(item: object, position: int, shard: Shard | None) -> object | None:
    if shard is None:
        return item
    custom_id = _custom_id(item, position)
    if shard_of(custom_id, shard.count) != shard.index:
        return None
    return _named(item, custom_id)
