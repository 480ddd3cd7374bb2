"""Answers that keep their call's place among the calls in flight until they are sent.

A call is in flight from admission until its answer is complete: for a stream, until
its last frame, which is sent just after the place is given back (as a real server's
place frees once it has generated the answer, before the client has read it). Whatever
ends it (the last frame, an injected cut or reset, the client going away, a
cancellation in process) must give the place back, exactly once, or a concurrency limit
would leak slots and refuse forever. So the place is released by the one thing every
ending passes through: the ASGI call of the answer itself (`HeldResponse`), and, while
a plain answer is still being "generated", by a wait that stops when the client
disconnects (`pause_unless_gone`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ._inflight import Hold

__all__ = ["HeldResponse", "pause_unless_gone"]


class HeldResponse(Response):
    """``inner``, sent as it is; ``hold`` is released when sending ends, however it ends.

    A stream's body generator is closed too, so that its own ``finally`` (which accounts
    for the tokens really sent) runs now and not whenever it is collected.
    """

    def __init__(self, inner: Response, hold: Hold) -> None:
        # Not Response.__init__: this only forwards to ``inner``, which has the headers.
        self.inner = inner
        self.hold = hold
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_releasing_before_the_end(message: Message) -> None:
            # A real server frees the place when the answer is generated, before its last
            # bytes reach the client; releasing only after the send would let a client
            # that starts its next call the moment the answer ends be refused for a call
            # the server is no longer running.
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.hold.release()
            await send(message)

        try:
            await self.inner(scope, receive, send_releasing_before_the_end)
        finally:
            self.hold.release()
            body = getattr(self.inner, "body_iterator", None)
            aclose: Callable[[], Awaitable[Any]] | None = getattr(body, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):  # still running: it ends by itself
                    await aclose()


async def pause_unless_gone(
    pause: Callable[[float], Awaitable[None]], seconds: float, receive: Receive
) -> bool:
    """Wait ``seconds``; stop early if the client disconnects. True when it waited it out.

    ``receive`` has nothing left to deliver once the request body is read, except
    ``http.disconnect`` (uvicorn sends it when the client goes; an in-process transport
    only once the answer is complete, which is after this wait).
    """
    gone = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await pause(seconds)
        group.cancel_scope.cancel()
    return not gone
