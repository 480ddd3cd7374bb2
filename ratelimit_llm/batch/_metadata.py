"""What the runner writes into each batch's ``metadata``, and the caller's own pairs.

Three keys are ours, so a batch can be recognised from ``batches.list`` alone:

* ``ratelimit_llm_nonce``: the chunk's random nonce. A ``create`` whose answer was lost
  (or a kill right after it) is resolved by finding it, so no chunk becomes two batches.
* ``ratelimit_llm_job``: the job's fingerprint (`Fingerprint` of all its requests). A
  runner without its journal finds the job's batches by it and adopts them.
* ``ratelimit_llm_chunk``: the fingerprint of the chunk's own requests, checked against
  the batch's input file before that file is trusted to say which requests it holds.

The API allows 16 pairs (keys up to 64 characters, values up to 512); ours take three.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CHUNK_KEY",
    "JOB_KEY",
    "MAX_USER_PAIRS",
    "NONCE_KEY",
    "batch_metadata",
    "check_user_metadata",
]

NONCE_KEY = "ratelimit_llm_nonce"
JOB_KEY = "ratelimit_llm_job"
CHUNK_KEY = "ratelimit_llm_chunk"
_PREFIX = "ratelimit_llm_"
#: The API's 16 pairs, less ours.
MAX_USER_PAIRS = 13


def check_user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's ``metadata``, checked as the API will (so a bad pair fails at once).

    :raises TypeError: not a mapping of strings to strings.
    :raises ValueError: more than 13 pairs, a key over 64 or a value over 512 characters,
        or a key of ours (``ratelimit_llm_*``).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of str to str, got {type(metadata).__name__}")
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
        if len(key) > 64 or len(value) > 512:
            raise ValueError(
                f"metadata {key!r}: keys are at most 64 characters and values at most 512"
            )
        if key.startswith(_PREFIX):
            raise ValueError(f"metadata {key!r}: keys starting with {_PREFIX!r} are the runner's")
        checked[key] = value
    if len(checked) > MAX_USER_PAIRS:
        raise ValueError(
            f"metadata has {len(checked)} pairs; at most {MAX_USER_PAIRS} (the API allows 16 "
            "and the runner uses 3)"
        )
    return checked


def batch_metadata(user: Mapping[str, str], *, nonce: str, job: str, chunk: str) -> dict[str, str]:
    """The ``metadata`` of one batch: the caller's pairs and ours."""
    return {**user, NONCE_KEY: nonce, JOB_KEY: job, CHUNK_KEY: chunk}
