"""The output file: one JSON line per request, derived from the journal, never twice.

**The order that makes it safe.** An answer is committed to the journal first, with its
place in the output (``out_seq``); only then is its line appended to the file. Every
second or so (and when the run ends) the file is fsync'd, and *then* its length and the
last ``out_seq`` it holds are committed to the journal as the output's **cursor**. So:

* a line in the file was always journaled first: nothing is written that the journal
  could lose;
* the cursor never runs ahead of what is durably in the file.

**Repair on resume.** The file is cut back to the cursor (whatever lies beyond it, a
line cut in half by a kill included, was written after the last fsync and is also in
the journal), and every answer after the cursor's ``out_seq`` is appended again from
the journal, in order. Every request thus appears exactly once, whatever instant the
kill came at. A file shorter than its cursor (restored from an old copy, cut by
someone) or missing is rebuilt from the journal whole; so is the file after
``retry_failed``, which takes failed lines back.

The journal records the file's path; a file at the path that is not this job's output
(no cursor for it) is refused rather than overwritten.

Why a cursor and not "the output is written only from the journal, after the fact":
the same guarantee, but the file would lag the answers by a whole pass over the journal;
here each line is written once, as its answer comes, and the journal is read again only
for the few lines after the cursor.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ._journal import Done, RunJournal

__all__ = ["Output", "OutputError"]


class OutputError(ValueError):
    """The output path holds a file that is not this job's output."""


class Output:
    """The output file of a job (see the module docstring). Blocking; one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None
        #: Bytes in the file, and the last out_seq in it.
        self.size = 0
        self.seq = 0
        #: What the last fsync made durable (what the journal's cursor may say).
        self.synced = (0, 0)

    def open(self, journal: RunJournal, *, rebuild: bool = False) -> int:
        """Make the file hold exactly the journal's answers; returns the lines appended.

        :raises OutputError: a file at the path that this job never wrote.
        """
        recorded = journal.meta("run_out_path")
        ours = recorded == str(self.path.absolute())
        cursor_bytes = int(journal.meta("run_out_bytes") or "0") if ours else 0
        cursor_seq = int(journal.meta("run_out_seq") or "0") if ours else 0
        exists = self.path.exists()
        if exists and not ours and self.path.stat().st_size > 0:
            raise OutputError(
                f"{self.path} exists and is not the output of the job in {journal.journal.path}:"
                " move it aside or choose another path (it is left as it is)"
            )
        if not ours:
            journal.set_meta(
                run_out_path=str(self.path.absolute()), run_out_bytes="0", run_out_seq="0"
            )
        if not exists or rebuild or self.path.stat().st_size < cursor_bytes:
            return self._rebuild(journal)
        handle = open(self.path, "r+b")  # noqa: SIM115 - held until close()
        handle.truncate(cursor_bytes)
        handle.seek(cursor_bytes)
        self._handle = handle
        self.size, self.seq = cursor_bytes, cursor_seq
        appended = self._append_from(journal, cursor_seq)
        self.sync()
        journal.commit(cursor=self.synced)
        return appended

    def _rebuild(self, journal: RunJournal) -> int:
        """Write the whole output from the journal beside the path, then put it in place."""
        partial = self.path.with_name(self.path.name + ".partial")
        self.close()
        self._handle = open(partial, "wb")  # noqa: SIM115 - renamed into place below
        self.size, self.seq = 0, 0
        written = self._append_from(journal, 0)
        self.sync()
        self.close()
        os.replace(partial, self.path)
        _sync_directory(self.path.parent)
        self._handle = open(self.path, "ab")  # noqa: SIM115 - held until close()
        journal.commit(cursor=self.synced)
        return written

    def _append_from(self, journal: RunJournal, after: int) -> int:
        up_to = journal.max_seq()
        count = 0
        while True:
            page = journal.done_page(after, up_to)
            if not page:
                return count
            self.append(page)
            count += len(page)
            after = page[-1].seq

    def append(self, done: Iterable[Done]) -> None:
        """Append the lines of ``done`` (already journaled, in out_seq order)."""
        assert self._handle is not None, "the output is not open"
        last = self.seq
        data = []
        for item in done:
            data.append(item.line)
            last = item.seq
        if not data:
            return
        blob = ("\n".join(data) + "\n").encode()
        self._handle.write(blob)
        self.size += len(blob)
        self.seq = last

    def sync(self) -> tuple[int, int]:
        """fsync the file; returns the cursor it makes true: (bytes, last out_seq)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self.synced = (self.size, self.seq)
        return self.synced

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.flush()
            self._handle.close()
            self._handle = None


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can sync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
