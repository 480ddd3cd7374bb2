"""Events and counters: what happened to the calls, per credential and model.

Every notable step of a call (granted, answered, rate limited, retried, given up, a key
retired, a limit learned) becomes one `Event`. Events go three ways from one place:
into per-(key, model) counters (`Telemetry.statistics`), to stdlib ``logging`` on the
``ratelimit_llm`` logger, and to the callbacks users subscribe (to export metrics, say).
Keys appear only in their redacted form (see `_credentials.redact_key`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Event", "EventKind", "RouteStatistics", "Telemetry"]

EventKind = Literal[
    "granted",  # the limiter granted a call (wait = seconds spent in line)
    "response",  # an answer arrived (status)
    "error",  # an attempt failed: a refused status or a connection error (error_kind)
    "retry",  # the call will be tried again (wait = pause before it)
    "gave_up",  # no more attempts: the last answer or error goes to the caller
    "settled",  # actual usage reconciled with the estimate (tokens)
    "key_retired",  # a credential was taken out of rotation for good
    "limit_changed",  # a dimension's limit changed (detail says which and why)
]

_log = logging.getLogger("ratelimit_llm")

_LEVELS: dict[str, int] = {
    "granted": logging.DEBUG,
    "response": logging.DEBUG,
    "error": logging.INFO,
    "retry": logging.DEBUG,
    "gave_up": logging.WARNING,
    "settled": logging.DEBUG,
    "key_retired": logging.WARNING,
    "limit_changed": logging.INFO,
}


@dataclass(frozen=True, slots=True)
class Event:
    """One step of one call, as seen by the limiter."""

    kind: EventKind
    #: The credential's redacted name (never the key).
    key: str
    model: str | None
    #: 1 for the first attempt of a call, 2 for its first retry, ...
    attempt: int = 1
    status: int | None = None
    #: For "error" and "gave_up": the `ErrorKind` value, or "connection".
    error_kind: str | None = None
    #: For rate limits: which metric the server said ran out ("requests", "tokens").
    metric: str | None = None
    #: Seconds: time in line ("granted") or the pause before a retry ("retry").
    wait: float | None = None
    tokens_estimated: float | None = None
    tokens_actual: float | None = None
    detail: str | None = None
    #: For "retry": the budget it drew on (``"throttling"``, ``"overload"``, ...).
    retry_kind: str | None = None


@dataclass(frozen=True, slots=True)
class RouteStatistics:
    """Counters for one (credential, model) pair, as returned by `Telemetry.statistics`."""

    key: str
    model: str | None
    #: Attempts granted and sent (retries included).
    requests: int = 0
    #: Answers with a 2xx status.
    succeeded: int = 0
    #: Refused attempts by kind, e.g. ``{"rate_limit": 3, "server_error": 1}``.
    errors: dict[str, int] = field(default_factory=dict)
    #: 429s by kind (a subset of ``errors``; ``rate_limit:tokens`` when the metric is known).
    rate_limited: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    #: Retries by the budget they drew on, e.g. ``{"throttling": 3, "connection": 1}``.
    retries_by_kind: dict[str, int] = field(default_factory=dict)
    gave_up: int = 0
    #: Seconds spent waiting in line, summed over attempts.
    time_waited: float = 0.0
    #: Tokens charged up front, and what settled calls really used.
    tokens_estimated: float = 0.0
    tokens_actual: float = 0.0
    #: Calls whose usage was settled (tokens_estimated covers all requests).
    settled: int = 0
    #: Of those, streams that reported no usage: settled from what they streamed,
    #: counted as the estimate counts (characters / 4).
    settled_estimated: int = 0


#: The ``detail`` of a "settled" event whose stream reported no usage.
ESTIMATED_FROM_STREAM = "estimated from what streamed"


class _Counters:
    __slots__ = (
        "errors",
        "gave_up",
        "rate_limited",
        "requests",
        "retries",
        "retries_by_kind",
        "settled",
        "settled_estimated",
        "succeeded",
        "time_waited",
        "tokens_actual",
        "tokens_estimated",
    )

    def __init__(self) -> None:
        self.requests = self.succeeded = self.retries = self.gave_up = self.settled = 0
        self.settled_estimated = 0
        self.time_waited = self.tokens_estimated = self.tokens_actual = 0.0
        self.errors: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}
        self.retries_by_kind: dict[str, int] = {}


class Telemetry:
    """Collects events: counts them, logs them, and hands them to subscribers.

    Example::

        telemetry = Telemetry()
        telemetry.subscribe(lambda event: metrics.increment(event.kind, key=event.key))
        client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000, telemetry=telemetry)
        ...
        for stats in telemetry.statistics():
            print(stats.key, stats.model, stats.requests, stats.rate_limited)
    """

    __slots__ = ("_counters", "_subscribers")

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str | None], _Counters] = {}
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes.

        Callbacks run synchronously on the event loop: keep them quick. One that raises
        is logged and does not disturb the call it reports on.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Record ``event``: count it, log it, pass it to every subscriber."""
        self._count(event)
        level = _LEVELS.get(event.kind, logging.DEBUG)
        if _log.isEnabledFor(level):
            _log.log(level, "%s", _describe(event))
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:
                _log.exception("an event subscriber raised; the event was %s", event.kind)

    def statistics(self) -> list[RouteStatistics]:
        """A snapshot of the counters, one entry per (credential, model) seen."""
        return [
            RouteStatistics(
                key=key,
                model=model,
                requests=c.requests,
                succeeded=c.succeeded,
                errors=dict(c.errors),
                rate_limited=dict(c.rate_limited),
                retries=c.retries,
                gave_up=c.gave_up,
                time_waited=c.time_waited,
                tokens_estimated=c.tokens_estimated,
                tokens_actual=c.tokens_actual,
                retries_by_kind=dict(c.retries_by_kind),
                settled=c.settled,
                settled_estimated=c.settled_estimated,
            )
            for (key, model), c in self._counters.items()
        ]

    def _count(self, event: Event) -> None:
        counters = self._counters.get((event.key, event.model))
        if counters is None:
            counters = self._counters[(event.key, event.model)] = _Counters()
        kind = event.kind
        if kind == "granted":
            counters.requests += 1
            counters.time_waited += event.wait or 0.0
            counters.tokens_estimated += event.tokens_estimated or 0.0
        elif kind == "response":
            if event.status is not None and 200 <= event.status < 300:
                counters.succeeded += 1
        elif kind == "error":
            label = event.error_kind or "unknown"
            counters.errors[label] = counters.errors.get(label, 0) + 1
            if event.status == 429:
                if event.metric:
                    label = f"{label}:{event.metric}"
                counters.rate_limited[label] = counters.rate_limited.get(label, 0) + 1
        elif kind == "retry":
            counters.retries += 1
            if event.retry_kind:
                by_kind = counters.retries_by_kind
                by_kind[event.retry_kind] = by_kind.get(event.retry_kind, 0) + 1
        elif kind == "gave_up":
            counters.gave_up += 1
        elif kind == "settled":
            counters.settled += 1
            counters.tokens_actual += event.tokens_actual or 0.0
            if event.detail == ESTIMATED_FROM_STREAM:
                counters.settled_estimated += 1


def _describe(event: Event) -> str:
    parts = [f"{event.kind} key={event.key}"]
    if event.model:
        parts.append(f"model={event.model}")
    if event.attempt > 1:
        parts.append(f"attempt={event.attempt}")
    if event.status is not None:
        parts.append(f"status={event.status}")
    if event.error_kind:
        parts.append(f"error={event.error_kind}")
    if event.metric:
        parts.append(f"metric={event.metric}")
    if event.wait:
        parts.append(f"wait={event.wait:.3f}s")
    if event.tokens_estimated is not None and event.kind != "granted":
        parts.append(f"estimated={event.tokens_estimated:g}")
    if event.tokens_actual is not None:
        parts.append(f"actual={event.tokens_actual:g}")
    if event.detail:
        parts.append(event.detail)
    return " ".join(parts)
