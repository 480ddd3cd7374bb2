"""What the parts of a run tell each other: stop, why, and that more work arrived.

One object, shared by the drivers, the clerk and whoever asks the run to stop (a signal
handler, the caller). Nothing here blocks or reads a clock.
"""

from __future__ import annotations

import anyio

from ._types import Phase, StopReason

__all__ = ["Control"]


class Control:
    """Stop requests, the run's phase, and a signal for "requests came back to pending"."""

    def __init__(self) -> None:
        self.phase: Phase = "starting"
        self.stop_reason: StopReason | None = None
        self._stopping = anyio.Event()
        self._aborted = anyio.Event()
        self._pending = anyio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def stop(self, reason: StopReason = "stopped") -> None:
        """Admit nothing more; calls in flight may finish (within the run's grace)."""
        if not self._stopping.is_set():
            self.stop_reason = reason
            self._stopping.set()

    def abort(self) -> None:
        """Stop now: calls in flight are cut (each is sent again, once, by the next run)."""
        self.stop()
        self._aborted.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def wait_aborted(self) -> None:
        await self._aborted.wait()

    def pending_changed(self) -> None:
        """Requests went back to pending (a batch was cancelled or expired)."""
        self._pending.set()
        self._pending = anyio.Event()

    async def wait_pending(self) -> None:
        await self._pending.wait()
