"""The public entry points: `run`, `submit`, `results`, `status`, `cancel`, `cost`.

Each opens the journal, builds a `Runner` and closes both when done (an ``async for``
left early closes them when the iterator is closed: use ``contextlib.aclosing``). Only
`run` and `submit`, given the job's inputs, create a journal; every other call (and
``run(client, None, ...)``) needs an existing one and creates no file when it is
missing (`JournalNotFoundError`). `status`, `cost` and ``results(wait=False)`` only read.
Options shared by the entry points:

:param journal: the SQLite journal's path (one file; see ``docs/batch.md``).
:param adopt: before submitting, list the project's recent batches (up to 1,000) and
    adopt those of this job the journal does not know (a lost journal, an older copy
    restored), instead of paying for them twice (default True). ``False`` skips the
    look: for a deliberate second run of the same inputs.
:param limits: `BatchLimits` (file sizes, token budgets, retry budgets).
:param poll: a `PollPolicy`; default `AdaptivePoll()` (1 s growing to 60 s, jittered).
:param sleep: how to wait (default ``anyio.sleep``); tests inject a fake.
:param delete_files: delete each batch's input, output and error files once the journal
    holds their contents (default True: the journal is the copy that matters, and batch
    files count against the project's storage for 30 days otherwise).
:param metadata: extra ``metadata`` for every batch (at most 13 pairs: three are ours).
:param checkpoint: called with the name of each durable step (see `Checkpoint`).
:param statistics: a `BatchStatistics` to fill with counters.
:param spool_dir: where batch files are written before upload (default: the temp dir).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import openai

from ._cost import BatchCost, ModelUsage, PriceTable
from ._journal import sqlite_errors
from ._open import open_existing
from ._poll import PollPolicy
from ._runner import BatchStatistics, Checkpoint, open_runner
from ._types import BatchJob, BatchLimits, BatchResult, JobStatus

__all__ = ["cancel", "cost", "results", "run", "status", "submit"]

Requests = Iterable[Any] | AsyncIterable[Any]
JobRef = BatchJob | str | os.PathLike[str]


def _path(job: JobRef) -> Path:
    return job.journal if isinstance(job, BatchJob) else Path(job)


async def run(
    client: openai.AsyncOpenAI,
    requests: Requests | None,
    *,
    journal: str | os.PathLike[str],
    endpoint: str | None = None,
    adopt: bool = True,
    limits: BatchLimits | None = None,
    poll: PollPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    delete_files: bool = True,
    metadata: Mapping[str, str] | None = None,
    checkpoint: Checkpoint | None = None,
    statistics: BatchStatistics | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    retry_backoff: float = 1.0,
) -> AsyncGenerator[BatchResult, None]:
    """Run ``requests`` through the Batch API; yield each final result once per call.

    Re-running with the same ``journal`` and the same ``requests`` (or ``requests=None``)
    resumes: results already in the journal are yielded first, interrupted uploads and
    batch creations are finished without duplicates, and only unanswered requests are
    submitted. A `cancel` recorded in the journal is lifted: run means "go on".

    Example::

        async with contextlib.aclosing(
            batch.run(client, bodies, journal="labels.db", endpoint="/v1/chat/completions")
        ) as results:
            async for result in results:
                print(result.custom_id, result.response if result.ok else result.error)

    :param requests: bodies (with ``endpoint=``), input-line dicts or `BatchRequest`s, as
        an iterable or async iterable; streamed into the journal, never all held in memory.
        ``None`` resumes an existing journal.
    :raises DuplicateCustomIdError: before anything is uploaded.
    :raises JournalMismatchError: the journal is another job's, or holds requests the
        inputs no longer name (nothing is sent).
    :raises JournalCorruptError: the file at ``journal`` is not a whole journal (empty,
        truncated, damaged): never a fresh start.
    :raises JournalNotFoundError: ``requests=None`` and no journal.
    :raises BatchFailedError: a batch failed validation (its lines stay pending).
    :raises JournalLockedError: another process drives this journal.
    """
    runner = await open_runner(
        client,
        journal,
        requests=requests,
        endpoint=endpoint,
        limits=limits,
        poll=poll,
        sleep=sleep,
        delete_files=delete_files,
        metadata=metadata,
        checkpoint=checkpoint,
        statistics=statistics,
        spool_dir=spool_dir,
        retry_backoff=retry_backoff,
    )
    try:
        if requests is not None:
            await runner.step("ingested")
        await runner.reconcile(adopt)
        await runner.db(runner.journal.set_cancelled, False)
        async for page in runner.drive(submit=True):
            for result in page:
                yield result
    finally:
        await runner.aclose()


async def submit(
    client: openai.AsyncOpenAI,
    requests: Requests,
    *,
    journal: str | os.PathLike[str],
    endpoint: str | None = None,
    adopt: bool = True,
    limits: BatchLimits | None = None,
    delete_files: bool = True,
    metadata: Mapping[str, str] | None = None,
    checkpoint: Checkpoint | None = None,
    statistics: BatchStatistics | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    retry_backoff: float = 1.0,
) -> BatchJob:
    """Journal ``requests`` and submit every batch the token budgets allow; don't wait.

    The rest (waiting, collecting, resubmitting, batches the budget held back) is done
    by `results`, from this or any other process.
    """
    runner = await open_runner(
        client,
        journal,
        requests=requests,
        endpoint=endpoint,
        limits=limits,
        delete_files=delete_files,
        metadata=metadata,
        checkpoint=checkpoint,
        statistics=statistics,
        spool_dir=spool_dir,
        retry_backoff=retry_backoff,
    )
    try:
        await runner.step("ingested")
        await runner.reconcile(adopt)
        await runner.db(runner.journal.set_cancelled, False)
        await runner.submit_ready()
        return await runner.job()
    finally:
        await runner.aclose()


async def results(
    client: openai.AsyncOpenAI | None,
    job: JobRef,
    *,
    chunk_size: int = 1_000,
    wait: bool = True,
    adopt: bool = True,
    limits: BatchLimits | None = None,
    poll: PollPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    delete_files: bool = True,
    checkpoint: Checkpoint | None = None,
    statistics: BatchStatistics | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    retry_backoff: float = 1.0,
) -> AsyncGenerator[list[BatchResult], None]:
    """Yield the job's final results in lists of at most ``chunk_size``.

    With ``wait`` (the default) it drives the job to its end like `run` (polling,
    collecting, resubmitting; not after a `cancel`). With ``wait=False`` it only reads
    what the journal already holds, without a client or a single remote call.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    if not wait:
        reader = await open_runner(None, job, readonly=True)
        try:
            buffer: list[BatchResult] = []
            after = 0
            while True:
                page, after = await reader.db(reader.journal.done_results, after=after)
                if not page:
                    break
                buffer.extend(page)
                while len(buffer) >= chunk_size:
                    yield buffer[:chunk_size]
                    buffer = buffer[chunk_size:]
            if buffer:
                yield buffer
        finally:
            await reader.aclose()
        return
    if client is None:
        raise TypeError("results(wait=True) needs a client")
    runner = await open_runner(
        client,
        job,
        limits=limits,
        poll=poll,
        sleep=sleep,
        delete_files=delete_files,
        checkpoint=checkpoint,
        statistics=statistics,
        spool_dir=spool_dir,
        retry_backoff=retry_backoff,
    )
    try:
        await runner.reconcile(adopt)
        submit_more = not await runner.db(runner.journal.cancelled)
        buffer = []
        async for page in runner.drive(submit=submit_more):
            buffer.extend(page)
            while len(buffer) >= chunk_size:
                yield buffer[:chunk_size]
                buffer = buffer[chunk_size:]
        if buffer:
            yield buffer
    finally:
        await runner.aclose()


