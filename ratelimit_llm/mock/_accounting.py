"""What the mock server charges at admission, and the fake tokenizer behind its ``usage``.

OpenAI admits a request against TPM before it has tokenized anything: it estimates the
prompt from its character count (``ceil(chars / 4)``) and reserves the requested output
(``max(n, best_of) * max_tokens``). The exact rule is not documented in one place (the
rate-limit guide says "maximum", the help centre and Azure imply a sum), so the rule is a
plain callable the configuration can swap.

``usage`` on the other hand is counted by a tokenizer. The mock uses a cheap regex one
(a word of up to six characters, or one punctuation mark, is one token) for prompts and
output alike, so reported usage differs from the chars/4 estimate the way a real
tokenizer's does, and the text the mock emits always tokenizes back to the count it
reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ChargeRequest",
    "ChargeRule",
    "count_tokens",
    "max_rule",
    "prompt_only_rule",
    "sum_rule",
]

# Words longer than six characters split the way BPE splits rare words, so long prompts
# cost more tokens than short ones of the same length, as with a real tokenizer.
_TOKEN = re.compile(r"\w{1,6}|[^\w\s]")


def count_tokens(text: str) -> int:
    """Tokens in ``text`` by the mock's tokenizer: a word of up to 6 characters, or one symbol."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """What the server knows about a request when it decides what to charge.

    ``prompt_chars`` counts the characters of every text in the prompt; ``prompt_token_ids``
    counts prompt tokens given as integer arrays (embeddings accept those), which the
    server need not estimate. ``max_output_tokens`` is the request's cap
    (``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``) or the configured
    default when the request had none (``max_output_explicit`` tells which); it is 0 for
    embeddings.
    """

    endpoint: str
    prompt_chars: int
    prompt_token_ids: int = 0
    max_output_tokens: int = 0
    max_output_explicit: bool = False
    n: int = 1
    best_of: int = 1

    @property
    def estimated_prompt_tokens(self) -> int:
        """The server's prompt estimate: ``ceil(chars / 4)`` plus any literal token ids."""
        return math.ceil(self.prompt_chars / 4) + self.prompt_token_ids

    @property
    def reserved_output_tokens(self) -> int:
        """Output reserved for every choice the request may generate."""
        return max(self.n, self.best_of) * self.max_output_tokens


#: Turns what the server knows about a request into the tokens it takes from TPM/TPD.
ChargeRule = Callable[[ChargeRequest], int]


def sum_rule(request: ChargeRequest) -> int:
    """Prompt estimate plus reserved output: the reading Azure and the cookbook support."""
    return request.estimated_prompt_tokens + request.reserved_output_tokens


def max_rule(request: ChargeRequest) -> int:
    """The rate-limit guide read literally: the larger of the prompt estimate and the output."""
    return max(request.estimated_prompt_tokens, request.reserved_output_tokens)


def prompt_only_rule(request: ChargeRequest) -> int:
    """Charge the prompt estimate only (a server that ignores ``max_tokens``)."""
    return request.estimated_prompt_tokens
