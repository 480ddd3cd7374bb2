"""What the fake model said: one choice's text pieces or tool calls, and why it stopped.

Every piece is one token of the mock's tokenizer, text and tool-call arguments alike, so
a stream sends one piece per step and ``usage`` counts the pieces. Shared by the
generator (``_generate.py``), the renderers (``_render.py``) and the streams
(``_streams.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Choice", "Choices", "ToolCall"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call: its id (``call_...``), the function and its JSON arguments."""

    call_id: str
    name: str
    pieces: list[str]

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer: text ``pieces`` or ``tool_calls`` (then no text), and its finish reason.

    ``legacy`` marks a call to render as chat's old ``function_call``.
    """

    pieces: list[str]
    finish: str
    tool_calls: tuple[ToolCall, ...] = ()
    legacy: bool = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        """Output tokens: every piece of text and of arguments."""
        return len(self.pieces) + sum(len(call.pieces) for call in self.tool_calls)


#: Every choice of one request, in order.
Choices: TypeAlias = list[Choice]
