"""Choosing which request fails, damaging headers, and dropping connections.

Faults are drawn from one seeded generator in arrival order, so a run with the same seed
and the same request sequence fails the same requests. Scheduled rules ("requests 10-12")
need no randomness at all. The first matching rule wins: one fault per request keeps the
outcome of each request easy to predict and to assert on.

A dropped connection cannot be expressed in ASGI. Under the bundled uvicorn runner the
scope carries an ``abort`` callable that resets the socket; in-process, the app raises
what the client's own transport would raise for a reset.
"""

from __future__ import annotations

import random
import sys

import anyio.lowlevel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._config import FaultKind, FaultPlan

__all__ = [
    "ABORT_EXTENSION",
    "DropConnection",
    "FaultInjector",
    "damage_headers",
    "drop_connection",
    "in_process_reset",
]

#: Scope extension through which the uvicorn runner offers a real connection reset
#: (``_server.py`` sets it; in-process transports have no socket to reset).
ABORT_EXTENSION = "ratelimit_llm.mock.abort"

_GARBAGE: tuple[str, ...] = ("", "soon", "-5", "1h2x", "NaN", "inf", "499, 499", "9999999999999")


class FaultInjector:
    """Picks the fault (if any) for each API request."""

    def __init__(self, plan: FaultPlan, seed: int) -> None:
        self.plan = plan
        self._seed = seed
        self._rng = random.Random(seed)

    def reset(self) -> None:
        """Start the random sequence over, as if the server had just started."""
        self._rng = random.Random(self._seed)

    def pick(self, number: int, *, stream: bool) -> FaultKind | None:
        """The fault for API request ``number`` (counting from 1), or ``None``."""
        rules = self.plan.rules
        if not rules:
            return None
        chosen: FaultKind | None = None
        for rule in rules:
            if rule.requests is not None:
                hit = rule.requests[0] <= number <= rule.requests[1]
            else:
                # Roll for every probabilistic rule on every request, hit or not, so that
                # one request's outcome does not shift the draws of the requests after it.
                hit = self._rng.random() < rule.probability
            if hit and chosen is None and (stream or not rule.kind.stream_only):
                chosen = rule.kind
        return chosen

    def garble_rng(self, number: int) -> random.Random:
        """A generator for damaging request ``number``'s headers, independent of the draws."""
        return random.Random(self._seed * 1_000_003 + number)


def damage_headers(headers: dict[str, str], kind: FaultKind, rng: random.Random) -> None:
    """Drop or garble the rate-limit headers in place, as flaky proxies and old servers do."""
    names = [name for name in headers if name.startswith(("x-ratelimit-", "retry-after"))]
    for name in names:
        if kind is FaultKind.MISSING_HEADERS:
            del headers[name]
        else:
            headers[name] = rng.choice(_GARBAGE)


async def drop_connection(scope: Scope) -> bool:
    """Reset the client's connection if the server offers a way; tell whether it did."""
    abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
    if abort is None:
        return False
    abort()
    # The transport reports the lost connection on the next loop iterations; the server
    # must see it before this request ends, or it would try to answer with a 500.
    await anyio.lowlevel.checkpoint()
    await anyio.lowlevel.checkpoint()
    return True


class DropConnection(Response):
    """No response at all: the connection is reset before any header is sent.

    Under the bundled uvicorn runner the socket is closed with an RST. In-process there is
    no socket, so the app raises what the client's own transport would have raised for a
    dropped connection (`in_process_reset`), and the ASGI transport hands it on.
    """

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await drop_connection(scope):
            raise in_process_reset()


_RESET_MESSAGE = "Server disconnected without sending a response."
_reset_types: dict[tuple[type[BaseException], ...], type[Exception]] = {}


def in_process_reset() -> Exception:
    """The error a dropped connection raises in whichever HTTP client is loaded.

    It is a `ConnectionResetError` and also the ``RemoteProtocolError`` of ``httpx2`` and
    ``httpx`` when they are imported (the mock never imports them itself), so the
    ``openai`` SDK reports ``APIConnectionError`` and raw clients see their usual
    transport error, as they would for a real reset.
    """
    bases: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        error = getattr(sys.modules.get(name), "RemoteProtocolError", None)
        if isinstance(error, type) and issubclass(error, Exception):
            bases.append(error)
    bases.append(ConnectionResetError)
    key = tuple(bases)
    error_type = _reset_types.get(key)
    if error_type is None:
        error_type = _reset_types[key] = type("MockConnectionReset", key, {})
    return error_type(_RESET_MESSAGE)
