"""The online driver: pending requests from the journal, through the limiter, answers back.

A dispatcher reads pending requests in pages (bodies stay text), reserves each one's
price bound in the budget, has the clerk journal a group of them as in flight, and only
then hands them to ``concurrency`` workers. Each worker sends one request through the
client (whose limiter paces it) and gives its answer to the clerk.

**What "in flight" means.** The limiter's own telemetry says when each call is granted
(its ``granted`` event, emitted in the worker's task, which a context variable ties to
the request). The dispatcher keeps at most ``prefetch`` claimed requests waiting for
their grant, just enough to keep the limiter's line fed, so a claim is almost always a
send: at a kill, the journal's in-flight requests (the most a resume sends a second
time) are the calls granted and not yet answered plus at most ``prefetch`` that never
left, ``concurrency`` at most in all (claims count against it from the claim on).

**Stopping** (`Control.stop`): nothing more is claimed; calls still waiting for their
grant are withdrawn at once (never sent: back to pending as if never claimed); granted
calls finish within the run's grace, after which they are cut (back to pending, their
reservation kept as spent: the server may have billed them). A quota or credentials
failure stops the run the same way: what would follow would fail alike.
"""

from __future__ import annotations

import contextvars
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import openai
from anyio.streams.memory import MemoryObjectReceiveStream

from .._telemetry import Event, Telemetry
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
#: Claimed requests waiting for their grant, at most (fewer with a lower concurrency).
_PREFETCH = 128
#: Failure kinds after which nothing else can succeed, and the stop they mean.
_STOP_KINDS = {"insufficient_quota": "quota", "authentication": "credentials"}


@dataclass(slots=True)
class _Flight:
    """One request a worker is sending."""

    id: int
    reserved: int
    granted: bool = False
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


#: The request the current task is sending (read by the telemetry subscriber).
_CURRENT: contextvars.ContextVar[_Flight | None] = contextvars.ContextVar(
    "ratelimit_llm_run_flight", default=None
)


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
        telemetry: Telemetry,
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
        self._telemetry = telemetry
        self._prices = prices
        self._concurrency = concurrency
        self._prefetch = min(concurrency, _PREFETCH)
        self._decode_body = decode_body
        self._budgeted = budgeted
        #: Claimed and not finished (waiting for a worker, for a grant, or for an answer).
        self.in_progress = 0
        #: Of those, not granted by the limiter yet.
        self.waiting = 0
        self._changed = anyio.Event()
        self._flights: dict[int, _Flight] = {}
        #: Claimed requests no worker has taken yet, with their reservations.
        self._handed: set[int] = set()
        self._bounds: dict[int, int] = {}
        self.sent = 0

    @property
    def in_flight(self) -> int:
        """Calls granted by the limiter and not answered yet."""
        return sum(1 for flight in self._flights.values() if flight.granted)

    async def run(self, more: Callable[[], bool] | None = None) -> None:
        """Drive until nothing is pending (and ``more()`` says none will come back)."""
        unsubscribe = self._telemetry.subscribe(self._on_event)
        try:
            await self._run(more)
        finally:
            unsubscribe()
            # Claims no worker took (the workers were cut short): never sent.
            self._give_back(list(self._handed), self._bounds)

    def _give_back(self, ids: list[int], bounds: dict[int, int]) -> None:
        for request_id in ids:
            if request_id in self._handed:
                self._handed.discard(request_id)
                self._ledger.release(bounds.get(request_id, 0))
                self._bounds.pop(request_id, None)
                self._clerk.unsent(request_id)
                self.in_progress -= 1
                self.waiting -= 1

    async def _run(self, more: Callable[[], bool] | None) -> None:
        async with anyio.create_task_group() as watch:
            watch.start_soon(self._withdraw_at_stop)
            send, receive = anyio.create_memory_object_stream[tuple[Pending, int]](
                self._concurrency
            )
            async with anyio.create_task_group() as workers:
                for _ in range(self._concurrency):
                    workers.start_soon(self._worker, receive.clone())
                receive.close()
                async with send:
                    await self._dispatch(send, more)
            watch.cancel_scope.cancel()

    def _on_event(self, event: Event) -> None:
        if event.kind != "granted":
            return
        flight = _CURRENT.get()
        if flight is not None and not flight.granted:
            flight.granted = True
            self.waiting -= 1
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _withdraw_at_stop(self) -> None:
        """At a stop, calls still waiting for their grant go back unsent."""
        await self._control.wait_stopping()
        while True:
            for flight in list(self._flights.values()):
                if not flight.granted:
                    flight.scope.cancel()
            await self._changed.wait()

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
            self.waiting += len(group)
            for item, bound in group:
                self._handed.add(item.id)
                self._bounds[item.id] = bound
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
        """How many to claim now (waits for room); 0 once the run stops."""
        while True:
            if self._control.stopping:
                return 0
            room = min(self._concurrency - self.in_progress, self._prefetch - self.waiting)
            if room > 0:
                return room
            await self._first(self._changed.wait, self._control.wait_stopping)

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
                self._handed.discard(item.id)
                self._bounds.pop(item.id, None)
                try:
                    await self._send(item, reserved)
                finally:
                    self.in_progress -= 1
                    self._notify()

    async def _send(self, item: Pending, reserved: int) -> None:
        flight = _Flight(item.id, reserved)
        self._flights[item.id] = flight
        token = _CURRENT.set(flight)
        queued = False
        result = None
        try:
            if not self._control.stopping:
                with flight.scope:
                    result = await answer(
                        self._client,
                        item,
                        prices=self._prices,
                        reserved=reserved,
                        decode_body=self._decode_body,
                    )
            if result is not None:
                self.sent += 1
                await self._clerk.answered(result)
                queued = True
                self._ledger.settle(reserved, result.nano or 0)
        finally:
            _CURRENT.reset(token)
            del self._flights[item.id]
            if not flight.granted:
                self.waiting -= 1
            if not queued:
                if flight.granted:  # cut in flight: the server may have it
                    self._ledger.unresolve(reserved)
                    self._clerk.cut(item.id, reserved)
                else:  # withdrawn before the limiter let it go: never sent
                    self._ledger.release(reserved)
                    self._clerk.unsent(item.id)
        if result is None:
            return
        error = result.result.error
        if error is not None and error.kind in _STOP_KINDS:
            self._control.stop(_STOP_KINDS[error.kind])  # type: ignore[arg-type]
