"""What the fake model answers to one parsed request: choices of text, or vectors.

Shared by the synchronous endpoints (``_handlers.py``) and the batch engine
(``_batches.py``), so a request gets the same kind of output, sized by the same
`OutputModel`, whichever way it arrives.
"""

from __future__ import annotations

import random

from ._config import OutputModel
from ._render import dumps
from ._requests import ParsedRequest
from ._streams import Choices
from ._text import embedding_vector, encode_embedding, fake_pieces, request_rng

__all__ = ["embedding_vectors", "generate_choices"]


def generate_choices(parsed: ParsedRequest, output: OutputModel, rng: random.Random) -> Choices:
    """Each choice's one-token pieces and finish reason.

    The length is drawn between ``output.min_tokens`` and the request's cap (or
    ``output.default_max_tokens``); ``length`` is the finish reason only when an explicit
    cap was reached.
    """
    cap = parsed.max_output if parsed.max_output is not None else output.default_max_tokens
    low = min(output.min_tokens, cap)
    choices: Choices = []
    for _ in range(parsed.n):
        length = rng.randint(low, cap)
        finish = "length" if parsed.max_output is not None and length == cap else "stop"
        choices.append((fake_pieces(rng, length), finish))
    return choices


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
