"""`wrap(client)` and `http_client(...)`: the two ways every call reaches the limiter.

``wrap`` uses the SDK's documented extension point, ``http_client``: the returned client
is a copy of yours whose HTTP client sends through a `RateLimitedTransport` (or, for a
sync ``OpenAI`` client, a `SyncRateLimitedTransport`), and keeps everything your HTTP
client did: its proxies, mounts, headers, auth, cookies, hooks and TLS settings (see
``_clients.py``). The copy's ``max_retries`` is 0: retries belong to the limiter, which
sees and paces each of them, instead of being doubled by the SDK's hidden ones; asking
the copy for ``with_options(max_retries=N)`` gives that call a budget of N retries of the
limiter's, never the SDK's. The copy shares your client's connection pool: use the copy
from then on, and close one of the two, not both.

``http_client`` is the way in for frameworks that build their own SDK client and take
an HTTP client to give it (LangChain's ``http_async_client``, LiteLLM, llama-index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from ._clients import (
    check_copyable,
    copy_client,
    is_sync,
    module_of,
    new_client,
    pool_size_of,
    router_for,
    sdk_library,
)
from ._estimate import CostEstimator
from ._learner import Learner
from ._line import DEFAULT_LANES
from ._pool import AUTO_START, LimiterPool, LimitsSpec
from ._providers import Provider
from ._strategy import Strategy
from ._sync import SyncRateLimitedTransport
from ._telemetry import Telemetry
from ._transport import RETRIES_HEADER, RateLimitedTransport, check_options
from ._types import Limits
from ._validate import check_choice, check_int
from .backends import Backend

__all__ = ["http_client", "transport_of", "wrap"]

ClientT = TypeVar("ClientT")

InFlight = int | Literal["pool"] | None


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
    max_in_flight: InFlight = "pool",
    backend: Backend | str | None = None,
    learner: Learner | None = None,
    provider: Provider | str | None = None,
    lanes: Mapping[str, float] = DEFAULT_LANES,
) -> ClientT:
    """A copy of ``client`` whose every call is paced, corrected and retried by the limiter.

    Example::

        client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000)
        client = ratelimit_llm.wrap(OpenAI(), limits="auto")        # sync clients too
        client = ratelimit_llm.wrap(AsyncAzureOpenAI(...), limits="auto")
        client = ratelimit_llm.wrap(
            AsyncOpenAI(),
            limits={"gpt-4o": Limits(rpm=500, tpm=30_000), "*": Limits(rpm=500, tpm=200_000)},
            strategy=KeyRotation([key_a, key_b]) + AdaptiveBackoff(),
        )

    :param client: an ``AsyncOpenAI``, ``OpenAI``, ``AsyncAzureOpenAI``, ``AzureOpenAI`` or
        another client built on the openai SDK's base client (openai 1.x and 2.x on
        ``httpx``, 3.x on ``httpx2``). Wrap it *before* patching it (instructor): the
        patched object is not an SDK client.
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
    :param provider: whose dialect the answers are in (``"together"``, ``"groq"``, ...;
        see ``docs/providers.md``) when the base URL does not make it obvious; by default
        it is recognised from the base URL, and failing that from the headers.
    :param lanes: priority lanes and their weights; a call goes in the lane a
        ``ratelimit_llm.lane(...)`` block around it names (or a per-call
        ``extra_headers={"x-ratelimit-llm-lane": ...}``), else ``"default"``.
    :raises TypeError: for an object that is not an openai SDK client (an instructor-
        patched client included), or an option of the wrong type.
    :raises ValueError: for a client that is already wrapped, or an option out of range.
    """
    http = _sdk_http_client(client)
    options = _transport_options(
        limits=limits,
        rpm=rpm,
        tpm=tpm,
        rpd=rpd,
        tpd=tpd,
        burst_seconds=burst_seconds,
        shared=shared,
        strategy=strategy,
        estimator=estimator,
        acquire_timeout=acquire_timeout,
        telemetry=telemetry,
        follow_server_limits=follow_server_limits,
        auto_start=auto_start,
        clock=clock,
        snapshot_at=snapshot_at,
        max_in_flight=max_in_flight,
        backend=backend,
        learner=learner,
        provider=provider,
        lanes=lanes,
        pool_size=pool_size_of(http),
    )
    check_copyable(http)
    sync = is_sync(http)

    def limiter_around(router: Any) -> Any:
        if sync:
            return SyncRateLimitedTransport(router, **options)
        return RateLimitedTransport(router, **options)

    limited_http = copy_client(http, limiter_around)
    wrapped: Any = client.copy(http_client=limited_http, max_retries=0)  # type: ignore[attr-defined]
    wrapped.__class__ = _limited_class(type(wrapped))
    result: ClientT = wrapped
    return result


def http_client(
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
    max_in_flight: InFlight = "pool",
    backend: Backend | str | None = None,
    learner: Learner | None = None,
    provider: Provider | str | None = None,
    lanes: Mapping[str, float] = DEFAULT_LANES,
    sync: bool = False,
    library: Literal["httpx2", "httpx"] | None = None,
    base: Any = None,
) -> Any:
    """A rate-limited HTTP client, for frameworks that build their own openai SDK client.

    Example::

        from langchain_openai import ChatOpenAI

        llm = ChatOpenAI(
            model="gpt-4o-mini",
            http_async_client=ratelimit_llm.http_client(rpm=500, tpm=200_000),
            http_client=ratelimit_llm.http_client(rpm=500, tpm=200_000, sync=True),
            max_retries=0,
        )

    It takes `wrap`'s options and returns an ``httpx2.AsyncClient`` (``sync=True``: a
    ``Client``; ``library="httpx"``: the legacy ``httpx`` one, for openai 1.x/2.x and SDKs
    built on it; by default the library your openai SDK uses). With ``base``, an httpx
    client of yours, the new client keeps everything ``base`` does (proxies, mounts,
    headers, auth, hooks, TLS), as `wrap` does. Without it, it has the SDK's defaults
    (10 minutes to answer, 5 s to connect, redirects followed, proxies from the
    environment).

    **Retries.** The limiter owns them (see `AdaptiveBackoff`). Give the framework's
    client ``max_retries=0`` where you can. Where you cannot, nothing is doubled: every
    failure handed back carries ``x-should-retry: false``, which the SDK obeys, and a
    retry the SDK makes anyway of a connection error is sent once, paced like any call.

    The buckets of an async and a sync client are apart (each lives on its own event
    loop): to give both one quota, use the Redis ``backend``.
    """
    if not isinstance(sync, bool):
        raise TypeError(f"http_client(sync=...) must be a bool, got {type(sync).__name__}")
    if base is not None:
        module = module_of(base)
        if is_sync(base) != sync:
            flavour = "sync" if is_sync(base) else "async"
            raise ValueError(f"http_client(base=...) is a {flavour} client; set sync to match")
    else:
        if library is not None:
            check_choice("http_client(library=...)", library, ("httpx2", "httpx"))
        module = _library(library)
    options = _transport_options(
        limits=limits,
        rpm=rpm,
        tpm=tpm,
        rpd=rpd,
        tpd=tpd,
        burst_seconds=burst_seconds,
        shared=shared,
        strategy=strategy,
        estimator=estimator,
        acquire_timeout=acquire_timeout,
        telemetry=telemetry,
        follow_server_limits=follow_server_limits,
        auto_start=auto_start,
        clock=clock,
        snapshot_at=snapshot_at,
        max_in_flight=max_in_flight,
        backend=backend,
        learner=learner,
        provider=provider,
        lanes=lanes,
        pool_size=pool_size_of(base) if base is not None else 1_000,
    )

    def limiter_around(router: Any) -> Any:
        if sync:
            return SyncRateLimitedTransport(router, **options)
        return RateLimitedTransport(router, **options)

    if base is not None:
        return copy_client(base, limiter_around)
    # The SDK's pool size (1,000 connections, 100 kept alive), proxies from the
    # environment as its default client does.
    pool = module.Limits(max_connections=1_000, max_keepalive_connections=100)
    sender = (module.Client if sync else module.AsyncClient)(limits=pool, trust_env=True)
    return new_client(module, sync=sync, transport=limiter_around(router_for(sender)))


def transport_of(client: Any) -> RateLimitedTransport | SyncRateLimitedTransport:
    """The limiter of a client made by `wrap` or `http_client` (for statistics, limiters).

    A `RateLimitedTransport`, or for a sync client a `SyncRateLimitedTransport`; both
    have ``statistics()``, ``limiters()``, ``pool``, ``strategy``, ``learner`` and
    ``telemetry``.

    :raises TypeError: if ``client`` was not made by `wrap` or `http_client`.
    """
    http = getattr(client, "_client", client)
    transport = getattr(http, "_transport", None)
    if not isinstance(transport, RateLimitedTransport | SyncRateLimitedTransport):
        raise TypeError("this client was not made by ratelimit_llm.wrap() or http_client()")
    return transport


# -- checks at the door --------------------------------------------------------------------


def _sdk_http_client(client: Any) -> Any:
    """The HTTP client inside an openai SDK client, after every refusal `wrap` owes."""
    home = type(client).__module__.partition(".")[0]
    if home == "instructor":
        raise TypeError(
            "wrap() got an instructor-patched client, which is not an openai SDK client. "
            "Wrap first, then patch: instructor.from_openai(ratelimit_llm.wrap(client, ...))"
        )
    http = getattr(client, "_client", None)
    if not callable(getattr(client, "copy", None)) or http is None:
        raise TypeError(
            "wrap() needs a client built on the openai SDK (AsyncOpenAI, OpenAI, "
            f"AsyncAzureOpenAI, ...), got {type(client).__name__}"
        )
    transport = getattr(http, "_transport", None)
    if isinstance(transport, RateLimitedTransport | SyncRateLimitedTransport):
        raise ValueError(
            "this client is already wrapped: wrapping it again would stack two limiters and "
            "two retry loops. Wrap the original client, or change this one's limits through "
            "ratelimit_llm.transport_of(client)"
        )
    try:
        module_of(http)
    except TypeError:
        raise TypeError(
            f"wrap() needs an openai SDK client on httpx or httpx2; this one's HTTP client is "
            f"a {type(http).__name__}"
        ) from None
    return http


def _transport_options(
    *,
    limits: Any,
    rpm: float | None,
    tpm: float | None,
    rpd: float | None,
    tpd: float | None,
    burst_seconds: float | None,
    shared: Mapping[str, str] | None,
    strategy: Strategy | None,
    estimator: CostEstimator | None,
    acquire_timeout: float | None,
    telemetry: Telemetry | None,
    follow_server_limits: bool,
    auto_start: Limits,
    clock: Callable[[], float] | None,
    snapshot_at: str,
    max_in_flight: InFlight,
    backend: Backend | str | None,
    learner: Learner | None,
    provider: Provider | str | None,
    lanes: Mapping[str, float],
    pool_size: int | None,
) -> dict[str, Any]:
    """Every option checked once, turned into a transport's keyword arguments."""
    direct = {"rpm": rpm, "tpm": tpm, "rpd": rpd, "tpd": tpd}
    if any(value is not None for value in direct.values()):
        if limits is not None:
            raise TypeError("give limits= or rpm=/tpm=/rpd=/tpd=, not both")
        limits = Limits(rpm=rpm, tpm=tpm, rpd=rpd, tpd=tpd, burst_seconds=burst_seconds)
    elif burst_seconds is not None:
        raise TypeError("burst_seconds goes with rpm=/tpm= (or inside Limits)")
    if max_in_flight == "pool":
        max_in_flight = pool_size
    elif isinstance(max_in_flight, str):
        raise ValueError(f"max_in_flight must be 'pool', an int or None, got {max_in_flight!r}")
    checked = check_options(
        strategy=strategy,
        estimator=estimator,
        acquire_timeout=acquire_timeout,
        telemetry=telemetry,
        clock=clock,
        snapshot_at=snapshot_at,
        max_in_flight=max_in_flight,
        learner=learner,
        provider=provider,
    )
    if not isinstance(follow_server_limits, bool):
        raise TypeError(
            f"follow_server_limits must be a bool, got {type(follow_server_limits).__name__}"
        )
    pool = LimiterPool(
        "auto" if limits is None else limits,
        shared=shared,
        clock=clock,
        auto_start=auto_start,
        follow_server_limits=follow_server_limits,
        backend=backend,
        lanes=lanes,
    )
    return {
        "pool": pool,
        "strategy": strategy,
        "estimator": estimator,
        "acquire_timeout": checked["acquire_timeout"],
        "telemetry": telemetry,
        "clock": clock,
        "snapshot_at": snapshot_at,
        "max_in_flight": max_in_flight,
        "learner": learner,
        "provider": checked["provider"],
    }


