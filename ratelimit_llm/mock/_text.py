"""Deterministic fake model output: words for completions, unit vectors for embeddings.

Every piece of text is exactly one token to the mock's tokenizer (`count_tokens`): a word
of at most six letters, or one punctuation mark. So a completion of ``k`` pieces is ``k``
tokens, a stream can send one piece per chunk, and ``usage`` always matches what was
emitted. Randomness comes from a `random.Random` the caller seeds (from the server seed
and the request), so the same request to a server with the same seed gets the same text.
"""

from __future__ import annotations

import array
import base64
import hashlib
import math
import random
import re
import sys

__all__ = [
    "embedding_vector",
    "encode_embedding",
    "fake_pieces",
    "fake_words",
    "request_rng",
    "token_pieces",
]

# Common short English words: each is one token to the mock tokenizer.
_WORDS = (
    "the of and to in is it that was for on are as with they at be this from have or by "
    "one had not but what all were when we there can an your which their said if do will "
    "each about how up out them then she many some so these would other into has more her "
    "two like him see time could no make than first been its who now people my made over "
    "did down only way find use may water long little very after words called just where "
    "most know get back much go good new write our me man too any day same right look "
    "think also around came come work three word must does part even place well such here "
    "take why help put years away again off went old number great tell men say small every "
    "found still name should home big give air line set own under read last never us left "
    "end along while might next sound below saw thought both few those always looked show "
    "large often asked house world going want school until form food keep feet land side "
    "boy once animal life enough took four head above kind began almost live page got earth "
    "need far hand high year mother light parts father let night second eyes soon times "
    "story since white days ever paper hard near better best across during today others "
    "sure means knew try told young miles sun ways thing whole hear heard change answer "
    "room sea top turned learn point city play toward five using river model token bucket "
    "limit rate quota burst window server client stream retry budget"
)
_VOCABULARY: tuple[str, ...] = tuple(
    word for word in _WORDS.split() if len(word) <= 6 and word.isalpha()
)
_PUNCTUATION_ODDS = 0.12
# One token of the mock's tokenizer (``_accounting._TOKEN``) with the blanks before it.
_PIECE = re.compile(r"\s*(?:\w{1,6}|[^\w\s])")


def request_rng(seed: int, *parts: bytes) -> random.Random:
    """A generator seeded by the server seed and the request, stable across runs and hosts."""
    digest = hashlib.blake2b(digest_size=8, key=seed.to_bytes(8, "big", signed=True))
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return random.Random(int.from_bytes(digest.digest(), "big"))


def fake_pieces(rng: random.Random, count: int) -> list[str]:
    """``count`` one-token pieces whose concatenation reads like (nonsense) prose."""
    words = _VOCABULARY
    size = len(words)
    pieces: list[str] = []
    capital = True
    previous_word = False
    for index in range(count):
        if previous_word and index < count - 1 and rng.random() < _PUNCTUATION_ODDS:
            mark = "." if rng.random() < 0.5 else ","
            pieces.append(mark)
            capital = mark == "."
            previous_word = False
            continue
        word = words[int(rng.random() * size)]
        if capital:
            word = word.capitalize()
            capital = False
        pieces.append(word if index == 0 else " " + word)
        previous_word = True
    return pieces


def fake_words(rng: random.Random, count: int) -> str:
    """``count`` lower-case words separated by spaces (one token each)."""
    words = _VOCABULARY
    return " ".join(words[int(rng.random() * len(words))] for _ in range(count))


def token_pieces(text: str) -> list[str]:
    """Split ``text`` into one-token pieces that join back into ``text`` exactly.

    Structured answers (JSON) are not drawn piece by piece like prose, so they are cut
    here: each piece is one token of the mock's tokenizer and the blanks before it, the
    last one also takes any trailing blanks. A stream sends one piece per chunk and
    ``usage`` counts one token per piece, as for prose.
    """
    pieces: list[str] = _PIECE.findall(text)
    consumed = sum(len(piece) for piece in pieces)
    if consumed < len(text) and pieces:
        pieces[-1] += text[consumed:]
    return pieces


def embedding_vector(rng: random.Random, dimensions: int) -> list[float]:
    """A unit-length vector with seeded components, like a real embedding."""
    raw = [rng.random() - 0.5 for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def encode_embedding(vector: list[float]) -> str:
    """The ``encoding_format="base64"`` form: little-endian float32, base64 encoded."""
    packed = array.array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte floats
        raise RuntimeError("float32 is not 4 bytes on this platform")
    if sys.byteorder != "little":  # pragma: no cover - the SDK decodes little-endian
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
