"""Fingerprints of a set of requests: a job's identity, and each batch's contents.

A fingerprint names a *set* of requests, each by its ``custom_id`` and the hash of its
endpoint and body (`PreparedRequest.body_hash`). It is built one request at a time in
O(1) memory, so a job's identity is computed while its inputs stream into the journal,
and it does not depend on order: the same requests give the same fingerprint however
they were read, split or stored (the journal, a batch's input file, the inputs).

The construction: each request's SHA-256 is read as a 256-bit number and the numbers
are summed modulo 2^256; the fingerprint is the SHA-256 of the count and that sum.
Custom ids are unique within a job, so the set is a set, and a sum of independent
256-bit hashes collides by accident with negligible probability. It is an identity
check, not a defence against someone forging batches in your own project.

Example::

    job = Fingerprint()
    for request in requests:
        job.add(request.custom_id, request.body_hash)
    job.hexdigest()  # 64 hex digits; fits a batch's metadata value (512 characters)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Fingerprint", "fingerprint_of"]

_MODULUS = 1 << 256


def _digest(custom_id: str, body_hash: str) -> int:
    # A NUL cannot occur in either part's text form, so the pair is unambiguous.
    data = f"{custom_id}\x00{body_hash}".encode()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


class Fingerprint:
    """An order-independent fingerprint of (custom_id, body_hash) pairs, built by `add`."""

    __slots__ = ("_count", "_sum")

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0

    @property
    def count(self) -> int:
        """How many requests were added."""
        return self._count

    def add(self, custom_id: str, body_hash: str) -> None:
        self._count += 1
        self._sum = (self._sum + _digest(custom_id, body_hash)) % _MODULUS

    def hexdigest(self) -> str:
        """The fingerprint: 64 hex digits (the empty set has one too)."""
        return hashlib.sha256(f"{self._count}:{self._sum:064x}".encode()).hexdigest()


def fingerprint_of(pairs: Iterable[Sequence[Any]]) -> str:
    """The fingerprint of ``(custom_id, body_hash)`` pairs (e.g. rows of a query)."""
    built = Fingerprint()
    for custom_id, body_hash in pairs:
        built.add(str(custom_id), str(body_hash))
    return built.hexdigest()
