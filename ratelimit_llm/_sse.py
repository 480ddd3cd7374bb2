"""Watch a server-sent-event stream for its usage, without buffering it.

A streamed completion reports what it really cost only at its very end: chat sends a
last chunk with ``usage`` when ``stream_options.include_usage`` is set, the Responses
API puts it in the ``response.completed`` event. The transport passes every chunk to
the caller as it arrives and feeds a copy through `UsageWatcher`, which splits lines,
parses only the few ``data:`` lines that can carry usage or an error, and remembers
the last usage seen. An interrupted stream simply never reports one, and the estimate
stands.

A chat stream asked without ``stream_options={"include_usage": true}`` (LangChain's
default with a custom client, the Agents SDK's chat streams) never reports usage at all.
For those the watcher can also count the characters of what streamed (content, tool
call arguments, reasoning, Responses text deltas), so that the call is settled as the
estimate counts, instead of keeping its whole output reservation.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from ._estimate import usage_from_stream_event

__all__ = ["UsageWatcher"]

_log = logging.getLogger("ratelimit_llm.sse")

# Only lines that can hold a usage object or an error are worth a JSON parse; the rest
# (the bulk of a stream: deltas, and "usage": null on every chat chunk) are skipped.
_INTERESTING = re.compile(rb'"usage"\s*:\s*\{|"error"\s*:\s*\{|"type"\s*:\s*"error"')
# A line longer than this without a newline is not an SSE line we can use; drop it
# rather than grow the buffer without bound.
_MAX_LINE = 8 * 1024 * 1024


class UsageWatcher:
    """Feed it the raw bytes of an SSE stream; it keeps the last usage and any error.

    :param count_text: also count the characters of the text the stream carries
        (`streamed_chars`), for streams that will report no usage.
    """

    __slots__ = ("_buffer", "_count", "_skipping", "done", "error", "streamed_chars", "usage")

    def __init__(self, *, count_text: bool = False) -> None:
        self._buffer = b""
        self._skipping = False
        self._count = count_text
        #: The last usage object the stream reported, if any.
        self.usage: Mapping[str, Any] | None = None
        #: The payload of an in-stream error event, if one came.
        self.error: Mapping[str, Any] | None = None
        #: Characters of text streamed (only with ``count_text``).
        self.streamed_chars = 0
        #: Whether the stream's end marker (``data: [DONE]``) came: it ran to its end.
        self.done = False

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the stream (any size, lines may be split anywhere)."""
        data = self._buffer + chunk if self._buffer else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                self._line(data[start:end])
            start = end + 1
        rest = data[start:]
        if len(rest) > _MAX_LINE:
            _log.debug("dropping an SSE line longer than %d bytes", _MAX_LINE)
            rest = b""
            self._skipping = True
        self._buffer = rest

    def close(self) -> None:
        """The stream ended: a last line without a newline still counts."""
        if self._buffer and not self._skipping:
            self._line(self._buffer)
        self._buffer = b""

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        if line[5:].strip() == b"[DONE]":
            self.done = True
            return
        if not _INTERESTING.search(line):
            if self._count:
                self._count_text(line)
            return
        try:
            payload = json.loads(line[5:].strip())
        except ValueError:
            _log.debug("skipping an SSE data line that is not JSON")
            return
        if not isinstance(payload, dict):
            return
        usage = usage_from_stream_event(payload)
        if usage is not None:
            self.usage = usage
            return
        error = payload.get("error")
        if isinstance(error, dict) or payload.get("type") in ("error", "response.failed"):
            self.error = payload

    def _count_text(self, line: bytes) -> None:
        try:
            payload = json.loads(line[5:].strip())
        except ValueError:
            return
        if isinstance(payload, dict):
            self.streamed_chars += _text_length(payload)


def _text_length(event: Mapping[str, Any]) -> int:
    """Characters of generated text in one stream event (chat, completions, Responses)."""
    delta = event.get("delta")
    if isinstance(delta, str) and str(event.get("type", "")).endswith(".delta"):
        return len(delta)  # Responses: output_text / function_call_arguments / reasoning
    total = 0
    choices = event.get("choices")
    if not isinstance(choices, list):
        return 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")  # legacy completions
        if isinstance(text, str):
            total += len(text)
        part = choice.get("delta")
        if not isinstance(part, dict):
            continue
        for key in ("content", "reasoning_content", "refusal"):
            value = part.get(key)
            if isinstance(value, str):
                total += len(value)
        calls = part.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    for key in ("name", "arguments"):
                        value = function.get(key)
                        if isinstance(value, str):
                            total += len(value)
    return total
