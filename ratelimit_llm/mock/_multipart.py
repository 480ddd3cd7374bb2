"""Just enough ``multipart/form-data`` parsing for ``POST /v1/files``.

Starlette parses forms only with the optional ``python-multipart`` package; the mock's
one form (a ``purpose`` field and a ``file``) does not justify another dependency. The
body is scanned with `bytes.find` and each part's content is sliced out once, so a
200 MB upload costs one copy and no per-line work.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FormPart", "MultipartError", "boundary_of", "parse_form"]


class MultipartError(ValueError):
    """The body is not the ``multipart/form-data`` its content type promised."""


@dataclass(frozen=True, slots=True)
class FormPart:
    """One form field: its name, its filename if it is a file, and its raw content."""

    name: str
    filename: str | None
    data: bytes


def boundary_of(content_type: str) -> bytes:
    """The ``boundary`` parameter of a ``multipart/form-data`` content type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise MultipartError("expected a multipart/form-data body")
    for name, value in _params(params).items():
        if name == "boundary" and value:
            return value.encode("latin-1")
    raise MultipartError("the multipart/form-data content type has no boundary")


def parse_form(body: bytes, boundary: bytes) -> dict[str, FormPart]:
    """Every part of ``body`` by field name (a repeated name keeps the last part)."""
    delimiter = b"--" + boundary
    position = body.find(delimiter)
    if position < 0:
        raise MultipartError("the multipart body has no boundary line")
    parts: dict[str, FormPart] = {}
    position += len(delimiter)
    while not body.startswith(b"--", position):
        head_start = body.find(b"\r\n", position)
        head_end = body.find(b"\r\n\r\n", position)
        if head_start < 0 or head_end < 0:
            raise MultipartError("a multipart part has no header block")
        content_end = body.find(b"\r\n" + delimiter, head_end + 4)
        if content_end < 0:
            raise MultipartError("the multipart body is truncated")
        part = _part(body[head_start + 2 : head_end], body, head_end + 4, content_end)
        if part is not None:
            parts[part.name] = part
        position = content_end + 2 + len(delimiter)
    return parts


def _part(head: bytes, body: bytes, start: int, end: int) -> FormPart | None:
    for line in head.decode("utf-8", "replace").split("\r\n"):
        header, _, value = line.partition(":")
        if header.strip().lower() == "content-disposition":
            params = _params(value.partition(";")[2])
            name = params.get("name")
            if name is None:
                return None
            return FormPart(name, params.get("filename"), body[start:end])
    return None


def _params(text: str) -> dict[str, str]:
    """``a=1; b="two; three"`` as a dict; quoted values may hold ``;`` and ``\\"``."""
    params: dict[str, str] = {}
    index, length = 0, len(text)
    while index < length:
        while index < length and text[index] in " \t;":
            index += 1
        equals = text.find("=", index)
        if equals < 0:
            break
        name = text[index:equals].strip().lower()
        index = equals + 1
        if index < length and text[index] == '"':
            index += 1
            value: list[str] = []
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                value.append(text[index])
                index += 1
            index += 1
            params[name] = "".join(value)
        else:
            stop = text.find(";", index)
            stop = length if stop < 0 else stop
            params[name] = text[index:stop].strip()
            index = stop
    return params
