"""Watch a server-sent-event stream for its usage, without buffering it.

A streamed completion reports what it really cost only at its very end: chat sends a
last chunk with ``usage`` when ``stream_options.include_usage`` is set, the Responses
API puts it in the ``response.completed`` event. The transport passes every chunk to
the caller as it arrives and feeds a copy through `UsageWatcher`, which splits lines,
parses only the few ``data:`` lines that can carry usage or an error, and remembers
the last usage seen. An interrupted stream simply never reports one, and the estimate
stands.
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
    """Feed it the raw bytes of an SSE stream; it keeps the last usage and any error."""

    __slots__ = ("_buffer", "_skipping", "error", "usage")

    def __init__(self) -> None:
        self._buffer = b""
        self._skipping = False
        #: The last usage object the stream reported, if any.
        self.usage: Mapping[str, Any] | None = None
        #: The payload of an in-stream error event, if one came.
        self.error: Mapping[str, Any] | None = None

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
        if not line.startswith(b"data:") or not _INTERESTING.search(line):
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
