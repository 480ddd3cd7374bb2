"""`wrap(client)`: the same OpenAI client, with every call going through the limiter.

It uses the SDK's documented extension point, ``http_client``: the returned client is a
copy of yours whose HTTP client sends through a `RateLimitedTransport` wrapped around
your client's own transport (so its connection pool, proxies and TLS settings stay).
The copy's ``max_retries`` is 0: retries belong to the limiter, which sees and paces
each of them, instead of being doubled by the SDK's hidden ones. The copy shares your
client's connection pool: use the copy from then on, and close one of the two, not both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from ._estimate import CostEstimator
from ._learner import Learner
from ._pool import AUTO_START, LimiterPool, LimitsSpec
from ._strategy import Strategy
from ._telemetry import Telemetry
from ._transport import RateLimitedTransport, _http_module
from ._types import Limits
from .backends import Backend

__all__ = ["transport_of", "wrap"]

ClientT = TypeVar("ClientT")


def wrap(
    client: ClientT,
    *,
    limits: LimitsSpec | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    rpd: float | None = None,
    tpd: float | None = None,
    burst_seconds: float | None = None,
    shared: Mapping[str, str] | None = None,
    strategy: Strategy | None = None,
    estimator: CostEstimator | None = None,
    acquire_timeout: float | None = None,
    telemetry: Telemetry | None = None,
    follow_server_limits: bool = True,
    auto_start: Limits = AUTO_START,
    clock: Callable[[], float] | None = None,
    snapshot_at: Literal["response", "admission"] = "response",
    max_in_flight: int | Literal["pool"] | None = "pool",
    backend: Backend | str | None = None,
    learner: Learner | None = None,
) -> ClientT:
    """A copy of ``client`` whose every call is paced, corrected and retried by the limiter.

    Example::

        client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)
        client = ratelimit_llm.wrap(AsyncAzureOpenAI(...), limits="auto")
        client = ratelimit_llm.wrap(
            AsyncOpenAI(),
            limits={"gpt-4o": Limits(rpm=500, tpm=30_000), "*": Limits(rpm=500, tpm=200_000)},
            strategy=KeyRotation([key_a, key_b]) + AdaptiveBackoff(),
        )

    :param client: an ``AsyncOpenAI``, ``AsyncAzureOpenAI`` or another client built on
        the openai SDK's base client (openai 1.x and 2.x on ``httpx``, 3.x on ``httpx2``).
    :param limits: a `Limits` for every model, a mapping of model (``"*"`` for the
        rest) to `Limits`, or ``"auto"``: start at ``auto_start`` and adopt the limits the
        server reports. Or give ``rpm``/``tpm``/``rpd``/``tpd``/``burst_seconds``
        directly. With neither, ``"auto"``.
    :param shared: model -> group, for models that share one limit (one bucket).
    :param strategy: default `AdaptiveBackoff()`; combine with ``+``.
    :param estimator: how a request's cost is estimated (`CostEstimator`).
    :param acquire_timeout: seconds a call may wait for the bucket before
        `AcquireTimeoutError`; ``None`` for no limit.
    :param telemetry: receives events and keeps per-key, per-model counters.
    :param follow_server_limits: let limits reported in headers resize the buckets.
    :param snapshot_at: when the server takes the numbers in its rate-limit headers
        (see `RateLimitedTransport`); ``"response"`` unless you know your server's
        headers describe the moment of admission.
    :param max_in_flight: at most this many calls waiting for an answer at once. The
        default, ``"pool"``, is your client's connection-pool size (1,000 for the SDK's
        default client): calls granted in a burst beyond it wait in the limiter's own
        line instead of the pool's, whose cost grows with the square of its length.
        ``None`` for no cap.
    :param learner: how answers correct the buckets (named waits and their bound, slow
        start, learned paces); see `Learner`.
    :param backend: where the buckets live. By default in this process; a
        `RedisBackend` or a ``redis://`` / ``rediss://`` URL shares each (credential,
        model group) quota with every process and host that uses the same Redis.
    """
    direct = {"rpm": rpm, "tpm": tpm, "rpd": rpd, "tpd": tpd}
    if any(value is not None for value in direct.values()):
        if limits is not None:
            raise TypeError("give limits= or rpm=/tpm=/rpd=/tpd=, not both")
        limits = Limits(rpm=rpm, tpm=tpm, rpd=rpd, tpd=tpd, burst_seconds=burst_seconds)
    elif burst_seconds is not None:
        raise TypeError("burst_seconds goes with rpm=/tpm= (or inside Limits)")
    copy = getattr(client, "copy", None)
    http_client = getattr(client, "_client", None)
    if copy is None or http_client is None:
        raise TypeError(
            f"wrap() needs a client built on the openai SDK (AsyncOpenAI, AsyncAzureOpenAI, ...), "
            f"got {type(client).__name__}"
        )
    module = _http_module(http_client)
    inner = getattr(http_client, "_transport", None) or module.AsyncHTTPTransport()
    if max_in_flight == "pool":
        max_in_flight = _pool_size(inner)
    pool = LimiterPool(
        "auto" if limits is None else limits,
        shared=shared,
        clock=clock,
        auto_start=auto_start,
        follow_server_limits=follow_server_limits,
        backend=backend,
    )
    transport = RateLimitedTransport(
        inner,
        pool=pool,
        strategy=strategy,
        estimator=estimator,
        acquire_timeout=acquire_timeout,
        telemetry=telemetry,
        clock=clock,
        snapshot_at=snapshot_at,
        max_in_flight=max_in_flight,
        learner=learner,
    )
    limited_http = module.AsyncClient(
        transport=transport,
        timeout=http_client.timeout,
        follow_redirects=http_client.follow_redirects,
    )
    wrapped: ClientT = copy(http_client=limited_http, max_retries=0)
    return wrapped


def _pool_size(transport: Any) -> int | None:
    """The connection limit of an httpx/httpx2 transport's pool, if it has one."""
    pool = getattr(transport, "_pool", None)
    size = getattr(pool, "_max_connections", None)
    return size if isinstance(size, int) and size > 0 else None


def transport_of(client: Any) -> RateLimitedTransport:
    """The `RateLimitedTransport` of a client made by `wrap` (for statistics, limiters).

    :raises TypeError: if ``client`` was not made by `wrap`.
    """
    transport = getattr(getattr(client, "_client", None), "_transport", None)
    if not isinstance(transport, RateLimitedTransport):
        raise TypeError("this client was not made by ratelimit_llm.wrap()")
    return transport
