"""What the server saw, so a benchmark can measure throughput and 429s from the server side.

Memory stays bounded however long a benchmark runs: counters are keyed by things that
are few (redacted key, model, reason), the timeline keeps per-second aggregates for a
fixed number of seconds, and the request log is a ring buffer. API keys never get here
in clear: callers pass the redacted label.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Stats"]

# Timeline row fields, in order.
_FIELDS = ("requests", "accepted", "rejected", "failed", "tokens_charged", "tokens_used")
_REQUESTS, _ACCEPTED, _REJECTED, _FAULTS, _CHARGED, _USED = range(len(_FIELDS))
# Distinct x-stainless-retry-count values kept; anything past this is lumped as "other".
_MAX_RETRY_VALUES = 32


class _Logged(NamedTuple):
    t: float
    key: str
    model: str
    endpoint: str
    status: int
    outcome: str
    reason: str | None
    retry_count: str | None
    tokens_charged: int


@dataclass(slots=True)
class _Cell:
    accepted: int = 0
    failed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    tokens_charged: int = 0
    tokens_used: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "failed": self.failed,
            "rejected": dict(self.rejected),
            "faults": dict(self.faults),
            "tokens_charged": self.tokens_charged,
            "tokens_used": self.tokens_used,
        }


class Stats:
    """Counters, a per-second timeline and a bounded request log."""

    def __init__(self, *, now: float, timeline_seconds: int = 3600, log_size: int = 1000) -> None:
        self._timeline_seconds = timeline_seconds
        self._log_size = log_size
        self.reset(now)

    def reset(self, now: float) -> None:
        """Forget everything; the timeline's second 0 becomes ``now``."""
        self._start = now
        self._last = now
        self._requests = 0
        self._invalid: Counter[str] = Counter()
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._retry_counts: Counter[str] = Counter()
        self._timeline: dict[int, list[int]] = {}
        self._peaks: dict[str, float] = {}
        self._log: deque[_Logged] = deque(maxlen=self._log_size)

    def _row(self, now: float) -> list[int]:
        self._last = max(self._last, now)
        second = int(now - self._start)
        row = self._timeline.get(second)
        if row is None:
            row = self._timeline[second] = [0] * len(_FIELDS)
            while len(self._timeline) > self._timeline_seconds:
                del self._timeline[next(iter(self._timeline))]
        return row

    def _cell(self, key: str, model: str) -> _Cell:
        cell = self._cells.get((key, model))
        if cell is None:
            cell = self._cells[(key, model)] = _Cell()
        return cell

    def invalid(self, reason: str) -> None:
        """A request refused before it reached the limits (401, 400, 404)."""
        self._invalid[reason] += 1

    def record(
        self,
        *,
        now: float,
        key: str,
        model: str,
        endpoint: str,
        status: int,
        outcome: str,
        reason: str | None = None,
        fault: str | None = None,
        retry_count: str | None = None,
        charged: int = 0,
    ) -> None:
        """One API request's outcome.

        ``outcome`` is ``accepted`` (served, perhaps with a harmless fault such as garbled
        headers), ``rejected`` (a 429/413, ``reason`` says which limit) or ``failed`` (an
        injected fault broke it). ``fault`` names any injected fault; ``charged`` is what
        admission took from the token buckets.
        """
        self._requests += 1
        row = self._row(now)
        row[_REQUESTS] += 1
        row[_CHARGED] += charged
        cell = self._cell(key, model)
        cell.tokens_charged += charged
        if outcome == "accepted":
            row[_ACCEPTED] += 1
            cell.accepted += 1
        elif outcome == "rejected":
            row[_REJECTED] += 1
            cell.rejected[reason or "unknown"] += 1
        else:
            row[_FAULTS] += 1
            cell.failed += 1
        if fault is not None:
            cell.faults[fault] += 1
        if retry_count is not None:
            value = retry_count if len(retry_count) <= 8 else "other"
            if value not in self._retry_counts and len(self._retry_counts) >= _MAX_RETRY_VALUES:
                value = "other"
            self._retry_counts[value] += 1
        if self._log_size:
            offset = round(now - self._start, 6)
            reason = reason or fault
            self._log.append(
                _Logged(offset, key, model, endpoint, status, outcome, reason, retry_count, charged)
            )

    def usage(self, *, now: float, key: str, model: str, used: int) -> None:
        """Tokens a request actually consumed (prompt plus output), once known."""
        self._row(now)[_USED] += used
        self._cell(key, model).tokens_used += used

    def peak(self, label: str, fraction: float) -> None:
        """Note a bucket's fill fraction right after a debit; the maximum is kept."""
        if fraction > self._peaks.get(label, 0.0):
            self._peaks[label] = fraction

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (the body of ``GET /mock/stats``)."""
        accepted = sum(cell.accepted for cell in self._cells.values())
        rejected: Counter[str] = Counter()
        faults: Counter[str] = Counter()
        by_key: dict[str, dict[str, Any]] = {}
        by_model: dict[str, dict[str, int]] = {}
        failed = 0
        for (key, model), cell in sorted(self._cells.items()):
            rejected.update(cell.rejected)
            faults.update(cell.faults)
            failed += cell.failed
            by_key.setdefault(key, {})[model] = cell.as_dict()
            totals = by_model.setdefault(model, {"accepted": 0, "rejected": 0, "failed": 0})
            totals["accepted"] += cell.accepted
            totals["rejected"] += sum(cell.rejected.values())
            totals["failed"] += cell.failed
        charged = sum(cell.tokens_charged for cell in self._cells.values())
        used = sum(cell.tokens_used for cell in self._cells.values())
        elapsed = self._last - self._start
        return {
            "elapsed_seconds": round(elapsed, 6),
            "requests": self._requests,
            "accepted": accepted,
            "rejected": sum(rejected.values()),
            "rejected_by_reason": dict(rejected),
            "failed": failed,
            "faults": dict(faults),
            "invalid": dict(self._invalid),
            "tokens": {"charged": charged, "used": used},
            "by_key": by_key,
            "by_model": by_model,
            "retry_counts": dict(self._retry_counts),
            "peak_bucket_usage": {
                label: round(value, 6) for label, value in sorted(self._peaks.items())
            },
            "timeline": [
                {"second": second, **dict(zip(_FIELDS, row, strict=True))}
                for second, row in sorted(self._timeline.items())
            ],
            "log": [entry._asdict() for entry in self._log],
        }
