"""What the fake model answers to one parsed request: choices of text, or vectors.

Shared by the synchronous endpoints (``_handlers.py``) and the batch engine
(``_batches.py``), so a request gets the same kind of output, sized by the same
`OutputModel`, whichever way it arrives.
"""

from __future__ import annotations

import random
import string

from ._config import OutputModel
from ._render import dumps
from ._replies import Choice, Choices, ToolCall
from ._requests import ParsedRequest
from ._schema import json_text, value_for_schema
from ._structured import Function
from ._text import embedding_vector, encode_embedding, fake_pieces, request_rng, token_pieces

__all__ = ["embedding_vectors", "generate_choices"]

_ID_ALPHABET = string.ascii_letters + string.digits
_NO_PARAMETERS = {"type": "object", "properties": {}}


def generate_choices(parsed: ParsedRequest, output: OutputModel, rng: random.Random) -> Choices:
    """Each choice's one-token pieces (or tool call) and finish reason.

    Prose is drawn between ``output.min_tokens`` and the request's cap (or
    ``output.default_max_tokens``). JSON answers and tool arguments are as long as the
    value drawn for their schema, whatever the default cap; an explicit cap (``max_tokens``
    and friends) cuts them as it cuts prose. ``length`` is the finish reason only when an
    explicit cap was reached.
    """
    plan = parsed.reply
    explicit = parsed.max_output
    cap = explicit if explicit is not None else output.default_max_tokens
    low = min(output.min_tokens, cap)
    choices: Choices = []
    for _ in range(parsed.n):
        if plan.call is not None:
            choices.append(_call(plan.call, rng, explicit, legacy=plan.legacy))
        elif plan.schema is not None:
            pieces = token_pieces(json_text(value_for_schema(plan.schema, rng)))
            pieces, finish = _capped(pieces, explicit, "stop")
            choices.append(Choice(pieces, finish))
        else:
            length = rng.randint(low, cap)
            finish = "length" if explicit is not None and length == cap else "stop"
            choices.append(Choice(fake_pieces(rng, length), finish))
    return choices


def _capped(pieces: list[str], cap: int | None, finish: str) -> tuple[list[str], str]:
    if cap is not None and len(pieces) > cap:
        return pieces[:cap], "length"
    return pieces, finish


def _call(function: Function, rng: random.Random, cap: int | None, *, legacy: bool) -> Choice:
    parameters = function.parameters if function.parameters is not None else _NO_PARAMETERS
    arguments = json_text(value_for_schema(parameters, rng), compact=True)
    pieces, finish = _capped(
        token_pieces(arguments), cap, "function_call" if legacy else "tool_calls"
    )
    call_id = "call_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(24))
    return Choice([], finish, (ToolCall(call_id, function.name, pieces),), legacy=legacy)


def embedding_vectors(
    parsed: ParsedRequest, output: OutputModel, seed: int
) -> list[list[float] | str]:
    """One vector per input, seeded by the input itself, as floats or base64."""
    dimensions = parsed.dimensions or output.embedding_dimensions
    model = parsed.model.encode()
    vectors: list[list[float] | str] = []
    for item in parsed.inputs:
        data = item.encode() if isinstance(item, str) else dumps(item)
        vector = embedding_vector(request_rng(seed, b"embedding", model, data), dimensions)
        vectors.append(encode_embedding(vector) if parsed.encoding_format == "base64" else vector)
    return vectors
