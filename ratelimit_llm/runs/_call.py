"""One online call: send a journaled request through the client, make its answer data.

The body goes out as the journal holds it (``content=``: the bytes are not decoded and
encoded again), through the client's own ``post``, so the SDK adds the key, base URL,
headers and timeouts, and the client's limiter (`ratelimit_llm.wrap`) paces, corrects
and retries it. What comes back is read once, for its ``usage``; its text is kept as
the server sent it, on one line.

A failure for good is an answer too (`RunError`): the limiter retried what waiting
could cure, so whatever reaches here is final for this run (``--retry-failed`` sends it
again later). Only bugs raise.
"""

from __future__ import annotations

import json
import math
from typing import Any

import openai

from .._classify import RETRYABLE_KINDS, classify_error
from .._estimate import cost_from_usage
from .._exceptions import AcquireTimeoutError, CapacityExceededError, CredentialsExhaustedError
from ..batch._cost import PriceTable
from ._journal import Answer, Pending, error_json, line_of
from ._prices import nano_of_usage
from ._types import RunError, RunResult

__all__ = ["answer", "sdk_path"]

_MAX_MESSAGE = 2_000


def sdk_path(endpoint: str) -> str:
    """The path the SDK's ``post`` takes for an input line's ``url`` (its base URL holds
    the ``/v1``): ``/v1/chat/completions`` -> ``/chat/completions``."""
    return endpoint[3:] if endpoint.startswith("/v1/") else endpoint


def _whole(value: float | None) -> int | None:
    return None if value is None or not math.isfinite(value) else int(value)


async def answer(
    client: openai.AsyncOpenAI,
    request: Pending,
    *,
    prices: PriceTable,
    reserved: int,
    decode_body: bool,
) -> Answer:
    """Send ``request`` and return its answer (success or `RunError`), priced.

    :param reserved: what the budget holds for it; a call whose outcome is unknown (no
        answer came) is charged that, since the server may have billed it.
    :param decode_body: send the body as a dict (``body=``) instead of its bytes, for
        clients that route by the body's model (Azure's deployments).
    """
    path = sdk_path(request.endpoint)
    try:
        if decode_body:
            raw = await client.post(path, body=json.loads(request.body), cast_to=bytes)
        else:
            raw = await client.post(path, content=request.body.encode(), cast_to=bytes)
    except openai.APIStatusError as exc:
        return _failure(request, _status_error(exc), 0)
    except openai.APITimeoutError as exc:
        return _failure(request, _unanswered("timeout", exc), reserved)
    except openai.APIConnectionError as exc:
        return _failure(request, _unanswered("connection", exc), reserved)
    except CapacityExceededError as exc:
        error = RunError("request_too_large", None, "capacity_exceeded", str(exc), False)
        return _failure(request, error, 0)
    except AcquireTimeoutError as exc:
        return _failure(request, RunError("acquire_timeout", None, None, str(exc), True), 0)
    except CredentialsExhaustedError as exc:
        return _failure(request, RunError("authentication", None, None, str(exc), False), 0)
    return _success(request, raw, prices, reserved)


def _success(request: Pending, raw: bytes, prices: PriceTable, reserved: int) -> Answer:
    try:
        text = raw.decode()
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        error = RunError(
            "invalid_response",
            200,
            None,
            f"the answer is not a JSON object ({len(raw)} bytes)",
            True,
        )
        return _failure(request, error, reserved)
    # A raw line break can only be whitespace between JSON tokens (inside a string it
    # must be escaped), so removing them keeps the text the same JSON, on one line.
    if "\n" in text or "\r" in text:
        text = text.replace("\n", "").replace("\r", "")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else None
    usage_text = None if usage is None else json.dumps(usage, separators=(",", ":"))
    cost = cost_from_usage(usage)
    price = prices.price_of(request.model)
    nano: int | None
    if price is None:
        nano = None
    else:
        priced = nano_of_usage(prices, price, usage, "online")
        nano = reserved if priced is None else priced  # no usage: the bound stays spent
    result = RunResult(
        custom_id=request.custom_id,
        via="online",
        response=data,
        error=None,
        usage=usage,
        usd=None if nano is None else nano / 1e9,
    )
    return Answer(
        id=request.id,
        model=request.model,
        tokens=request.tokens,
        ok=True,
        status_code=200,
        response=text,
        error=None,
        usage=usage_text,
        input_tokens=None if cost is None else _whole(cost.input_tokens),
        output_tokens=None if cost is None else _whole(cost.output_tokens),
        nano=nano,
        line=line_of(request.custom_id, "online", None, text, None, usage_text),
        result=result,
    )


def _failure(request: Pending, error: RunError, nano: int) -> Answer:
    text = error_json(error)
    return Answer(
        id=request.id,
        model=request.model,
        tokens=request.tokens,
        ok=False,
        status_code=error.status_code,
        response=None,
        error=text,
        usage=None,
        input_tokens=None,
        output_tokens=None,
        nano=nano,
        line=line_of(request.custom_id, "online", None, None, text, None),
        result=RunResult(
            custom_id=request.custom_id, via="online", response=None, error=error, usd=nano / 1e9
        ),
    )


def _status_error(exc: openai.APIStatusError) -> RunError:
    response = exc.response
    try:
        content: Any = response.content
    except Exception:  # a body never read (a streamed error): the SDK's parse is enough
        content = {"error": exc.body} if isinstance(exc.body, dict) else None
    info = classify_error(exc.status_code, response.headers, content)
    body = exc.body if isinstance(exc.body, dict) else {}
    code = body.get("code")
    kind = body.get("type")
    message = (info.message if info is not None else None) or exc.message
    return RunError(
        kind=info.kind.value if info is not None else "client_error",
        status_code=exc.status_code,
        code=None if code is None else str(code),
        message=str(message)[:_MAX_MESSAGE],
        # Not ``info.retryable``: the limiter marks what it hands back x-should-retry:
        # false. Whether another run could succeed is a matter of the kind.
        retryable=info is not None and info.kind in RETRYABLE_KINDS,
        type=None if kind is None else str(kind),
    )


def _unanswered(kind: str, exc: Exception) -> RunError:
    return RunError(
        kind, None, None, f"{type(exc).__name__}: no answer ({exc})"[:_MAX_MESSAGE], True
    )