# -- the wrapped client's own copy() and with_options() ------------------------------------

_LIMITED: dict[type, type] = {}


def _limited_class(cls: type) -> type:
    """``cls`` with a ``copy`` that keeps the limiter and hands ``max_retries`` to it.

    The SDK's ``copy``/``with_options(max_retries=N)`` would turn the SDK's own retries
    back on under the limiter's: the same key hit N + 1 times per attempt of ours. Here
    N becomes that client's retry budget in the limiter instead, and the SDK's stays 0.
    """
    if getattr(cls, "_ratelimit_llm_limited", False):
        return cls
    limited = _LIMITED.get(cls)
    if limited is None:

        def copy(self: Any, *args: Any, **kwargs: Any) -> Any:
            http = kwargs.get("http_client")
            if http is not None and not isinstance(
                getattr(http, "_transport", None),
                RateLimitedTransport | SyncRateLimitedTransport,
            ):
                raise TypeError(
                    "copy(http_client=...) would send this client's calls around the limiter; "
                    "pass ratelimit_llm.http_client(base=your_client, ...) instead"
                )
            retries = kwargs.pop("max_retries", None)
            if retries is not None and type(retries).__name__ not in ("NotGiven", "Omit"):
                check_int("max_retries", retries, low=0)
                for name in ("set_default_headers", "default_headers"):
                    if kwargs.get(name) is not None:
                        kwargs[name] = {**kwargs[name], RETRIES_HEADER: str(retries)}
                        break
                else:
                    kwargs["default_headers"] = {RETRIES_HEADER: str(retries)}
            kwargs["max_retries"] = 0
            return cls.copy(self, *args, **kwargs)  # type: ignore[attr-defined]

        limited = type(
            cls.__name__,
            (cls,),
            {
                "_ratelimit_llm_limited": True,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "copy": copy,
                "with_options": copy,
            },
        )
        _LIMITED[cls] = limited
    return limited


def _library(name: str | None) -> Any:
    """The HTTP library to build on: the one named, else the installed openai SDK's."""
    if name is None:
        return sdk_library()
    if name == "httpx2":
        import httpx2

        return httpx2
    import httpx

    return httpx
