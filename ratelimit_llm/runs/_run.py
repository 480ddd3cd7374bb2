"""`run`: a whole dataset through the online API, the Batch API, or both, resumably.

One job is one journal (the batch path's SQLite file, with the run's columns) and,
optionally, one output file derived from it. A `Run` opens the journal (streaming the
inputs into it, checking they are its job), repairs the output, then drives the work:

* ``via="online"``: `OnlineDriver`, through the client's limiter;
* ``via="batch"``: `BatchDriver`, the batch runner's steps;
* ``via="auto"``: batches until the switch time `AutoPolicy` computes from the deadline
  and the quota, then cancel, collect, and finish online.

Every answer is journaled before it is written out or handed over (`Clerk`). See
``docs/runs.md``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio
import openai
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._transport import RateLimitedTransport
from .._validate import check_choice, check_instance, check_int, check_number, check_type
from .._wrap import transport_of, wrap
from ..batch._cost import PriceTable
from ..batch._errors import JournalMismatchError
from ..batch._open import OpenedJournal, open_journal
from ..batch._poll import AdaptivePoll, PollPolicy
from ..batch._runner import BatchStatistics, Checkpoint, Runner
from ..batch._types import BatchLimits
from ._auto import AutoPolicy
from ._batch import BatchDriver
from ._budget import Ledger
from ._clerk import Clerk, Counts
from ._control import Control
from ._inputs import Requests, parse_shard, stream_inputs
from ._journal import RunJournal
from ._online import OnlineDriver
from ._output import Output
from ._prices import NANO, to_usd
from ._quota import quota_rates, quota_seconds
from ._types import RunProgress, RunResult, RunSummary

__all__ = ["Run", "run"]

ViaChoice = Literal["online", "batch", "auto"]

_RESULTS_BUFFER = 4_096
_DEFAULT_CONCURRENCY = 1_000


def run(
    client: openai.AsyncOpenAI,
    requests: str | os.PathLike[str] | Iterable[Any] | AsyncIterable[Any] | None,
    *,
    journal: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    via: ViaChoice = "online",
    deadline: float | _dt.datetime | None = None,
    budget_usd: float | None = None,
    prices: PriceTable | None = None,
    endpoint: str | None = None,
    concurrency: int | None = None,
    retry_failed: bool = False,
    shard: tuple[int, int] | str | None = None,
    grace: float = 30.0,
    replay: bool = True,
    auto: AutoPolicy | None = None,
    batch_limits: BatchLimits | None = None,
    poll: PollPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    adopt: bool = True,
    sync_every: float = 1.0,
    checkpoint: Checkpoint | None = None,
) -> Run:
    """Run a whole dataset of requests, resumably; results as they come, each once.

    Example::

        client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=5_000, tpm=2_000_000)
        async with ratelimit_llm.run(
            client, "requests.jsonl", journal="job.db", out="results.jsonl"
        ) as job:
            async for result in job:
                ...                      # or: summary = await job.wait()

    Run it again with the same journal (and the same inputs, or ``None``) to resume:
    nothing answered is sent again, and the output file is repaired to hold each
    request exactly once. ``async for result in run(...)`` works too (then close it
    with ``contextlib.aclosing`` if you leave early).

    :param client: an ``AsyncOpenAI`` (or ``AsyncAzureOpenAI``); a client from
        `ratelimit_llm.wrap` keeps its limits, strategy and backend; any other is
        wrapped with ``limits="auto"``.
    :param requests: a JSONL file of Batch API input lines (``custom_id``, ``method``,
        ``url``, ``body``), or an iterable / async iterable of such lines, plain bodies
        (with ``endpoint``) or `batch.BatchRequest`; streamed, never held in memory.
        ``None`` resumes the journal as it is.
    :param journal: the job's SQLite journal (created from the inputs if missing).
    :param out: the output JSONL file, one line per request (``custom_id``, ``via``,
        ``batch_id``, ``response``, ``error``, ``usage``), written as answers come.
    :param via: ``"online"`` (paced by the limiter), ``"batch"`` (the Batch API, half
        the price) or ``"auto"`` (the Batch API while ``deadline`` allows, then online).
    :param deadline: with ``via="auto"`` only (and required): seconds from the start,
        or a timezone-aware `datetime`.
    :param budget_usd: stop admitting before the job would spend more (reserved before
        each send at the request's price bound, settled on its usage, kept across
        resumes in the journal).
    :param prices: the `batch.PriceTable` (default: the shipped prices).
    :param endpoint: the endpoint of plain bodies, e.g. ``"/v1/chat/completions"``.
    :param concurrency: requests in progress at once (default: the client's
        ``max_in_flight``, else 1,000); also the most a kill can leave in flight.
    :param retry_failed: first put the job's failed requests back, to be sent again.
    :param shard: ``(index, count)`` or ``"index/count"``: run only that shard of the
        inputs (each machine its own shard and journal; see ``docs/runs.md``).
    :param grace: seconds a stop waits for calls in flight before cutting them.
    :param replay: iterating yields the answers of earlier runs first (default True).
    :param auto: the `AutoPolicy` of ``via="auto"`` (safety, cancel allowance, margin).
    :param batch_limits: the Batch API path's `batch.BatchLimits`.
    :param poll: how often batches are polled (default `batch.AdaptivePoll`).
    :param sleep: how to wait between polls (default ``anyio.sleep``).
    :param adopt: adopt this job's batches the journal does not know (as `batch.run`).
    :param sync_every: seconds between fsyncs of the output (and its cursor's commit).
    :param checkpoint: the batch path's durable-step callback (tests).
    :raises TypeError: an argument of the wrong type (named).
    :raises ValueError: an argument out of range (named).
    :raises FileNotFoundError: ``requests`` names a file that does not exist.
    """
    return Run(
        client,
        requests,
        journal=journal,
        out=out,
        via=via,
        deadline=deadline,
        budget_usd=budget_usd,
        prices=prices,
        endpoint=endpoint,
        concurrency=concurrency,
        retry_failed=retry_failed,
        shard=shard,
        grace=grace,
        replay=replay,
        auto=auto,
        batch_limits=batch_limits,
        poll=poll,
        sleep=sleep,
        adopt=adopt,
        sync_every=sync_every,
        checkpoint=checkpoint,
    )


class Run:
    """One run of a job: ``async with`` it, iterate its results, `stop` it.

    Leaving the ``async with`` block stops the run (calls in flight get ``grace``
    seconds); iterate it to the end, or ``await job.wait()``, to run it to completion.
    `progress` and `summary` read where it stands.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        requests: str | os.PathLike[str] | Iterable[Any] | AsyncIterable[Any] | None,
        *,
        journal: str | os.PathLike[str],
        out: str | os.PathLike[str] | None,
        via: ViaChoice,
        deadline: float | _dt.datetime | None,
        budget_usd: float | None,
        prices: PriceTable | None,
        endpoint: str | None,
        concurrency: int | None,
        retry_failed: bool,
        shard: tuple[int, int] | str | None,
        grace: float,
        replay: bool,
        auto: AutoPolicy | None,
        batch_limits: BatchLimits | None,
        poll: PollPolicy | None,
        sleep: Callable[[float], Awaitable[None]] | None,
        adopt: bool,
        sync_every: float,
        checkpoint: Checkpoint | None,
    ) -> None:
        check_instance(
            "client", client, openai.AsyncOpenAI, "an openai.AsyncOpenAI (or AsyncAzureOpenAI)"
        )
        try:
            transport = transport_of(client)
        except TypeError:
            client = wrap(client)
            transport = transport_of(client)
        if not isinstance(transport, RateLimitedTransport):  # pragma: no cover - async client
            raise TypeError("client must be an async client (AsyncOpenAI)")
        self._transport = transport
        self._client = client
        self._requests = _check_requests(requests)
        self._journal_path = Path(_check_path("journal", journal))
        self._out = None if out is None else Path(_check_path("out", out))
        check_choice("via", via, ("online", "batch", "auto"))
        self._via: ViaChoice = via
        self._deadline = _check_deadline(deadline, via)
        self._budget: int | None = None
        if budget_usd is not None:
            self._budget = math.floor(
                check_number("budget_usd", budget_usd, low=0, low_open=True) * NANO
            )
        if prices is not None:
            check_type("prices", prices, PriceTable)
        self._prices = prices or PriceTable()
        if endpoint is not None:
            check_type("endpoint", endpoint, str)
        self._endpoint = endpoint
        if concurrency is None:
            concurrency = self._transport.max_in_flight or _DEFAULT_CONCURRENCY
        self._concurrency = check_int("concurrency", concurrency, low=1)
        check_type("retry_failed", retry_failed, bool)
        self._retry_failed = retry_failed
        self._shard = parse_shard(shard)
        self._grace = check_number("grace", grace, low=0)
        check_type("replay", replay, bool)
        self._replay = replay
        if auto is not None:
            check_type("auto", auto, AutoPolicy)
        self._auto = auto or AutoPolicy()
        if batch_limits is not None:
            check_type("batch_limits", batch_limits, BatchLimits)
        self._batch_limits = batch_limits or BatchLimits()
        if poll is not None and not callable(getattr(poll, "next_interval", None)):
            raise TypeError(f"poll must be a PollPolicy, got {type(poll).__name__}")
        self._poll = poll or AdaptivePoll()
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be an async callable, got {type(sleep).__name__}")
        self._sleep = sleep or anyio.sleep
        check_type("adopt", adopt, bool)
        self._adopt = adopt
        self._sync_every = check_number("sync_every", sync_every, low=0, low_open=True)
        if checkpoint is not None and not callable(checkpoint):
            raise TypeError(f"checkpoint must be callable, got {type(checkpoint).__name__}")
        self._checkpoint = checkpoint

        self.control = Control()
        self._entered = False
        self._finished = anyio.Event()
        self._summary: RunSummary | None = None
        self._opened: OpenedJournal | None = None
        self._runner: Runner | None = None
        self._rj: RunJournal | None = None
        self._output: Output | None = None
        self._clerk: Clerk | None = None
        self._online: OnlineDriver | None = None
        self._batch: BatchDriver | None = None
        self._ledger = Ledger(self._budget)
        self._counts = Counts()
        self._task_group: Any = None
        self._work_scope: anyio.CancelScope | None = None
        self._receive: MemoryObjectReceiveStream[RunResult] | None = None
        self._send: MemoryObjectSendStream[RunResult] | None = None
        self._replay_up_to = 0
        self._started = 0.0
        self._started_wall = 0.0
        #: Calls an earlier run left in flight, sent again by this one.
        self.recovered = 0
        #: Failed requests put back by ``retry_failed``.
        self.retried = 0

    # ---------------------------------------------------------------- the context

    async def __aenter__(self) -> Run:
        if self._entered:
            raise RuntimeError("a Run is entered once; call ratelimit_llm.run() again")
        self._entered = True
        self._started = anyio.current_time()
        self._started_wall = time.monotonic()
        await self._open()
        send, receive = anyio.create_memory_object_stream[RunResult](_RESULTS_BUFFER)
        self._send, self._receive = send, receive
        assert self._runner is not None and self._rj is not None
        self._clerk = Clerk(
            self._runner.db,
            self._rj,
            self._output,
            send,
            self._counts,
            self._ledger,
            next_seq=self._replay_up_to,
            sync_every=self._sync_every,
        )
        self._online = OnlineDriver(
            self._client,
            self._runner.db,
            self._rj,
            self._clerk,
            self._ledger,
            self.control,
            telemetry=self._transport.telemetry,
            prices=self._prices,
            concurrency=self._concurrency,
            decode_body=isinstance(self._client, openai.AsyncAzureOpenAI),
            budgeted=self._budget is not None,
        )
        self._batch = BatchDriver(
            self._runner,
            self._rj,
            self._clerk,
            self._ledger,
            self.control,
            prices=self._prices,
            budgeted=self._budget is not None,
            poll=self._poll,
            sleep=self._sleep,
            adopt=self._adopt,
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._main)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        graceful = kind is None or issubclass(kind, GeneratorExit)
        try:
            if graceful:
                self.stop()  # a no-op when the run already finished
            else:
                self.abort()
            if self._receive is not None:
                self._receive.close()  # nobody reads on: the journal has every answer
            try:
                await self._task_group.__aexit__(kind, value, tb)
            except BaseExceptionGroup as group:
                raise _first_error(group, value) from None
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()
        return None

    def __aiter__(self) -> AsyncIterator[RunResult]:
        if self._entered:
            return self._results()
        return self._entered_results()

    async def _entered_results(self) -> AsyncIterator[RunResult]:
        async with self:
            async for result in self._results():
                yield result

    async def _results(self) -> AsyncIterator[RunResult]:
        assert self._receive is not None and self._runner is not None and self._rj is not None
        if self._replay:
            after = 0
            while after < self._replay_up_to:
                page = await self._runner.db(self._rj.done_page, after, self._replay_up_to)
                if not page:
                    break
                for done in page:
                    yield done.result
                after = page[-1].seq
        async for result in self._receive:
            yield result

    async def wait(self) -> RunSummary:
        """Run to the end (or until stopped); the results go to the journal and output only.

        Inside ``async with``; returns the `summary`.
        """
        if not self._entered or self._receive is None:
            raise RuntimeError("wait() runs inside `async with ratelimit_llm.run(...) as job:`")
        async for _ in self._receive:
            pass
        await self._finished.wait()
        assert self._summary is not None
        return self._summary

    # ---------------------------------------------------------------- control

    def stop(self, grace: float | None = None) -> None:
        """Admit nothing more; wait ``grace`` seconds (the run's, by default) for calls in
        flight, then cut them. Safe from a signal handler's task; idempotent."""
        self.control.stop()
        scope = self._work_scope
        if scope is not None:
            wait = self._grace if grace is None else check_number("grace", grace, low=0)
            deadline = anyio.current_time() + wait
            scope.deadline = min(scope.deadline, deadline)

    def abort(self) -> None:
        """Stop now: calls in flight are cut (each is sent again, once, on resume)."""
        self.control.abort()
        if self._work_scope is not None:
            self._work_scope.cancel()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def journal(self) -> Path:
        return self._journal_path

    # ---------------------------------------------------------------- opening

    async def _open(self) -> None:
        inputs = None
        if self._requests is not None:
            inputs = stream_inputs(self._requests, self._shard)
        try:
            opened = await open_journal(self._journal_path, inputs, endpoint=self._endpoint)
        except JournalMismatchError:
            await self._explain_shard_mismatch()
            raise
        self._opened = opened
        try:
            await self._prepare(opened)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(opened.close)
            self._opened = None
            raise

    async def _prepare(self, opened: OpenedJournal) -> None:
        runner = Runner(
            self._client,
            opened,
            limits=self._batch_limits,
            poll=self._poll,
            sleep=self._sleep,
            delete_files=True,
            metadata=None,
            checkpoint=self._checkpoint,
            statistics=BatchStatistics(ingested=opened.ingested),
            spool_dir=None,
            list_pages=10,
            retry_backoff=1.0,
        )
        self._runner = runner
        rj = self._rj = RunJournal(opened.journal, self._prices)
        db = runner.db
        await db(rj.prepare)
        await db(rj.check_shard, None if self._shard is None else str(self._shard))
        self.recovered, _ = await db(rj.recover)
        in_batches: int = await db(rj.active_chunks)
        if self._via == "online" and in_batches:
            raise ValueError(
                f"{self._journal_path}: part of this job is in batches on the Batch API; "
                "resume it with via='batch' or via='auto' (or cancel them first: "
                f"ratelimit-llm batch cancel --journal {self._journal_path})"
            )
        if self._retry_failed:
            self.retried = await db(rj.reset_failed)
        # Answers journaled without a place in the output (collected by the batch path
        # before a kill, or by batch.run on this journal) get one now.
        next_seq = await db(rj.max_seq)
        while True:
            page = await db(rj.finalize, next_seq + 1)
            if not page:
                break
            next_seq = page[-1].seq
        if self._budget is not None:
            await db(rj.release_chunks)
            unpriced = await db(rj.unpriced_models)
            if unpriced:
                raise ValueError(
                    f"budget_usd needs a price for every model; none for {', '.join(unpriced)}:"
                    " pass prices=PriceTable({...}) with them"
                )
        if self._out is not None:
            output = Output(self._out)
            await db(output.open, rj, rebuild=self.retried > 0)
            self._output = output
        self._replay_up_to = await db(rj.max_seq)
        totals = await db(rj.totals)
        self._ledger.settled = await db(rj.settled_nano)
        self._ledger.unresolved = totals.nano_unresolved
        self._ledger.reserved = totals.nano_reserved_batch
        counts = self._counts
        counts.total = totals.total
        counts.succeeded, counts.failed = totals.succeeded, totals.failed
        counts.tokens_estimated, counts.tokens_actual = (
            totals.tokens_estimated,
            totals.tokens_actual,
        )
        counts.nano_online, counts.nano_batch = totals.nano_online, totals.nano_batch
        counts.remaining = {m: [n, t] for m, n, t in await db(rj.remaining_by_model)}

    async def _explain_shard_mismatch(self) -> None:
        """A clearer error when the journal is another shard's (it is one shard's job)."""
        if not self._journal_path.exists():
            return
        try:
            reader = await open_journal(self._journal_path, readonly=True)
        except Exception:
            return
        try:
            recorded = RunJournal(reader.journal, self._prices).meta("run_shard")
        except Exception:
            recorded = None
        finally:
            await anyio.to_thread.run_sync(reader.close)
        wanted = "-" if self._shard is None else str(self._shard)
        if recorded is not None and recorded != wanted:

            def shown(value: str) -> str:
                return "no shard" if value == "-" else f"shard {value}"

            raise JournalMismatchError(
                self._journal_path,
                f"{self._journal_path} is the journal of {shown(recorded)}, not {shown(wanted)}:"
                " each shard of a job keeps its own journal; nothing was sent",
            )

    # ---------------------------------------------------------------- driving

    async def _main(self) -> None:
        assert self._clerk is not None and self._send is not None
        clerk = self._clerk
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(clerk.run)
                try:
                    with anyio.CancelScope() as scope:
                        self._work_scope = scope
                        if self.control.stopping:  # stopped before it started
                            scope.deadline = anyio.current_time() + self._grace
                        await self._drive()
                finally:
                    self._work_scope = None
                    with anyio.CancelScope(shield=True):
                        await clerk.close()
                    self.control.phase = "finished"
        finally:
            with anyio.CancelScope(shield=True):
                self._send.close()
                try:
                    self._summary = await self._read_summary()
                except Exception:  # the journal failed: that error is the one to see
                    self._summary = None
                self._finished.set()

    async def _drive(self) -> None:
        assert self._online is not None and self._batch is not None
        online, batch = self._online, self._batch
        if self._via == "online":
            self.control.phase = "online"
            await online.run()
            return
        self.control.phase = "batch"
        await batch.prepare()
        if self._via == "batch":
            await batch.run()
            return
        assert self._deadline is not None
        deadline = self._started + self._deadline_seconds()
        switched = await batch.run(switch_at=lambda: self._auto.switch_at(deadline, self._need()))
        if self.control.stopping or not switched:
            return
        self.control.phase = "switching"
        async with anyio.create_task_group() as group:
            group.start_soon(batch.cancel_and_collect)
            await online.run(more=lambda: batch.cancelling)
        self.control.phase = "online"

    def _deadline_seconds(self) -> float:
        deadline = self._deadline
        if isinstance(deadline, _dt.datetime):
            return (deadline - _dt.datetime.now(_dt.UTC)).total_seconds()
        assert deadline is not None
        return float(deadline)

    def _need(self) -> float:
        """Seconds the quota needs for every request still without an answer."""
        seconds = self.eta()
        return math.inf if seconds is None else seconds

    # ---------------------------------------------------------------- reading

    def eta(self) -> float | None:
        """Seconds the quota needs for what is left (see `_quota`); None if unknown."""
        work = {m: (float(n), float(t)) for m, (n, t) in self._counts.remaining.items() if n > 0}
        if not work:
            return 0.0
        rates = quota_rates(self._transport, work, default_key=_api_key(self._client))
        return quota_seconds(work, rates)

    def progress(self) -> RunProgress:
        """Where the run stands now (cheap: no journal read)."""
        counts = self._counts
        refused = sum(sum(s.rate_limited.values()) for s in self._transport.statistics())
        return RunProgress(
            phase=self.control.phase,
            total=counts.total,
            done=counts.done,
            succeeded=counts.succeeded,
            failed=counts.failed,
            refused=refused,
            in_flight=0 if self._online is None else self._online.in_flight,
            in_batches=0 if self._batch is None else self._batch.in_batches,
            tokens_estimated=counts.tokens_estimated,
            tokens_actual=counts.tokens_actual,
            usd=to_usd(self._ledger.committed),
            budget_usd=None if self._budget is None else to_usd(self._budget),
            elapsed=time.monotonic() - self._started_wall if self._entered else 0.0,
            eta_seconds=None if self.finished else self.eta(),
            stop_reason=self.control.stop_reason,
        )

    def summary(self) -> RunSummary | None:
        """The job at the end of the run (None until it ended)."""
        return self._summary

    async def _read_summary(self) -> RunSummary | None:
        if self._runner is None or self._rj is None:
            return None
        totals = await self._runner.db(self._rj.totals)
        refused = sum(sum(s.rate_limited.values()) for s in self._transport.statistics())
        online_work = {
            m: (float(n), float(t)) for m, (n, t) in self._online_answered().items() if n > 0
        }
        ideal = None
        if online_work:
            rates = quota_rates(self._transport, online_work, default_key=_api_key(self._client))
            ideal = quota_seconds(online_work, rates, from_full=True)
        discount = self._prices.batch_discount
        at_online = totals.nano_online + (
            totals.nano_batch / (1 - discount) if discount < 1 else totals.nano_batch
        )
        reason = self.control.stop_reason
        if totals.pending == 0:
            reason = None
        return RunSummary(
            total=totals.total,
            succeeded=totals.succeeded,
            failed=totals.failed,
            failed_by_kind=totals.failed_by_kind,
            pending=totals.pending,
            online=totals.online,
            batch=totals.batch,
            resent=totals.resent,
            refused=refused,
            tokens_estimated=totals.tokens_estimated,
            tokens_actual=totals.tokens_actual,
            usd_online=to_usd(totals.nano_online),
            usd_batch=to_usd(totals.nano_batch),
            usd_at_online_price=to_usd(at_online),
            usd_unresolved=to_usd(totals.nano_unresolved),
            budget_usd=None if self._budget is None else to_usd(self._budget),
            wall_seconds=time.monotonic() - self._started_wall,
            ideal_seconds=ideal,
            stop_reason=reason,
            unpriced_models=totals.unpriced_models,
        )

    def _online_answered(self) -> dict[str, list[int]]:
        """(requests, estimated tokens) this run answered online, per model."""
        return self._counts.answered_online

    async def _close(self) -> None:
        if self._output is not None:
            output = self._output
            self._output = None
            await anyio.to_thread.run_sync(output.close)
        if self._opened is not None:
            opened = self._opened
            self._opened = None
            await anyio.to_thread.run_sync(opened.close)


