"""The dollar budget: reserve before a send, settle on the answer, never overshoot.

Three sums, in nano-dollars (`_prices.NANO`):

* ``settled``: the real price of every answer the journal holds (persisted with each
  answer, so a resumed run starts from what earlier runs spent);
* ``unresolved``: reservations of calls whose outcome nobody saw (cut by a kill, or by
  a stop after its grace), which the server may have billed: kept as spent, and
  persisted in the journal;
* ``reserved``: what calls in flight and batches on the server may still cost (each at
  its upper bound, `_prices.bound_nano`).

A request is admitted only if ``settled + unresolved + reserved + its bound`` stays
within the budget, and the reservation is taken in the same synchronous step as the
check (one event loop, one driver per journal: no other task can slip in between), so
any number of concurrent calls cannot overshoot it together. A request that does not
fit waits while calls in flight may still hand back part of their reservation, and the
run stops admitting, cleanly, once nothing is in flight and it still does not fit.
"""

from __future__ import annotations

import anyio

__all__ = ["Ledger"]


class Ledger:
    """The budget's three sums; ``budget`` None only counts (no limit)."""

    def __init__(
        self, budget: int | None, *, settled: int = 0, unresolved: int = 0, reserved: int = 0
    ) -> None:
        self.budget = budget
        self.settled = settled
        self.unresolved = unresolved
        self.reserved = reserved
        self._changed = anyio.Event()

    @property
    def committed(self) -> int:
        """Everything spent or held: what the budget is compared against."""
        return self.settled + self.unresolved + self.reserved

    def fits(self, amount: int) -> bool:
        return self.budget is None or self.committed + amount <= self.budget

    def try_reserve(self, amount: int) -> bool:
        """Reserve ``amount`` if it fits; the check and the reservation are one step."""
        if not self.fits(amount):
            return False
        self.reserved += amount
        return True

    def reserve(self, amount: int) -> None:
        """Reserve without a check: a batch found on the server is held whatever it costs."""
        self.reserved += amount

    def settle(self, reserved: int, actual: int) -> None:
        """A call answered: its reservation becomes its real price."""
        self.reserved -= reserved
        self.settled += actual
        self._notify()

    def release(self, reserved: int) -> None:
        """A reservation that was never spent (never sent, or refunded)."""
        self.reserved -= reserved
        self._notify()

    def unresolve(self, reserved: int) -> None:
        """A call whose outcome is unknown: its reservation stays spent."""
        self.reserved -= reserved
        self.unresolved += reserved
        self._notify()

    async def wait_changed(self) -> None:
        """Until a reservation is settled or released (some room may have come back)."""
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
