"""What a request will cost before it runs, and what it did cost once it has.

The limiter must charge a call before sending it, but the true token count is only known
from the response's ``usage``. OpenAI itself faces the same problem and solves it without a
tokenizer: a request is admitted against TPM on an estimate "based on the character count of
your request" plus the output it may generate (``max_tokens`` and friends, times ``n``).
Mirroring that rule, rather than counting tokens exactly, is what keeps the local buckets in
step with the server's: a precise count would disagree with the server as much as a crude
one. It also keeps the estimate cheap (it runs on every request) and dependency-free:
``tiktoken`` downloads its tables at run time, which a limiter cannot afford.

`CostEstimator` holds the rule's knobs, because providers differ (Azure sums prompt and
output, OpenAI's guide words it as a maximum). The estimate is corrected after the call:
`cost_from_usage` turns a response's ``usage`` into the actual `Cost`, and
`usage_from_response` / `usage_from_stream_event` find that ``usage`` in a body or a stream.

Request bodies are user data and may be hostile; every function here returns a sane answer
instead of raising, and the walk over a body is bounded in depth and in work.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from typing import Any, Literal

from ._types import Cost

__all__ = [
    "CostEstimator",
    "cost_from_usage",
    "estimate_cost",
    "usage_from_response",
    "usage_from_stream_event",
]

logger = logging.getLogger("ratelimit_llm.estimate")

_Endpoint = Literal["chat", "responses", "completions", "embeddings", "unknown"]

#: Nesting deeper than this is not counted. Real bodies nest about ten levels (a JSON schema
#: inside a tool a little more); the bound cuts cycles and pathological nesting short.
_MAX_DEPTH = 64
#: Values looked at per estimate. A DAG of shared lists can describe 2**64 leaves in a few
#: hundred bytes; the budget keeps such a body from hanging the event loop. Real requests
#: hold a few thousand values (the budget does not apply to embeddings inputs and prompts).
_MAX_ITEMS = 500_000
#: Every count is clamped here: the largest integer a float holds exactly, far above any
#: real limit, so a hostile ``n * max_tokens`` still gives a finite `Cost`.
_MAX_TOKENS = 2**53

#: Audio parts: OpenAI bills audio input at about one token per 100 ms. From base64 we only
#: know the byte size, so assume 128 kbit/s (16,000 bytes per second, a common mp3 rate):
#: 1,600 bytes per token. 16-bit wav is denser in bytes, so it is overestimated (the safe
#: side); the real count comes back in ``usage``.
_AUDIO_BYTES_PER_TOKEN = 1_600

#: Part types that stand for an image: each costs ``tokens_per_image``, never the length of
#: its (often megabytes of base64) URL, which no server counts as text.
_IMAGE_PARTS = frozenset(
    {"image_url", "input_image", "image", "computer_screenshot", "image_generation_call"}
)
#: Files and video: their token cost depends on pages and frames we cannot see without
#: decoding them. Charge one image's worth, a floor the response's ``usage`` corrects; the
#: base64 length would overcharge a PDF a thousandfold and make it wait forever.
_FILE_PARTS = frozenset({"file", "input_file", "input_video", "video_url"})
_AUDIO_PARTS = frozenset({"input_audio"})
#: Keys whose values the model never reads as text: identifiers, enums and client-side
#: annotations. ``role`` is covered by the per-message framing.
_SKIP_KEYS = frozenset(
    {
        "type",
        "role",
        "id",
        "call_id",
        "tool_call_id",
        "status",
        "detail",
        "format",
        "annotations",
        "logprobs",
        "cache_control",
        "prompt_cache_breakpoint",
    }
)
#: The output limit fields, in order of precedence: chat's current and legacy names, then
#: the Responses API's.
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
#: Body keys only the Responses API uses, for guessing the endpoint.
_RESPONSES_KEYS = ("instructions", "previous_response_id", "conversation", "max_output_tokens")

# Characters that ``json.dumps`` escapes; the rest of a string is copied as is (the SDK
# serialises with ``ensure_ascii=False``).
_JSON_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_SHORT_ESCAPES = frozenset('"\\\n\r\t\b\f')


def _count_or_none(value: object, *, minimum: int) -> int | None:
    """``value`` when it is an integer in ``[minimum, 2**53]``, else None (bools are not)."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= _MAX_TOKENS:
        return value
    return None


def _json_string_length(text: str) -> int:
    """Length of ``text`` as a JSON string literal, quotes and escapes included."""
    length = len(text) + 2
    for char in _JSON_ESCAPE.findall(text):
        length += 1 if char in _SHORT_ESCAPES else 5  # \n is two characters, \u0001 six
    return length


