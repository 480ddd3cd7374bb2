"""One limiter per (credential, model group), made on first use.

OpenAI sets limits per organisation or project *and per model*, so each credential gets
its own buckets for each model. Models that share one limit (OpenAI lists such "shared
limit" families) are mapped to one group, and so to one bucket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Literal, TypeAlias

from ._interface import Limiter
from ._line import DEFAULT_LANES, check_lanes
from ._providers import Provider
from ._types import Limits
from ._validate import check_instance
from .backends import Backend, backend_from

__all__ = ["AUTO_START", "UNMETERED", "LimiterPool", "LimitsSpec"]

#: What ``limits`` may be: one `Limits` for every model, a mapping from model (or
#: ``"*"`` for the rest) to `Limits`, or ``"auto"``: start cautious and adopt what the
#: server reports in its headers.
LimitsSpec: TypeAlias = Limits | Mapping[str, Limits] | Literal["auto"]

#: Where ``limits="auto"`` starts before the first response tells the real limits:
#: below OpenAI's lowest paid tier for most models, so the first burst cannot 429.
AUTO_START = Limits(rpm=60, tpm=100_000)

#: The bucket of calls that name no model (files, batches, model lists). OpenAI meters
#: them apart from every model's requests and tokens, so they must not spend (or wait
#: for) a model's quota; a bucket of their own still keeps a runaway polling loop from
#: flooding the API. It guards nothing the server enforces per second, so it needs no
#: slow start.
UNMETERED = Limits(rpm=3_000, burst_seconds=60)


class LimiterPool:
    """Hands out the limiter for a credential and model, creating it on first use.

    :param limits: see `LimitsSpec`.
    :param shared: model name -> group name, for models that share one limit.
    :param clock: passed to every limiter (tests use a virtual clock).
    :param auto_start: the starting limits of buckets whose limits are learned.
    :param follow_server_limits: let the server's headers resize buckets. Learned
        buckets always follow the server.
    :param backend: where the buckets live: in this process (the default), or a shared
        backend such as `RedisBackend` (or its URL), where each (credential, model group)
        is one quota scope shared with every other process that uses it.
    :param unmetered: the limits of calls that name no model (files, batches, model
        lists), which no model's quota counts; see `UNMETERED`.
    :param lanes: the priority lanes of every limiter and their weights (see
        `ratelimit_llm.lane`); by default `DEFAULT_LANES`.
    """

    __slots__ = (
        "_auto_start",
        "_clock",
        "_follow",
        "_limiters",
        "_limits",
        "_owns_backend",
        "_shared",
        "_unmetered",
        "backend",
        "lanes",
    )

    def __init__(
        self,
        limits: LimitsSpec,
        *,
        shared: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        auto_start: Limits = AUTO_START,
        follow_server_limits: bool = True,
        backend: Backend | str | None = None,
        unmetered: Limits = UNMETERED,
        lanes: Mapping[str, float] = DEFAULT_LANES,
    ) -> None:
        if not (limits == "auto" or isinstance(limits, Limits | Mapping)):
            raise TypeError(
                f"limits must be a Limits, a mapping of model to Limits, or 'auto'; got {limits!r}"
            )
        if isinstance(limits, Mapping):
            for model, value in limits.items():
                if not isinstance(value, Limits):
                    raise TypeError(f"limits[{model!r}] must be a Limits, got {value!r}")
        if shared is not None:
            check_instance("shared", shared, Mapping, "a mapping of model name to group name")
            for model, group in shared.items():
                if not isinstance(model, str) or not isinstance(group, str):
                    raise TypeError(f"shared must map model names to group names, got {model!r}")
        if clock is not None and not callable(clock):
            raise TypeError(
                f"clock must be a callable returning seconds, got {type(clock).__name__}"
            )
        check_instance("auto_start", auto_start, Limits, "a Limits")
        check_instance("unmetered", unmetered, Limits, "a Limits")
        if not isinstance(follow_server_limits, bool):
            kind = type(follow_server_limits).__name__
            raise TypeError(f"follow_server_limits must be a bool, got {kind}")
        self._limits = limits
        self._shared = dict(shared or {})
        self._clock = clock
        self._auto_start = auto_start
        self._follow = follow_server_limits
        self.backend = backend_from(backend)
        self._owns_backend = backend is None or isinstance(backend, str)
        self._unmetered = unmetered
        self.lanes = check_lanes(lanes)
        self._limiters: dict[tuple[str, str | None], Limiter] = {}

    def group(self, model: str | None) -> str | None:
        """The bucket group a model belongs to (itself unless mapped in ``shared``)."""
        if model is None:
            return None
        return self._shared.get(model, model)

    def get(
        self, credential: str, model: str | None, *, provider: Provider | None = None
    ) -> Limiter:
        """The limiter for ``credential`` (its redacted name) and ``model``.

        For a provider whose binding limit is calls in flight (DeepSeek, TGI: see
        `ProviderTraits.limits_concurrency`), limits that name no ``concurrency`` learn
        one (``"auto"``).
        """
        key = (credential, self.group(model))
        limiter = self._limiters.get(key)
        if limiter is None:
            limits, learned = self._limits_for(model)
            if (
                provider is not None
                and provider.traits.limits_concurrency
                and limits.concurrency is None
            ):
                limits = dataclasses.replace(limits, concurrency="auto")
            limiter = self.backend.limiter(
                limits,
                scope=f"{credential}|{key[1] or '*'}",
                clock=self._clock,
                follow_server_limits=learned or self._follow,
                lanes=self.lanes,
            )
            self._limiters[key] = limiter
        return limiter

    def items(self) -> Iterator[tuple[tuple[str, str | None], Limiter]]:
        """Every limiter made so far, keyed by (credential, model group)."""
        return iter(list(self._limiters.items()))

    async def aclose(self) -> None:
        """Wait for every limiter's pending updates; close a backend made from a URL.

        A backend object passed in is the caller's to close (others may share it).
        """
        for limiter in list(self._limiters.values()):
            await limiter.aclose()
        if self._owns_backend:
            await self.backend.aclose()

    def _limits_for(self, model: str | None) -> tuple[Limits, bool]:
        if model is None:
            return self._unmetered, True
        limits = self._limits
        if isinstance(limits, Limits):
            return limits, False
        if isinstance(limits, Mapping):
            for name in (model, self.group(model), "*"):
                if name is not None and name in limits:
                    return limits[name], False
        return self._auto_start, True
