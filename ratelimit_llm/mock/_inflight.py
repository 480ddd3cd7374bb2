"""Calls in flight: the server limit that is not a rate.

DeepSeek refuses a call past the account's calls in flight, TGI past its
``--max-concurrent-requests``, OpenRouter past an in-flight spending budget; vLLM refuses
nothing but slows down as calls pile up. What they count is the same: calls admitted and
not yet answered, per key (or organization, or project, as the buckets are) and per model
group. A call holds its place from admission until its response has been sent (a
stream's last frame), it failed, it was cut or the client went away, and `Hold.release`
is what every one of those paths calls (it may be called more than once).

Like the buckets, nothing here awaits or reads a clock: the event loop runs one handler
at a time, so entering is atomic, and every call takes ``now``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from ._config import MockLimits

__all__ = ["Hold", "InFlight", "InFlightRefusal"]

InFlightReason = Literal["concurrency", "in_flight_tokens"]


@dataclass(frozen=True, slots=True)
class InFlightRefusal:
    """Why a call could not join the calls in flight, in the numbers a refusal quotes.

    ``in_flight`` is what the calls in flight held (calls for ``concurrency``, tokens for
    ``in_flight_tokens``) and ``requested`` what this one would add. ``wait`` is the
    time until the first call in flight is expected to end (0 when none is known), and
    ``too_large`` says the call alone is past the limit: no wait will ever admit it.
    """

    reason: InFlightReason
    limit: int
    in_flight: int
    requested: int
    wait: float
    too_large: bool = False


@dataclass(slots=True)
class _Lane:
    """The calls in flight of one (principal, model group)."""

    label: str
    calls: int = 0
    tokens: int = 0
    peak: int = 0
    #: Expected end of each call in flight that said when it would end, by hold id.
    ends: dict[int, float] = field(default_factory=dict)


class Hold:
    """One call's place among the calls in flight, until `release`."""

    __slots__ = ("_id", "_lane", "_tracker", "released", "tokens")

    def __init__(self, tracker: InFlight, lane: _Lane, tokens: int, hold_id: int) -> None:
        self._tracker = tracker
        self._lane = lane
        self._id = hold_id
        self.tokens = tokens
        self.released = False

    def expect_end(self, at: float) -> None:
        """Say when this call should be done (for the wait a refusal names)."""
        if not self.released:
            self._lane.ends[self._id] = at

    def release(self) -> None:
        """Leave the calls in flight; harmless when already done."""
        if self.released:
            return
        self.released = True
        lane = self._lane
        lane.calls -= 1
        lane.tokens -= self.tokens
        lane.ends.pop(self._id, None)


class InFlight:
    """The calls in flight of every (principal, model group), and their peaks."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._ids = itertools.count()

    def enter(
        self,
        principal: str,
        group: str,
        limits: MockLimits,
        tokens: int,
        now: float,
        *,
        label: str,
    ) -> Hold | InFlightRefusal:
        """Join the calls in flight, or say which limit would be passed.

        ``tokens`` is the call's admission charge (what ``in_flight_tokens`` counts);
        ``label`` names the lane in the statistics (never a raw key).
        """
        lane = self._lanes.get((principal, group))
        if lane is None:
            lane = self._lanes[(principal, group)] = _Lane(f"{label}|{group}")
        if limits.concurrency is not None and lane.calls + 1 > limits.concurrency:
            return InFlightRefusal(
                "concurrency", limits.concurrency, lane.calls, 1, self._wait(lane, now)
            )
        budget = limits.in_flight_tokens
        if budget is not None and lane.tokens + tokens > budget:
            return InFlightRefusal(
                "in_flight_tokens",
                budget,
                lane.tokens,
                tokens,
                0.0 if tokens > budget else self._wait(lane, now),
                too_large=tokens > budget,
            )
        lane.calls += 1
        lane.tokens += tokens
        lane.peak = max(lane.peak, lane.calls)
        return Hold(self, lane, tokens, next(self._ids))

    @staticmethod
    def _wait(lane: _Lane, now: float) -> float:
        if not lane.ends:
            return 0.0
        return max(0.0, min(lane.ends.values()) - now)

    def count(self, principal: str, group: str) -> int:
        """Calls in flight now for ``principal`` on ``group``."""
        lane = self._lanes.get((principal, group))
        return 0 if lane is None else lane.calls

    def snapshot(self) -> dict[str, Any]:
        """Calls in flight now and at most since the last reset, by lane label."""
        return {
            "now": {lane.label: lane.calls for lane in self._lanes.values() if lane.calls},
            "peak": {lane.label: lane.peak for lane in self._lanes.values() if lane.peak},
        }

    def reset_peaks(self) -> None:
        """Start the peaks over from what is in flight now (calls in flight stay held)."""
        for key, lane in list(self._lanes.items()):
            lane.peak = lane.calls
            if not lane.calls:
                del self._lanes[key]
