"""Event streams: the frames of a chat or Responses stream, sent at the model's pace.

A stream is built as a sequence of *steps*, one per generated token (per choice), each a
list of frames; the last step holds the closing frames. Pacing is separate from framing,
so a fault can cut a stream at any step without the framing code knowing about time,
and a test in virtual time sees exactly the delays the latency model asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ._errors import SERVER_ERROR, error_body
from ._render import (
    ChatChunks,
    chat_usage,
    dumps,
    response_event,
    response_function_call,
    response_message,
    response_object,
    response_output,
    response_usage,
)
from ._replies import Choice, Choices

__all__ = ["Choices", "StreamPlan", "chat_frames", "paced", "response_frames"]

# Shorter waits are merged with the next ones: sleeping per token would cost more than the
# precision is worth, and a batch of frames is what a real stream delivers anyway.
_MIN_SLEEP = 0.01
_KEEPALIVE = b": keep-alive\n\n\n"
_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What one stream will say. ``cut_at >= 0`` stops it after that many tokens per choice,
    without closing frames; ``error`` then sends an in-stream error at the cut."""

    model: str
    created: int
    prompt_tokens: int
    choices: Choices
    cut_at: int = -1
    error: bool = False
    #: The request settings a Responses stream's ``response`` objects repeat.
    echo: dict[str, Any] | None = None


def _chat_tokens(chunks: ChatChunks, index: int, choice: Choice) -> Iterator[bytes]:
    """One frame per output token of a choice: text pieces, or tool-call argument pieces."""
    for piece in choice.pieces:
        yield chunks.content(index, piece)
    for position, call in enumerate(choice.tool_calls):
        for number, piece in enumerate(call.pieces):
            if choice.legacy:
                yield chunks.function_call(index, call, piece, first=number == 0)
            elif number == 0:
                yield chunks.tool_call(index, position, call, piece)
            else:
                yield chunks.arguments(index, position, piece)


def chat_frames(
    plan: StreamPlan, *, id_: str, include_usage: bool, emitted: list[int]
) -> Iterator[list[bytes]]:
    """``chat.completion.chunk`` steps; counts the content tokens sent in ``emitted[0]``."""
    chunks = ChatChunks(
        id_=id_, created=plan.created, model=plan.model, include_usage=include_usage
    )
    choices = plan.choices
    out = [
        chunks.role(index, calls=bool(choice.tool_calls)) for index, choice in enumerate(choices)
    ]
    tokens = [_chat_tokens(chunks, index, choice) for index, choice in enumerate(choices)]
    longest = max(choice.tokens for choice in choices)
    for step in range(longest):
        if step == plan.cut_at:
            break
        for frames in tokens:
            frame = next(frames, None)
            if frame is not None:
                out.append(frame)
                emitted[0] += 1
        yield out
        out = []
    if plan.cut_at >= 0:
        if plan.error:
            out.append(b"data: " + dumps(error_body(SERVER_ERROR, "server_error")) + b"\n\n")
        yield out
        return
    out.extend(chunks.finish(index, choice.finish) for index, choice in enumerate(choices))
    if include_usage:
        out.append(chunks.usage(chat_usage(plan.prompt_tokens, emitted[0])))
    out.append(_DONE)
    yield out


def response_frames(
    plan: StreamPlan,
    *,
    response_id: str,
    item_id: str,
    max_output_tokens: int | None,
    instructions: str | None,
    emitted: list[int],
) -> Iterator[list[bytes]]:
    """Responses API event steps, ``response.created`` to ``response.completed``.

    A text answer is one ``message`` item with one ``output_text`` part; a tool call is
    one ``function_call`` item whose arguments arrive as
    ``response.function_call_arguments.delta`` events.
    """
    choice = plan.choices[0]
    sequence = 0

    def event(name: str, payload: dict[str, Any]) -> bytes:
        nonlocal sequence
        frame = response_event(name, sequence, payload)
        sequence += 1
        return frame

    def response(
        status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        return response_object(
            id_=response_id,
            created=plan.created,
            model=plan.model,
            status=status,
            output=output,
            usage=usage,
            max_output_tokens=max_output_tokens,
            instructions=instructions,
            incomplete=status == "incomplete",
            echo=plan.echo,
        )

    started = response("in_progress", [], None)
    out = [
        event("response.created", {"response": started}),
        event("response.in_progress", {"response": started}),
    ]
    call = choice.tool_calls[0] if choice.tool_calls else None
    where: dict[str, Any]
    if call is not None:
        where = {"item_id": item_id, "output_index": 0}
        opened = response_function_call(item_id, call, "in_progress")
        out.append(event("response.output_item.added", {"output_index": 0, "item": opened}))
        pieces, delta_event = call.pieces, "response.function_call_arguments.delta"
    else:
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        opened = response_message(item_id, "", "in_progress")
        out.append(event("response.output_item.added", {"output_index": 0, "item": opened}))
        out.append(event("response.content_part.added", {**where, "part": empty_part}))
        pieces, delta_event = choice.pieces, "response.output_text.delta"
    extra: dict[str, Any] = {} if call is not None else {"logprobs": []}
    for step, piece in enumerate(pieces):
        if step == plan.cut_at:
            break
        out.append(event(delta_event, {**where, "delta": piece, **extra}))
        emitted[0] += 1
        yield out
        out = []
    if plan.cut_at >= 0:
        if plan.error:
            # Typed as ResponseErrorEvent; the nested "error" makes the SDK raise APIError.
            details = {"code": "server_error", "message": SERVER_ERROR, "param": None}
            out.append(event("error", {**details, **error_body(SERVER_ERROR, "server_error")}))
        yield out
        return
    status = "incomplete" if choice.finish == "length" else "completed"
    (item,) = response_output(item_id, choice, status)
    usage = response_usage(plan.prompt_tokens, emitted[0])
    final = "response.incomplete" if status == "incomplete" else "response.completed"
    if call is not None:
        done = {**where, "name": call.name, "arguments": call.arguments}
        out.append(event("response.function_call_arguments.done", done))
    else:
        out.append(
            event("response.output_text.done", {**where, "text": choice.text, "logprobs": []})
        )
        out.append(event("response.content_part.done", {**where, "part": item["content"][0]}))
    out.extend(
        [
            event("response.output_item.done", {"output_index": 0, "item": item}),
            event(final, {"response": response(status, [item], usage)}),
        ]
    )
    yield out


async def paced(
    steps: Iterable[list[bytes]],
    *,
    per_token: float,
    pause: Callable[[float], Awaitable[None]],
    keepalive: bool = False,
) -> AsyncIterator[bytes]:
    """Join the steps' frames into chunks, pausing ``per_token`` seconds per step.

    With ``keepalive`` every chunk starts with a ``: keep-alive`` comment and a blank
    line, as some servers send while they think.
    """
    prefix = [_KEEPALIVE] if keepalive else []
    batch = list(prefix)
    pending = 0.0
    for frames in steps:
        batch.extend(frames)
        pending += per_token
        if pending >= _MIN_SLEEP:
            yield b"".join(batch)
            batch = list(prefix)
            await pause(pending)
            pending = 0.0
    if len(batch) > len(prefix):
        yield b"".join(batch)
