"""The Batch API side of a run: `batch`'s runner, stepped by the run.

The run does not reimplement the Batch API path: it drives the batch runner's own steps
(adopt what the server holds of this job, finish interrupted submissions and
collections, plan and submit chunks, poll, collect) on the same journal, and adds what
a run needs around them:

* each collected chunk's answers are placed in the output and handed out (the clerk);
* with a budget, a chunk is capped to what the budget can still hold (its requests at
  their batch-price bounds) before it is planned, and its bound is reserved and
  journaled before anything of it is uploaded; once collected, its answers' real prices
  are settled first and the reservation released after, so the ledger never
  under-counts in between;
* for ``via="auto"``: the loop stops at the switch time, and `cancel_and_collect`
  cancels every running batch and collects what each one finished (see `_auto`).

A stop (Ctrl-C) ends the loop between steps; the batches on the server go on, and the
next run collects them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import anyio

from ..batch._cost import PriceTable
from ..batch._journal import Chunk
from ..batch._poll import PollPolicy
from ..batch._runner import Runner
from ._budget import Ledger
from ._clerk import Clerk
from ._control import Control
from ._journal import RunJournal
from ._prices import bound_nano

__all__ = ["BatchDriver"]


class BatchDriver:
    """Submits, polls and collects the job's batches through the batch runner."""

    def __init__(
        self,
        runner: Runner,
        journal: RunJournal,
        clerk: Clerk,
        ledger: Ledger,
        control: Control,
        *,
        prices: PriceTable,
        budgeted: bool,
        poll: PollPolicy,
        sleep: Callable[[float], Awaitable[None]],
        adopt: bool,
    ) -> None:
        self._runner = runner
        self._journal = journal
        self._clerk = clerk
        self._ledger = ledger
        self._control = control
        self._prices = prices
        self._budgeted = budgeted
        self._poll = poll
        self._sleep = sleep
        self._adopt = adopt
        #: Requests in batches on the server, as of the last poll.
        self.in_batches = 0
        #: True while `cancel_and_collect` waits for batches to end.
        self.cancelling = False

    async def prepare(self) -> None:
        """Adopt, then finish what an earlier run left half done (submissions, collections)."""
        runner, journal = self._runner, self._runner.journal
        await runner.reconcile(self._adopt)
        await runner.db(journal.set_cancelled, False)
        await runner.submit_ready(room=_nothing)  # interrupted submissions only
        for chunk in await runner.db(journal.chunks, ("collecting",)):
            await runner.collect(chunk)
        await self._collected()

    async def run(self, switch_at: Callable[[], float] | None = None) -> bool:
        """Submit and collect until every request has its answer.

        Returns True when ``switch_at()`` came first (``via="auto"``: finish online).
        """
        runner, journal = self._runner, self._runner.journal
        while True:
            if self._control.stopping:
                return False
            if switch_at is not None and anyio.current_time() >= switch_at():
                return True
            room = self._room if self._budgeted else None
            await runner.submit_ready(room=room, planned=self._planned)
            changed, collected = await runner.poll_once()
            if collected:
                await self._collected()
            active = await runner.db(journal.chunks, ("submitted",))
            self.in_batches = await runner.db(journal.count, "queued")
            if not active:
                if await runner.db(journal.count, "pending") == 0:
                    return False
                if self._budgeted:  # pending, nothing running, nothing the budget admits
                    self._control.stop("budget")
                    return False
                continue
            if collected:
                continue  # resubmit what came back before waiting again
            interval = self._poll.next_interval(changed)
            if switch_at is not None:
                interval = min(interval, max(switch_at() - anyio.current_time(), 0.0))
            await self._sleep(interval)

    async def cancel_and_collect(self) -> None:
        """Cancel every running batch; collect each once it ended (partial output kept)."""
        runner, journal = self._runner, self._runner.journal
        self.cancelling = True
        try:
            await runner.cancel(collect=False)
            while await runner.db(journal.chunks, ("submitted",)):
                changed, collected = await runner.poll_once()
                if collected:
                    await self._collected()
                    self._control.pending_changed()
                self.in_batches = await runner.db(journal.count, "queued")
                if await runner.db(journal.chunks, ("submitted",)):
                    await self._sleep(self._poll.next_interval(changed))
        finally:
            self.cancelling = False
            self._control.pending_changed()

    # ---------------------------------------------------------------- the budget

    async def _collected(self) -> None:
        """Settle collected answers (the clerk, into the ledger), then free their holds."""
        await self._clerk.flush_collected()
        if self._budgeted:
            freed = await self._runner.db(self._journal.release_chunks)
            self._ledger.release(sum(nano for _, nano in freed))

    async def _room(self, endpoint: str, model: str) -> int | None:
        """How many of the next pending requests of (endpoint, model) the budget holds."""
        price = self._prices.price_of(model)
        if price is None:
            return None
        limit = self._runner.limits.max_requests
        rows = await self._runner.db(self._journal.pending_bodies, endpoint, model, limit)
        total = 0
        for count, (body, size) in enumerate(rows):
            total += bound_nano(self._prices, price, json.loads(body), size, endpoint, "batch")
            if not self._ledger.fits(total):
                return count
        return len(rows)

    async def _planned(self, chunk: Chunk) -> None:
        if not self._budgeted:
            return
        price = self._prices.price_of(chunk.model)
        if price is None:
            return
        rows = await self._runner.db(self._journal.chunk_bodies, chunk.id)
        bound = sum(
            bound_nano(self._prices, price, json.loads(body), size, endpoint, "batch")
            for endpoint, _, body, size in rows
        )
        self._ledger.reserve(bound)
        await self._runner.db(self._journal.hold_chunk, chunk.id, bound)


async def _nothing(endpoint: str, model: str) -> int:
    return 0
