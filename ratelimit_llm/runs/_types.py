"""What a run yields, what it reports while it runs, and what it sums up at the end.

All are frozen: a result handed out cannot drift from what the journal holds. A failure
is a result like any other (`RunResult.error`), never an exception, because one bad
request must never stop the other 999,999.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Phase", "RunError", "RunProgress", "RunResult", "RunSummary", "StopReason", "Via"]

#: Which path answered a request, or which paths a run may use.
Via = Literal["online", "batch"]

#: Where a run stands.
Phase = Literal["starting", "online", "batch", "switching", "stopping", "finished"]

#: Why a run ended before every request had its answer (``None``: it finished).
StopReason = Literal["stopped", "budget", "quota", "credentials"]


@dataclass(frozen=True, slots=True)
class RunError:
    """Why one request failed for good.

    ``kind`` sorts the failure by what can be done about it: an `ErrorKind` value
    (``client_error``, ``request_too_large``, ``insufficient_quota``, ``authentication``,
    ``rate_limit``, ``server_error``, ...), ``connection`` (no answer at all),
    ``acquire_timeout`` (the limiter's wait ran out), ``invalid_response`` (an answer that
    is not JSON), or the Batch API's ``batch_expired``, ``batch_cancelled`` and
    ``missing_result``. ``retryable`` says whether sending it again could help
    (``--retry-failed``).
    """

    kind: str
    status_code: int | None
    code: str | None
    message: str
    retryable: bool
    type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status_code": self.status_code,
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    """The final answer to one request: exactly one of ``response`` and ``error`` is set.

    ``via`` is the path that answered it (``"online"`` or ``"batch"``, with ``batch_id``);
    ``response`` the response body (what the endpoint returned, as a dict); ``usage`` its
    ``usage``; ``usd`` its price by the run's price table (``None``: not priced).
    """

    custom_id: str
    via: Via
    response: dict[str, Any] | None
    error: RunError | None
    usage: dict[str, Any] | None = None
    batch_id: str | None = None
    usd: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class RunProgress:
    """A point-in-time view of a run (`Run.progress`), cheap enough to take every tick.

    ``eta_seconds`` comes from the quota, not from the pace of the first results: the
    estimated tokens and requests still to send, over the binding limit of the buckets
    they go to (``None`` while no limiter is known, ``inf`` when nothing can be sent).
    """

    phase: Phase
    total: int
    done: int
    succeeded: int
    failed: int
    #: Answers the server refused with a 429 (the limiter's own count, retries included).
    refused: int
    in_flight: int
    #: Requests in batches on the Batch API right now.
    in_batches: int
    tokens_estimated: float
    tokens_actual: float
    usd: float
    budget_usd: float | None
    elapsed: float
    eta_seconds: float | None
    stop_reason: StopReason | None = None

    @property
    def remaining(self) -> int:
        return self.total - self.done


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The whole job at the end of a run: counts, tokens, dollars and time.

    ``ideal_seconds`` is the shortest time the quota allows for the requests this run
    answered online (their estimated tokens and their count over the binding limits, as
    the server charges them); compare ``wall_seconds``.
    """

    total: int
    succeeded: int
    failed: int
    failed_by_kind: Mapping[str, int]
    pending: int
    online: int
    batch: int
    #: Requests dispatched more than once over the job's life (a kill cut their call).
    resent: int
    refused: int
    tokens_estimated: float
    tokens_actual: float
    usd_online: float
    usd_batch: float
    #: What the answered requests would have cost at the synchronous price.
    usd_at_online_price: float
    #: Charged to the budget without an answer priced: calls cut by a kill or lost
    #: in transit, which the server may have billed.
    usd_unresolved: float
    budget_usd: float | None
    wall_seconds: float
    ideal_seconds: float | None
    stop_reason: StopReason | None = None
    unpriced_models: tuple[str, ...] = field(default=())

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def finished(self) -> bool:
        """Whether every request has its final answer."""
        return self.done == self.total

    @property
    def usd(self) -> float:
        return self.usd_online + self.usd_batch + self.usd_unresolved

    @property
    def efficiency(self) -> float | None:
        """``ideal_seconds / wall_seconds``: 1.0 is as fast as the quota allows."""
        if self.ideal_seconds is None or self.wall_seconds <= 0:
            return None
        return min(self.ideal_seconds / self.wall_seconds, math.inf)
