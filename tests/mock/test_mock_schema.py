"""The structured-output generator: seeded JSON values valid for their JSON Schema.

Every value is checked twice where a model exists: by ``jsonschema`` against the schema
it was drawn for (formats included where jsonschema can check them), and by parsing it
with the pydantic model the schema came from, as the SDK's ``parse`` helpers will.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import itertools
import json
import random
import re
import uuid
from types import GenericAlias
from typing import Annotated, Any, Literal, Optional

import jsonschema
import openai
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratelimit_llm.mock import count_tokens
from ratelimit_llm.mock._pattern import pattern_string
from ratelimit_llm.mock._schema import json_text, value_for_schema
from ratelimit_llm.mock._text import token_pieces

_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _validate(schema: Any, value: Any, *, draft: Any = jsonschema.Draft202012Validator) -> None:
    draft(schema, format_checker=_CHECKER).validate(value)


def _draws(schema: Any, seeds: range = range(20)) -> list[Any]:
    return [value_for_schema(schema, random.Random(seed)) for seed in seeds]


# -- hand-written schemas: each keyword on its own ------------------------------------------

_SCHEMAS: list[dict[str, Any]] = [
    {"type": "string", "minLength": 12, "maxLength": 14},
    {"type": "string", "maxLength": 1},
    {"type": "string", "pattern": r"^[A-Z]{2}-\d{3,4}$"},
    {"type": "string", "pattern": r"^(?:foo|bar)+(baz)?$", "maxLength": 12},
    {"type": "string", "pattern": r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"},  # pydantic's Decimal
    {"type": "string", "format": "date"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "ipv4"},
    {"type": "string", "format": "ipv6"},
    {"type": "string", "format": "uri"},
    {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"type": "integer"},
    },
    {"type": "integer", "minimum": -5, "maximum": 5},
    {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 5},
    {"type": "integer", "minimum": 10, "multipleOf": 7},
    {"type": "integer", "multipleOf": 2.5, "maximum": 0},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001},
    {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.1},
    {"type": "number", "minimum": 1e6},
    {"type": "boolean"},
    {"type": "null"},
    {"type": ["integer", "null"]},
    {"const": {"fixed": [1, 2]}},
    {"enum": ["a", 1, None]},
    {"type": "integer", "enum": [1.5, 2, 3]},
    {"type": "string", "default": "hello", "maxLength": 5},
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 3},
    {"type": "object", "propertyNames": {"enum": ["x", "y"]}, "additionalProperties": True},
    {"type": "object", "required": ["x"], "maxProperties": 1, "properties": {"y": {}}},
    {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "dependentRequired": {"a": ["b"]},
        "required": ["a"],
    },
    {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
    {"type": "array", "items": {"enum": [1, 2, 3]}, "uniqueItems": True, "minItems": 3},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "array", "items": {"type": "integer"}, "contains": {"const": 7}},
    {"type": "array", "maxItems": 0},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"const": 1}}, "required": ["b"]},
        ]
    },
    {"allOf": [{"type": "integer", "minimum": 3}, {"maximum": 4}]},
    {"anyOf": [{"type": "string", "maxLength": 0}, {"type": "integer"}]},
    {"oneOf": [{"type": "null"}, {"type": "boolean"}], "type": "boolean"},
    {"type": "object", "properties": {"x": {"type": "integer", "nullable": True}}},
    {"$defs": {"A": {"type": "integer", "minimum": 100}}, "$ref": "#/$defs/A"},
    {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["v", "next"],
            }
        },
        "$ref": "#/$defs/Node",
    },
    {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["kids"],
    },
    {
        "$defs": {"a/b": {"const": "slash"}, "c~d": {"const": "tilde"}},
        "type": "array",
        "prefixItems": [{"$ref": "#/$defs/a~1b"}, {"$ref": "#/$defs/c~0d"}],
        "minItems": 2,
    },
    {},
    {"not": {"type": "string"}, "type": "integer"},
]


@pytest.mark.parametrize("schema", _SCHEMAS, ids=lambda schema: json.dumps(schema)[:60])
def test_each_keyword_is_honoured(schema: dict[str, Any]) -> None:
    for value in _draws(schema):
        _validate(schema, value)
        assert json.loads(json_text(value)) == value


def test_draft_7_definitions_and_draft_4_exclusive_booleans() -> None:
    schema: dict[str, Any] = {
        "definitions": {"Positive": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
        "type": "object",
        "properties": {
            "p": {"$ref": "#/definitions/Positive"},
            "q": {"items": [{"type": "string"}]},
        },
        "required": ["p", "q"],
    }
    for value in _draws(schema):
        jsonschema.Draft7Validator(schema).validate(value)
        assert value["p"] > 0


def test_same_seed_gives_the_same_value_and_seeds_vary() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}, "l": {"type": "array"}},
        "required": ["n", "s", "l"],
    }
    assert _draws(schema, range(5)) == _draws(schema, range(5))
    assert len({json.dumps(value) for value in _draws(schema)}) > 10


def test_optional_properties_come_and_go_and_defaults_are_used() -> None:
    schema = {
        "type": "object",
        "properties": {"opt": {"type": "integer"}, "d": {"type": "string", "default": "dflt"}},
    }
    values = _draws(schema, range(60))
    assert any("opt" in value for value in values)
    assert any("opt" not in value for value in values)
    assert any(value.get("d") == "dflt" for value in values)
    assert any(value.get("d", "dflt") != "dflt" for value in values)


def test_unsatisfiable_schemas_still_give_json() -> None:
    schema: Any
    for schema in (
        False,
        {"type": "integer", "minimum": 5, "maximum": 1},
        {"type": "integer", "minimum": 1, "maximum": 2, "multipleOf": 10},
        {"$ref": "#/$defs/Missing"},
        {"type": "string", "pattern": r"^\p{Lu}+$"},
        {"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]},
        {"anyOf": []},
        {"type": "mystery"},
    ):
        for value in _draws(schema, range(3)):
            assert json.loads(json_text(value)) == value


def test_hostile_nesting_and_shared_subtrees_cost_bounded_work() -> None:
    deep: Any = {"type": "integer"}
    for _ in range(5_000):
        deep = {"allOf": [deep]}
    # Each definition refers three times to the next: 3**40 paths if nothing bounded them.
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 3} for i in range(40)
    }
    defs["d40"] = {"type": "string"}
    shared = {"$defs": defs, "$ref": "#/$defs/d0"}
    wide = {"anyOf": [{"$ref": "#"}] * 1_000 + [{"type": "null"}]}
    for schema in (deep, shared, wide):
        value = value_for_schema(schema, random.Random(0))
        assert json.loads(json_text(value)) == value
    assert isinstance(value_for_schema(shared, random.Random(1)), str)


def test_recursion_terminates_and_output_stays_small() -> None:
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
            "parent": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
        },
        "required": ["name", "children", "parent"],
    }
    for value in _draws(tree):
        _validate(tree, value)
        assert len(json_text(value)) < 20_000
    # No finite value exists (every node needs two children): the draw still ends, small.
    endless = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}, "minItems": 2}},
        "required": ["children"],
    }
    for value in _draws(endless, range(3)):
        assert len(json_text(value)) < 200_000


def test_simple_patterns_generate_matching_strings() -> None:
    rng = random.Random(3)
    for pattern in (
        r"^\d{3}-\d{4}$",
        r"^[a-f0-9]{8}$",
        r"^#[0-9a-fA-F]{6}$",
        r"^(cat|dog)s?$",
        r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
        r"^\w+(\.\w+)*$",
        r"ab+c",
        r"^\u00e9\x41[.]\*$",
        r"^[+-]?\d+(\.\d{1,2})?$",
    ):
        for _ in range(20):
            text = pattern_string(pattern, rng)
            assert text is not None and re.search(pattern, text), (pattern, text)


@pytest.mark.parametrize("pattern", [r"(?=a)a", r"(a)\1", r"\bword", r"\p{L}", "[", "a{2,1}", "*"])
def test_patterns_outside_the_subset_are_refused(pattern: str) -> None:
    assert pattern_string(pattern, random.Random(0)) is None


@given(st.text(max_size=200))
def test_token_pieces_join_back_and_count_one_token_each(text: str) -> None:
    pieces = token_pieces(text)
    assert len(pieces) == count_tokens(text)
    if pieces:
        assert "".join(pieces) == text
    assert all(count_tokens(piece) == 1 for piece in pieces)


# -- property tests over pydantic models ---------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


_LEAVES: list[Any] = [
    str,
    int,
    float,
    bool,
    datetime.date,
    datetime.datetime,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    decimal.Decimal,
    bytes,
    pydantic.AnyUrl,
    pydantic.IPvAnyAddress,
    Color,
    Level,
    Literal["x", "y"],
    Literal[1, "one"],
    Annotated[int, pydantic.Field(ge=-3, le=3)],
    Annotated[int, pydantic.Field(gt=0, multiple_of=5)],
    Annotated[float, pydantic.Field(gt=0, lt=1)],
    Annotated[float, pydantic.Field(ge=0, le=5, multiple_of=0.25)],
    Annotated[str, pydantic.Field(min_length=3, max_length=8)],
    Annotated[str, pydantic.Field(pattern=r"^[A-Z]{3}\d{2}$")],
    Annotated[list[int], pydantic.Field(min_length=2, max_length=3)],
    pydantic.Json[list[int]],
]
_MODEL_NUMBERS = itertools.count()


def _model(fields: list[tuple[Any, bool]]) -> Any:
    """A pydantic model with one field per type; optional ones default to None."""
    spec: dict[str, Any] = {}
    for index, (kind, required) in enumerate(fields):
        spec[f"f{index}"] = (kind, ...) if required else (Optional[kind], None)  # noqa: UP045
    return pydantic.create_model(f"M{next(_MODEL_NUMBERS)}", **spec)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        children.map(lambda kind: GenericAlias(list, (kind,))),
        children.map(
            lambda kind: GenericAlias(set if kind in (int, str, Color) else list, (kind,))
        ),
        children.map(lambda kind: GenericAlias(dict, (str, kind))),
        st.tuples(children, children).map(lambda pair: GenericAlias(tuple, pair)),
        st.tuples(children, children).map(lambda pair: pair[0] | pair[1]),
        st.lists(st.tuples(children, st.booleans()), min_size=1, max_size=4).map(_model),
    )


_TYPES = st.recursive(st.sampled_from(_LEAVES), _containers, max_leaves=10)
_MODELS = st.lists(st.tuples(_TYPES, st.booleans()), min_size=1, max_size=6).map(_model)


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, pydantic.BaseModel)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=_MODELS, seed=st.integers(0, 2**32))
def test_values_for_pydantic_schemas_validate(model: Any, seed: int) -> None:
    schema = model.model_json_schema()
    value = value_for_schema(schema, random.Random(seed))
    _validate(schema, value)
    model.model_validate_json(json_text(value))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=_MODELS, seed=st.integers(0, 2**32))
def test_values_for_the_sdks_strict_schemas_validate(model: Any, seed: int) -> None:
    """``pydantic_function_tool`` sends the strict form ``parse`` uses (all required)."""
    schema: Any = openai.pydantic_function_tool(model)["function"]["parameters"]
    value = value_for_schema(schema, random.Random(seed))
    _validate(schema, value)
    model.model_validate_json(json_text(value, compact=True))


@settings(max_examples=200, deadline=None)
@given(
    low=st.integers(-1000, 1000),
    span=st.integers(0, 500),
    step=st.sampled_from([None, 1, 2, 3, 7, 0.5, 2.5]),
    exclusive=st.booleans(),
    kind=st.sampled_from(["integer", "number"]),
    seed=st.integers(0, 2**16),
)
def test_numeric_bounds_and_multiples(
    low: int, span: int, step: float | None, exclusive: bool, kind: str, seed: int
) -> None:
    schema: dict[str, Any] = {"type": kind}
    if exclusive:
        schema.update(exclusiveMinimum=low, exclusiveMaximum=low + span + 2)
    else:
        schema.update(minimum=low, maximum=low + span)
    if step is not None:
        schema["multipleOf"] = step
        # Only schemas that some value satisfies: a multiple must lie inside the bounds.
        candidates = [
            k * step for k in range(int((low - 10) / step), int((low + span + 10) / step) + 1)
        ]
        if not any(jsonschema.Draft202012Validator(schema).is_valid(c) for c in candidates):
            return
    _validate(schema, value_for_schema(schema, random.Random(seed)))
