"""Go-style durations, the unit OpenAI speaks in.

OpenAI's ``x-ratelimit-reset-*`` headers and its 429 messages ("Please try again in
1m26.4s") write times the way Go's ``time.Duration.String()`` does, truncated to
milliseconds. Groq copies the style (once with a space: ``6m 11.52s``) and Azure sends
bare seconds (``10``). `parse_duration` reads all of these and never raises, because it
runs on whatever a server or proxy put in a header; `format_duration` writes the OpenAI
form so the mock server and the tests can produce exactly what the real one does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["format_duration", "parse_duration"]

_NS_PER_UNIT: dict[str, int] = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "\u00b5s": 1_000,  # MICRO SIGN, what Go itself prints
    "\u03bcs": 1_000,  # GREEK SMALL LETTER MU, what people type
    "ns": 1,
}

# "ms" must be tried before "m", or "2ms" would read as two minutes and a stray "s".
_UNIT = r"(?:h|ms|m|s|us|\u00b5s|\u03bcs|ns)"
_PART = re.compile(r"(\d+\.?\d*|\.\d+)\s*(" + _UNIT + r")\s*", re.ASCII)
_DURATION = re.compile(r"(?:(?:\d+\.?\d*|\.\d+)\s*" + _UNIT + r"\s*)+", re.ASCII)
_BARE_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)

# A real duration is a dozen characters; refusing long input bounds the work (and keeps
# `int()` far from its digit limit) on hostile headers.
_MAX_LENGTH = 100


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration (`1m26.4s`, `2ms`, `6m 11.52s`) or a bare number of seconds.

    A leading `-` clamps to `0.0`. Anything unreadable or not finite gives `None`; this
    function never raises.
    """
    if not isinstance(text, str) or len(text) > _MAX_LENGTH:
        return None
    body = text.strip()
    negative = body.startswith("-")
    if body[:1] in ("-", "+"):
        body = body[1:].lstrip()
    if not body:
        return None
    if _BARE_NUMBER.fullmatch(body):
        seconds = float(body)  # cannot fail: the pattern only admits float syntax
    elif _DURATION.fullmatch(body):
        seconds = _sum_parts(body)
    else:
        return None
    if not math.isfinite(seconds):
        return None
    return 0.0 if negative else seconds


def _sum_parts(body: str) -> float:
    # Whole nanoseconds, as Go counts them, so "1m26.4s" comes out as exactly the float
    # nearest 86.4 instead of 60 + 26.4 with its rounding error.
    total = 0
    for number, unit in _PART.findall(body):
        scale = _NS_PER_UNIT[unit]
        whole, _, fraction = number.partition(".")
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
    try:
        return total / 1_000_000_000
    except OverflowError:
        return math.inf


def format_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` of `seconds`, truncated to milliseconds as OpenAI does.

    `0.0026` is `2ms`, `86.4` is `1m26.4s`, `5011` is `1h23m31s`. Negative values are
    written as `0s`, since a reset in the past means "now". Raises `ValueError` for a
    value that is not finite.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"seconds must be finite, got {seconds!r}")
    if seconds <= 0:
        return "0s"
    # Truncate the decimal the caller wrote, not its binary approximation: 1.001 is
    # 1.000999… in binary and would otherwise lose a millisecond.
    try:
        millis = int(Decimal(repr(float(seconds))) * 1000)
    except (InvalidOperation, ValueError):  # pragma: no cover - finite floats always convert
        millis = int(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    text = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
