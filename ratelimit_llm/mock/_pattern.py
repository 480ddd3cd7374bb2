"""Seeded strings that match a simple regular expression (a JSON Schema ``pattern``).

Only a small, common subset is generated from: literals and escapes, ``.``, character
classes (ranges, negation, ``\\d \\w \\s`` and their negations), groups (capturing,
``(?:...)``, named), alternation, the quantifiers ``* + ? {n} {n,} {n,m}`` (greedy, lazy
or possessive) and the anchors ``^`` and ``$``. Anything else (lookarounds,
backreferences, ``\\b``, Unicode properties) makes `pattern_string` return None, and so
does a generated string that Python's ``re.search`` does not match (a JSON Schema
pattern is an unanchored search): the caller then falls back to plain candidates.
"""

from __future__ import annotations

import functools
import random
import re
import string
from dataclasses import dataclass

__all__ = ["pattern_matches", "pattern_string"]

# Open-ended quantifiers repeat at most this many times more than their minimum: enough
# to look varied, short enough to stay within any sensible maxLength.
_EXTRA_REPEATS = 3
_MAX_PATTERN = 1_000
_PRINTABLE = string.ascii_letters + string.digits + " -_.,:;!?@#%&*+=/()[]{}<>'\"~^$|"
_DIGITS = string.digits
_WORD = string.ascii_letters + string.digits + "_"
_SPACE = " \t"
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
_CLASS_ESCAPES = {"d": _DIGITS, "w": _WORD, "s": _SPACE}


class _Unsupported(Exception):
    """The pattern uses syntax outside the subset we generate from."""


@dataclass(frozen=True, slots=True)
class _Chars:
    """One character out of ``choices``."""

    choices: str


@dataclass(frozen=True, slots=True)
class _Repeat:
    node: _Node
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class _Sequence:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Either:
    options: tuple[_Node, ...]


_Node = _Chars | _Repeat | _Sequence | _Either


