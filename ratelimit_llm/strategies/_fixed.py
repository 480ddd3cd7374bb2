"""FixedDelay: a pause between requests (or batches of them), on top of the bucket.

Some users know exactly the pace they want: "one request every 120 ms", or, as
distilabel's proposed ``batch_delay`` puts it, "send a batch of N, then pause". The
bucket already keeps a long-run rate; this strategy adds a fixed spacing in front of it,
for servers whose limits are not in headers, or to be gentle on a shared key.

Concurrency without a lock: each caller is given its send time (its *slot*) while it
still holds the event loop, so slots are handed out first come, first served and no two
callers can take the same one; only then does it sleep until that time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio

from .._strategy import Attempt, Strategy

__all__ = ["FixedDelay"]


class FixedDelay(Strategy):
    """Wait ``seconds`` between consecutive sends, or between batches of ``every`` sends.

    With ``every=1`` (the default) no two sends are closer than ``seconds``. With
    ``every=N`` up to N sends go out together, then the next batch waits until
    ``seconds`` after the last send of the previous one. A caller that arrives after a
    quiet spell of at least ``seconds`` starts a fresh batch: the pause already happened.

    Retries count as sends (each attempt takes a slot), and the spacing is shared by
    every call made through the client, whatever its key, model or priority lane: slots
    are handed out first come, first served before the limiter's line, so an interactive
    call behind a bulk backlog waits for the backlog's slots (use lanes without
    `FixedDelay` when that matters). The bucket's own wait
    comes on top of it. A caller cancelled while waiting leaves its slot unused, which
    only ever makes the pace slower, never faster.

    Example::

        client = ratelimit_llm.wrap(
            AsyncOpenAI(), rpm=500, tpm=200_000, strategy=FixedDelay(0.12)
        )
        # batches of 20, then two seconds of quiet
        strategy = FixedDelay(2.0, every=20)

    :param seconds: the pause, >= 0.
    :param every: how many sends make a batch, >= 1.
    :param clock: a monotonic clock in seconds; by default the limiters' clock (the
        running event loop's), so virtual-time tests work unchanged.
    :raises ValueError: if ``seconds`` is negative or not finite, or ``every`` < 1.
    """

    __slots__ = ("_batch_start", "_clock", "_every", "_in_batch", "_last_release", "_seconds")

    def __init__(
        self, seconds: float, *, every: int = 1, clock: Callable[[], float] | None = None
    ) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
        if not (0.0 <= seconds < math.inf):
            raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"every must be an int, got {type(every).__name__}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self._seconds = float(seconds)
        self._every = every
        self._clock = clock
        # The schedule: when the current batch may go, how many slots of it are taken,
        # and the send time handed out last.
        self._batch_start = -math.inf
        self._in_batch = 0
        self._last_release = -math.inf

    @property
    def seconds(self) -> float:
        """The pause between sends (or batches)."""
        return self._seconds

    @property
    def every(self) -> int:
        """How many sends make a batch."""
        return self._every

    async def before_send(self, attempt: Attempt) -> None:
        clock = self._clock or attempt.clock
        now = clock()
        # Taken before the first await: this is what makes slots first come, first served.
        release = self.reserve_slot(now)
        if release > now:
            await anyio.sleep(release - now)

    def reserve_slot(self, now: float) -> float:
        """Take the next send slot for a caller arriving at ``now``; return its time.

        Synchronous on purpose: callers are served in the order they ask.
        """
        quiet = now - self._last_release >= self._seconds
        if self._in_batch >= self._every or quiet:
            self._batch_start = max(now, self._last_release + self._seconds)
            self._in_batch = 0
        self._in_batch += 1
        release = max(now, self._batch_start)
        self._last_release = release
        return release

    def __repr__(self) -> str:
        every = f", every={self._every}" if self._every != 1 else ""
        return f"FixedDelay({self._seconds:g}{every})"
