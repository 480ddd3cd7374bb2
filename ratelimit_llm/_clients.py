"""A rate-limited copy of an HTTP client that keeps everything the original did.

`wrap` (and `http_client` when given a ``base``) must not change where or how a request
goes. What an httpx / httpx2 client does to a request lives in two places:

* **on the client**: auth, default headers and query parameters, cookies, timeouts,
  redirects, event hooks, the base URL, ``trust_env`` (``.netrc``) and the default
  encoding. They are copied onto the new client, which applies them exactly as the
  original did.
* **in its transports**: proxies (explicit, or from ``HTTP(S)_PROXY`` when the client
  trusts the environment), mounts, TLS verification and client certificates, HTTP/2 and
  connection limits. The new client's one transport is the limiter, and behind it a
  router that asks the *original* client which of its transports a URL goes to, so each
  request takes the very proxy, mount and connection pool it took before.

A client of a class of its own (a subclass that overrides what a send does) cannot be
copied faithfully: that is a clear `TypeError` naming the class, never a silent loss.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

__all__ = [
    "check_copyable",
    "copy_client",
    "is_sync",
    "module_of",
    "new_client",
    "pool_size_of",
    "router_for",
    "sdk_library",
]

# Attributes a client reads on every request; copied so that the new one does the same.
_CLIENT_SETTINGS = (
    "auth",
    "params",
    "headers",
    "cookies",
    "timeout",
    "follow_redirects",
    "max_redirects",
    "event_hooks",
    "base_url",
    "trust_env",
)


class _AsyncRouter:
    """Sends each request through the transport the original client would use for it."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def handle_async_request(self, request: Any) -> Any:
        transport = self._client._transport_for_url(request.url)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        # The transports are the original client's: closing the copy closes them, as the
        # copy shares its pool (see `wrap`).
        await self._client.aclose()


class _SyncRouter:
    """The sync twin of `_AsyncRouter`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def handle_request(self, request: Any) -> Any:
        return self._client._transport_for_url(request.url).handle_request(request)

    def close(self) -> None:
        self._client.close()


def router_for(client: Any) -> _AsyncRouter | _SyncRouter:
    """A transport that sends each request the way ``client`` would (see the module)."""
    return _SyncRouter(client) if is_sync(client) else _AsyncRouter(client)


def module_of(client: Any) -> ModuleType:
    """``httpx2`` or ``httpx``: the library ``client`` belongs to."""
    module = library_of_class(type(client))
    if module is None:
        raise TypeError(f"{type(client).__name__} is neither an httpx2 nor an httpx client")
    return module


def library_of_class(cls: type) -> ModuleType | None:
    """``httpx2`` or ``httpx``, whichever ``cls`` (or a class it derives from) belongs to."""
    for base in cls.__mro__:
        root = base.__module__.partition(".")[0]
        if root in ("httpx2", "httpx"):
            return sys.modules[root]
    return None


def sdk_library() -> ModuleType:
    """The HTTP library the installed openai SDK is built on: ``httpx2`` (3.x) or ``httpx``.

    Asked of the SDK itself (the class of its default client), not of what happens to be
    installed: httpx2 may sit next to openai 1.x or 2.x, brought in by another package,
    and those refuse an httpx2 client. Without the SDK, httpx2 where installed.
    """
    try:
        import openai
    except ImportError:
        default = None
    else:
        default = getattr(openai, "DefaultAsyncHttpxClient", None)
    found = library_of_class(default) if isinstance(default, type) else None
    if found is not None:
        return found
    try:
        import httpx2
    except ImportError:
        import httpx

        return httpx
    return httpx2


def is_sync(client: Any) -> bool:
    """Whether ``client`` is a sync ``Client`` (else an ``AsyncClient``)."""
    module = module_of(client)
    return isinstance(client, module.Client)


def check_copyable(client: Any) -> None:
    """Raise `TypeError` if ``client`` is of a class whose behaviour a copy would lose.

    httpx's own classes and the openai SDK's thin subclasses (which only set defaults)
    copy faithfully; anything else may override how a request is sent.
    """
    module = module_of(client)
    for cls in type(client).__mro__:
        if cls in (module.Client, module.AsyncClient):
            return
        home = cls.__module__.partition(".")[0]
        if home not in ("openai", module.__name__):
            raise TypeError(
                f"wrap() cannot keep what a {cls.__qualname__} ({cls.__module__}) does to a "
                "request: it is a client class of its own. Build it around a rate-limited "
                "transport instead: ratelimit_llm.http_client(...) gives one, or pass "
                "transport=ratelimit_llm.RateLimitedTransport(...) to your class."
            )


def copy_client(client: Any, transport_factory: Any) -> Any:
    """A new client with ``client``'s settings whose transport is the limiter.

    ``transport_factory(router)`` builds the limiter around the router, which sends
    each request through the transport ``client`` itself would have used.
    """
    check_copyable(client)
    module = module_of(client)
    sync = is_sync(client)
    router = router_for(client)
    settings: dict[str, Any] = {name: getattr(client, name) for name in _CLIENT_SETTINGS}
    encoding = getattr(client, "_default_encoding", None)
    if encoding is not None:
        settings["default_encoding"] = encoding
    cls = module.Client if sync else module.AsyncClient
    # transport= also keeps the new client from reading proxies from the environment a
    # second time: the router already uses the original's (when it trusted them).
    return cls(transport=transport_factory(router), **settings)


def new_client(module: ModuleType, *, sync: bool, transport: Any, **settings: Any) -> Any:
    """A plain client of ``module`` around ``transport``, with the openai SDK's defaults
    (10 minutes to answer, 5 s to connect, redirects followed) unless given."""
    settings.setdefault("timeout", module.Timeout(600.0, connect=5.0))
    settings.setdefault("follow_redirects", True)
    cls = module.Client if sync else module.AsyncClient
    return cls(transport=transport, **settings)


def pool_size_of(client: Any) -> int | None:
    """The connection limit of ``client``'s default transport's pool, if it has one."""
    transport = getattr(client, "_transport", None)
    pool = getattr(transport, "_pool", None)
    size = getattr(pool, "_max_connections", None)
    return size if isinstance(size, int) and size > 0 else None
