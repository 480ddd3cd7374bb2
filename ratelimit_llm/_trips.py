"""The quickest recent round trip: where a header snapshot's send cut-off is placed.

`RateLimitedTransport` discounts a server snapshot by the calls that left after the
server took it, and places that moment one quickest trip before the answer (see
``RateLimitedTransport._produced_at``). A trip here is what a call took beyond the
server's own time; a busy event loop inflates it, the network does not. So the floor is
the *minimum* over a window of time, as BBR keeps its minimum RTT (draft-ietf-ccwg-bbr:
a 10 s filter), and not a running value that creeps up per answer.

Why a window of time and not per answer: a client that has just sent thousands of
calls reads hundreds of answers in a row, each seconds late behind its own event loop.
A floor that crept up 1 % per answer reached those seconds within a few hundred of
them (1.01 ** 300 is 20), the cut-off moved seconds before each answer, every call sent
since was discounted from a snapshot that already counted most of them, and the bucket
went hundreds of calls into a debt that did not exist: 2,040 calls at 1,800 RPM stalled
eleven seconds with the server's quota idle. The window is a minute, longer than BBR's,
because such a backlog can last several seconds and the two errors are not alike: a
floor too high stalls the client, one too low counts a few calls as seen that were
still on their way, which a refusal then corrects.

Hand-written because it is a dozen lines over a deque: no maintained library offers a
windowed minimum on an injected clock.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["QuickestTrip"]

#: How long a quick trip is remembered, in seconds (see the module docstring).
TRIP_WINDOW = 60.0
# The window is kept as this many slices, each with its own minimum: constant memory
# however many answers come; a trip is forgotten 50 to 60 s after it was seen.
_SLICES = 6


class QuickestTrip:
    """The smallest trip seen over about the last `TRIP_WINDOW` seconds.

    ``add(trip, now)`` records one trip at ``now`` (any monotonic clock) and returns the
    floor: the smallest trip of the window, including this one. Before any trip,
    `floor` is infinite.
    """

    __slots__ = ("_slices", "_width")

    def __init__(self, window: float = TRIP_WINDOW) -> None:
        self._width = window / _SLICES
        # (slice number, smallest trip in it), oldest first; at most _SLICES long.
        self._slices: deque[tuple[int, float]] = deque()

    @property
    def floor(self) -> float:
        """The smallest trip in the window (``inf`` before the first)."""
        return min((trip for _, trip in self._slices), default=math.inf)

    def add(self, trip: float, now: float) -> float:
        """Record ``trip`` (seconds) seen at ``now``; returns the new `floor`."""
        number = math.floor(now / self._width)
        slices = self._slices
        if slices and number <= slices[-1][0]:
            # The same slice (or a clock that stepped back: kept in the newest slice).
            last_number, smallest = slices[-1]
            if trip < smallest:
                slices[-1] = (last_number, trip)
        else:
            slices.append((number, trip))
        while slices[0][0] <= number - _SLICES:
            slices.popleft()
        return self.floor