def _json_scalar_length(value: object) -> int:
    """Length of a JSON scalar as ``json.dumps`` writes it (other objects count nothing)."""
    if value is None:
        return 4
    if isinstance(value, bool):
        return 4 if value else 5
    if isinstance(value, int):
        if -(10**18) < value < 10**18:
            return len(str(value))
        # str() refuses very long ints; the digit count follows from the bit length.
        return int(value.bit_length() * 0.30103) + 2
    if isinstance(value, float):
        if math.isfinite(value):
            return len(repr(value))
        return 3 if math.isnan(value) else (8 if value > 0 else 9)
    return 0


class _Tally:
    """Running totals of one estimate: prompt characters and tokens counted directly.

    The walks use an explicit stack rather than recursion: no stack to blow, and no
    per-call frame cost (CPython 3.11 can be many times slower when deep recursion
    straddles one of its frame-stack chunks).
    """

    __slots__ = ("budget", "chars", "image_tokens", "tokens", "truncated")

    def __init__(self, image_tokens: int) -> None:
        self.chars = 0
        self.tokens = 0
        self.image_tokens = image_tokens
        self.budget = _MAX_ITEMS
        self.truncated = False

    def _pay(self, container: Sized, depth: int) -> bool:
        """Pay for looking into ``container``; False once the depth or work bound is hit."""
        self.budget -= len(container) + 1
        if depth > _MAX_DEPTH or self.budget < 0:
            self.truncated = True
            return False
        return True

    def text(self, root: object, depth: int) -> None:
        """Count ``root`` as content the model reads: its strings, images, audio, files."""
        chars = 0
        stack = [(root, depth)]
        push = stack.append
        # Strings, the common leaf, are counted where they are found instead of pushed.
        while stack and self.budget >= 0:
            value, depth = stack.pop()
            if isinstance(value, (list, tuple)):
                if self._pay(value, depth):
                    depth += 1
                    for item in value:
                        if isinstance(item, str):
                            chars += len(item)
                        else:
                            push((item, depth))
            elif type(value) is dict or isinstance(value, Mapping):  # dict first: ABCs are slow
                if not self._pay(value, depth):
                    continue
                kind = value.get("type")
                if isinstance(kind, str):
                    if kind in _IMAGE_PARTS or kind in _FILE_PARTS:
                        self.tokens += self.image_tokens
                        continue
                    if kind in _AUDIO_PARTS:
                        self.tokens += _audio_tokens(value.get("input_audio"))
                        continue
                depth += 1
                for key, item in value.items():
                    if key in _SKIP_KEYS:
                        continue
                    if isinstance(item, str):
                        chars += len(item)
                    else:
                        push((item, depth))
            elif isinstance(value, str):
                chars += len(value)
            # Numbers, booleans and None are JSON literals of a few characters: not worth it.
        self.chars += chars

    def json(self, root: object, depth: int) -> None:
        """Count ``root`` as the compact JSON the SDK sends (tools and schemas)."""
        chars = 0
        stack = [(root, depth)]
        while stack and self.budget >= 0:
            value, depth = stack.pop()
            if isinstance(value, str):
                chars += _json_string_length(value)
            elif isinstance(value, (list, tuple)):
                chars += len(value) + 1 if value else 2  # brackets, commas between items
                if self._pay(value, depth):
                    stack.extend((item, depth + 1) for item in value)
            elif type(value) is dict or isinstance(value, Mapping):
                # Braces, plus a colon per entry and a comma between entries.
                chars += 2 * len(value) + 1 if value else 2
                if not self._pay(value, depth):
                    continue
                for key, item in value.items():
                    if isinstance(key, str):
                        chars += _json_string_length(key)
                    else:
                        chars += _json_scalar_length(key) + 2  # json.dumps quotes it
                    stack.append((item, depth + 1))
            else:
                chars += _json_scalar_length(value)
        self.chars += chars

    def prompts(self, value: object) -> int:
        """Count a completions ``prompt`` or embeddings ``input``; return how many prompts.

        Accepts a string, a list of strings, a token array (its length is its token count)
        or a list of token arrays. In a mixed list a stray token id counts one token and
        anything else is ignored.
        """
        if isinstance(value, str):
            self.chars += len(value)
            return 1
        if not isinstance(value, (list, tuple)):
            return 0
        if value and all(isinstance(item, int) for item in value):
            self.tokens += len(value)
            return 1
        count = 0
        for item in value:
            if isinstance(item, str):
                self.chars += len(item)
                count += 1
            elif isinstance(item, (list, tuple)):
                self.tokens += len(item)
                count += 1
            elif isinstance(item, int):
                self.tokens += 1  # a stray token id in a mixed list
        return count


