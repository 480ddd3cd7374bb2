"""What a request asks the answer to be: prose, JSON for a schema, or a call to a tool.

The frameworks (instructor, pydantic-ai, LangChain, the Agents SDK, LiteLLM) send
``response_format`` / ``text.format`` JSON schemas and function ``tools``; the fake model
must answer in kind for their loops to run. The decision is made from the body alone,
so it is deterministic and the same in the sync and batch paths:

- ``tool_choice`` ``"none"`` (or no function tools): no call.
- A named function (``{"type": "function", ...}``), or ``"required"``: always a call.
- ``"auto"`` (the default with tools): a call when the last message is the user's; a
  text answer when it is anything else, a tool result above all, so an agent loop
  ends after one round trip.
- The function called is the first allowed one not yet called in the conversation (by
  name, from the assistant's earlier calls), else the first one: a ``"required"`` loop
  reaches a framework's output tool (pydantic-ai's ``final_result``) after the others.

The text answer is JSON when a JSON schema is given (``json_object`` has none: the
answer follows a JSON Schema found in the messages, as instructor's JSON modes embed
one, else it is ``{"answer": "..."}``), prose otherwise.

What the server reads besides the messages is returned as prompt text: the tools and
the JSON schema format as the compact JSON the SDK sends, which is how
``ratelimit_llm``'s `CostEstimator` counts them, so the mock charges them the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._errors import BadRequest

__all__ = ["Function", "ReplyPlan", "chat_reply", "responses_reply"]

_JSON_OBJECT_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_FORMATS = ("text", "json_object", "json_schema")
_MODES = ("none", "auto", "required")
# Looking for an embedded schema is bounded: a few candidate braces in a few texts.
_MAX_SCHEMA_TEXTS = 16
_MAX_BRACES = 16
_MAX_SCHEMA_TEXT = 200_000


@dataclass(frozen=True, slots=True)
class Function:
    """A function the model may call: its name and its ``parameters`` JSON Schema."""

    name: str
    parameters: Any = None


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """What the fake model answers: a call to ``call``, else JSON for ``schema``, else prose.

    ``legacy`` renders the call as chat's old ``function_call`` instead of ``tool_calls``.
    """

    call: Function | None = None
    schema: Any = None
    legacy: bool = False
    #: The Responses API's echo of the request's ``text``, ``tools`` and ``tool_choice``.
    echo: dict[str, Any] = field(default_factory=dict)


#: The plan of a request that names no tools and no format: prose (the common case).
_PROSE = ReplyPlan()
_CHAT_KEYS = ("response_format", "tools", "functions", "tool_choice", "function_call")
_RESPONSES_KEYS = ("text", "tools", "tool_choice")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _invalid(message: str, param: str, code: str = "invalid_value") -> BadRequest:
    return BadRequest(message, param, code)


# -- the answer's format ----------------------------------------------------------------


def _json_schema_of(container: dict[str, Any], param: str) -> Any:
    """The ``schema`` of a json_schema format (an object if absent)."""
    schema = container.get("schema")
    if schema is None:
        return _ANY_OBJECT
    if not isinstance(schema, dict | bool):
        raise _invalid(
            f"Invalid type for '{param}.schema': expected an object.",
            f"{param}.schema",
            "invalid_type",
        )
    return schema


def _format_type(value: Any, param: str) -> str:
    if not isinstance(value, dict):
        raise _invalid(f"Invalid type for '{param}': expected an object.", param, "invalid_type")
    kind = value.get("type")
    if kind not in _FORMATS:
        raise _invalid(
            f"Invalid value: {kind!r}. Supported values are: 'json_object', 'json_schema', "
            "and 'text'.",
            f"{param}.type",
        )
    return str(kind)


def _chat_schema(value: Any, prompt: list[str], extra: list[str]) -> Any:
    """The schema chat's ``response_format`` asks for, or None for prose."""
    if value is None:
        return None
    kind = _format_type(value, "response_format")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise _invalid(
                "Missing required parameter: 'response_format.json_schema'.",
                "response_format.json_schema",
                "missing_required_parameter",
            )
        extra.append(_compact(value))
        return _json_schema_of(spec, "response_format.json_schema")
    if kind == "json_object":
        return schema_in_texts(prompt) or _JSON_OBJECT_ANSWER
    return None


