"""Seeded JSON values that satisfy a JSON Schema: the fake model's structured answers.

`value_for_schema(schema, rng)` is what the mock answers to ``response_format`` /
``text.format`` JSON schemas and what it passes as a tool call's ``arguments``. The value
is drawn from ``rng``, so the same request to a server with the same seed gets the same
JSON. It covers what pydantic, the SDK's ``pydantic_function_tool`` and the frameworks
emit:

- ``type`` (a name or a list; ``nullable: true`` too), ``const``, ``enum`` and ``default``;
- objects: ``properties``, ``required``, ``additionalProperties`` (``false``, ``true`` or
  a schema), ``propertyNames``, ``minProperties``/``maxProperties``,
  ``dependentRequired``;
- arrays: ``items``, ``prefixItems`` (and the old list form of ``items``),
  ``minItems``/``maxItems``, ``uniqueItems``, ``contains``;
- strings: ``minLength``/``maxLength``, ``format`` (``date``, ``date-time``, ``time``,
  ``duration``, ``email``, ``uri``/``url``, ``uuid``, ``hostname``, ``ipv4``, ``ipv6``,
  ``base64``...), ``pattern`` in the simple subset of `pattern_string`, and
  ``contentSchema`` (a string holding JSON, as pydantic's ``Json[...]``);
- numbers and integers: ``minimum``/``maximum``, ``exclusiveMinimum``/``exclusiveMaximum``
  (numbers, or draft 4's booleans), ``multipleOf``;
- ``$ref`` to ``#``, ``#/$defs/...``, ``#/definitions/...`` or any local JSON pointer;
  ``allOf`` (merged), ``anyOf``/``oneOf`` (the first branch that can be satisfied).

Optional properties are present about two times in three. Past a depth of six, or once
about 200 values have been drawn, the generator keeps to the minimum (required
properties only, ``minItems`` elements, the ``null`` or the non-recursive branch of a
union), so recursive models terminate and answers stay short.

What cannot be honoured still gives valid JSON, never an exception: a pattern outside
the subset is answered with the first of a few plain candidates it matches (else plain
words); ``not``, ``if``/``then``/``else``, ``patternProperties`` and ``unevaluated*``
are ignored; ``oneOf`` is not checked for exclusivity; unsatisfiable schemas (``false``,
contradictory bounds, a required recursion with no end, a ``$ref`` that does not
resolve) get a best-effort value (``null`` for ``false``, and for every value past the
5,000th, so no schema makes a draw unbounded).
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from ._formats import STRING_FORMATS
from ._keywords import (
    SPAN,
    as_list,
    as_mapping,
    bounds,
    compatible,
    count_least,
    count_most,
    default_fits,
    inferred_type,
    integer_span,
    kind_of,
    merge,
    multiple_of,
)
from ._pattern import pattern_matches, pattern_string
from ._text import fake_words

__all__ = ["json_text", "value_for_schema"]

_SHALLOW_DEPTH = 6
_NODE_BUDGET = 200
# Even the minimum can grow without end (a node that needs two nodes): past this many
# values every further one is null, so a hostile schema costs bounded time and memory.
_HARD_BUDGET = 5_000
_MAX_DEPTH = 48
# Combinator steps (a $ref followed, an allOf part merged, a union branch looked at...)
# in one draw, all told.
_STEP_BUDGET = 100_000
_COMBINATORS = ("$ref", "allOf", "anyOf", "oneOf")
_MAX_REFS = 32
_MAX_ATTEMPTS = 8
_OPTIONAL_ODDS = 0.67
_DEFAULT_ODDS = 0.5
_KNOWN_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
# Plain strings tried, in order, against a pattern we cannot generate from.
_FALLBACKS = (
    "a",
    "0",
    "abc",
    "1",
    "A",
    "a1",
    "1.0",
    "-1",
    "abc123",
    "2024-01-01",
    "user@example.com",
    "https://example.com",
)


def value_for_schema(schema: Any, rng: random.Random) -> Any:
    """A JSON value valid for ``schema`` (a JSON Schema; ``$ref`` resolves against it)."""
    return _Generator(schema, rng).value(schema, 0)


def json_text(value: Any, *, compact: bool = False) -> str:
    """``value`` as the model writes it: spaced for answers, compact for tool arguments."""
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(value, ensure_ascii=False, separators=separators)


class _Generator:
    """One draw: the root (for ``$ref``), the generator and how much has been drawn."""

    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.nodes = 0
        self.steps = 0

    # -- dispatch ---------------------------------------------------------------------

    def value(self, schema: Any, depth: int) -> Any:
        self.nodes += 1
        if schema is False or self.nodes > _HARD_BUDGET:
            return None
        if not isinstance(schema, Mapping):
            return self._words()  # ``true``, or junk: anything goes
        if depth > _MAX_DEPTH:
            return None
        shallow = depth > _SHALLOW_DEPTH or self.nodes > _NODE_BUDGET
        flat = self._flatten(schema, shallow)
        if "const" in flat:
            return copy.deepcopy(flat["const"])
        kinds = self._types(flat)
        enum = flat.get("enum")
        if isinstance(enum, list) and enum:
            fitting = [item for item in enum if kind_of(item) in kinds] or enum
            return copy.deepcopy(fitting[int(self.rng.random() * len(fitting))])
        fits = "default" in flat and default_fits(flat, flat["default"], kinds)
        if fits and self.rng.random() < _DEFAULT_ODDS:
            return copy.deepcopy(flat["default"])
        kind = self._choose_type(kinds, shallow)
        if kind == "object":
            return self._object(flat, depth, shallow)
        if kind == "array":
            return self._array(flat, depth, shallow)
        if kind == "string":
            return self._string(flat, depth)
        if kind == "integer":
            return self._integer(flat)
        if kind == "number":
            return self._number(flat)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    def _types(self, schema: Mapping[str, Any]) -> list[str]:
        """The types ``schema`` allows, most specific first (inferred when not stated)."""
        declared = schema.get("type")
        if isinstance(declared, str):
            kinds = [declared]
        elif isinstance(declared, list):
            kinds = [kind for kind in declared if isinstance(kind, str)]
        else:
            kinds = []
        kinds = [kind for kind in kinds if kind in _KNOWN_TYPES]
        if not kinds:
            kinds = [inferred_type(schema)]
        if schema.get("nullable") is True and "null" not in kinds:
            kinds.append("null")
        if "number" in kinds and "integer" not in kinds:
            kinds.append("integer")  # an integer is a number: enum and default may hold one
        return kinds

    def _choose_type(self, kinds: list[str], shallow: bool) -> str:
        if shallow and "null" in kinds:
            return "null"
        concrete = [kind for kind in kinds if kind != "null"]
        return concrete[0] if concrete else "null"

    # -- combinators ------------------------------------------------------------------

    def _flatten(self, schema: Mapping[str, Any], shallow: bool, level: int = 0) -> dict[str, Any]:
        """``schema`` with its ``$ref``, ``allOf``, ``anyOf`` and ``oneOf`` worked in.

        Bounded in nesting and in total work (a ``$ref`` can point many times at the same
        subtree): past either bound, what is left of the combinators is ignored.
        """
        flat = dict(schema)
        for _ in range(_MAX_REFS):
            self.steps += 1
            if level > _MAX_REFS or self.steps > _STEP_BUDGET:
                break
            if "$ref" in flat:
                target = self._resolve(flat.pop("$ref"))
                flat = merge(target, flat) if isinstance(target, Mapping) else flat
            elif "allOf" in flat:
                parts = flat.pop("allOf")
                for part in parts if isinstance(parts, list) else ():
                    if isinstance(part, Mapping):
                        flat = merge(flat, self._flatten(part, shallow, level + 1))
            elif "anyOf" in flat or "oneOf" in flat:
                key = "anyOf" if "anyOf" in flat else "oneOf"
                branches = flat.pop(key)
                branch = self._branch(branches, flat, shallow)
                if branch is not None:
                    flat = merge(flat, self._flatten(branch, shallow, level + 1))
            else:
                break
        # Whatever is left unworked is dropped, so the caller does not take it up again.
        for key in _COMBINATORS:
            flat.pop(key, None)
        return flat

    def _branch(
        self, branches: Any, siblings: Mapping[str, Any], shallow: bool
    ) -> Mapping[str, Any] | None:
        """The ``anyOf``/``oneOf`` branch to follow: the first that can be satisfied.

        When keeping to the minimum, a ``null`` branch, else one without a ``$ref`` (the
        way out of a recursion), goes first.
        """
        if not isinstance(branches, list):
            return None
        self.steps += len(branches)
        viable = [
            branch
            for branch in branches
            if isinstance(branch, Mapping) and compatible(self._target(branch), siblings)
        ]
        if not viable:
            return None
        if shallow:
            for branch in viable:
                if branch.get("type") == "null":
                    return branch
            for branch in viable:
                if "$ref" not in branch:
                    return branch
        return viable[0]

    def _target(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """The schema at the end of a chain of ``$ref`` (no combinator is worked in)."""
        for _ in range(_MAX_REFS):
            target = self._resolve(schema.get("$ref")) if "$ref" in schema else None
            if not isinstance(target, Mapping):
                break
            schema = target
        return schema

    def _resolve(self, ref: Any) -> Any:
        """The schema a local ``$ref`` points to (``#`` or a JSON pointer), or None."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        target = self.root
        for raw in ref[1:].split("/")[1:] if ref != "#" else ():
            name = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and name in target:
                target = target[name]
            elif isinstance(target, list) and name.isdigit() and int(name) < len(target):
                target = target[int(name)]
            else:
                return None
        return target

    # -- objects and arrays -----------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], depth: int, shallow: bool) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [name for name in as_list(schema.get("required")) if isinstance(name, str)]
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if not isinstance(name, str):
                continue
            if name in required or (not shallow and self.rng.random() < _OPTIONAL_ODDS):
                out[name] = self.value(sub, depth + 1)
        for name in required:
            if name not in out:
                out[name] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
        for name in list(out):
            for needed in as_list(as_mapping(schema.get("dependentRequired")).get(name)):
                if isinstance(needed, str) and needed not in out:
                    out[needed] = self.value(properties.get(needed, {}), depth + 1)
        least = count_least(schema.get("minProperties"))
        most = count_most(schema.get("maxProperties"))
        wanted = least
        if isinstance(extra, Mapping) and not properties and not shallow:
            wanted = max(least, self.rng.randint(1, 2))  # a dict-like object: a few entries
        if extra is not False:
            names = schema.get("propertyNames")
            for _ in range(_MAX_ATTEMPTS * max(wanted, 1)):
                if len(out) >= wanted or (most is not None and len(out) >= most):
                    break
                name = self._property_name(names, depth)
                if name not in out:
                    out[name] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
        if most is not None and len(out) > most:
            for name in [name for name in out if name not in required][: len(out) - most]:
                del out[name]
        return out

    def _property_name(self, names: Any, depth: int) -> str:
        if isinstance(names, Mapping):
            name = self.value({"type": "string", **names}, depth + 1)
            if isinstance(name, str):
                return name
        return fake_words(self.rng, 1)

    def _array(self, schema: Mapping[str, Any], depth: int, shallow: bool) -> list[Any]:
        items = schema.get("items", {})
        prefix = as_list(schema.get("prefixItems"))
        if isinstance(items, list):  # draft 4-2019: a list of items is a tuple
            prefix, items = items, schema.get("additionalItems", {})
        least = count_least(schema.get("minItems"))
        most = count_most(schema.get("maxItems"))
        if shallow:
            size = least
        else:
            low = max(least, 1) if most is None or most >= 1 else 0
            high = low + 2 if most is None else max(low, min(most, low + 2))
            size = self.rng.randint(low, high)
        if items is False:
            size = min(max(size, least), len(prefix))
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[str] = set()
        for index in range(size):
            sub = prefix[index] if index < len(prefix) else items
            element = self.value(sub, depth + 1)
            if unique:
                key = json.dumps(element, sort_keys=True)
                for _ in range(_MAX_ATTEMPTS):
                    if key not in seen:
                        break
                    element = self.value(sub, depth + 1)
                    key = json.dumps(element, sort_keys=True)
                if key in seen and len(out) >= least:
                    break  # no new value to add: stop short rather than repeat one
                seen.add(key)
            out.append(element)
        contains = schema.get("contains")
        if isinstance(contains, Mapping) and len(out) > len(prefix):
            base = items if isinstance(items, Mapping) else {}
            out[len(prefix)] = self.value({"allOf": [base, contains]}, depth + 1)
        elif isinstance(contains, Mapping) and not out and items is not False:
            out.append(self.value(contains, depth + 1))
        return out

    # -- scalars ----------------------------------------------------------------------

    def _string(self, schema: Mapping[str, Any], depth: int) -> str:
        least = count_least(schema.get("minLength"))
        most = count_most(schema.get("maxLength"))

        def fits(text: str) -> bool:
            return len(text) >= least and (most is None or len(text) <= most)

        content = schema.get("contentSchema")
        if isinstance(content, Mapping) or schema.get("contentMediaType") == "application/json":
            text = json_text(self.value(content if isinstance(content, Mapping) else {}, depth + 1))
            if fits(text):
                return text
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            for _ in range(_MAX_ATTEMPTS):
                drawn = pattern_string(pattern, self.rng)
                if drawn is not None and fits(drawn):
                    return drawn
            for text in _FALLBACKS:
                if fits(text) and pattern_matches(pattern, text):
                    return text
        form = schema.get("format")
        make = STRING_FORMATS.get(form) if isinstance(form, str) else None
        if make is not None:
            text = make(self.rng)
            if fits(text):
                return text
        text = self._words()
        if len(text) < least:
            text += "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(least))
        return text[:most] if most is not None else text

    def _words(self) -> str:
        return fake_words(self.rng, self.rng.randint(1, 3))

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high = bounds(schema)
        first = math.ceil(low[0]) if low is not None else None
        if low is not None and low[1] and first == low[0]:
            first += 1
        last = math.floor(high[0]) if high is not None else None
        if high is not None and high[1] and last == high[0]:
            last -= 1
        first, last = integer_span(first, last)
        step = multiple_of(schema)
        if step is not None:
            # Integers that are multiples of p/q are the multiples of p (p, q coprime).
            stride = abs(step.numerator)
            lowest, highest = -(-first // stride), last // stride
            if lowest <= highest:
                return self.rng.randint(lowest, highest) * stride
            return lowest * stride  # no multiple in range: the bound cannot all be met
        return self.rng.randint(first, last) if first <= last else first

    def _number(self, schema: Mapping[str, Any]) -> float | int:
        low, high = bounds(schema)
        step = multiple_of(schema)

        def fits(value: float) -> bool:
            if low is not None and (value < low[0] or (low[1] and value == low[0])):
                return False
            return high is None or not (value > high[0] or (high[1] and value == high[0]))

        first = low[0] if low is not None else None
        last = high[0] if high is not None else None
        if first is None and last is None:
            first, last = 0.0, float(SPAN)
        elif first is None:
            assert last is not None
            first = last - SPAN
        elif last is None:
            last = first + SPAN
        if step is not None:
            # k * step, tried until one divides back exactly (0.1 * 3 does not).
            lowest, highest = math.ceil(first / step), math.floor(last / step)
            # An exclusive bound that is itself a multiple is no candidate: step inside it.
            if low is not None and low[1] and lowest * step <= low[0]:
                lowest += 1
            if high is not None and high[1] and highest * step >= high[0]:
                highest -= 1
            candidates = (
                [self.rng.randint(lowest, highest) for _ in range(4)] if lowest <= highest else []
            )
            candidates += [0, lowest, highest]
            for k in candidates:
                value = float(step * k)
                if fits(value) and (value / float(step)).is_integer():
                    return int(value) if value.is_integer() and abs(value) < 2**53 else value
            return float(step * lowest)
        value = round(self.rng.uniform(first, last), 2)
        if not fits(value):
            value = (first + last) / 2
        # An integral value is written as an integer, so equal numbers look equal (uniqueItems).
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
