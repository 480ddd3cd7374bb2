"""The clerk: the run's one writer, committing in groups and writing the output after.

Everything that must survive goes through here, in this order:

1. **claims** (before a send): the requests a driver is about to send, with the budget
   they reserve, committed as ``state = 'online'``; the driver sends only once the
   commit returns;
2. **answers** (after a call): committed with their place in the output (``out_seq``);
3. then their **lines** are appended to the output file, and the results handed to the
   caller; every ``sync_every`` seconds the file is fsync'd and its cursor committed.

Whatever arrived while a commit ran goes into the next one ("group commit"): at a
thousand answers a second that is a few dozen commits a second, each a handful of
milliseconds in a worker thread, so the journal never paces the run. An answer is never
handed out, nor written to the output, before the journal holds it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ._budget import Ledger
from ._journal import Answer, Done, Pending, RunJournal
from ._output import Output
from ._types import RunResult

__all__ = ["Clerk", "Counts"]

T = TypeVar("T")

#: Answers waiting for a commit before an answering worker waits too.
_BACKLOG = 4_096


@dataclass
class Counts:
    """Running totals for progress, kept by the clerk as it commits."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    tokens_estimated: float = 0.0
    tokens_actual: float = 0.0
    nano_online: int = 0
    nano_batch: int = 0
    #: model -> [requests, estimated tokens] still without their answer.
    remaining: dict[str, list[int]] = field(default_factory=dict)
    #: model -> [requests, estimated tokens] answered online by this run.
    answered_online: dict[str, list[int]] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def count(self, result: RunResult, model: str | None, tokens: int | None) -> None:
        if result.ok:
            self.succeeded += 1
            if tokens is not None:
                self.tokens_estimated += tokens
            usage = result.usage or {}
            actual = usage.get("total_tokens")
            if isinstance(actual, int | float) and not isinstance(actual, bool):
                self.tokens_actual += actual
        else:
            self.failed += 1
        if result.usd is not None:
            nano = round(result.usd * 1e9)
            if result.via == "batch":
                self.nano_batch += nano
            else:
                self.nano_online += nano
        if model is None:
            return
        if model in self.remaining:
            left = self.remaining[model]
            left[0] -= 1
            left[1] -= tokens or 0
        if result.via == "online":
            answered = self.answered_online.setdefault(model, [0, 0])
            answered[0] += 1
            answered[1] += tokens or 0


