"""Reading a JSON Lines file one line at a time, for the batch and run commands.

A dataset may be larger than memory, so the file is never read whole; a line that is
not JSON is named by file and line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["read_jsonl"]


def read_jsonl(path: Path) -> Iterator[Any]:
    """The file's JSON lines, one at a time (blank lines skipped).

    :raises ValueError: a line that is not JSON, naming the file and line.
    """
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc})") from None