class _Parser:
    """A recursive-descent parser for the subset, over one pattern string."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self.at != len(self.text):
            raise _Unsupported(f"unbalanced ')' at {self.at}")
        return node

    def _peek(self) -> str | None:
        return self.text[self.at] if self.at < len(self.text) else None

    def _next(self) -> str:
        if self.at >= len(self.text):
            raise _Unsupported("pattern ends early")
        char = self.text[self.at]
        self.at += 1
        return char

    def _alternation(self) -> _Node:
        options = [self._sequence()]
        while self._peek() == "|":
            self.at += 1
            options.append(self._sequence())
        return options[0] if len(options) == 1 else _Either(tuple(options))

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while (char := self._peek()) is not None and char not in "|)":
            atom = self._atom()
            if atom is not None:
                items.append(self._quantified(atom))
        return items[0] if len(items) == 1 else _Sequence(tuple(items))

    def _atom(self) -> _Node | None:
        char = self._next()
        if char in "^$":
            return None  # anchors emit nothing; re.search checks the result
        if char == ".":
            return _Chars(_PRINTABLE)
        if char == "(":
            if self._peek() == "?":
                self.at += 1
                kind = self._next()
                if kind == "P" and self._peek() == "<":
                    self.at += 1
                    kind = "<"
                if kind == "<" and self._peek() not in ("=", "!"):
                    while self._next() != ">":
                        pass
                elif kind != ":":
                    raise _Unsupported(f"group (?{kind}")
            inner = self._alternation()
            if self._next() != ")":  # pragma: no cover - _sequence stops only at | or )
                raise _Unsupported("unclosed group")
            return inner
        if char == "[":
            return self._class()
        if char == "\\":
            return _Chars(self._escape(in_class=False))
        if char in "*+?{":
            if char == "{" and not re.match(r"\d", self._peek() or ""):
                return _Chars("{")
            raise _Unsupported(f"nothing to repeat at {self.at - 1}")
        return _Chars(char)

    def _escape(self, *, in_class: bool) -> str:
        char = self._next()
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char in "DWS":
            excluded = _CLASS_ESCAPES[char.lower()]
            return "".join(c for c in _PRINTABLE if c not in excluded)
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char in "xu":
            width = 2 if char == "x" else 4
            digits = self.text[self.at : self.at + width]
            if len(digits) != width or not all(c in string.hexdigits for c in digits):
                raise _Unsupported(f"\\{char} escape")
            self.at += width
            return chr(int(digits, 16))
        if char.isalnum():
            # \b, \B, \p{..}, backreferences and the like: not in the subset.
            if in_class and char == "b":
                return "\b"
            raise _Unsupported(f"\\{char}")
        return char

    def _class(self) -> _Chars:
        negated = self._peek() == "^"
        if negated:
            self.at += 1
        members: list[str] = []
        first = True
        while True:
            char = self._next()
            if char == "]" and not first:
                break
            first = False
            if char == "[" and self._peek() == ":":
                raise _Unsupported("POSIX class")
            low = self._escape(in_class=True) if char == "\\" else char
            if (
                len(low) == 1
                and self._peek() == "-"
                and self.text[self.at + 1 : self.at + 2] != "]"
            ):
                self.at += 1
                end = self._next()
                high = self._escape(in_class=True) if end == "\\" else end
                if len(high) != 1 or ord(high) < ord(low):
                    raise _Unsupported("bad range")
                span = ord(high) - ord(low)
                if span > 4_000:  # a huge Unicode range: sample its printable ASCII part
                    members.extend(c for c in _PRINTABLE if low <= c <= high)
                else:
                    members.extend(chr(code) for code in range(ord(low), ord(high) + 1))
            else:
                members.append(low)
        chosen = "".join(dict.fromkeys("".join(members)))
        if negated:
            chosen = "".join(c for c in _PRINTABLE if c not in chosen)
        if not chosen:
            raise _Unsupported("empty class")
        return _Chars(chosen)

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        if char is None:
            return atom
        if char in "*+?":
            self.at += 1
            low = 1 if char == "+" else 0
            high = 1 if char == "?" else low + _EXTRA_REPEATS
        elif char == "{" and (bounds := re.match(r"\{(\d+)(,(\d*))?\}", self.text[self.at :])):
            self.at += bounds.end()
            low = int(bounds.group(1))
            if bounds.group(2) is None:
                high = low
            elif bounds.group(3):
                high = int(bounds.group(3))
            else:
                high = low + _EXTRA_REPEATS
            if high < low:
                raise _Unsupported("bad repeat bounds")
            high = min(high, low + _EXTRA_REPEATS)
        else:
            return atom
        if self._peek() in ("?", "+"):  # lazy or possessive: the same strings match
            self.at += 1
        return _Repeat(atom, low, high)


@functools.lru_cache(maxsize=256)
def _parsed(pattern: str) -> _Node | None:
    if len(pattern) > _MAX_PATTERN:
        return None
    try:
        return _Parser(pattern).parse()
    except _Unsupported:
        return None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return None


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` contains a match of ``pattern``; False when Python cannot compile it."""
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(text) is not None


def pattern_string(pattern: str, rng: random.Random) -> str | None:
    """A seeded string matching ``pattern``, or None when the pattern is not simple."""
    node = _parsed(pattern)
    if node is None:
        return None
    out: list[str] = []
    _emit(node, rng, out)
    text = "".join(out)
    return text if pattern_matches(pattern, text) else None


def _emit(node: _Node, rng: random.Random, out: list[str]) -> None:
    if isinstance(node, _Chars):
        out.append(node.choices[int(rng.random() * len(node.choices))])
    elif isinstance(node, _Sequence):
        for item in node.items:
            _emit(item, rng, out)
    elif isinstance(node, _Either):
        _emit(node.options[int(rng.random() * len(node.options))], rng, out)
    else:
        for _ in range(rng.randint(node.low, node.high)):
            _emit(node.node, rng, out)
