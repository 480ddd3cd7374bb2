"""Where limiters keep their state: in this process, or in Redis shared by many.

``backend=`` of `ratelimit_llm.wrap` (and of `LimiterPool`) takes a `Backend`, or a URL
that `backend_from` turns into one::

    wrap(client, limits=Limits(rpm=5_000, tpm=2_000_000), backend="redis://redis:6379/0")

The Redis classes need the ``redis`` extra (``pip install 'ratelimit-llm[redis]'``); they
are imported when first named, so this module imports without it. A throwaway
``redis-server`` for tests is `ratelimit_llm.testing.LocalRedisServer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Backend, MemoryBackend

if TYPE_CHECKING:  # at run time they come from __getattr__, so redis stays optional
    from ._redis import RedisBackend, RedisRateLimiter, RedisReservation

__all__ = [
    "Backend",
    "MemoryBackend",
    "RedisBackend",
    "RedisRateLimiter",
    "RedisReservation",
    "backend_from",
]


def backend_from(spec: Backend | str | None, **options: Any) -> Backend:
    """A backend from ``spec``: a `Backend` as is, ``None``/``"memory"``, or a Redis URL.

    ``options`` go to `RedisBackend` (``on_outage``, ``namespace``, ...).
    """
    if spec is None or spec == "memory":
        return MemoryBackend()
    if isinstance(spec, str):
        if spec.startswith(("redis://", "rediss://", "unix://")):
            from ._redis import RedisBackend

            return RedisBackend(spec, **options)
        raise ValueError(
            f"unknown backend {spec!r}: use 'memory' or a redis://, rediss:// or unix:// URL"
        )
    if isinstance(spec, Backend):
        return spec
    raise TypeError(f"backend must be a Backend, a URL or None, got {type(spec).__name__}")


def __getattr__(name: str) -> Any:
    # The Redis classes import redis lazily: the extra is optional.
    if name in ("RedisBackend", "RedisRateLimiter", "RedisReservation"):
        from . import _redis

        return getattr(_redis, name)
    raise AttributeError(name)
