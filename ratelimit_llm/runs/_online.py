"""The online driver: pending requests from the journal, through the limiter, answers back.

A dispatcher reads pending requests in pages (bodies stay text), reserves each one's
price bound in the budget, has the clerk journal a group of them as in flight, and only
then hands them to ``concurrency`` workers. Each worker sends one request through the
client (whose limiter paces it) and gives its answer to the clerk. At most
``concurrency`` requests are claimed at any moment, sent or waiting their turn in the
limiter: that is the most a kill can leave in flight, hence the most requests a resume
sends a second time.

Stopping (`Control.stop`): nothing more is claimed; claims not yet picked up by a
worker are given back unsent; calls in flight finish within the run's grace, after
which they are cut (back to pending, their reservation kept as spent: the server may
have billed them). A quota or credentials failure stops the run the same way: what
follows would fail alike.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import openai
from anyio.streams.memory import MemoryObjectReceiveStream

from ..batch._cost import PriceTable
from ._budget import Ledger
from ._call import answer
from ._clerk import Clerk
from ._control import Control
from ._journal import Pending, RunJournal
from ._prices import bound_nano

__all__ = ["OnlineDriver"]

_PAGE = 1_000
_GROUP = 64
#: Failure kinds after which nothing else can succeed, and the stop they mean.
_STOP_KINDS = {"insufficient_quota": "quota", "authentication": "credentials"}


class OnlineDriver:
    """Sends pending requests online until none is left (or the run stops)."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        db: Callable[..., Any],
        journal: RunJournal,
        clerk: Clerk,
        ledger: Ledger,
        control: Control,
        *,
        prices: PriceTable,
        concurrency: int,
        decode_body: bool,
        budgeted: bool,
    ) -> None:
        self._client = client
        self._db = db
        self._journal = journal
        self._clerk = clerk
        self._ledger = ledger
        self._control = control
        self._prices = prices
        self._concurrency = concurrency
        self._decode_body = decode_body
        self._budgeted = budgeted
        self.in_progress = 0
        self._freed = anyio.Event()
        #: Requests a worker is sending, with their reservations (cut if stopped).
        self._sending: dict[int, int] = {}
        self.sent = 0

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    async def run(self, more: Callable[[], bool] | None = None) -> None:
        """Drive until nothing is pending (and ``more()`` says none will come back)."""
        send, receive = anyio.create_memory_object_stream[tuple[Pending, int]](self._concurrency)
        async with anyio.create_task_group() as workers:
            for _ in range(self._concurrency):
                workers.start_soon(self._worker, receive.clone())
            receive.close()
            async with send:
                await self._dispatch(send, more)

    # ---------------------------------------------------------------- dispatching

    async def _dispatch(self, send: Any, more: Callable[[], bool] | None) -> None:
        control = self._control
        buffer: deque[Pending] = deque()
        after = 0
        while not control.stopping:
            if not buffer:
                page = await self._db(self._journal.pending_page, after, _PAGE)
                if not page:
                    if more is None or not more():
                        return
                    await self._first(control.wait_pending, control.wait_stopping)
                    after = 0
                    continue
                after = page[-1].id
                buffer.extend(page)
            free = await self._free()
            if free == 0:
                return  # stopping
            group: list[tuple[Pending, int]] = []
            while buffer and len(group) < min(free, _GROUP):
                item = buffer[0]
                bound = self._bound(item)
                if not self._ledger.try_reserve(bound):
                    break
                buffer.popleft()
                group.append((item, bound))
            if not group:
                # The next request does not fit the budget now. Calls in flight (or
                # batches being collected) may give some of theirs back; with none,
                # nothing will: stop admitting.
                if self.in_progress == 0 and (more is None or not more()):
                    control.stop("budget")
                    return
                await self._first(self._ledger.wait_changed, control.wait_stopping)
                continue
            self.in_progress += len(group)
            await self._clerk.claim(group)
            for claimed in group:
                await send.send(claimed)

    def _bound(self, item: Pending) -> int:
        if not self._budgeted:
            return 0
        price = self._prices.price_of(item.model)
        if price is None:  # refused at the door when there is a budget
            return 0
        return bound_nano(
            self._prices, price, json.loads(item.body), item.size, item.endpoint, "online"
        )

    async def _free(self) -> int:
        """Slots free for claims (waits for at least one); 0 once the run stops."""
        while self.in_progress >= self._concurrency:
            if self._control.stopping:
                return 0
            await self._first(self._freed.wait, self._control.wait_stopping)
        return 0 if self._control.stopping else self._concurrency - self.in_progress

    @staticmethod
    async def _first(*waits: Callable[[], Any]) -> None:
        """Until the first of ``waits`` returns."""
        async with anyio.create_task_group() as group:

            async def one(wait: Callable[[], Any]) -> None:
                await wait()
                group.cancel_scope.cancel()

            for wait in waits:
                group.start_soon(one, wait)

    # ---------------------------------------------------------------- sending

    async def _worker(self, receive: MemoryObjectReceiveStream[tuple[Pending, int]]) -> None:
        async with receive:
            async for item, reserved in receive:
                try:
                    if self._control.stopping:
                        self._ledger.release(reserved)
                        self._clerk.unsent(item.id)
                        continue
                    await self._send(item, reserved)
                finally:
                    self.in_progress -= 1
                    self._freed.set()
                    self._freed = anyio.Event()

    async def _send(self, item: Pending, reserved: int) -> None:
        self._sending[item.id] = reserved
        queued = False
        try:
            result = await answer(
                self._client,
                item,
                prices=self._prices,
                reserved=reserved,
                decode_body=self._decode_body,
            )
            self.sent += 1
            await self._clerk.answered(result)
            queued = True
            self._ledger.settle(reserved, result.nano or 0)
        finally:
            del self._sending[item.id]
            if not queued:  # cut in flight: the server may have it
                self._ledger.unresolve(reserved)
                self._clerk.cut(item.id, reserved)
        error = result.result.error
        if error is not None and error.kind in _STOP_KINDS:
            self._control.stop(_STOP_KINDS[error.kind])  # type: ignore[arg-type]