def _audio_tokens(audio: object) -> int:
    """Tokens for an ``input_audio`` payload, from the size of its base64 ``data``."""
    data = audio.get("data") if isinstance(audio, Mapping) else None
    if not isinstance(data, str):
        return 0
    # base64 carries 3 bytes in 4 characters; round up so a short clip still costs a token.
    return -(-len(data) * 3 // (4 * _AUDIO_BYTES_PER_TOKEN))


def _endpoint_from_path(endpoint: object) -> _Endpoint | None:
    """The API a URL path names, matched on its suffix (so Azure deployment paths work)."""
    if not isinstance(endpoint, str):
        return None
    path = "/" + endpoint.split("?", 1)[0].split("#", 1)[0].strip().strip("/").lower()
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/completions"):
        return "completions"
    return None


def _looks_like_embeddings(body: Mapping[Any, Any], value: object) -> bool:
    """Whether a body with ``input`` and no endpoint is an embeddings request."""
    if "encoding_format" in body or "dimensions" in body:
        return True  # embeddings-only parameters (the SDK sends encoding_format by default)
    model = body.get("model")
    if isinstance(model, str) and "embed" in model.lower():
        return True
    if isinstance(value, (list, tuple)) and value:
        # Token arrays and lists of plain strings are embeddings inputs; the Responses API
        # takes a list of items (mappings), never bare strings or ints.
        return all(isinstance(item, str | int | list | tuple) for item in value)
    return False


def _guess_endpoint(body: Mapping[Any, Any]) -> _Endpoint:
    """The API a body is meant for, from its keys, when no endpoint was given."""
    if "messages" in body:
        return "chat"
    value = body.get("input")
    if value is not None:
        return "embeddings" if _looks_like_embeddings(body, value) else "responses"
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, Mapping):
        return "completions"  # the Responses API's ``prompt`` is a template reference (a mapping)
    if isinstance(prompt, Mapping) or any(key in body for key in _RESPONSES_KEYS):
        return "responses"
    return "unknown"


