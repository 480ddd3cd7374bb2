"""``via="auto"``: the Batch API while the deadline allows, online for the tail.

The rule, recomputed at every poll of the batches::

    online_time = the quota's time for every request still without an answer
                  (`_quota.quota_seconds`: estimated tokens and requests over the
                  binding limits of the client's limiter, from the buckets' levels now)
    switch_at   = deadline - (online_time * safety + cancel_allowance + margin)

* At the start, if ``switch_at`` has already passed, everything goes online at once:
  the deadline leaves no time to wait for a batch.
* Otherwise every request goes to the Batch API (half the price) and the run waits.
  Batches that finish, or expire with partial output, hand their answers in; expired
  lines are resubmitted as the batch path does. As answers come in, ``online_time``
  shrinks and ``switch_at`` moves later.
* When ``switch_at`` comes, the run submits nothing more to the Batch API, **cancels**
  every batch still running, and sends online whatever is not in a batch. A cancelled
  batch is collected once it is ``cancelled``: its finished lines keep their batch
  answers (paid once, at the batch price), and only the lines it never ran go online.
  A line still inside a batch that is being cancelled is never sent online until the
  batch has ended, so no request is paid twice; ``cancel_allowance`` (OpenAI: a cancel
  takes up to ten minutes) is the time kept for that wait.

``safety`` (1.25) covers a quota shared with others and the limiter's slow start;
``margin`` (60 s) the last calls' latency and the journal's last writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import check_number

__all__ = ["AutoPolicy"]


@dataclass(frozen=True, slots=True)
class AutoPolicy:
    """When ``via="auto"`` stops waiting for the Batch API (see the module docstring).

    Example::

        AutoPolicy()                                        # 1.25, 600 s, 60 s
        AutoPolicy(safety=1.5, cancel_allowance=900, margin=120)
    """

    safety: float = 1.25
    cancel_allowance: float = 600.0
    margin: float = 60.0

    def __post_init__(self) -> None:
        check_number("AutoPolicy.safety", self.safety, low=1.0)
        check_number("AutoPolicy.cancel_allowance", self.cancel_allowance, low=0.0)
        check_number("AutoPolicy.margin", self.margin, low=0.0)

    def switch_at(self, deadline: float, online_seconds: float) -> float:
        """When to stop waiting for batches and finish online (same clock as ``deadline``)."""
        return deadline - (online_seconds * self.safety + self.cancel_allowance + self.margin)
