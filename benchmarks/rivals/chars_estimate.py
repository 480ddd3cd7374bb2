"""The rivals' shared token estimate: prompt characters / 4 plus ``n x max_tokens``.

Both the cookbook re-implementation and the token-throttle worker use this rule (the
cookbook counts with tiktoken, which downloads its tables at run time). It is a plain
module with no package imports, because the token-throttle worker runs as a script in
another interpreter and imports it from its own folder.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["estimate_tokens"]


def estimate_tokens(endpoint: str, body: dict[str, Any], default_max_tokens: int | None) -> int:
    """Prompt characters / 4 (rounded up), plus ``n x max_tokens`` for chat calls.

    ``default_max_tokens`` is what to reserve when the call names no output limit
    (the cookbook's 15; ``None`` reserves nothing, as token-throttle does).
    """
    if endpoint == "embeddings":
        text = body.get("input", "")
        parts = [text] if isinstance(text, str) else list(text)
        return math.ceil(sum(len(part) for part in parts if isinstance(part, str)) / 4)
    characters = 0
    for message in body.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            characters += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    cap = body.get(
        "max_tokens",
        body.get("max_completion_tokens"),
    )
    n = int(body.get("n") or 1)
    if cap is None:
        return math.ceil(characters / 4) + (n * default_max_tokens if default_max_tokens else 0)
    return math.ceil(characters / 4) + n * int(cap)
