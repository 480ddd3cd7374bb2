"""What a limiter saw and did: events for callbacks and logs, counters per route.

``wrap(client, ..., telemetry=Telemetry())`` (or ``transport_of(client).telemetry``)::

    telemetry.subscribe(lambda event: metrics.increment(event.kind, tags=[event.key]))
    for route in transport_of(client).statistics():   # RouteStatistics per key and model
        print(route.key, route.requests, route.rate_limited)

`LimiterStatistics` is what ``RateLimiter.statistics()`` returns: its levels and line.
Keys appear only in their redacted form (``sk-...WXYZ``).
"""

from __future__ import annotations

from ._limiter import LimiterStatistics
from ._telemetry import Event, EventKind, RouteStatistics, Telemetry

__all__ = ["Event", "EventKind", "LimiterStatistics", "RouteStatistics", "Telemetry"]