def _responses_schema(text: Any, prompt: list[str], extra: list[str]) -> Any:
    """The schema the Responses API's ``text.format`` asks for, or None for prose."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _invalid("Invalid type for 'text': expected an object.", "text", "invalid_type")
    value = text.get("format")
    if value is None:
        return None
    kind = _format_type(value, "text.format")
    if kind == "json_schema":
        extra.append(_compact(value))
        return _json_schema_of(value, "text.format")
    if kind == "json_object":
        return schema_in_texts(prompt) or _JSON_OBJECT_ANSWER
    return None


def schema_in_texts(texts: Iterable[str]) -> dict[str, Any] | None:
    """The first JSON Schema (an object with ``properties``) written out in ``texts``."""
    decoder = json.JSONDecoder()
    for count, text in enumerate(texts):
        if count >= _MAX_SCHEMA_TEXTS:
            break
        if len(text) > _MAX_SCHEMA_TEXT:
            continue
        start = text.find("{")
        for _ in range(_MAX_BRACES):
            if start < 0:
                break
            try:
                value, _end = decoder.raw_decode(text, start)
            except (ValueError, RecursionError):
                value = None
            if isinstance(value, dict) and isinstance(value.get("properties"), dict):
                return value
            start = text.find("{", start + 1)
    return None


# -- tools ------------------------------------------------------------------------------


def _tools_list(value: Any, param: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(
            f"Invalid type for '{param}': expected an array of objects.", param, "invalid_type"
        )
    return value


def _function(spec: Any, param: str) -> Function:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise _invalid(
            f"Missing required parameter: '{param}.name'.",
            f"{param}.name",
            "missing_required_parameter",
        )
    return Function(spec["name"], spec.get("parameters"))


def _chat_tools(value: Any) -> list[Function]:
    functions = []
    for index, tool in enumerate(_tools_list(value, "tools")):
        if not isinstance(tool, dict):
            raise _invalid(
                f"Invalid type for 'tools[{index}]': expected an object.",
                f"tools[{index}]",
                "invalid_type",
            )
        if tool.get("type", "function") == "function":
            functions.append(_function(tool.get("function"), f"tools[{index}].function"))
    return functions


def _responses_tools(value: Any) -> list[Function]:
    functions = []
    for index, tool in enumerate(_tools_list(value, "tools")):
        if not isinstance(tool, dict):
            raise _invalid(
                f"Invalid type for 'tools[{index}]': expected an object.",
                f"tools[{index}]",
                "invalid_type",
            )
        if tool.get("type") == "function":
            functions.append(_function(tool, f"tools[{index}]"))
    return functions


def _named(functions: list[Function], name: Any, param: str) -> list[Function]:
    for function in functions:
        if function.name == name:
            return [function]
    raise _invalid(f"Invalid value for '{param}': no function named {name!r} is in 'tools'.", param)


def _choice(
    value: Any,
    functions: list[Function],
    *,
    param: str,
    name_of: Callable[[dict[str, Any]], Any],
    allowed_of: Callable[[dict[str, Any]], tuple[Any, set[str]]],
) -> tuple[str, list[Function]]:
    """``(mode, allowed functions)`` for a ``tool_choice``-like value."""
    if value is None:
        return ("auto" if functions else "none"), functions
    if isinstance(value, str):
        if value not in _MODES:
            raise _invalid(
                f"Invalid value: {value!r}. Supported values are: 'none', 'auto', and 'required'.",
                param,
            )
        if value == "required" and not functions:
            raise _invalid(
                f"Invalid value for '{param}': '{param}' is only allowed when 'tools' are "
                "specified.",
                param,
            )
        return value, functions
    if not isinstance(value, dict):
        raise _invalid(
            f"Invalid type for '{param}': expected a string or an object.", param, "invalid_type"
        )
    kind = value.get("type", "function")
    if kind == "function":
        return "required", _named(functions, name_of(value), param)
    if kind == "allowed_tools":
        mode, names = allowed_of(value)
        allowed = [function for function in functions if function.name in names]
        return (mode if mode in ("auto", "required") else "auto"), allowed
    return "none", []  # a hosted tool (file search, web search...): no function call


def _first_uncalled(allowed: list[Function], called: set[str]) -> Function:
    for function in allowed:
        if function.name not in called:
            return function
    return allowed[0]


def _decide(
    mode: str, allowed: list[Function], called: set[str], user_last: bool
) -> Function | None:
    if mode == "none" or not allowed or (mode == "auto" and not user_last):
        return None
    return _first_uncalled(allowed, called)


def _chat_named(value: dict[str, Any]) -> Any:
    function = value.get("function")
    return function.get("name") if isinstance(function, dict) else value.get("name")


def _chat_allowed(value: dict[str, Any]) -> tuple[Any, set[str]]:
    spec = value.get("allowed_tools")
    spec = spec if isinstance(spec, dict) else {}
    tools = spec.get("tools")
    names = {_chat_named(tool) for tool in _objects(tools)}
    return spec.get("mode"), {name for name in names if isinstance(name, str)}


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects in ``value`` if it is a list (anything else holds none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _responses_named(value: dict[str, Any]) -> Any:
    return value.get("name")


def _responses_allowed(value: dict[str, Any]) -> tuple[Any, set[str]]:
    names = {tool.get("name") for tool in _objects(value.get("tools"))}
    return value.get("mode"), {name for name in names if isinstance(name, str)}


def chat_reply(
    body: dict[str, Any], messages: list[dict[str, Any]], prompt: list[str]
) -> tuple[ReplyPlan, list[str]]:
    """The plan for a chat request and the prompt text its tools and schema add."""
    if not any(key in body for key in _CHAT_KEYS):
        return _PROSE, []
    extra: list[str] = []
    schema = _chat_schema(body.get("response_format"), prompt, extra)
    tools = _chat_tools(body.get("tools"))
    functions = [
        _function(spec, f"functions[{index}]")
        for index, spec in enumerate(_tools_list(body.get("functions"), "functions"))
    ]
    extra.extend(_compact(body[key]) for key in ("tools", "functions") if body.get(key) is not None)
    legacy = not tools and bool(functions)
    if legacy:
        mode, allowed = _choice(
            body.get("function_call"),
            functions,
            param="function_call",
            name_of=_responses_named,
            allowed_of=_chat_allowed,
        )
    else:
        mode, allowed = _choice(
            body.get("tool_choice"),
            tools,
            param="tool_choice",
            name_of=_chat_named,
            allowed_of=_chat_allowed,
        )
    called: set[str] = set()
    for message in messages:
        if message.get("role") != "assistant":
            continue
        called.update(str(_chat_named(call)) for call in _objects(message.get("tool_calls")))
        if isinstance(message.get("function_call"), dict):
            called.add(str(message["function_call"].get("name")))
    user_last = messages[-1].get("role") == "user"
    call = _decide(mode, allowed, called, user_last)
    return ReplyPlan(call=call, schema=schema, legacy=legacy and call is not None), extra


def responses_reply(
    body: dict[str, Any], items: str | list[Any] | None, prompt: list[str]
) -> tuple[ReplyPlan, list[str]]:
    """The plan for a Responses API request and the prompt text its tools and schema add."""
    if not any(key in body for key in _RESPONSES_KEYS):
        return _PROSE, []  # the default echo is what `response_object` says anyway
    extra: list[str] = []
    text = body.get("text")
    schema = _responses_schema(text, prompt, extra)
    tools = _responses_tools(body.get("tools"))
    if body.get("tools") is not None:
        extra.append(_compact(body["tools"]))
    tool_choice = body.get("tool_choice")
    mode, allowed = _choice(
        tool_choice,
        tools,
        param="tool_choice",
        name_of=_responses_named,
        allowed_of=_responses_allowed,
    )
    called: set[str] = set()
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("type") == "function_call":
                called.add(str(item.get("name")))
        last = items[-1] if items else None
        user_last = (
            isinstance(last, dict)
            and last.get("type", "message") == "message"
            and last.get("role") == "user"
        )
    else:
        user_last = isinstance(items, str)
    echo = {
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tools": body.get("tools") or [],
        "tool_choice": tool_choice if tool_choice is not None else "auto",
    }
    call = _decide(mode, allowed, called, user_last)
    return ReplyPlan(call=call, schema=schema, echo=echo), extra
