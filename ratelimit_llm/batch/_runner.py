"""Driving batches: ingest, split, upload, create, poll, collect, resubmit.

The runner owns no state of its own: everything that must survive is in the `Journal`,
written before the remote call it describes. What it owns is the order of operations,
which is what makes a kill at any instant safe:

1. The inputs are read into the journal in one transaction (a kill rolls it back).
2. A chunk is planned (its lines marked ``queued``) before its file is written and
   uploaded; a kill before the file id is recorded re-uploads (files are cheap).
3. ``creating`` is committed before ``batches.create``, whose ``metadata`` carries the
   chunk's nonce; a kill (or a lost response) after it is resolved by finding the nonce
   in ``batches.list``, so a batch is never created twice.
4. A terminal batch's files are streamed line by line into the journal, each update
   guarded by the chunk it expects the request in, so replaying a collection is a no-op.
5. Before anything is submitted, the job's batches on the server that the journal does
   not know (a lost journal's, an older copy's) are adopted (`_adopt`), so a lost
   journal does not mean paying for its batches twice.
6. Before each remote call that changes the server, the journal's main file is made to
   hold every commit (`Journal.sync`): the main file alone is the record.

Every remote call goes through the client it is given, so a client from
`ratelimit_llm.wrap` paces uploads, polls and downloads like any other call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import tempfile
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
import openai

from ._adopt import reconcile
from ._errors import BatchFailedError
from ._journal import Chunk, Journal, sqlite_errors
from ._lines import LineOutcome, parse_line
from ._metadata import NONCE_KEY, batch_metadata, check_user_metadata
from ._open import OpenedJournal, open_journal
from ._poll import AdaptivePoll, PollPolicy
from ._types import BatchJob, BatchLimits, BatchResult, JobStatus

__all__ = ["NONCE_KEY", "BatchStatistics", "Checkpoint", "Runner", "open_runner"]

logger = logging.getLogger("ratelimit_llm.batch")

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})

#: Called at each durable step with its name; raising (or killing the process) there
#: simulates a crash at that point. Steps: ``ingested``, ``adopted`` (one batch found on
#: the server is recorded), ``planned``, ``uploaded``, ``creating``, ``created`` (the
#: batch exists, its id is not recorded yet), ``submitted``, ``collecting``,
#: ``collected``.
Checkpoint = Callable[[str], Awaitable[None] | None]

_APPLY_PAGE = 1_000
_REMOTE_ATTEMPTS = 5

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class BatchStatistics:
    """Counters of one run (pass one in to read them; never holds request bodies)."""

    ingested: int = 0
    batches_created: int = 0
    batches_found_by_nonce: int = 0
    files_uploaded: int = 0
    results: int = 0
    malformed_lines: int = 0
    unknown_lines: int = 0
    missing_lines: int = 0
    token_limit_failures: int = 0
    polls: int = 0
    #: Batches of this job found on the server and recorded instead of resubmitted.
    batches_adopted: int = 0
    #: Requests those batches hold (not submitted again).
    requests_adopted: int = 0
    #: Batches of this job found but not adoptable (input file gone, or not matching).
    batches_not_adopted: int = 0


class Runner:
    """One journal and one client, and the steps between them."""

    def __init__(
        self,
        client: openai.AsyncOpenAI | None,
        opened: OpenedJournal,
        *,
        limits: BatchLimits,
        poll: PollPolicy,
        sleep: Callable[[float], Awaitable[None]],
        delete_files: bool,
        metadata: Mapping[str, str] | None,
        checkpoint: Checkpoint | None,
        statistics: BatchStatistics,
        spool_dir: str | os.PathLike[str] | None,
        list_pages: int,
        retry_backoff: float,
    ) -> None:
        self._client = client
        self._opened = opened
        self._journal = opened.journal
        self.limits = limits
        self._poll = poll
        self._sleep = sleep
        self._delete_files = delete_files
        self._metadata = check_user_metadata(metadata)
        self._checkpoint = checkpoint
        self.stats = statistics
        self._spool = Path(spool_dir) if spool_dir is not None else Path(tempfile.gettempdir())
        self._list_pages = list_pages
        self._retry_backoff = retry_backoff
        self._limiter = anyio.CapacityLimiter(1)

    # ---------------------------------------------------------------- plumbing

    @property
    def journal(self) -> Journal:
        return self._journal

    @property
    def owner(self) -> bool:
        """Whether this runner holds the journal's driver lock."""
        return self._opened.owner

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            raise TypeError("this operation needs a client")
        return self._client

    async def db(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a journal call in a worker thread, one at a time (sqlite blocks).

        What SQLite raises about the file becomes a `JournalError` naming the path.
        """
        call: Callable[[], T] = functools.partial(function, *args, **kwargs)
        with sqlite_errors(self._journal.path):
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def synced(self) -> None:
        """Make the journal's main file hold every commit: before any remote change.

        Every upload, create, cancel and file deletion is preceded by this, so the main
        file alone is the record wherever the server is changed (see `Journal.sync`);
        so is handing out a batch's results.
        """
        await self.db(self._journal.sync)

    async def step(self, name: str) -> None:
        """Report the durable step ``name`` to the checkpoint callback, if any."""
        if self._checkpoint is not None:
            outcome = self._checkpoint(name)
            if outcome is not None:
                await outcome

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._opened.close, limiter=self._limiter)

    async def remote(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried on errors that waiting can cure (connection, 408/409/429/5xx).

        The SDK retries too (unless the client is wrapped, whose limiter does); this
        covers a limiter or SDK that gave up while a batch job must go on.
        """
        for attempt in range(1, _REMOTE_ATTEMPTS + 1):
            try:
                return await call()
            except openai.APIStatusError as exc:
                body = exc.body if isinstance(exc.body, Mapping) else {}
                code = body.get("code") if isinstance(body, Mapping) else None
                transient = exc.status_code in (408, 409, 429) or exc.status_code >= 500
                if not transient or code == "insufficient_quota" or attempt == _REMOTE_ATTEMPTS:
                    raise
                logger.warning("%s: HTTP %d, retrying (%d)", what, exc.status_code, attempt)
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                if attempt == _REMOTE_ATTEMPTS:
                    raise
                logger.warning("%s: %s, retrying (%d)", what, type(exc).__name__, attempt)
            await self._sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` + 1 of a remote call: 2, 4, 8 ... 30, scaled."""
        return min(2.0**attempt, 30.0) * self._retry_backoff

    # ---------------------------------------------------------------- submitting

    async def submit_ready(
        self,
        *,
        room: Callable[[str, str], Awaitable[int | None]] | None = None,
        planned: Callable[[Chunk], Awaitable[None]] | None = None,
    ) -> None:
        """Finish interrupted submissions, then plan and submit every chunk that fits.

        :param room: asked before each chunk of (endpoint, model) is planned: how many
            requests it may hold at most (``None``: no cap; ``0``: none now). A dollar
            budget (`ratelimit_llm.runs`) caps chunks this way.
        :param planned: called with each planned chunk before anything of it is
            uploaded (to reserve what it may cost).
        """
        journal = self._journal
        for chunk in await self.db(journal.chunks, ("uploading", "uploaded", "creating")):
            await self._submit(chunk)
        if await self.db(journal.cancelled):
            return
        while True:
            any_planned = False
            for endpoint, model in await self.db(journal.pending_groups):
                limits = self.limits
                if room is not None:
                    allowed = await room(endpoint, model)
                    if allowed is not None and allowed < 1:
                        continue
                    if allowed is not None and allowed < limits.max_requests:
                        limits = dataclasses.replace(limits, max_requests=allowed)
                nonce = secrets.token_hex(12)
                planned_chunk: Chunk | None = await self.db(
                    journal.plan_chunk, endpoint, model, limits, nonce
                )
                if planned_chunk is None:
                    continue
                any_planned = True
                if planned is not None:
                    await planned(planned_chunk)
                await self.step("planned")
                await self._submit(planned_chunk)
            if not any_planned:
                return

    async def _submit(self, chunk: Chunk) -> None:
        journal = self._journal
        if chunk.state == "uploading":
            file_id = await self._upload(chunk)
            await self.db(journal.update_chunk, chunk.id, input_file_id=file_id, state="uploaded")
            await self.step("uploaded")
            chunk = await self.db(journal.chunk, chunk.id)
        if chunk.state == "creating":
            found = await self._find_batch(chunk.nonce)
            if found is not None:
                self.stats.batches_found_by_nonce += 1
                await self.record_batch(chunk, found)
                return
        if chunk.state in ("uploaded", "creating"):
            await self._create(chunk)

    async def _upload(self, chunk: Chunk) -> str:
        path = self._spool / chunk.file_name

        def write() -> int:
            with open(path, "wb") as out:
                return self._journal.write_chunk_file(chunk.id, out)

        try:
            await self.db(write)
            await self.synced()
            handle: IO[bytes] = await anyio.to_thread.run_sync(path.open, "rb")
            try:

                async def upload() -> Any:
                    handle.seek(0)
                    return await self.client.files.create(
                        file=(chunk.file_name, handle, "application/jsonl"), purpose="batch"
                    )

                uploaded = await self.remote(f"upload of chunk {chunk.id}", upload)
            finally:
                handle.close()
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        self.stats.files_uploaded += 1
        logger.info("chunk %d: uploaded %d requests as %s", chunk.id, chunk.requests, uploaded.id)
        return str(uploaded.id)

    async def _create(self, chunk: Chunk) -> None:
        journal = self._journal
        await self.db(journal.update_chunk, chunk.id, state="creating")
        await self.step("creating")
        if chunk.input_file_id is None:
            chunk = await self.db(journal.chunk, chunk.id)
        metadata = batch_metadata(
            self._metadata,
            nonce=chunk.nonce,
            job=await self.db(journal.job_fingerprint),
            chunk=await self.db(journal.chunk_fingerprint, chunk.id),
        )
        # The SDK would retry a create whose answer was lost, and could start the job
        # twice: this loop retries instead, after looking for the nonce.
        creator = self.client.with_options(max_retries=0)
        await self.synced()
        for attempt in range(1, _REMOTE_ATTEMPTS + 1):
            try:
                batch = await creator.batches.create(
                    input_file_id=str(chunk.input_file_id),
                    endpoint=chunk.endpoint,  # type: ignore[arg-type]
                    completion_window="24h",
                    metadata=metadata,
                )
                break
            except (
                openai.APIConnectionError,
                openai.APITimeoutError,
                openai.APIStatusError,
            ) as exc:
                status = getattr(exc, "status_code", None)
                if (
                    isinstance(status, int)
                    and 400 <= status < 500
                    and status not in (408, 409, 429)
                ):
                    raise
                if attempt == _REMOTE_ATTEMPTS:
                    raise
                # The batch may exist even though the answer was lost: look before retrying.
                found = await self._find_batch(chunk.nonce)
                if found is not None:
                    self.stats.batches_found_by_nonce += 1
                    await self.record_batch(chunk, found)
                    return
                logger.warning("chunk %d: create failed (%s), retrying", chunk.id, exc)
                await self._sleep(self._backoff(attempt))
        self.stats.batches_created += 1
        await self.step("created")
        await self.record_batch(chunk, batch)

    async def record_batch(self, chunk: Chunk, batch: Any) -> None:
        """Record that ``chunk`` is the batch ``batch`` (just created, or found again)."""
        await self.db(
            self._journal.update_chunk,
            chunk.id,
            batch_id=str(batch.id),
            input_file_id=str(batch.input_file_id),
            remote_status=str(batch.status),
            state="submitted",
        )
        logger.info("chunk %d: batch %s (%d requests)", chunk.id, batch.id, chunk.requests)
        await self.step("submitted")

    async def _find_batch(self, nonce: str) -> Any | None:
        """The batch whose metadata carries ``nonce``, among the most recent ones."""
        async with contextlib.aclosing(self.list_batches()) as batches:
            async for batch in batches:
                metadata = batch.metadata or {}
                if metadata.get(NONCE_KEY) == nonce:
                    return batch
        return None

    async def list_batches(self) -> AsyncGenerator[Any, None]:
        """The project's batches, newest first, up to ``list_pages`` pages of 100.

        Close it when leaving early (``contextlib.aclosing``).
        """
        page = await self.remote("batches.list", lambda: self.client.batches.list(limit=100))
        for number in range(1, self._list_pages + 1):
            for batch in page.data:
                yield batch
            if number == self._list_pages or not page.has_next_page():
                return
            current = page
            page = await self.remote("batches.list", current.get_next_page)

    # ---------------------------------------------------------------- polling

    async def poll_once(self) -> tuple[bool, list[int]]:
        """Retrieve every submitted batch; collect the finished ones.

        Returns whether anything moved, and the chunks collected (in order).
        """
        journal = self._journal
        changed = False
        collected: list[int] = []
        for chunk in await self.db(journal.chunks, ("submitted",)):
            assert chunk.batch_id is not None
            batch_id = chunk.batch_id
            batch = await self.remote(
                f"retrieve {batch_id}", functools.partial(self.client.batches.retrieve, batch_id)
            )
            self.stats.polls += 1
            counts = batch.request_counts
            completed = counts.completed if counts is not None else 0
            failed = counts.failed if counts is not None else 0
            if (batch.status, completed, failed) != (
                chunk.remote_status,
                chunk.completed,
                chunk.failed,
            ):
                changed = True
                await self.db(
                    journal.update_chunk,
                    chunk.id,
                    remote_status=batch.status,
                    completed=completed,
                    failed=failed,
                )
            if batch.status in TERMINAL and await self.finish(chunk, batch):
                collected.append(chunk.id)
        return changed, collected

    # ---------------------------------------------------------------- collecting

    async def finish(self, chunk: Chunk, batch: Any) -> bool:
        """Handle a terminal batch; True when its lines were collected (results to hand out)."""
        journal = self._journal
        if batch.status == "failed":
            await self._failed(chunk, batch)
            return False
        await self.db(
            journal.update_chunk,
            chunk.id,
            state="collecting",
            remote_status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )
        await self.step("collecting")
        chunk = await self.db(journal.chunk, chunk.id)
        await self.collect(chunk)
        return True

    async def collect(self, chunk: Chunk) -> None:
        """Read a finished chunk's output and error files into the journal (replayable)."""
        journal = self._journal
        batch_id = str(chunk.batch_id)
        for file_id in (chunk.output_file_id, chunk.error_file_id):
            if file_id:
                await self._read_file(chunk, batch_id, file_id)
        expired = chunk.remote_status in ("expired", "cancelled")
        missing = await self.db(
            journal.finish_chunk, chunk.id, batch_id, self.limits, expired=expired
        )
        if missing and not expired:
            self.stats.missing_lines += missing
            logger.warning(
                "batch %s: %d request(s) in neither the output nor the error file; resubmitting",
                batch_id,
                missing,
            )
        await self.db(journal.reset_failures, chunk.model)
        await self.synced()  # its results are handed out next: the main file holds them
        await self.step("collected")
        await self._cleanup(chunk)

    async def _read_file(self, chunk: Chunk, batch_id: str, file_id: str) -> None:
        for attempt in range(1, _REMOTE_ATTEMPTS + 1):
            try:
                await self._stream_lines(chunk, batch_id, file_id)
                return
            except openai.NotFoundError:
                logger.warning(
                    "batch %s: file %s is gone; its lines count as missing", batch_id, file_id
                )
                return
            except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError):
                if attempt == _REMOTE_ATTEMPTS:
                    raise
                # Lines already applied stay applied; the replay skips them.
                logger.warning("batch %s: download of %s broke, retrying", batch_id, file_id)
                await self._sleep(self._backoff(attempt))

    async def _stream_lines(self, chunk: Chunk, batch_id: str, file_id: str) -> None:
        page: list[LineOutcome] = []
        async with self.client.files.with_streaming_response.content(file_id) as response:
            async for line in response.iter_lines():
                if not line.strip():
                    continue
                outcome = parse_line(line)
                if outcome is None:
                    self.stats.malformed_lines += 1
                    continue
                page.append(outcome)
                if len(page) >= _APPLY_PAGE:
                    await self._apply(chunk, batch_id, page)
                    page = []
        if page:
            await self._apply(chunk, batch_id, page)

    async def _apply(self, chunk: Chunk, batch_id: str, page: list[LineOutcome]) -> None:
        matched = await self.db(self._journal.apply, chunk.id, batch_id, page, self.limits)
        if matched < len(page):
            self.stats.unknown_lines += len(page) - matched
            logger.warning(
                "batch %s: %d result line(s) match no request queued in it (unknown custom_id, "
                "duplicate, or already recorded); ignored",
                batch_id,
                len(page) - matched,
            )

    async def _failed(self, chunk: Chunk, batch: Any) -> None:
        journal = self._journal
        errors = list(batch.errors.data or []) if batch.errors is not None else []
        codes = [str(e.code) for e in errors if e.code]
        messages = [str(e.message) for e in errors if e.message]
        if "token_limit_exceeded" in codes:
            self.stats.token_limit_failures += 1
            in_flight = await self.db(journal.queued_tokens, chunk.model)
            alone = chunk.requests == 1 and await self.db(journal.active_count, chunk.model) == 1
            streak = await self.db(
                journal.shrink_budget,
                chunk.model,
                self.limits.budget_for(chunk.model),
                float(in_flight),
                alone=alone,
            )
            await self.db(journal.release_chunk, chunk.id, "requeued")
            logger.warning(
                "batch %s: enqueued token limit of %s reached; budget now %.0f tokens, "
                "%d request(s) requeued",
                batch.id,
                chunk.model,
                await self.db(journal.budget, chunk.model, self.limits.budget_for(chunk.model)),
                chunk.requests,
            )
            await self._cleanup(chunk)
            if streak >= self.limits.max_token_limit_failures:
                raise BatchFailedError(str(batch.id), codes, messages)
            return
        await self.db(journal.release_chunk, chunk.id, "failed")
        await self._cleanup(chunk)
        raise BatchFailedError(str(batch.id), codes, messages)

    async def _cleanup(self, chunk: Chunk) -> None:
        """Delete the chunk's remote files once the journal holds what they said."""
        if not self._delete_files:
            return
        chunk = await self.db(self._journal.chunk, chunk.id)
        if chunk.files_deleted:
            return
        await self.synced()  # the files go: the main file must hold what they said
        for file_id in (chunk.input_file_id, chunk.output_file_id, chunk.error_file_id):
            if not file_id:
                continue
            try:
                await self.client.files.delete(file_id)
            except openai.NotFoundError:
                pass
            except openai.APIError as exc:  # a leftover file is storage, not lost work
                logger.warning("could not delete file %s: %s", file_id, type(exc).__name__)
        await self.db(self._journal.update_chunk, chunk.id, files_deleted=1)

    # ---------------------------------------------------------------- the loop

    async def drive(self, *, submit: bool) -> AsyncIterator[list[BatchResult]]:
        """Yield final results until every request has one (or, cancelled, nothing runs).

        First what earlier runs collected, then each batch's results as it finishes.
        """
        journal = self._journal
        for page in await self.db(lambda: list(journal.iter_done(collected_only=True))):
            self.stats.results += len(page)
            yield page
        for chunk in await self.db(journal.chunks, ("collecting",)):
            await self.collect(chunk)  # a collection a kill interrupted
            async for page in self._results_of(chunk.id):
                yield page
        idle_rounds = 0
        while True:
            if submit:
                await self.submit_ready()
            changed, collected = await self.poll_once()
            for chunk_id in collected:
                async for page in self._results_of(chunk_id):
                    yield page
            active = await self.db(journal.chunks, ("submitted",))
            if not active:
                pending = await self.db(journal.count, "pending")
                cancelled = await self.db(journal.cancelled)
                if not submit or cancelled or pending == 0:
                    return
                idle_rounds += 1
                if idle_rounds > 3:  # pragma: no cover - a planner bug, not a state
                    raise RuntimeError("pending requests but nothing could be submitted")
                continue
            idle_rounds = 0
            if collected:
                continue  # resubmit what came back before waiting again
            await self._sleep(self._poll.next_interval(changed))

    async def _results_of(self, chunk_id: int) -> AsyncIterator[list[BatchResult]]:
        after = 0
        while True:
            page, after = await self.db(self._journal.done_results, chunk_id=chunk_id, after=after)
            if not page:
                return
            self.stats.results += len(page)
            yield page

    # ---------------------------------------------------------------- status, cancel

    async def remote_view(self, state: JobStatus) -> JobStatus:
        """``state`` with each submitted batch's status and counts as the server has them.

        Only reads: the journal is left as it is (its driver records what it sees).
        """
        chunks = []
        for chunk in state.chunks:
            if chunk.state == "submitted" and chunk.batch_id is not None:
                batch_id = chunk.batch_id
                batch = await self.remote(
                    f"retrieve {batch_id}",
                    functools.partial(self.client.batches.retrieve, batch_id),
                )
                counts = batch.request_counts
                chunk = dataclasses.replace(
                    chunk,
                    remote_status=str(batch.status),
                    completed=counts.completed if counts is not None else 0,
                    failed=counts.failed if counts is not None else 0,
                )
            chunks.append(chunk)
        return dataclasses.replace(state, chunks=tuple(chunks))

    async def reconcile(self, adopt: bool) -> None:
        """Adopt the job's batches the journal does not know (see `_adopt.reconcile`)."""
        await reconcile(self, adopt)

    async def cancel(self, *, collect: bool) -> None:
        """Cancel every batch of the job; with ``collect``, wait and collect partial output."""
        journal = self._journal
        await self.db(journal.set_cancelled, True)
        for chunk in await self.db(journal.chunks, ("uploading", "uploaded", "creating")):
            if not collect:
                continue  # the driving process owns these; it sees the flag
            if chunk.state == "creating":
                found = await self._find_batch(chunk.nonce)
                if found is not None:
                    await self.record_batch(chunk, found)
                    continue
            await self.db(journal.release_chunk, chunk.id, "abandoned")
            await self._cleanup(chunk)
        await self.synced()
        for chunk in await self.db(journal.chunks, ("submitted",)):
            batch_id = str(chunk.batch_id)
            # A 409 means it already finished: nothing to cancel, its output is collected.
            with contextlib.suppress(openai.ConflictError):
                await self.remote(
                    f"cancel {batch_id}", functools.partial(self.client.batches.cancel, batch_id)
                )
        if not collect:
            return
        while await self.db(journal.chunks, ("submitted",)):
            changed, _ = await self.poll_once()
            if await self.db(journal.chunks, ("submitted",)):
                await self._sleep(self._poll.next_interval(changed))

    async def job(self) -> BatchJob:
        chunks = await self.db(self._journal.chunks)
        total = await self.db(self._journal.count)
        return BatchJob(self._journal.path, tuple(c.batch_id for c in chunks if c.batch_id), total)

    async def status(self) -> JobStatus:
        return await self.db(self._journal.status)


async def open_runner(
    client: openai.AsyncOpenAI | None,
    journal: BatchJob | str | os.PathLike[str],
    *,
    requests: Iterable[Any] | AsyncIterable[Any] | None = None,
    endpoint: str | None = None,
    readonly: bool = False,
    exclusive: bool = True,
    limits: BatchLimits | None = None,
    poll: PollPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    delete_files: bool = True,
    metadata: Mapping[str, str] | None = None,
    checkpoint: Checkpoint | None = None,
    statistics: BatchStatistics | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    list_pages: int = 10,
    retry_backoff: float = 1.0,
) -> Runner:
    """Open the journal (of ``journal``, a job or a path) for a job and build a `Runner`.

    ``requests``, ``endpoint``, ``readonly`` and ``exclusive`` are `open_journal`'s: a
    journal is created only from inputs; without them it must exist.
    """
    user_metadata = check_user_metadata(metadata)  # before anything is opened
    path = journal.journal if isinstance(journal, BatchJob) else journal
    opened = await open_journal(
        path, requests, endpoint=endpoint, readonly=readonly, exclusive=exclusive
    )
    stats = statistics or BatchStatistics()
    stats.ingested += opened.ingested
    return Runner(
        client,
        opened,
        limits=limits or BatchLimits(),
        poll=poll or AdaptivePoll(),
        sleep=sleep or anyio.sleep,
        delete_files=delete_files,
        metadata=user_metadata,
        checkpoint=checkpoint,
        statistics=stats,
        spool_dir=spool_dir,
        list_pages=list_pages,
        retry_backoff=retry_backoff,
    )
