"""The JSON shapes of successful responses and stream frames, as the ``openai`` SDK types them.

Kept apart from the request handling so the shapes can be checked against the SDK's
models (``ChatCompletion``, ``ChatCompletionChunk``, ``Response``, the Responses stream
events, ``CreateEmbeddingResponse``, ``Model``) in one place. Streams are hot (one frame
per token), so chat chunks are built from pre-rendered templates instead of dicts.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ChatChunks",
    "chat_completion",
    "chat_usage",
    "dumps",
    "embedding_response",
    "model_object",
    "response_event",
    "response_message",
    "response_object",
    "response_usage",
]

_FINGERPRINT = "fp_mock0001"


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


def chat_completion(
    *, id_: str, created: int, model: str, choices: list[tuple[str, str]], usage: dict[str, Any]
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``choices`` are ``(text, finish_reason)`` pairs."""
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
            for index, (text, finish) in enumerate(choices)
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

    def role(self, index: int) -> bytes:
        """The first chunk of a choice: the role and empty content."""
        return self._choice(index, '{"role":"assistant","content":"","refusal":null}', "null")

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
) -> dict[str, Any]:
    """A ``response`` object (``POST /v1/responses`` and the stream's lifecycle events)."""
    return {
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
