"""The line of waiters: FIFO within a lane, fair shares between lanes.

Calls may carry a priority lane (`lane`): an interactive request should not wait behind
a backlog of 100,000 bulk ones, but the bulk ones must keep moving. Between lanes the
line uses *start-time fair queuing* (SFQ, Goyal et al. 1996): each waiter gets a start
tag, ``max(V, the previous finish tag of its lane)``, and finishes its lane's turn
``size / weight`` later, where ``size`` is what the call costs in seconds of refill and
``V`` is the start tag of the waiter served last. The waiter with the smallest start tag
is next. So:

* within a lane, tags only grow: strict FIFO, as before lanes existed;
* a lane of weight ``w`` gets at least ``w / (sum of the busy lanes' weights)`` of the
  capacity whenever it has waiters: bulk work always progresses;
* a lane that was idle starts at ``V``, not in the past: it cannot save up a burst;
* a newcomer whose tag is ahead of everyone waiting is served before them (that is what
  a higher weight buys), and choosing the next waiter looks at one head per lane: O(1)
  for the few lanes a limiter has, whatever the number of waiters.

Waiters that gave up stay in their lane until they reach its head (lazy removal, as
aiolimiter does with its heap); every method skips them.
"""

from __future__ import annotations

import contextvars
import math
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from ._validate import check_number, check_type

__all__ = ["DEFAULT_LANE", "DEFAULT_LANES", "Line", "current_lane", "lane"]

#: The lanes a limiter has unless told otherwise, with their weights: an interactive
#: call is served eight times as often as a bulk one when both wait, a call that names
#: no lane goes to ``"default"``.
DEFAULT_LANES: Mapping[str, float] = {"interactive": 8.0, "default": 4.0, "bulk": 1.0}

#: The lane of a call that names none.
DEFAULT_LANE = "default"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ratelimit_llm_lane", default=None
)


@contextmanager
def lane(name: str) -> Iterator[None]:
    """Send the calls made inside this block in lane ``name``.

    Example::

        with ratelimit_llm.lane("interactive"):
            answer = await client.chat.completions.create(...)

    It changes nothing the SDK sends; the limiter reads it (the block's context, so
    tasks started inside it inherit it). A lane the limiter does not have is a
    `ValueError` when the call asks for capacity.
    """
    check_type("lane", name, str)
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def current_lane() -> str | None:
    """The lane set by the innermost `lane` block around this code, or ``None``."""
    return _current.get()


def check_lanes(lanes: Mapping[str, float]) -> dict[str, float]:
    """``lanes`` checked at the door: names to positive weights, ``"default"`` among them."""
    if not isinstance(lanes, Mapping):
        raise TypeError(f"lanes must map lane names to weights, got {type(lanes).__name__}")
    checked: dict[str, float] = {}
    for name, weight in lanes.items():
        check_type("lanes: a lane's name", name, str)
        checked[name] = check_number(f"lanes[{name!r}]", weight, low=0.0, low_open=True)
    if DEFAULT_LANE not in checked:
        raise ValueError(
            f"lanes must include {DEFAULT_LANE!r}, the lane of calls that name none; "
            f"got {sorted(checked)}"
        )
    return checked


class _Queued(Protocol):
    """What the line needs of a waiter: its place, and whether it is still waiting."""

    tag: float
    lane: str

    @property
    def waiting(self) -> bool: ...


class Line:
    """Waiters in lanes; `head` is the one to serve next (see the module docstring)."""

    __slots__ = ("_finish", "_lanes", "_virtual", "_weights")

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = dict(weights)
        self._lanes: dict[str, deque[Any]] = {name: deque() for name in self._weights}
        self._finish: dict[str, float] = dict.fromkeys(self._weights, 0.0)
        self._virtual = 0.0

    @property
    def lanes(self) -> Mapping[str, float]:
        """The lanes and their weights."""
        return self._weights

    def check(self, lane: str) -> None:
        """Raise `ValueError` unless ``lane`` is one of this line's lanes."""
        if lane not in self._weights:
            raise ValueError(f"no lane {lane!r}; this limiter has {sorted(self._weights)}")

    def tag_for(self, lane: str) -> float:
        """The start tag a waiter joining ``lane`` now would get."""
        return max(self._virtual, self._finish[lane])

    def push(self, waiter: _Queued, size: float) -> None:
        """Put ``waiter`` at the back of its lane, ``size`` seconds' worth of capacity."""
        lane = waiter.lane
        start = self.tag_for(lane)
        waiter.tag = start
        self._finish[lane] = start + size / self._weights[lane]
        self._lanes[lane].append(waiter)

    def served_at_once(self, lane: str, size: float) -> None:
        """Account for a call of ``lane`` served without joining (its turn had come)."""
        start = self.tag_for(lane)
        self._finish[lane] = start + size / self._weights[lane]
        self._virtual = start

    def head(self) -> Any | None:
        """The waiter to serve next: the smallest start tag among the lanes' heads."""
        best = None
        best_tag = math.inf
        for queue in self._lanes.values():
            while queue and not queue[0].waiting:
                queue.popleft()
            if queue and queue[0].tag < best_tag:
                best, best_tag = queue[0], queue[0].tag
        return best

    def pop(self, waiter: _Queued) -> None:
        """Take ``waiter`` (the current head) out of the line: it is being served."""
        queue = self._lanes[waiter.lane]
        if queue and queue[0] is waiter:
            queue.popleft()
        self._virtual = max(self._virtual, waiter.tag)

    def __iter__(self) -> Iterator[Any]:
        """Every waiter still in the line, lane by lane (for rare scans, not the hot path)."""
        for queue in self._lanes.values():
            yield from (waiter for waiter in queue if waiter.waiting)

    def clear(self) -> None:
        """Forget waiters that gave up (only they are left when nobody waits)."""
        for queue in self._lanes.values():
            queue.clear()
