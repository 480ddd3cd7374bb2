"""The mock's file store: uploaded batch inputs and the result files batches write.

Files are kept as the bytes that were uploaded or rendered, nothing more: a batch reads
its input lines from them on demand, and ``GET /v1/files/{id}/content`` serves them in
slices. Deleting a file forgets it here; a batch that was already created from it keeps
its own reference to the bytes, as the real service keeps processing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["FILE_PURPOSES", "FileStore", "StoredFile"]

#: The purposes ``POST /v1/files`` accepts (``batch_output`` is the server's own).
FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file: ``created_at`` is a Unix timestamp, ``data`` the whole content."""

    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes

    def as_dict(self) -> dict[str, Any]:
        """The ``file`` object (`openai.types.FileObject`)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }

    def chunks(self) -> Iterator[bytes]:
        """The content in 1 MiB slices, so a large download is not copied whole."""
        view = memoryview(self.data)
        for start in range(0, len(view), _CHUNK):
            yield bytes(view[start : start + _CHUNK])


class FileStore:
    """Files by id, in upload order.

    Example::

        store = FileStore(new_id=lambda: "file-1")
        stored = store.add(b'{"custom_id": "a"}\\n', filename="in.jsonl", purpose="batch",
                           created_at=1_700_000_000)
        store.get(stored.id).data
    """

    __slots__ = ("_files", "_new_id")

    def __init__(self, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self._files: dict[str, StoredFile] = {}

    def add(self, data: bytes, *, filename: str, purpose: str, created_at: int) -> StoredFile:
        """Store ``data`` under a fresh id."""
        stored = StoredFile(self._new_id(), filename, purpose, created_at, data)
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        """Forget a file; ``False`` if there was none with that id."""
        return self._files.pop(file_id, None) is not None

    def listing(self, *, purpose: str | None = None, newest_first: bool = True) -> list[StoredFile]:
        """Every file (with ``purpose``, if given), newest or oldest first."""
        files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        return files[::-1] if newest_first else files

    def clear(self) -> None:
        self._files.clear()

    def __len__(self) -> int:
        return len(self._files)
