"""The running server's state: buckets, calls in flight, limits, fault draws, stats,
batches, clock and ids.

One `MockState` lives on ``app.state.mock``. It is the handle tests and benchmarks use
to look inside or steer a running mock (`set_limits`, `reset`, `stats`); the HTTP
``/mock/*`` endpoints are thin wrappers around the same methods.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from ._batches import BatchEngine
from ._buckets import BucketSet, Enforcer
from ._config import MockConfig, MockLimits
from ._dialect import Dialect
from ._faults import FaultInjector
from ._inflight import InFlight
from ._keys import Identity, IdentityCache
from ._stats import Stats

__all__ = ["Clock", "MockState", "Sleep"]

#: Seconds from an arbitrary origin; only differences matter.
Clock = Callable[[], float]
#: Waits the given number of seconds.
Sleep = Callable[[float], Awaitable[None]]


class MockState:
    """Everything the mock server remembers between requests.

    Example::

        app = create_app(MockConfig())
        state: MockState = app.state.mock
        state.set_limits(MockLimits(rpm=100, tpm=10_000), model="gpt-4o")
        state.stats()["rejected"]
    """

    def __init__(self, config: MockConfig, *, clock: Clock, sleep: Sleep) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._groups = {
            model: name for name, models in config.shared_limits.items() for model in models
        }
        self._default_limits = config.limits
        self._model_limits = {
            self.group_of(name): limits for name, limits in config.model_limits.items()
        }
        self.enforcer = Enforcer(self.limits_for, project_scoped=config.limit_scope == "project")
        #: The calls admitted and not yet answered, per principal and model group.
        self.in_flight = InFlight()
        #: How the profile words headers and refusals.
        self.dialect = Dialect(config.profile)
        self.identities = IdentityCache(dict(config.keys), config.limit_scope)
        self.faults = FaultInjector(config.faults, config.seed)
        self._stats = Stats(
            now=clock(), timeline_seconds=config.timeline_seconds, log_size=config.log_size
        )
        self._number = 0
        self._ids = random.Random(config.seed ^ 0x5EED_1D5)
        #: Uploaded files and batches (the Files and Batch APIs).
        self.batches = BatchEngine(config, clock=clock, new_id=self.new_id)

    # -- limits ---------------------------------------------------------------------

    def group_of(self, model: str) -> str:
        """The bucket group ``model`` draws on: its shared group, else itself."""
        return self._groups.get(model, model)

    @property
    def default_limits(self) -> MockLimits:
        """The limits of every model without an override of its own."""
        return self._default_limits

    def limits_for(self, group: str) -> MockLimits:
        """The limits in force for a model group."""
        return self._model_limits.get(group, self._default_limits)

    def set_limits(self, limits: MockLimits, *, model: str | None = None) -> None:
        """Change the limits while running: the default ones, or one model's (or its group's).

        Existing buckets keep what they have used, so lowering a limit below current usage
        leaves them in debt until they refill, as a server-side limit cut does.
        """
        if model is None:
            self._default_limits = limits
        else:
            self._model_limits[self.group_of(model)] = limits
        self.enforcer.apply_limits()

    def limits(self) -> dict[str, Any]:
        """The limits in force: the default and every model or group override."""
        return {
            "default": self._default_limits.as_dict(),
            "models": {
                name: limits.as_dict() for name, limits in sorted(self._model_limits.items())
            },
            "shared_limits": {
                name: list(models) for name, models in self.config.shared_limits.items()
            },
            "scope": self.config.limit_scope,
        }

    # -- per request ----------------------------------------------------------------

    def next_number(self) -> int:
        """Number the next API request (from 1): what fault schedules count."""
        self._number += 1
        return self._number

    def new_id(self, prefix: str, hex_digits: int = 32) -> str:
        """A fresh id such as ``req_<32 hex>``, from the seeded sequence."""
        return f"{prefix}{self._ids.getrandbits(hex_digits * 4):0{hex_digits}x}"

    async def pause(self, seconds: float) -> None:
        if seconds > 0:
            await self.sleep(seconds)

    def note_peaks(self, identity: Identity, group: str, buckets: BucketSet) -> None:
        for bucket in buckets:
            label = (
                f"project {identity.project}|{group}|{bucket.name}"
                if bucket is buckets.project
                else f"{identity.principal_label}|{group}|{bucket.name}"
            )
            self._stats.peak(label, bucket.used())

    @property
    def recorder(self) -> Stats:
        """The stats recorder (for the request handlers)."""
        return self._stats

    # -- inspection -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the server saw since it started or was last reset (``GET /mock/stats``)."""
        snapshot = self._stats.snapshot()
        snapshot["api_requests_numbered"] = self._number
        snapshot["buckets"] = len(self.enforcer)
        snapshot["in_flight"] = self.in_flight.snapshot()
        snapshot["limits"] = self.limits()
        return snapshot

    def reset(self, *, buckets: bool = False, batches: bool = True) -> None:
        """Clear the stats and restart request numbering and fault draws; optionally refill.

        With ``buckets=True`` every bucket is forgotten, so each scope starts full again.
        ``batches=True`` (the default) forgets every batch and file. Calls still in flight
        keep their places (they are still running); the in-flight peaks start over.
        """
        self._stats.reset(self.clock())
        self._number = 0
        self.faults.reset()
        self.in_flight.reset_peaks()
        if buckets:
            self.enforcer.clear()
        if batches:
            self.batches.clear()
