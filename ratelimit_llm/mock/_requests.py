"""Reading request bodies: validate like the API does and pull out what accounting needs.

The mock does not model every parameter, only the ones that change what the server
charges or emits (model, prompt text, ``n``, the output cap, streaming, embedding
inputs, and the tools and JSON schemas that decide the kind of answer, see
``_structured.py``). Everything else is accepted and ignored, as a lenient server would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._accounting import ChargeRequest, count_tokens
from ._errors import BadRequest
from ._structured import ReplyPlan, chat_reply, responses_reply

__all__ = ["ParsedRequest", "parse_chat", "parse_embeddings", "parse_responses"]

# Chat formats each message with a few tokens of framing, and the reply with a few more;
# the mock copies the shape (3 per message, 3 for the reply) so usage looks realistic.
_PER_MESSAGE = 3
_PER_REPLY = 3
_MAX_N = 128
# The keys of a message or input item whose strings the model reads: content, names and
# the assistant's earlier calls (``tool_calls[].function.name`` and ``arguments``).
_TEXT_KEYS = ("text", "content", "output", "arguments", "name", "function", "tool_calls")
_BAD_INPUT = "Invalid 'input': expected a string, an array of strings, or an array of token arrays."


@dataclass(slots=True)
class ParsedRequest:
    """What one API request asks for, in the terms the mock works in."""

    endpoint: str
    model: str
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    best_of: int = 1
    max_output: int | None = None
    texts: list[str] = field(default_factory=list)
    messages: int = 0
    inputs: list[str | list[int]] = field(default_factory=list)
    dimensions: int | None = None
    encoding_format: str = "float"
    instructions: str | None = None
    #: Prose, JSON for a schema, or a tool call (chat and responses only).
    reply: ReplyPlan = field(default_factory=ReplyPlan)

    def charge_request(self, default_max_output: int) -> ChargeRequest:
        """The facts the charge rule sees (the server's view before tokenizing)."""
        chars = sum(len(text) for text in self.texts)
        token_ids = 0
        for item in self.inputs:
            if isinstance(item, str):
                chars += len(item)
            else:
                token_ids += len(item)
        if self.endpoint == "embeddings":
            output, explicit = 0, False
        else:
            explicit = self.max_output is not None
            output = self.max_output if self.max_output is not None else default_max_output
        return ChargeRequest(
            endpoint=self.endpoint,
            prompt_chars=chars,
            prompt_token_ids=token_ids,
            max_output_tokens=output,
            max_output_explicit=explicit,
            n=self.n,
            best_of=self.best_of,
        )

    def prompt_tokens(self) -> int:
        """Prompt tokens as the mock's tokenizer counts them (what ``usage`` reports)."""
        if self.endpoint == "embeddings":
            return sum(self.input_tokens())
        counted = sum(count_tokens(text) for text in self.texts)
        return counted + _PER_MESSAGE * self.messages + _PER_REPLY

    def input_tokens(self) -> list[int]:
        """Tokens of each embedding input."""
        return [count_tokens(item) if isinstance(item, str) else len(item) for item in self.inputs]


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    return model


def _positive(body: dict[str, Any], name: str, *, maximum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__}.",
            name,
            "invalid_type",
        )
    if value < 1:
        raise BadRequest(
            f"Invalid '{name}': integer below minimum value. "
            f"Expected a value >= 1, but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise BadRequest(
            f"Invalid '{name}': integer above maximum value. "
            f"Expected a value <= {maximum}, but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return stream, include_usage


def _collect_text(value: Any, out: list[str], depth: int = 0) -> None:
    """Every prompt string inside a content value (a string, parts, or nested items)."""
    if depth > 8:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_text(item, out, depth + 1)
    elif isinstance(value, dict):
        for name in _TEXT_KEYS:
            if name in value:
                _collect_text(value[name], out, depth + 1)


def parse_chat(body: dict[str, Any]) -> ParsedRequest:
    """``POST /v1/chat/completions``."""
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. "
            "Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise BadRequest(
                "Invalid 'messages': each message must be an object with a 'role'.",
                "messages",
                "invalid_value",
            )
        _collect_text(message, texts)
    reply, extra = chat_reply(body, messages, texts)
    stream, include_usage = _stream(body)
    output = _positive(body, "max_completion_tokens")
    if output is None:
        output = _positive(body, "max_tokens")
    return ParsedRequest(
        endpoint="chat.completions",
        model=model,
        stream=stream,
        include_usage=include_usage,
        n=_positive(body, "n", maximum=_MAX_N) or 1,
        best_of=_positive(body, "best_of", maximum=_MAX_N) or 1,
        max_output=output,
        texts=texts + extra,
        messages=len(messages),
        reply=reply,
    )


def parse_responses(body: dict[str, Any]) -> ParsedRequest:
    """``POST /v1/responses``."""
    model = _model(body)
    raw_input = body.get("input")
    texts: list[str] = []
    messages = 0
    if isinstance(raw_input, str):
        texts.append(raw_input)
        messages = 1
    elif isinstance(raw_input, list):
        for item in raw_input:
            _collect_text(item, texts)
        messages = len(raw_input)
    elif raw_input is not None:
        raise BadRequest(
            "Invalid 'input': expected a string or an array of input items.",
            "input",
            "invalid_type",
        )
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
        messages += 1
    else:
        instructions = None
    reply, extra = responses_reply(body, raw_input, texts)
    stream, _ = _stream(body)
    return ParsedRequest(
        endpoint="responses",
        model=model,
        stream=stream,
        max_output=_positive(body, "max_output_tokens"),
        texts=texts + extra,
        messages=messages,
        instructions=instructions,
        reply=reply,
    )


def parse_embeddings(body: dict[str, Any]) -> ParsedRequest:
    """``POST /v1/embeddings``: a string, a list of strings, a token array or token arrays."""
    model = _model(body)
    raw = body.get("input")
    inputs: list[str | list[int]]
    if isinstance(raw, str):
        inputs = [raw]
    elif (
        isinstance(raw, list)
        and raw
        and all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
    ):
        inputs = [list(raw)]
    elif isinstance(raw, list) and raw:
        inputs = []
        for item in raw:
            if isinstance(item, str):
                inputs.append(item)
            elif isinstance(item, list) and all(
                isinstance(x, int) and not isinstance(x, bool) for x in item
            ):
                inputs.append(list(item))
            else:
                raise BadRequest(
                    _BAD_INPUT,
                    "input",
                    "invalid_type",
                )
    elif raw is None:
        raise BadRequest(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    else:
        raise BadRequest(
            _BAD_INPUT,
            "input",
            "invalid_type",
        )
    if any(len(item) == 0 for item in inputs):
        raise BadRequest(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            "input",
            "invalid_value",
        )
    encoding = body.get("encoding_format", "float")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise BadRequest(
            f"Invalid value for 'encoding_format': expected 'float' or 'base64', got {encoding!r}.",
            "encoding_format",
            "invalid_value",
        )
    return ParsedRequest(
        endpoint="embeddings",
        model=model,
        inputs=inputs,
        dimensions=_positive(body, "dimensions"),
        encoding_format=encoding,
    )
