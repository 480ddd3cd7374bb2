"""Reading and combining JSON Schema keywords for the value generator (``_schema.py``).

Small pure functions: the bounds and counts a schema sets (ignoring values of the wrong
type, as a lenient validator would), the types it declares or implies, and `merge`, which
works an ``allOf`` of two schemas into one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ._pattern import pattern_matches

__all__ = [
    "SPAN",
    "as_list",
    "as_mapping",
    "bounds",
    "compatible",
    "count_least",
    "count_most",
    "declared_types",
    "default_fits",
    "finite",
    "inferred_type",
    "integer_span",
    "intersect_types",
    "kind_of",
    "merge",
    "multiple_of",
]

#: The range numbers are drawn from when a schema bounds them on one side or none.
SPAN = 100
_LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties")


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def count_most(value: Any) -> int | None:
    """A count keyword's value (``maxLength``, ``maxItems``...), or None if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def count_least(value: Any) -> int:
    """A lower count keyword's value (``minLength``, ``minItems``...), 0 if it is not one."""
    return count_most(value) or 0


def finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def bounds(
    schema: Mapping[str, Any],
) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """The tightest lower and upper bounds, each ``(value, exclusive)``, or None."""
    lows: list[tuple[float, bool]] = []
    highs: list[tuple[float, bool]] = []
    for name, out, exclusive_name in (
        ("minimum", lows, "exclusiveMinimum"),
        ("maximum", highs, "exclusiveMaximum"),
    ):
        bound = finite(schema.get(name))
        exclusive = schema.get(exclusive_name)
        if bound is not None:
            out.append((bound, exclusive is True))  # draft 4: a boolean beside the bound
        exclusive_bound = finite(exclusive)
        if exclusive_bound is not None:
            out.append((exclusive_bound, True))
    low = max(lows, key=lambda bound: (bound[0], bound[1])) if lows else None
    high = min(highs, key=lambda bound: (bound[0], not bound[1])) if highs else None
    return low, high


def integer_span(first: int | None, last: int | None) -> tuple[int, int]:
    if first is None and last is None:
        return 0, SPAN
    if first is None:
        assert last is not None
        return last - SPAN, last
    if last is None:
        return first, first + SPAN
    return first, last


def multiple_of(schema: Mapping[str, Any]) -> Fraction | None:
    step = finite(schema.get("multipleOf"))
    if step is None or step <= 0:
        return None
    return Fraction(repr(step))


def default_fits(schema: Mapping[str, Any], value: Any, kinds: list[str]) -> bool:
    """Whether a ``default`` holds for ``schema`` (JSON Schema does not require it to)."""
    kind = kind_of(value)
    if kind not in kinds:
        return False
    if kind == "string":
        least = count_least(schema.get("minLength"))
        most = count_most(schema.get("maxLength"))
        pattern = schema.get("pattern")
        if len(value) < least or (most is not None and len(value) > most):
            return False
        return not isinstance(pattern, str) or pattern_matches(pattern, value)
    if kind in ("integer", "number"):
        low, high = bounds(schema)
        if low is not None and (value < low[0] or (low[1] and value == low[0])):
            return False
        if high is not None and (value > high[0] or (high[1] and value == high[0])):
            return False
        step = multiple_of(schema)
        return step is None or (Fraction(repr(float(value))) / step).denominator == 1
    return kind in ("boolean", "null")  # containers: drawn, not trusted


def kind_of(value: Any) -> str:
    """The JSON type of ``value`` (an integral float is an integer, as JSON Schema says)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "unknown"


def inferred_type(schema: Mapping[str, Any]) -> str:
    """The type a schema without ``type`` implies by its keywords (a string if none)."""
    if any(key in schema for key in ("properties", "required", "additionalProperties")):
        return "object"
    if any(key in schema for key in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(key in schema for key in ("minimum", "maximum", "multipleOf", "exclusiveMinimum")):
        return "number"
    for value in (schema.get("const"), *as_list(schema.get("enum"))[:1]):
        if value is not None:
            return kind_of(value)
    return "string"


def compatible(branch: Mapping[str, Any], siblings: Mapping[str, Any]) -> bool:
    """Whether a union branch can hold beside the schema around it (by declared types)."""
    mine, theirs = declared_types(branch), declared_types(siblings)
    return mine is None or theirs is None or bool(intersect_types(mine, theirs))


def declared_types(schema: Mapping[str, Any]) -> list[str] | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [item for item in kind if isinstance(item, str)]
    return None


def intersect_types(first: list[str], second: list[str]) -> list[str]:
    out = [kind for kind in first if kind in second]
    if "integer" in first and "number" in second and "integer" not in out:
        out.append("integer")
    if "number" in first and "integer" in second and "integer" not in out:
        out.append("integer")
    return out


def merge(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two schemas that must both hold, as one (an ``allOf`` of two, worked out)."""
    out = dict(first)
    for key, value in second.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "properties" and isinstance(mine, Mapping) and isinstance(value, Mapping):
            merged = dict(mine)
            for name, sub in value.items():
                merged[name] = {"allOf": [merged[name], sub]} if name in merged else sub
            out[key] = merged
        elif key == "required" and isinstance(mine, list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*mine, *value]))
        elif key in _LOWER_BOUNDS and finite(mine) is not None and finite(value) is not None:
            out[key] = max(mine, value)
        elif key in _UPPER_BOUNDS and finite(mine) is not None and finite(value) is not None:
            out[key] = min(mine, value)
        elif key == "type":
            mine_types = declared_types(out) or []
            theirs = declared_types(second) or []
            both = intersect_types(mine_types, theirs)
            out[key] = both if both else mine
        elif key == "enum" and isinstance(mine, list) and isinstance(value, list):
            both_values = [item for item in mine if item in value]
            out[key] = both_values or mine
        elif key in ("items", "additionalProperties", "contains", "propertyNames"):
            if mine is False or value is False:
                out[key] = False
            elif isinstance(mine, Mapping) and isinstance(value, Mapping):
                out[key] = {"allOf": [mine, value]}
            elif isinstance(value, Mapping):
                out[key] = value
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(mine, list):
            # Both sides have a union: keep ours, and require theirs through allOf.
            out["allOf"] = [*as_list(out.get("allOf")), {key: value}]
        # Any other keyword: the first schema's wins (descriptions, titles, formats...).
    return out
