"""Adoption: a runner without its journal finds the job's batches and takes them over.

A journal lost (deleted, left on another machine, restored from an old copy) used to
mean paying for the job again. Each batch carries the job's fingerprint and its chunk's
in ``metadata`` (`_metadata`), so a runner with a journal that has not looked yet lists
the project's batches, keeps those of its job that it does not know, and records each as
a submitted chunk of the requests it holds; the planner then submits only what no batch
covers, and the usual polling collects the adopted batches.

Which requests a batch holds is read from its **input file**, not rebuilt by re-running
the splitter: how the lost run split the job depended on its limits, the token budgets
it had learned and which lines had come back for a retry, none of which the new run
knows, while the file is the batch's own statement of its lines. The file is checked
against the chunk's fingerprint before it is trusted, and each line's body against the
journal's (a request is claimed only with the same body). Batches are taken newest
first, so a request sent again after an error belongs to its latest batch.

Not adoptable, hence sent again: a batch whose input file is gone (deleted after its
output was collected by the lost journal, whose results went with it; with
``delete_files=False`` the files stay, and such a batch is adopted and collected again),
a batch that ``failed`` (nothing ran), a batch beyond the listing window (the 1,000 most
recent batches of the project), and a batch made before the job was extended with more
requests (it carries the job's earlier fingerprint).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import openai

from ._fingerprint import Fingerprint
from ._metadata import CHUNK_KEY, JOB_KEY, NONCE_KEY
from ._split import body_hash, body_text

if TYPE_CHECKING:
    from ._runner import Runner

__all__ = ["reconcile"]

logger = logging.getLogger("ratelimit_llm.batch")


async def reconcile(runner: Runner, adopt: bool) -> None:
    """Before anything is submitted: take over the job's batches the journal does not know.

    Runs at the start of every driving call (unless ``adopt`` is False), so a journal
    needs no flag to know it is stale: a new journal (its job's old one lost) and an
    older copy restored both find the batches they are missing. A batch of one of the
    journal's own chunks whose ``create`` it never saw answered (the older copy's case)
    is recorded on that chunk, as the nonce lookup would; any other batch of the job is
    adopted from its input file. Batches that cannot be are remembered and not read again.
    """
    if not adopt:
        return
    journal = runner.journal
    job = await runner.db(journal.job_fingerprint)
    known, unrecorded = await runner.db(journal.known_batches)
    found: list[Any] = []
    async with contextlib.aclosing(runner.list_batches()) as batches:
        async for batch in batches:
            metadata = batch.metadata or {}
            if metadata.get(JOB_KEY) == job and str(batch.id) not in known:
                found.append(batch)
    if not found:
        return
    waiting = {
        c.id: c for c in await runner.db(journal.chunks, ("uploading", "uploaded", "creating"))
    }
    for batch in found:  # newest first, as listed
        chunk_id = unrecorded.get(str((batch.metadata or {}).get(NONCE_KEY)))
        chunk = waiting.get(chunk_id) if chunk_id is not None else None
        if chunk is not None:
            runner.stats.batches_found_by_nonce += 1
            await runner.record_batch(chunk, batch)
        elif batch.status != "failed":  # a failed batch ran nothing: nothing to take over
            await _adopt(runner, batch)


async def _adopt(runner: Runner, batch: Any) -> None:
    stats = runner.stats
    metadata = batch.metadata or {}
    members = await _members(runner, batch)
    if members is None:
        await _unadoptable(runner, batch, f"its input file {batch.input_file_id} is gone")
        return
    digest, pairs = members
    if digest != metadata.get(CHUNK_KEY):
        await _unadoptable(runner, batch, "its input file does not match its chunk fingerprint")
        return
    counts = batch.request_counts
    claimed = await runner.db(
        runner.journal.adopt_chunk,
        batch_id=str(batch.id),
        nonce=str(metadata.get(NONCE_KEY) or f"adopted-{batch.id}"),
        input_file_id=str(batch.input_file_id),
        remote_status=str(batch.status),
        completed=counts.completed if counts is not None else 0,
        failed=counts.failed if counts is not None else 0,
        members=pairs,
    )
    if not claimed:
        await _unadoptable(runner, batch, "none of its requests is pending")
        return
    stats.batches_adopted += 1
    stats.requests_adopted += claimed
    logger.info(
        "adopted batch %s (%s): %d of its %d requests", batch.id, batch.status, claimed, len(pairs)
    )
    await runner.step("adopted")


async def _unadoptable(runner: Runner, batch: Any, reason: str) -> None:
    runner.stats.batches_not_adopted += 1
    logger.warning(
        "batch %s of this job is not adopted: %s; what it holds is sent again if needed",
        batch.id,
        reason,
    )
    await runner.db(runner.journal.note_unadopted, str(batch.id), reason)


async def _members(runner: Runner, batch: Any) -> tuple[str, list[tuple[str, str]]] | None:
    """The batch's ``(custom_id, body_hash)`` pairs from its input file, and their
    fingerprint; None if the file is gone or unreadable as a batch file."""
    file_id = str(batch.input_file_id)

    async def read() -> tuple[str, list[tuple[str, str]]] | None:
        pairs: list[tuple[str, str]] = []
        digest = Fingerprint()
        async with runner.client.files.with_streaming_response.content(file_id) as response:
            async for line in response.iter_lines():
                if not line.strip():
                    continue
                pair = _pair(line)
                if pair is None:
                    return None
                pairs.append(pair)
                digest.add(*pair)
        return digest.hexdigest(), pairs

    try:
        return await runner.remote(f"download of {file_id}", read)
    except (openai.NotFoundError, openai.BadRequestError, openai.PermissionDeniedError):
        return None


def _pair(line: str) -> tuple[str, str] | None:
    """``(custom_id, body_hash)`` of one input line, hashed as `prepare` hashed it."""
    try:
        data = json.loads(line)
        custom_id, url, body = data["custom_id"], data["url"], data["body"]
        if not isinstance(custom_id, str) or not isinstance(url, str) or not isinstance(body, dict):
            return None
        return custom_id, body_hash(url, body_text(body))
    except (ValueError, KeyError, TypeError):
        return None