class Clerk:
    """Group commits of claims and answers; the output file; results to the caller.

    :param db: runs a blocking journal call in the journal's worker thread (the batch
        runner's ``db``: one call at a time on the one connection).
    """

    def __init__(
        self,
        db: Callable[..., Awaitable[Any]],
        journal: RunJournal,
        output: Output | None,
        results: MemoryObjectSendStream[RunResult] | None,
        counts: Counts,
        ledger: Ledger,
        *,
        next_seq: int,
        sync_every: float = 1.0,
    ) -> None:
        self._db = db
        self._journal = journal
        self._output = output
        self._results = results
        self.counts = counts
        self._ledger = ledger
        self._next_seq = next_seq
        self._sync_every = sync_every
        self._claims: list[tuple[Pending, int]] = []
        self._claimed = anyio.Event()
        self._answers: list[Answer] = []
        self._cut: list[tuple[int, int]] = []
        self._unsent: list[int] = []
        self._finalize = False
        self._wake = anyio.Event()
        self._drained = anyio.Event()
        self._closing = False
        self._closed = anyio.Event()
        self._last_sync = time.monotonic()
        self._unsynced = False
        self.commits = 0

    # ---------------------------------------------------------------- asked by drivers

    async def claim(self, group: list[tuple[Pending, int]]) -> None:
        """Journal ``group`` as in flight (id, reservation); returns once committed."""
        self._claims.extend(group)
        done = self._claimed
        self._wake.set()
        await done.wait()

    async def answered(self, answer: Answer) -> None:
        """Queue an answer for the next commit (waits while the backlog is long)."""
        while len(self._answers) >= _BACKLOG and not self._closing:
            self._wake.set()
            await self._drained.wait()
        self._answers.append(answer)
        self._wake.set()

    def cut(self, request_id: int, nano: int) -> None:
        """A call cut in flight: back to pending, its reservation kept as spent."""
        self._cut.append((request_id, nano))
        self._wake.set()

    def unsent(self, request_id: int) -> None:
        """A claim never sent: back to pending as if never claimed."""
        self._unsent.append(request_id)
        self._wake.set()

    def collected(self) -> None:
        """Answers the Batch API gave are in the journal: place them in the output."""
        self._finalize = True
        self._wake.set()

    async def flush_collected(self) -> None:
        """`collected`, and wait until those answers are placed and settled."""
        self.collected()
        await self.flush()

    async def flush(self) -> None:
        """Until everything queued so far is committed and written."""
        while self._queued():
            self._wake.set()
            await self._drained.wait()

    async def close(self) -> None:
        """Commit what is left, fsync the output and record its cursor, then stop."""
        self._closing = True
        self._wake.set()
        await self._closed.wait()

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        try:
            while True:
                # No timer: a run that waits (a batch, the quota) has nothing new to sync,
                # and a timer would move a virtual clock on while a journal call runs.
                # Work queued (or a close asked) during the last cycle is not waited for:
                # its wake-up went to the event that cycle replaced.
                if not (self._queued() or self._closing):
                    await self._wake.wait()
                self._wake = anyio.Event()
                busy = self._queued()
                if busy:
                    await self._cycle()
                if self._unsynced and (
                    self._closing or time.monotonic() - self._last_sync >= self._sync_every
                ):
                    await self._sync()
                if not busy:
                    self._notify_drained()
                    if self._closing:
                        return
        finally:
            self._closed.set()

    def _queued(self) -> bool:
        return bool(self._claims or self._answers or self._cut or self._unsent or self._finalize)

    def _notify_drained(self) -> None:
        self._drained.set()
        self._drained = anyio.Event()

    async def _cycle(self) -> None:
        claims, self._claims = self._claims, []
        claimed, self._claimed = self._claimed, anyio.Event()
        answers, self._answers = self._answers, []
        cut, self._cut = self._cut, []
        unsent, self._unsent = self._unsent, []
        finalize, self._finalize = self._finalize, False
        numbered: list[tuple[Answer, int]] = []
        for answer in answers:
            self._next_seq += 1
            numbered.append((answer, self._next_seq))
        journal, output = self._journal, self._output

        def work() -> tuple[list[Done], int]:
            journal.commit(
                claims=[(p.id, nano) for p, nano in claims],
                answers=numbered,
                cut=cut,
                unsent=unsent,
            )
            done = [Done(seq, a.line, a.result, a.model, a.tokens) for a, seq in numbered]
            if output is not None:
                output.append(done)
            settled = 0
            if finalize:
                while True:
                    page = journal.finalize(self._next_seq + 1)
                    if not page:
                        break
                    self._next_seq = page[-1].seq
                    if output is not None:
                        output.append(page)
                    done.extend(page)
                    settled += sum(round(d.result.usd * 1e9) for d in page if d.result.usd)
            return done, settled

        try:
            done, settled = await self._db(work)
        finally:
            claimed.set()  # on an error too: the driver then fails with the task group
        # Answers the Batch API gave: their real price is spent now (their chunk's
        # reservation is released after this, by the batch driver: never under-counted).
        self._ledger.settled += settled
        self.commits += 1
        self._unsynced = self._unsynced or bool(done)
        for item in done:
            self.counts.count(item.result, item.model, item.tokens)
            if self._results is not None:
                try:
                    await self._results.send(item.result)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._results = None  # the caller stopped reading: the journal has it all
        self._notify_drained()

    async def _sync(self) -> None:
        journal, output = self._journal, self._output
        self._unsynced = False
        self._last_sync = time.monotonic()
        if output is None:
            return

        def work() -> None:
            journal.commit(cursor=output.sync())

        await self._db(work)