# -- checks at the door -------------------------------------------------------------


def _check_path(name: str, value: object) -> str | os.PathLike[str]:
    if not isinstance(value, str | os.PathLike) or isinstance(value, bytes):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    if isinstance(value, str) and not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _check_requests(requests: object) -> str | os.PathLike[str] | Requests | None:
    if requests is None:
        return None
    if isinstance(requests, str | os.PathLike):
        path = Path(requests)
        if not path.is_file():
            raise FileNotFoundError(f"requests: no file at {path}")
        return requests
    if isinstance(requests, bytes | bytearray | dict) or not isinstance(
        requests, Iterable | AsyncIterable
    ):
        raise TypeError(
            "requests must be a JSONL path, an iterable or async iterable of requests, or "
            f"None (to resume), got {type(requests).__name__}"
        )
    return requests


def _check_deadline(deadline: object, via: str) -> float | _dt.datetime | None:
    if deadline is None:
        if via == "auto":
            raise ValueError("via='auto' needs a deadline (seconds from now, or a datetime)")
        return None
    if via != "auto":
        raise ValueError(f"deadline is for via='auto' only (via is {via!r})")
    if isinstance(deadline, _dt.datetime):
        if deadline.tzinfo is None:
            raise ValueError("deadline must be a timezone-aware datetime")
        return deadline
    return check_number("deadline", deadline, low=0, low_open=True)


def _first_error(
    group: BaseExceptionGroup[BaseException], given: BaseException | None
) -> BaseException:
    """The error that ended a run, out of the task groups' nesting: the first that is
    not a cancellation (the one the caller's block raised, if it is in there)."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        elif not isinstance(error, cancelled):
            leaves.append(error)

    walk(group)
    if given is not None and given in leaves:
        return given
    return leaves[0] if leaves else group


def _api_key(client: Any) -> str | None:
    key = getattr(client, "api_key", None)
    return key if isinstance(key, str) and key else None