def _is_json_schema(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "json_schema"


@dataclass(frozen=True, slots=True)
class CostEstimator:
    """How the server charges a request before it runs; configurable because providers differ.

    The prompt is estimated from characters, as the server does: every string the model
    reads (message content, names, tool-call arguments, instructions, predicted output)
    divided by ``chars_per_token`` and rounded up, plus ``tokens_per_message`` of framing
    per chat message or Responses input item, ``tokens_per_image`` per image or file part,
    audio by its byte size (one token per 1,600 bytes, about 100 ms of 128 kbit/s audio),
    and token arrays by their length. Tools and JSON schemas count as the JSON the SDK
    sends. The output reserved is ``max(n, best_of)`` times the request's output limit
    (``max_completion_tokens``, ``max_tokens`` or ``max_output_tokens``, the first valid
    one), or ``default_max_output_tokens`` when it names none; embeddings reserve nothing.

    ``output_rule="sum"`` charges prompt plus output, as Azure documents and the 429
    arithmetic shows (and the safe side); ``"max"`` charges the larger of the two, the
    literal wording of OpenAI's rate-limit guide.

    Example::

        estimator = CostEstimator(default_max_output_tokens=512)
        cost = estimator.estimate(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            endpoint="/v1/chat/completions",
        )
        # Cost(requests=1, tokens=517, input_tokens=5, output_tokens=512)
    """

    #: The server estimates prompt tokens from characters, not with a tokenizer.
    chars_per_token: float = 4.0
    #: Output reserved when the request names no limit. A guess (the server's own figure
    #: is undocumented); settling the call against ``usage`` corrects it.
    default_max_output_tokens: int = 1024
    #: ``"sum"``: prompt + max(n, best_of) * max_output. ``"max"``: the larger of the two.
    output_rule: Literal["sum", "max"] = "sum"
    #: An image part (``image_url`` / ``input_image``) costs this many prompt tokens: a
    #: 1024x1024 image at high detail (85 base + 4 tiles of 170) on GPT-4o.
    tokens_per_image: int = 765
    #: Framing per chat message or input item: OpenAI's chat format wraps each message in
    #: 3-4 tokens (role and separators); 4 is the cookbook's figure and the safe side.
    tokens_per_message: int = 4

    def __post_init__(self) -> None:
        cpt = self.chars_per_token
        if isinstance(cpt, bool) or not isinstance(cpt, int | float):
            raise TypeError(f"chars_per_token must be a number, got {type(cpt).__name__}")
        if not math.isfinite(cpt) or cpt <= 0:
            raise ValueError(f"chars_per_token must be a finite number > 0, got {cpt!r}")
        object.__setattr__(self, "chars_per_token", float(cpt))
        for name in ("default_max_output_tokens", "tokens_per_image", "tokens_per_message"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if not 0 <= value <= _MAX_TOKENS:
                raise ValueError(f"{name} must be between 0 and 2**53, got {value!r}")
        if self.output_rule not in ("sum", "max"):
            raise ValueError(f"output_rule must be 'sum' or 'max', got {self.output_rule!r}")

    def estimate(self, body: Mapping[str, Any], *, endpoint: str | None = None) -> Cost:
        """What the server will charge for ``body`` sent to ``endpoint`` (a URL path)."""
        try:
            return self._estimate(body, endpoint)
        except Exception:  # a last resort (a Mapping that raises): the walk itself does not
            logger.warning("cost estimate failed; charging the default output", exc_info=True)
            return Cost(requests=1, tokens=self.default_max_output_tokens)

    def _estimate(self, body: Mapping[str, Any], endpoint: str | None) -> Cost:
        tally = _Tally(self.tokens_per_image)
        if not isinstance(body, Mapping):
            logger.debug("request body is a %s, not a mapping", type(body).__name__)
            kind: _Endpoint = "unknown"
            outputs = 1
        else:
            kind = _endpoint_from_path(endpoint) or _guess_endpoint(body)
            outputs = self._count_prompt(kind, body, tally)
        if tally.truncated:
            logger.debug("request body too deep or too large: the estimate counts part of it")

        chars = tally.chars / self.chars_per_token
        prompt = min(
            (math.ceil(chars) if chars < _MAX_TOKENS else _MAX_TOKENS) + tally.tokens, _MAX_TOKENS
        )
        if kind == "embeddings":
            output = 0
        else:
            max_output = self._max_output(body) if isinstance(body, Mapping) else None
            if max_output is None:
                max_output = self.default_max_output_tokens
            output = min(max(outputs, 1) * self._choices(body) * max_output, _MAX_TOKENS)
        total = prompt + output if self.output_rule == "sum" else max(prompt, output)
        return Cost(requests=1, tokens=total, input_tokens=prompt, output_tokens=output)

    def _count_prompt(self, kind: _Endpoint, body: Mapping[Any, Any], tally: _Tally) -> int:
        """Add the prompt of ``body`` to ``tally``; return how many prompts it holds."""
        framing = self.tokens_per_message
        if kind == "chat":
            messages = body.get("messages")
            items = messages if isinstance(messages, (list, tuple)) else (messages,)
            tally.tokens += framing * sum(message is not None for message in items)
            tally.text(items, 0)
            for key in ("tools", "functions"):
                if body.get(key) is not None:
                    tally.json(body[key], 1)
            if _is_json_schema(body.get("response_format")):
                tally.json(body["response_format"], 1)
            # Predicted output is text the server must read and match; whether it counts
            # against TPM is undocumented, so count it (the safe side).
            tally.text(body.get("prediction"), 1)
            return 1
        if kind == "responses":
            value = body.get("input")
            items = value if isinstance(value, (list, tuple)) else (value,)
            tally.tokens += framing * sum(item is not None for item in items)
            tally.text(items, 0)
            instructions = body.get("instructions")
            if isinstance(instructions, str):
                tally.tokens += framing
                tally.chars += len(instructions)
            if body.get("tools") is not None:
                tally.json(body["tools"], 1)
            text = body.get("text")
            if isinstance(text, Mapping) and _is_json_schema(text.get("format")):
                tally.json(text["format"], 1)
            prompt = body.get("prompt")
            if isinstance(prompt, Mapping):
                tally.text(prompt.get("variables"), 1)  # the template itself is server-side
            return 1
        if kind == "completions":
            count = tally.prompts(body.get("prompt"))
            suffix = body.get("suffix")
            if isinstance(suffix, str):
                tally.chars += len(suffix)
            # Each prompt in a batch generates its own completions (the cookbook's rule).
            return count
        if kind == "embeddings":
            tally.prompts(body.get("input"))
        return 1

    def _max_output(self, body: Mapping[Any, Any]) -> int | None:
        """The first valid output limit the request names, or None."""
        for name in _OUTPUT_FIELDS:
            value = body.get(name)
            if value is None:
                continue
            limit = _count_or_none(value, minimum=0)
            if limit is not None:
                return limit
            logger.debug("ignoring %s=%r: not a non-negative integer", name, value)
        return None

    @staticmethod
    def _choices(body: object) -> int:
        """``max(n, best_of)``: how many completions the server generates (bad values: 1)."""
        if not isinstance(body, Mapping):
            return 1
        choices = 1
        for name in ("n", "best_of"):
            value = body.get(name)
            if value is None:
                continue
            count = _count_or_none(value, minimum=1)
            if count is None:
                logger.debug("ignoring %s=%r: not a positive integer", name, value)
            else:
                choices = max(choices, count)
        return choices


_DEFAULT_ESTIMATOR = CostEstimator()


def estimate_cost(
    body: Mapping[str, Any],
    *,
    endpoint: str | None = None,
    estimator: CostEstimator | None = None,
) -> Cost:
    """What the server will charge for ``body``, by ``estimator`` or the default rule."""
    return (estimator or _DEFAULT_ESTIMATOR).estimate(body, endpoint=endpoint)


def _usage_count(usage: Mapping[Any, Any], *names: str) -> float | None:
    """The first of ``names`` holding a finite non-negative number; others are logged."""
    for name in names:
        value = usage.get(name)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number) and number >= 0:
                return number
        logger.debug("ignoring usage %s=%r: not a non-negative number", name, value)
    return None


def cost_from_usage(usage: Mapping[str, Any] | None) -> Cost | None:
    """The actual cost of a call from its response's ``usage``, or None if unusable.

    Reads chat and legacy completions (``prompt_tokens``, ``completion_tokens``), the
    Responses API (``input_tokens``, ``output_tokens``) and embeddings (``prompt_tokens``),
    each with ``total_tokens``. Cached and reasoning tokens are already inside these
    totals and count against TPM like any other, so the ``*_details`` are not read. A
    missing total is the sum of the parts; a missing part is the total minus the other.
    """
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        logger.debug("usage is a %s, not a mapping", type(usage).__name__)
        return None
    try:
        prompt = _usage_count(usage, "prompt_tokens", "input_tokens")
        output = _usage_count(usage, "completion_tokens", "output_tokens")
        total = _usage_count(usage, "total_tokens")
    except Exception:  # a Mapping whose .get raises: not a usage we can trust
        logger.debug("usage could not be read", exc_info=True)
        return None
    if total is None:
        if prompt is None and output is None:
            logger.debug("usage names no token counts: %r", usage)
            return None
        total = (prompt or 0.0) + (output or 0.0)
        if not math.isfinite(total):
            logger.debug("usage token counts overflow: %r", usage)
            return None
    elif prompt is None and output is not None and output <= total:
        prompt = total - output
    elif output is None and prompt is not None and prompt <= total:
        output = total - prompt  # embeddings: no completion, so output is 0
    return Cost(requests=1, tokens=total, input_tokens=prompt, output_tokens=output)


def usage_from_response(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``usage`` of a parsed non-streaming response body, or None if it has none."""
    if not isinstance(payload, Mapping):
        logger.debug("response payload is a %s, not a mapping", type(payload).__name__)
        return None
    usage = payload.get("usage")
    return usage if isinstance(usage, Mapping) else None


#: Responses API stream events whose ``response`` is final and carries ``usage``. A failed
#: response may still report the tokens it spent before failing.
_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def usage_from_stream_event(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``usage`` carried by one parsed server-sent event, or None if it carries none.

    A chat (or legacy completions) chunk carries it in its top-level ``usage``: ``null`` on
    every chunk but the last one when ``stream_options.include_usage`` is set (some
    compatible servers send a running total on every chunk, so keep the last seen). A
    Responses API event carries it in ``response.usage`` of its final event
    (``response.completed``, ``response.incomplete`` or ``response.failed``).
    """
    if not isinstance(event, Mapping):
        logger.debug("stream event is a %s, not a mapping", type(event).__name__)
        return None
    kind = event.get("type")
    if isinstance(kind, str):
        if kind not in _FINAL_RESPONSE_EVENTS:
            return None
        response = event.get("response")
        usage = response.get("usage") if isinstance(response, Mapping) else None
    else:
        usage = event.get("usage")
    return usage if isinstance(usage, Mapping) else None