async def status(client: openai.AsyncOpenAI | None, job: JobRef) -> JobStatus:
    """Where the job stands; with a client, each unfinished batch's status is asked too.

    It only reads: the journal is never changed (the server's view is in the returned
    `JobStatus` only), so it is safe while another process drives the job.

    :raises JournalNotFoundError: no journal at the path (none is created).
    """
    runner = await open_runner(client, job, readonly=True)
    try:
        state = await runner.status()
        if client is not None:
            state = await runner.remote_view(state)
        return state
    finally:
        await runner.aclose()


async def cancel(
    client: openai.AsyncOpenAI,
    job: JobRef,
    *,
    poll: PollPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    delete_files: bool = True,
    statistics: BatchStatistics | None = None,
    retry_backoff: float = 1.0,
) -> JobStatus:
    """Cancel the job's batches, wait for ``cancelled`` and collect their partial output.

    Finished lines are recorded as results; unfinished ones return to pending, and the
    journal is marked cancelled so `results` submits nothing more (a later `run` over the
    journal resumes them). If another process is driving the job, the batches are
    cancelled and the flag set, and that process collects the partial output.
    """
    runner = await open_runner(
        client,
        job,
        exclusive=False,
        poll=poll,
        sleep=sleep,
        delete_files=delete_files,
        statistics=statistics,
        retry_backoff=retry_backoff,
    )
    try:
        await runner.cancel(collect=runner.owner)
        return await runner.status()
    finally:
        await runner.aclose()


def cost(job: JobRef, *, prices: PriceTable | None = None) -> BatchCost:
    """The job's cost so far, from the ``usage`` of every answered request.

    Reads the journal only (a quick aggregate query; safe while a job runs).

    :raises JournalNotFoundError: no journal at the path (none is created).
    """
    path = _path(job)
    opened = open_existing(path, readonly=True)
    try:
        with sqlite_errors(path):
            usage = [ModelUsage(*row) for row in opened.usage_by_model()]
    finally:
        opened.close()
    return BatchCost.compute(usage, prices)
