"""Batch input and output lines: validating an input file, answering one line.

Validation reads the whole file once, as the service does before a batch starts, and
keeps only each line's start offset and the totals the engine needs (model, enqueued
tokens). A line is parsed again when its turn comes, so a running batch holds the
file's bytes plus a few bytes per line, not a dict per request.

Every answer is seeded by the server seed, the batch id and the line itself, so a run
is reproducible whatever order or pace the lines are read in.
"""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._config import BatchConfig, MockConfig
from ._errors import OVERLOADED, SERVER_ERROR, BadRequest, error_body
from ._generate import embedding_vectors, generate_choices
from ._render import (
    chat_completion,
    chat_usage,
    dumps,
    embedding_response,
    response_object,
    response_output,
    response_usage,
)
from ._requests import ParsedRequest, parse_chat, parse_embeddings, parse_responses
from ._text import request_rng

__all__ = [
    "BATCH_ENDPOINTS",
    "Answer",
    "LineRenderer",
    "Validation",
    "custom_id_of",
    "validate_input",
]

#: The batch endpoints the mock can run, and the request kind each one is.
BATCH_ENDPOINTS: dict[str, str] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
_PARSERS: dict[str, Callable[[dict[str, Any]], ParsedRequest]] = {
    "chat.completions": parse_chat,
    "responses": parse_responses,
    "embeddings": parse_embeddings,
}
# Enough to show what is wrong with a file without echoing a whole broken upload.
_MAX_ERRORS = 100


@dataclass(slots=True)
class Validation:
    """What validating an input file found: line offsets, the model, tokens, errors."""

    starts: array[int] = field(default_factory=lambda: array("Q"))
    model: str | None = None
    tokens: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})


def validate_input(data: bytes, url: str, config: BatchConfig, mock: MockConfig) -> Validation:
    """Check an input file against the batch ``url`` the way the service's validation does.

    The file-level checks (size, line count, embedding inputs) stop at the first
    violation; line-level ones report up to 100 errors with their 1-based line numbers.
    """
    found = Validation()
    if len(data) > config.max_file_bytes:
        found.fail(
            "file_too_large",
            f"The input file is {len(data):,} bytes; the limit is {config.max_file_bytes:,}.",
            None,
        )
        return found
    kind = BATCH_ENDPOINTS[url]
    parser = _PARSERS[kind]
    seen: set[str] = set()
    inputs = 0
    position, number, size = 0, 0, len(data)
    while position < size:
        end = data.find(b"\n", position)
        end = size if end < 0 else end
        number += 1
        line = data[position:end]
        start, position = position, end + 1
        if not line.strip():
            continue
        if len(found.starts) >= config.max_requests_per_batch:
            found.fail(
                "too_many_tasks",
                f"The batch has more than {config.max_requests_per_batch:,} requests.",
                None,
            )
            return found
        found.starts.append(start)
        request = _check_line(line, number, url, seen, found)
        if request is None:
            continue
        model = request.get("model")
        if isinstance(model, str):
            if found.model is None:
                found.model = model
            elif model != found.model:
                found.fail(
                    "model_mismatch",
                    f"The model '{model}' differs from the batch's model '{found.model}'; "
                    "a batch may use only one model.",
                    number,
                    "body.model",
                )
        try:
            parsed = parser(request)
        except BadRequest:
            continue  # answered with a 400 when the line runs, as the service does
        inputs += len(parsed.inputs)
        charge = parsed.charge_request(mock.output.default_max_tokens)
        found.tokens += mock.charge_rule(charge)
    if not found.starts:
        found.fail("empty_file", "The input file has no requests.", None)
    elif kind == "embeddings" and inputs > config.max_embedding_inputs:
        found.fail(
            "too_many_embedding_inputs",
            f"The batch has {inputs:,} embedding inputs; the limit is "
            f"{config.max_embedding_inputs:,}.",
            None,
        )
    return found


def _check_line(
    line: bytes, number: int, url: str, seen: set[str], found: Validation
) -> dict[str, Any] | None:
    """The line's request body if the line is well-formed, else ``None`` (errors noted)."""
    try:
        item = json.loads(line)
    except ValueError:
        found.fail("invalid_json_line", f"Line {number} is not valid JSON.", number)
        return None
    if not isinstance(item, dict):
        found.fail("invalid_json_line", f"Line {number} is not a JSON object.", number)
        return None
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        found.fail(
            "missing_required_parameter",
            "Missing required parameter: 'custom_id'.",
            number,
            "custom_id",
        )
    elif custom_id in seen:
        found.fail(
            "duplicate_custom_id",
            f"The custom_id '{custom_id}' is used more than once; custom_ids must be unique.",
            number,
            "custom_id",
        )
    else:
        seen.add(custom_id)
    if item.get("method") != "POST":
        found.fail("invalid_method", "The method must be 'POST'.", number, "method")
    if item.get("url") != url:
        found.fail(
            "url_mismatch",
            f"The url '{item.get('url')}' does not match the batch endpoint '{url}'.",
            number,
            "url",
        )
    body = item.get("body")
    if not isinstance(body, dict):
        found.fail("missing_required_parameter", "Missing required parameter: 'body'.", number)
        return None
    return body


