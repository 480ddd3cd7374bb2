"""Checks at the door: one helper per kind of mistake, one kind of error for each.

Every public constructor and `wrap` check their arguments here, once, so that a bad
setting fails where the user wrote it, with the parameter's name, instead of on the
first call deep inside the limiter. A wrong type is a `TypeError`, a wrong value a
`ValueError`; booleans are never numbers (``True`` is not a timeout).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_choice", "check_instance", "check_int", "check_number", "check_type"]


def check_type(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    """Raise `TypeError` unless ``value`` is an instance of ``kind``."""
    if not isinstance(value, kind):
        expected = (
            " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        )
        raise TypeError(f"{name} must be {_article(expected)}, got {type(value).__name__}")


def check_instance(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    """Like `check_type`, with ``what`` describing the expected objects in the message."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")


def check_number(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float, if it is a finite real number within the bounds.

    :raises TypeError: for a non-number (a string, ``None``, a bool).
    :raises ValueError: for NaN, an infinity, or a number out of bounds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if too_low or too_high:
        raise ValueError(f"{name} must be {_range(low, high, low_open, high_open)}, got {value!r}")
    return number


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool, not a float) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise unless ``value`` is one of ``choices`` (`TypeError` if its type is wrong)."""
    if value in choices and type(value) in {type(c) for c in choices}:
        return
    shown = ", ".join(repr(c) for c in choices)
    if not any(isinstance(value, type(c)) for c in choices):
        raise TypeError(f"{name} must be one of {shown}, got {type(value).__name__}")
    raise ValueError(f"{name} must be one of {shown}, got {value!r}")


def _range(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high) and not math.isinf(low):
        return f"> {low:g}" if low_open else f">= {low:g}"
    if math.isinf(low) and not math.isinf(high):
        return f"< {high:g}" if high_open else f"<= {high:g}"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"in {left}{low:g}, {high:g}{right}"


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"
