"""A chat completion body, as the server answers one, for tests that fake the server."""

from __future__ import annotations

from typing import Any


def completion(
    prompt_tokens: int = 5, completion_tokens: int = 1, *, content: str = "ok"
) -> dict[str, Any]:
    """A finished ``chat.completion`` whose ``usage`` says what the call cost."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