def custom_id_of(line: bytes) -> str:
    """The ``custom_id`` of an input line that passed validation."""
    custom_id: str = json.loads(line)["custom_id"]
    return custom_id


@dataclass(frozen=True, slots=True)
class Answer:
    """One rendered result line, where it belongs, and the tokens it used."""

    ok: bool
    line: bytes
    input_tokens: int = 0
    output_tokens: int = 0


class LineRenderer:
    """Answers the input lines of one batch, under the configuration it was created with."""

    __slots__ = ("_batch_id", "_config", "_kind", "_mock", "_seed")

    def __init__(self, batch_id: str, url: str, config: BatchConfig, mock: MockConfig) -> None:
        self._batch_id = batch_id.encode()
        self._kind = BATCH_ENDPOINTS[url]
        self._config = config
        self._mock = mock
        self._seed = mock.seed

    def answer(self, line: bytes, created: int) -> Answer:
        """Run one input line; ``created`` is the Unix time stamped on its body."""
        rng = request_rng(self._seed, self._batch_id, line)
        item = json.loads(line)
        custom_id: str = item["custom_id"]
        line_id = _hex_id(rng, "batch_req_", 32)
        request_id = _hex_id(rng, "req_", 32)
        try:
            parsed = _PARSERS[self._kind](item["body"])
            if parsed.stream:
                raise BadRequest(
                    "Streaming is not supported in batch requests.", "stream", "invalid_value"
                )
        except BadRequest as exc:
            return self._failed(line_id, custom_id, request_id, 400, exc.body())
        if parsed.model in self._config.not_found_models:
            message = f"The model `{parsed.model}` does not exist or you do not have access to it."
            body = error_body(message, "invalid_request_error", None, "model_not_found")
            return self._failed(line_id, custom_id, request_id, 404, body)
        if self._config.line_error_rate and rng.random() < self._config.line_error_rate:
            status = rng.choice(self._config.line_error_statuses)
            return self._failed(line_id, custom_id, request_id, status, _status_body(status))
        body, prompt, output = self._body(parsed, rng, created)
        response = {"status_code": 200, "request_id": request_id, "body": body}
        result = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        return Answer(True, dumps(result) + b"\n", prompt, output)

    def unfinished(self, line: bytes, code: str, message: str) -> bytes:
        """The error-file line of a request the batch never ran (expired or cancelled)."""
        rng = request_rng(self._seed, self._batch_id, line)
        result = {
            "id": _hex_id(rng, "batch_req_", 32),
            "custom_id": custom_id_of(line),
            "response": None,
            "error": {"code": code, "message": message},
        }
        return dumps(result) + b"\n"

    def _failed(
        self, line_id: str, custom_id: str, request_id: str, status: int, body: dict[str, Any]
    ) -> Answer:
        response = {"status_code": status, "request_id": request_id, "body": body}
        result = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        return Answer(False, dumps(result) + b"\n")

    def _body(
        self, parsed: ParsedRequest, rng: random.Random, created: int
    ) -> tuple[dict[str, Any], int, int]:
        """The response body and its prompt and output tokens."""
        prompt = parsed.prompt_tokens()
        output = self._mock.output
        if self._kind == "embeddings":
            vectors = embedding_vectors(parsed, output, self._seed)
            return embedding_response(parsed.model, vectors, prompt), prompt, 0
        choices = generate_choices(parsed, output, rng)
        if self._kind == "chat.completions":
            completion = sum(choice.tokens for choice in choices)
            body = chat_completion(
                id_=_hex_id(rng, "chatcmpl-", 24),
                created=created,
                model=parsed.model,
                choices=choices,
                usage=chat_usage(prompt, completion),
            )
            return body, prompt, completion
        choice = choices[0]
        incomplete = choice.finish == "length"
        status = "incomplete" if incomplete else "completed"
        prefix = "fc_" if choice.tool_calls else "msg_"
        items = response_output(_hex_id(rng, prefix, 32), choice, status)
        body = response_object(
            id_=_hex_id(rng, "resp_", 32),
            created=created,
            model=parsed.model,
            status=status,
            output=items,
            usage=response_usage(prompt, choice.tokens),
            max_output_tokens=parsed.max_output,
            instructions=parsed.instructions,
            incomplete=incomplete,
            echo=parsed.reply.echo,
        )
        return body, prompt, choice.tokens


def _hex_id(rng: random.Random, prefix: str, digits: int) -> str:
    return f"{prefix}{rng.getrandbits(digits * 4):0{digits}x}"


def _status_body(status: int) -> dict[str, Any]:
    """The error body of a line answered with ``status`` on purpose."""
    if status == 429:
        return error_body(
            "Rate limit reached while processing this batch request. Please try again later.",
            "requests",
            None,
            "rate_limit_exceeded",
        )
    if status == 500:
        return error_body(SERVER_ERROR, "server_error")
    if status == 503:
        return error_body(OVERLOADED, "server_error")
    if status >= 500:
        return error_body(f"The server failed with status {status}.", "server_error")
    return error_body(f"The request was refused with status {status}.", "invalid_request_error")
