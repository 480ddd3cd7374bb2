"""The JSON shapes of successful responses and stream frames, as the ``openai`` SDK types them.

Kept apart from the request handling so the shapes can be checked against the SDK's
models (``ChatCompletion``, ``ChatCompletionChunk``, ``Response``, the Responses stream
events, ``CreateEmbeddingResponse``, ``Model``) in one place. Streams are hot (one frame
per token), so chat chunks are built from pre-rendered templates instead of dicts.
"""

from __future__ import annotations

import json
from typing import Any

from ._replies import Choice, ToolCall

__all__ = [
    "ChatChunks",
    "chat_completion",
    "chat_message",
    "chat_usage",
    "dumps",
    "embedding_response",
    "model_object",
    "response_event",
    "response_function_call",
    "response_message",
    "response_object",
    "response_output",
    "response_usage",
]

_FINGERPRINT = "fp_mock0001"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_message(choice: Choice) -> dict[str, Any]:
    """The assistant ``message`` of one choice: its text, or its tool (or function) call."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if choice.tool_calls else choice.text,
        "refusal": None,
        "annotations": [],
    }
    if choice.legacy:
        call = choice.tool_calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
    elif choice.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in choice.tool_calls
        ]
    return message


def chat_completion(
    *, id_: str, created: int, model: str, choices: list[Choice], usage: dict[str, Any]
) -> dict[str, Any]:
    """A ``chat.completion`` object, one entry per choice."""
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": chat_message(choice),
                "logprobs": None,
                "finish_reason": choice.finish,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


class ChatChunks:
    """``data: {chat.completion.chunk}`` frames sharing one id, rendered from templates."""

    def __init__(self, *, id_: str, created: int, model: str, include_usage: bool) -> None:
        head = (
            f'{{"id":{json.dumps(id_)},"object":"chat.completion.chunk","created":{created},'
            f'"model":{json.dumps(model)},"service_tier":"default","system_fingerprint":"{_FINGERPRINT}",'
        )
        self._head = "data: " + head
        self._tail = (',"usage":null}' if include_usage else "}") + "\n\n"

    def role(self, index: int, *, calls: bool = False) -> bytes:
        """The first chunk of a choice: the role, and empty content (null before calls)."""
        content = "null" if calls else '""'
        return self._choice(
            index, '{"role":"assistant","content":' + content + ',"refusal":null}', "null"
        )

    def tool_call(self, index: int, position: int, call: ToolCall, piece: str) -> bytes:
        """The chunk that opens a tool call: its id, name and first piece of arguments."""
        head = {
            "index": position,
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": piece},
        }
        return self._choice(index, '{"tool_calls":[' + _compact(head) + "]}", "null")

    def arguments(self, index: int, position: int, piece: str) -> bytes:
        """A further piece of a tool call's arguments."""
        delta = {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}
        return self._choice(index, _compact(delta), "null")

    def function_call(self, index: int, call: ToolCall, piece: str, *, first: bool) -> bytes:
        """A piece of a legacy ``function_call`` (the first one carries the name)."""
        body = {"name": call.name, "arguments": piece} if first else {"arguments": piece}
        return self._choice(index, _compact({"function_call": body}), "null")

    def content(self, index: int, piece: str) -> bytes:
        return self._choice(
            index, '{"content":' + json.dumps(piece, ensure_ascii=False) + "}", "null"
        )

    def finish(self, index: int, reason: str) -> bytes:
        """The last chunk of a choice: an empty delta and the finish reason."""
        return self._choice(index, "{}", json.dumps(reason))

    def usage(self, usage: dict[str, Any]) -> bytes:
        """The ``include_usage`` chunk: no choices, the whole request's usage."""
        body = (
            self._head
            + '"choices":[],"usage":'
            + json.dumps(usage, separators=(",", ":"))
            + "}\n\n"
        )
        return body.encode()

    def _choice(self, index: int, delta: str, finish: str) -> bytes:
        return (
            f'{self._head}"choices":[{{"index":{index},"delta":{delta},"logprobs":null,'
            f'"finish_reason":{finish}}}]{self._tail}'
        ).encode()


def response_usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


def response_function_call(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    """A ``function_call`` output item (its arguments empty while ``in_progress``)."""
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments if status != "in_progress" else "",
    }


def response_output(item_id: str, choice: Choice, status: str) -> list[dict[str, Any]]:
    """The output items of one answer: a message, or its function calls."""
    if choice.tool_calls:
        return [response_function_call(item_id, call, status) for call in choice.tool_calls]
    return [response_message(item_id, choice.text, status)]


def response_message(item_id: str, text: str, status: str) -> dict[str, Any]:
    """The assistant ``message`` output item holding one ``output_text`` part."""
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if status != "in_progress"
        else []
    )
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def response_object(
    *,
    id_: str,
    created: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    max_output_tokens: int | None,
    instructions: str | None,
    incomplete: bool = False,
    echo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object (``POST /v1/responses`` and the stream's lifecycle events).

    ``echo`` overrides the request settings it repeats (``text``, ``tools``,
    ``tool_choice``), as the real API repeats what it was sent.
    """
    body = {
        "id": id_,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }
    if echo:
        body.update(echo)
    return body


def response_event(event: str, sequence: int, payload: dict[str, Any]) -> bytes:
    """One named Responses stream event: ``event: <type>`` plus its JSON ``data``."""
    data = {"type": event, "sequence_number": sequence, **payload}
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def embedding_response(
    model: str, vectors: list[list[float] | str], prompt_tokens: int
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_715_367_049, "owned_by": "system"}
