"""Read a quota's state straight from Redis (its layout is documented in lua/_quota.lua)."""

from __future__ import annotations

from dataclasses import dataclass

from ratelimit_llm.backends import RedisBackend

COLD = (
    "limit",
    "window",
    "capacity",
    "opening",
    "depth",
    "pace",
    "probing",
    "probe",
    "probe_mark",
    "anchor_level",
    "anchor_time",
    "anchor_taken",
)
HOT = ("level", "updated", "taken")


@dataclass(frozen=True)
class QuotaState:
    epoch: str
    vt: float
    dims: dict[str, dict[str, float]]


async def quota_state(backend: RedisBackend, scope: str) -> QuotaState:
    """The quota's epoch, virtual time and every dimension's numbers, as stored."""
    state, _ = backend.keys(scope)
    stored = await backend.client.hgetall(state)
    quota = str(stored.pop("q")).split(" ")
    dims: dict[str, dict[str, float]] = {}
    for field, value in stored.items():
        kind, _, name = str(field).partition(":")
        names = COLD if kind == "c" else HOT if kind == "l" else None
        if names is not None:
            numbers = (float(v) for v in str(value).split(" "))
            dims.setdefault(name, {}).update(zip(names, numbers, strict=True))
    return QuotaState(epoch=quota[0], vt=float(quota[1]), dims=dims)
