"""Tests for the server-side cost rule (`CostEstimator`) and the ``usage`` readers.

Expected numbers are worked out by hand from the rule: prompt characters / 4 rounded up,
plus 4 tokens of framing per message, 765 per image; output is max(n, best_of) times the
requested limit (1024 when none is named).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_llm._estimate import (
    _MAX_TOKENS,
    CostEstimator,
    _endpoint_from_path,
    _guess_endpoint,
    _Tally,
    cost_from_usage,
    estimate_cost,
    usage_from_response,
    usage_from_stream_event,
)
from ratelimit_llm._types import Cost

if TYPE_CHECKING:
    from collections.abc import Iterator

FRAME = 4  # tokens_per_message
IMAGE = 765  # tokens_per_image
DEFAULT_OUT = 1024  # default_max_output_tokens


def ceil4(*texts: str) -> int:
    """Prompt tokens for ``texts`` under the default rule: characters / 4, rounded up."""
    return math.ceil(sum(len(text) for text in texts) / 4)


def compact(value: object) -> str:
    """The JSON the SDK sends for ``value``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def cost(prompt: int, output: int) -> Cost:
    return Cost(requests=1, tokens=prompt + output, input_tokens=prompt, output_tokens=output)


# --- sample request parts ------------------------------------------------------------

SYSTEM = "You are a terse assistant."
USER = "What is the capital of France?"
ARGS = '{"city": "Paris", "unit": "celsius"}'
DATA_URL = "data:image/png;base64," + "iVBORw0KGgo" * 10_000  # 110 kB: must not count as text
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": 'Current weather for a city, "now".\nUse °C.',
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
                    "unit": {"enum": ["celsius", "fahrenheit", None]},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
FUNCTIONS = [{"name": "lookup", "parameters": {"type": "object", "properties": {}}}]
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "strict": True,
        "schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
RESPONSES_TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
    {"type": "web_search"},
]
TEXT_FORMAT = {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}
TOOL_CALL = {
    "id": "call_abc123",
    "type": "function",
    "function": {"name": "get_weather", "arguments": ARGS},
}


def user(content: object) -> dict[str, object]:
    return {"role": "user", "content": content}


ESTIMATE_CASES = [
    # --- chat completions ---
    pytest.param(
        {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM}, user(USER)]},
        None,
        cost(ceil4(SYSTEM, USER) + 2 * FRAME, DEFAULT_OUT),
        id="chat-string-content-default-output",
    ),
    pytest.param(
        {
            "messages": [
                user([{"type": "text", "text": "Describe this"}, {"type": "text", "text": " now."}])
            ],
            "max_tokens": 100,
        },
        "/v1/chat/completions",
        cost(ceil4("Describe this", " now.") + FRAME, 100),
        id="chat-text-parts",
    ),
    pytest.param(
        {
            "messages": [
                user(
                    [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "high"}},
                    ]
                )
            ],
            "max_tokens": 300,
        },
        None,
        cost(ceil4("What is in this image?") + IMAGE + FRAME, 300),
        id="chat-image-data-url-counts-one-image",
    ),
    pytest.param(
        {
            "messages": [
                user(
                    [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/b.png"}},
                        {"type": "text", "text": "Compare."},
                    ]
                )
            ],
            "max_tokens": 10,
        },
        None,
        cost(ceil4("Compare.") + 2 * IMAGE + FRAME, 10),
        id="chat-two-images",
    ),
    pytest.param(
        {
            "messages": [
                user(
                    [
                        {"type": "text", "text": "Transcribe"},
                        # 64,000 base64 chars = 48,000 bytes = 30 tokens at 1,600 bytes each.
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "A" * 64_000, "format": "wav"},
                        },
                    ]
                )
            ],
            "max_completion_tokens": 50,
        },
        None,
        cost(ceil4("Transcribe") + 30 + FRAME, 50),
        id="chat-input-audio-by-size",
    ),
    pytest.param(
        {
            "messages": [
                user(
                    [
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "wav"},
                        },
                    ]
                )
            ],
            "max_tokens": 5,
        },
        None,
        cost(1 + FRAME, 5),
        id="chat-short-audio-rounds-up-to-one-token",
    ),
    pytest.param(
        {
            "messages": [
                user(
                    [
                        {
                            "type": "file",
                            "file": {"file_data": "JVBERi0x" * 5000, "filename": "a.pdf"},
                        },
                        {"type": "text", "text": "Summarise"},
                    ]
                )
            ],
            "max_tokens": 200,
        },
        None,
        cost(ceil4("Summarise") + IMAGE + FRAME, 200),
        id="chat-file-part-counts-one-image",
    ),
    pytest.param(
        {"messages": [{"role": "user", "name": "alice", "content": "Hi"}], "max_tokens": 1},
        None,
        cost(ceil4("alice", "Hi") + FRAME, 1),
        id="chat-name",
    ),
    pytest.param(
        {
            "messages": [
                user("Weather in Paris?"),
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": "18C and sunny"},
            ],
            "max_tokens": 60,
        },
        None,
        cost(ceil4("Weather in Paris?", "get_weather", ARGS, "18C and sunny") + 3 * FRAME, 60),
        id="chat-tool-calls-name-and-arguments",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "lookup", "arguments": '{"q": "x"}'},
                },
                {"role": "function", "name": "lookup", "content": "42"},
            ],
            "max_tokens": 8,
        },
        None,
        cost(ceil4("lookup", '{"q": "x"}', "lookup", "42") + 2 * FRAME, 8),
        id="chat-legacy-function-call",
    ),
    pytest.param(
        {
            "messages": [{"role": "assistant", "content": None, "refusal": "I can't help."}],
            "max_tokens": 8,
        },
        None,
        cost(ceil4("I can't help.") + FRAME, 8),
        id="chat-refusal",
    ),
    pytest.param(
        {"messages": [user("Weather?")], "tools": TOOLS, "max_tokens": 30},
        None,
        cost(ceil4("Weather?", compact(TOOLS)) + FRAME, 30),
        id="chat-tools-as-json",
    ),
    pytest.param(
        {"messages": [user("Find x")], "functions": FUNCTIONS, "max_tokens": 30},
        None,
        cost(ceil4("Find x", compact(FUNCTIONS)) + FRAME, 30),
        id="chat-legacy-functions-as-json",
    ),
    pytest.param(
        {"messages": [user(USER)], "response_format": RESPONSE_FORMAT, "max_tokens": 30},
        None,
        cost(ceil4(USER, compact(RESPONSE_FORMAT)) + FRAME, 30),
        id="chat-response-format-json-schema",
    ),
    pytest.param(
        {"messages": [user(USER)], "response_format": {"type": "json_object"}, "max_tokens": 30},
        None,
        cost(ceil4(USER) + FRAME, 30),
        id="chat-response-format-json-object-not-counted",
    ),
    pytest.param(
        {
            "messages": [user("Rename x to y")],
            "prediction": {"type": "content", "content": "def f(y): return y"},
            "max_tokens": 40,
        },
        None,
        cost(ceil4("Rename x to y", "def f(y): return y") + FRAME, 40),
        id="chat-prediction-counted",
    ),
    pytest.param(
        {"messages": [user("Hi")], "n": 3, "max_completion_tokens": 50},
        None,
        cost(ceil4("Hi") + FRAME, 3 * 50),
        id="chat-n",
    ),
    pytest.param(
        {"messages": [user("Hi")], "n": 2, "best_of": 5, "max_tokens": 10},
        None,
        cost(ceil4("Hi") + FRAME, 5 * 10),
        id="chat-best-of-beats-n",
    ),
    pytest.param(
        {"messages": [user("Hi")], "max_completion_tokens": 30, "max_tokens": 999},
        None,
        cost(ceil4("Hi") + FRAME, 30),
        id="chat-max-completion-tokens-before-max-tokens",
    ),
    pytest.param(
        {"messages": [user("Hi")], "max_tokens": 0},
        None,
        cost(ceil4("Hi") + FRAME, 0),
        id="chat-max-tokens-zero",
    ),
    pytest.param(
        {"messages": [user("Hi")], "max_tokens": None},
        None,
        cost(ceil4("Hi") + FRAME, DEFAULT_OUT),
        id="chat-max-tokens-null-means-default",
    ),
    pytest.param(
        {"messages": [user("Hi")], "max_completion_tokens": "many", "max_tokens": 77},
        None,
        cost(ceil4("Hi") + FRAME, 77),
        id="chat-bad-limit-falls-through-to-next",
    ),
    # --- Responses API ---
    pytest.param(
        {"model": "gpt-4.1", "input": "Write a haiku about rate limits.", "max_output_tokens": 200},
        None,
        cost(ceil4("Write a haiku about rate limits.") + FRAME, 200),
        id="responses-string-input",
    ),
    pytest.param(
        {"input": "Bonjour", "instructions": "Answer in French.", "max_output_tokens": 20},
        "/v1/responses",
        cost(ceil4("Bonjour", "Answer in French.") + 2 * FRAME, 20),
        id="responses-instructions",
    ),
    pytest.param(
        {
            "input": [
                {"role": "user", "content": "Hello"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Look:"},
                        {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
                        {"type": "input_file", "file_id": "file-abc"},
                    ],
                },
            ],
            "max_output_tokens": 100,
        },
        "/v1/responses",
        cost(ceil4("Hello", "Look:") + 2 * IMAGE + 2 * FRAME, 100),
        id="responses-item-list-with-image-and-file",
    ),
    pytest.param(
        {
            "input": [
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": ARGS,
                    "status": "completed",
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            ],
            "max_output_tokens": 100,
        },
        "/v1/responses",
        cost(ceil4("get_weather", ARGS, "18C") + 2 * FRAME, 100),
        id="responses-function-call-output",
    ),
    pytest.param(
        {
            "input": "Weather?",
            "tools": RESPONSES_TOOLS,
            "text": {"format": TEXT_FORMAT},
            "max_output_tokens": 64,
        },
        "/v1/responses",
        cost(ceil4("Weather?", compact(RESPONSES_TOOLS), compact(TEXT_FORMAT)) + FRAME, 64),
        id="responses-tools-and-text-format",
    ),
    pytest.param(
        {"prompt": {"id": "pmpt_123", "version": "2", "variables": {"city": "Paris"}}},
        None,
        cost(ceil4("Paris"), DEFAULT_OUT),
        id="responses-prompt-template-variables",
    ),
    # --- legacy completions ---
    pytest.param(
        {"prompt": "def add(a, b):", "suffix": "    return c", "max_tokens": 64},
        "/v1/completions",
        cost(ceil4("def add(a, b):", "    return c"), 64),
        id="completions-string-and-suffix",
    ),
    pytest.param(
        {"prompt": ["a b", "c d e"], "max_tokens": 10},
        None,
        cost(ceil4("a b", "c d e"), 2 * 10),
        id="completions-list-of-strings-each-generates",
    ),
    pytest.param(
        {"prompt": [1, 2, 3, 4, 5], "max_tokens": 10},
        None,
        cost(5, 10),
        id="completions-token-array",
    ),
    pytest.param(
        {"prompt": [[1, 2], [3, 4, 5]], "max_tokens": 10},
        None,
        cost(5, 2 * 10),
        id="completions-token-arrays",
    ),
    pytest.param(
        {"prompt": "x", "n": 1, "best_of": 3, "max_tokens": 16},
        "/v1/completions",
        cost(1, 3 * 16),
        id="completions-best-of",
    ),
    # --- embeddings ---
    pytest.param(
        {"model": "text-embedding-3-small", "input": "hello world"},
        "/v1/embeddings",
        cost(ceil4("hello world"), 0),
        id="embeddings-string",
    ),
    pytest.param(
        {"input": ["first document", "second one"], "encoding_format": "base64"},
        None,
        cost(ceil4("first document", "second one"), 0),
        id="embeddings-list-of-strings",
    ),
    pytest.param(
        {"input": [101, 2023, 102]},
        "/v1/embeddings",
        cost(3, 0),
        id="embeddings-token-array",
    ),
    pytest.param(
        {"input": [[1, 2, 3], [4]]},
        "/v1/embeddings",
        cost(4, 0),
        id="embeddings-token-arrays",
    ),
    pytest.param(
        {"input": "abc", "max_tokens": 100, "n": 4},
        "/v1/embeddings",
        cost(1, 0),
        id="embeddings-reserve-no-output",
    ),
    # --- endpoint decides over the body's look ---
    pytest.param(
        {"input": "hello there"},
        None,
        cost(ceil4("hello there") + FRAME, DEFAULT_OUT),
        id="endpoint-unknown-input-guessed-responses",
    ),
    pytest.param(
        {"input": "hello there"},
        "/openai/deployments/ada/embeddings?api-version=2024-02-01",
        cost(ceil4("hello there"), 0),
        id="endpoint-azure-embeddings-path",
    ),
    pytest.param(
        {"input": "hello there"},
        "/v1/moderations",
        cost(ceil4("hello there") + FRAME, DEFAULT_OUT),
        id="endpoint-unrecognised-falls-back-to-guess",
    ),
    pytest.param(
        {"messages": [user("Hi")], "max_tokens": 9},
        "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        cost(ceil4("Hi") + FRAME, 9),
        id="endpoint-azure-chat-url",
    ),
    pytest.param(
        {},
        None,
        cost(0, DEFAULT_OUT),
        id="empty-body",
    ),
]


@pytest.mark.parametrize(("body", "endpoint", "expected"), ESTIMATE_CASES)
def test_estimate(body: dict[str, Any], endpoint: str | None, expected: Cost) -> None:
    assert estimate_cost(body, endpoint=endpoint) == expected


@pytest.mark.parametrize(
    "bad",
    [-5, "100", True, math.nan, math.inf, 1.5, [100], {"n": 1}, 2**60],
    ids=repr,
)
def test_bad_output_limit_uses_default(bad: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ratelimit_llm.estimate")
    body = {"messages": [user("Hi")], "max_tokens": bad}
    assert estimate_cost(body) == cost(ceil4("Hi") + FRAME, DEFAULT_OUT)
    assert any("max_tokens" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("bad", [0, -1, "3", True, 2.0, math.nan, [2], 2**60], ids=repr)
def test_bad_n_counts_as_one(bad: object) -> None:
    body = {"messages": [user("Hi")], "n": bad, "best_of": bad, "max_tokens": 10}
    assert estimate_cost(body) == cost(ceil4("Hi") + FRAME, 10)


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("/v1/chat/completions", "chat"),
        ("/v1/completions", "completions"),
        ("/v1/embeddings", "embeddings"),
        ("/v1/responses", "responses"),
        ("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "chat"),
        ("/openai/deployments/davinci/completions?api-version=2024-02-01", "completions"),
        ("/openai/deployments/ada/embeddings?api-version=2024-02-01", "embeddings"),
        ("https://r.openai.azure.com/openai/v1/responses", "responses"),
        ("/v1/chat/completions/", "chat"),
        ("CHAT/COMPLETIONS", "chat"),
        ("embeddings", "embeddings"),
        ("/v1/moderations", None),
        ("/v1/responses/resp_123/input_items", None),
        ("", None),
        (None, None),
    ],
    ids=repr,
)
def test_endpoint_from_path(endpoint: str | None, kind: str | None) -> None:
    assert _endpoint_from_path(endpoint) == kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        pytest.param({"messages": []}, "chat", id="messages"),
        pytest.param({"input": "hi"}, "responses", id="input-string"),
        pytest.param({"input": [{"role": "user", "content": "hi"}]}, "responses", id="input-items"),
        pytest.param(
            {"input": "hi", "encoding_format": "float"}, "embeddings", id="encoding-format"
        ),
        pytest.param({"input": "hi", "dimensions": 256}, "embeddings", id="dimensions"),
        pytest.param(
            {"input": "hi", "model": "text-embedding-3-small"}, "embeddings", id="embedding-model"
        ),
        pytest.param({"input": [1, 2, 3]}, "embeddings", id="input-token-array"),
        pytest.param({"input": [[1, 2], [3]]}, "embeddings", id="input-token-arrays"),
        pytest.param({"input": ["a", "b"]}, "embeddings", id="input-list-of-strings"),
        pytest.param({"prompt": "hi"}, "completions", id="prompt-string"),
        pytest.param({"prompt": [[1, 2]]}, "completions", id="prompt-token-arrays"),
        pytest.param({"prompt": {"id": "pmpt_1"}}, "responses", id="prompt-template"),
        pytest.param({"instructions": "be brief"}, "responses", id="instructions-only"),
        pytest.param({"model": "gpt-4o"}, "unknown", id="nothing-to-go-on"),
    ],
)
def test_guess_endpoint(body: dict[str, Any], kind: str) -> None:
    assert _guess_endpoint(body) == kind


# --- configuration ------------------------------------------------------------------


def test_max_rule_takes_the_larger_side() -> None:
    estimator = CostEstimator(output_rule="max")
    small = estimator.estimate({"messages": [user("Hi")], "max_tokens": 100})
    assert small == Cost(
        requests=1, tokens=100, input_tokens=ceil4("Hi") + FRAME, output_tokens=100
    )
    text = "x" * 4_000
    large = estimator.estimate({"messages": [user(text)], "n": 2, "max_tokens": 10})
    prompt = ceil4(text) + FRAME
    assert large == Cost(requests=1, tokens=prompt, input_tokens=prompt, output_tokens=20)


def test_custom_estimator() -> None:
    estimator = CostEstimator(
        chars_per_token=3,
        default_max_output_tokens=0,
        tokens_per_image=85,
        tokens_per_message=0,
    )
    body = {
        "messages": [
            user(
                [
                    {"type": "text", "text": "abcdefg"},
                    {"type": "image_url", "image_url": {"url": "u"}},
                ]
            )
        ]
    }
    assert estimator.estimate(body) == cost(math.ceil(7 / 3) + 85, 0)
    assert estimate_cost(body, estimator=estimator) == estimator.estimate(body)
    assert estimator.chars_per_token == 3.0 and isinstance(estimator.chars_per_token, float)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"chars_per_token": 0}, ValueError, id="chars-zero"),
        pytest.param({"chars_per_token": -4.0}, ValueError, id="chars-negative"),
        pytest.param({"chars_per_token": math.nan}, ValueError, id="chars-nan"),
        pytest.param({"chars_per_token": math.inf}, ValueError, id="chars-inf"),
        pytest.param({"chars_per_token": "4"}, TypeError, id="chars-string"),
        pytest.param({"chars_per_token": True}, TypeError, id="chars-bool"),
        pytest.param({"default_max_output_tokens": -1}, ValueError, id="default-negative"),
        pytest.param({"default_max_output_tokens": 10.5}, TypeError, id="default-float"),
        pytest.param({"default_max_output_tokens": 2**60}, ValueError, id="default-huge"),
        pytest.param({"tokens_per_image": -765}, ValueError, id="image-negative"),
        pytest.param({"tokens_per_message": None}, TypeError, id="framing-none"),
        pytest.param({"output_rule": "avg"}, ValueError, id="rule-unknown"),
    ],
)
def test_estimator_validation(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        CostEstimator(**kwargs)


def test_estimator_is_frozen() -> None:
    estimator = CostEstimator()
    with pytest.raises(AttributeError):
        estimator.chars_per_token = 3.0  # type: ignore[misc]


# --- hostile bodies -----------------------------------------------------------------


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = ["x"]
        node.append(child)
        node = child
    return root


def _cycle() -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "content": "a"}
    message["self"] = message
    return message


def _dag(levels: int) -> list[Any]:
    node: list[Any] = ["leaf"]
    for _ in range(levels):
        node = [node, node]  # 2**levels leaves in a few kilobytes
    return node


HOSTILE_BODIES = [
    pytest.param({"messages": "hello"}, id="messages-is-a-string"),
    pytest.param({"messages": ["hi", 3, None, [1, 2], 4.5]}, id="messages-not-mappings"),
    pytest.param({"messages": [{"role": "user", "content": None}]}, id="content-none"),
    pytest.param({"messages": [{1: "x", None: "y", (1, 2): "z", 2.5: [None]}]}, id="non-str-keys"),
    pytest.param({"messages": [{"type": ["image_url"], "content": "hi"}]}, id="unhashable-type"),
    pytest.param({"messages": [{"type": "input_audio", "input_audio": 3}]}, id="audio-not-mapping"),
    pytest.param(
        {"messages": [{"type": "input_audio", "input_audio": {"data": 7}}]}, id="audio-data"
    ),
    pytest.param({"messages": _nested(10_000), "tools": _nested(10_000)}, id="deep-chat"),
    pytest.param({"input": _nested(10_000), "text": {"format": _nested(500)}}, id="deep-responses"),
    pytest.param({"prompt": _nested(10_000), "suffix": 3}, id="deep-completions"),
    pytest.param({"messages": [_cycle()], "tools": [_cycle()]}, id="cycle"),
    pytest.param({"messages": _dag(60), "tools": _dag(60)}, id="dag-bomb"),
    pytest.param({"messages": [["s" * 10] * 1000] * 1000}, id="wide-shared-lists"),
    pytest.param({"messages": [], "n": 10**30, "max_tokens": 10**400}, id="huge-ints-ignored"),
    pytest.param({"messages": [], "n": 2**53, "max_tokens": 2**53}, id="huge-product-clamped"),
    pytest.param({"messages": [], "tools": [object(), {"f": object()}]}, id="tools-not-json"),
    pytest.param({"messages": [], "tools": {"x": [10**5000, -(10**30), math.nan]}}, id="big-num"),
    pytest.param({"input": [None, {}, [], "", 0]}, id="responses-junk-items"),
    pytest.param({"prompt": ["a", 1, None, [2, "b"], {"x": 1}]}, id="completions-mixed-list"),
    pytest.param({"prompt": {"variables": "not a mapping"}}, id="prompt-template-junk"),
    pytest.param(
        {"messages": [], "response_format": {"type": "json_schema", 1: math.inf}}, id="rf"
    ),
    pytest.param(
        {"text": {"format": None}, "instructions": 5, "input": 7}, id="responses-bad-types"
    ),
    pytest.param([1, 2, 3], id="body-is-a-list"),
    pytest.param("body", id="body-is-a-string"),
    pytest.param(None, id="body-is-none"),
]


def _check_sane(result: Cost, estimator: CostEstimator) -> None:
    assert result.requests == 1
    assert result.input_tokens is not None and result.output_tokens is not None
    for value in (result.tokens, result.input_tokens, result.output_tokens):
        assert math.isfinite(value) and value >= 0
    if estimator.output_rule == "sum":
        assert result.tokens == result.input_tokens + result.output_tokens
    else:
        assert result.tokens == max(result.input_tokens, result.output_tokens)


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_body_gives_sane_cost(body: Any) -> None:
    estimator = CostEstimator()
    # The unguarded path: the public method's last-resort handler must never be needed.
    _check_sane(estimator._estimate(body, None), estimator)
    _check_sane(estimator.estimate(body, endpoint="/v1/chat/completions"), estimator)


def test_hostile_specifics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ratelimit_llm.estimate")
    assert estimate_cost({"messages": "hello"}) == cost(ceil4("hello") + FRAME, DEFAULT_OUT)
    clamped = estimate_cost({"messages": [], "n": 2**53, "max_tokens": 2**53})
    assert clamped.output_tokens == _MAX_TOKENS
    dag = estimate_cost({"messages": _dag(60)})
    assert dag.input_tokens is not None and dag.input_tokens < 10**6  # the work budget held
    assert any("too deep or too large" in r.getMessage() for r in caplog.records)
    tiny = CostEstimator(chars_per_token=1e-300).estimate({"messages": [user("Hi")]})
    assert tiny.input_tokens == _MAX_TOKENS


class Exploding(Mapping[str, Any]):
    """A mapping whose every read raises, as a broken user type might."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_estimate_last_resort(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ratelimit_llm.estimate")
    assert estimate_cost(Exploding()) == Cost(requests=1, tokens=DEFAULT_OUT)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_cost_from_usage_unreadable_mapping() -> None:
    assert cost_from_usage(Exploding()) is None
    assert usage_from_stream_event({"type": "response.completed", "response": {}}) is None


def test_body_not_mutated_and_iterables_not_consumed() -> None:
    body: dict[str, Any] = {
        "messages": [
            user([{"type": "text", "text": "Hi"}]),
            {"role": "assistant", "tool_calls": [TOOL_CALL]},
        ],
        "tools": TOOLS,
        "response_format": RESPONSE_FORMAT,
        "max_tokens": 5,
    }
    before = copy.deepcopy(body)
    estimate_cost(body)
    assert body == before

    def messages() -> Iterator[dict[str, object]]:
        yield user("Hi")

    generator = messages()
    # An iterator is counted as one opaque message rather than drained: the SDK still needs it.
    assert estimate_cost({"messages": generator, "max_tokens": 1}) == cost(FRAME, 1)
    assert next(generator) == user("Hi")


# --- usage --------------------------------------------------------------------------

CHAT_USAGE = {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
REASONING_USAGE = {
    "prompt_tokens": 75,
    "completion_tokens": 1186,
    "total_tokens": 1261,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 1024},
}
RESPONSES_USAGE = {
    "input_tokens": 36,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 87,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 123,
}
EMBEDDINGS_USAGE = {"prompt_tokens": 8, "total_tokens": 8}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(CHAT_USAGE, Cost(1, 1163, 1117, 46), id="chat-with-cached-tokens"),
        pytest.param(REASONING_USAGE, Cost(1, 1261, 75, 1186), id="chat-with-reasoning-tokens"),
        pytest.param(RESPONSES_USAGE, Cost(1, 123, 36, 87), id="responses"),
        pytest.param(EMBEDDINGS_USAGE, Cost(1, 8, 8, 0), id="embeddings-output-zero"),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 5}, Cost(1, 15, 10, 5), id="no-total"
        ),
        pytest.param({"input_tokens": 10}, Cost(1, 10, 10, None), id="input-only"),
        pytest.param({"total_tokens": 42}, Cost(1, 42, None, None), id="total-only"),
        pytest.param(
            {"completion_tokens": 5, "total_tokens": 12}, Cost(1, 12, 7, 5), id="prompt-derived"
        ),
        pytest.param(
            {"prompt_tokens": 20, "total_tokens": 12}, Cost(1, 12, 20, None), id="inconsistent"
        ),
        pytest.param(
            {"prompt_tokens": 10.0, "total_tokens": 10.0}, Cost(1, 10, 10, 0), id="floats"
        ),
        pytest.param(
            {"prompt_tokens": -3, "completion_tokens": 5, "total_tokens": "x"},
            Cost(1, 5, None, 5),
            id="negative-part-and-bad-total-ignored",
        ),
        pytest.param(
            {"prompt_tokens": math.nan, "input_tokens": 9, "total_tokens": True},
            Cost(1, 9, 9, None),
            id="nan-falls-through-bool-total-ignored",
        ),
        pytest.param(
            {"prompt_tokens": 10**400, "total_tokens": 3}, Cost(1, 3, None, None), id="huge"
        ),
        pytest.param({"prompt_tokens": 1e308, "completion_tokens": 1e308}, None, id="overflow"),
        pytest.param({}, None, id="empty"),
        pytest.param({"prompt_tokens": None, "total_tokens": None}, None, id="all-null"),
        pytest.param({"prompt_tokens": "10", "total_tokens": [10]}, None, id="all-bad"),
        pytest.param(None, None, id="none"),
        pytest.param("usage", None, id="string"),
        pytest.param([10, 5, 15], None, id="list"),
    ],
)
def test_cost_from_usage(usage: Any, expected: Cost | None) -> None:
    assert cost_from_usage(usage) == expected


def test_cost_from_usage_logs_bad_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ratelimit_llm.estimate")
    cost_from_usage({"prompt_tokens": -1, "total_tokens": 3})
    assert [r.name for r in caplog.records] == ["ratelimit_llm.estimate"]
    assert "prompt_tokens" in caplog.records[0].getMessage()


CHAT_RESPONSE = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": CHAT_USAGE,
    "service_tier": "default",
}
RESPONSES_RESPONSE = {
    "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
    "object": "response",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
        }
    ],
    "usage": RESPONSES_USAGE,
}
EMBEDDINGS_RESPONSE = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}],
    "model": "text-embedding-3-small",
    "usage": EMBEDDINGS_USAGE,
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(CHAT_RESPONSE, CHAT_USAGE, id="chat"),
        pytest.param(RESPONSES_RESPONSE, RESPONSES_USAGE, id="responses"),
        pytest.param(EMBEDDINGS_RESPONSE, EMBEDDINGS_USAGE, id="embeddings"),
        pytest.param({**CHAT_RESPONSE, "usage": None}, None, id="usage-null"),
        pytest.param({"id": "x", "choices": []}, None, id="usage-absent"),
        pytest.param({"usage": [1, 2]}, None, id="usage-not-a-mapping"),
        pytest.param({"error": {"message": "boom", "type": "server_error"}}, None, id="error-body"),
        pytest.param([CHAT_RESPONSE], None, id="payload-not-a-mapping"),
    ],
)
def test_usage_from_response(payload: Any, expected: dict[str, Any] | None) -> None:
    assert usage_from_response(payload) == expected


STREAM_USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}
CHAT_CHUNK = {
    "id": "chatcmpl-123",
    "object": "chat.completion.chunk",
    "created": 1694268190,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
    ],
    "usage": None,
}
FINAL_CHUNK = {**CHAT_CHUNK, "choices": [], "usage": STREAM_USAGE}
RESPONSE_IN_PROGRESS = {**RESPONSES_RESPONSE, "status": "in_progress", "output": [], "usage": None}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(CHAT_CHUNK, None, id="chat-chunk-usage-null"),
        pytest.param(
            {k: v for k, v in CHAT_CHUNK.items() if k != "usage"}, None, id="chat-no-usage"
        ),
        pytest.param(FINAL_CHUNK, STREAM_USAGE, id="chat-final-usage-chunk"),
        pytest.param(
            {"type": "response.created", "sequence_number": 0, "response": RESPONSE_IN_PROGRESS},
            None,
            id="response-created",
        ),
        pytest.param(
            {
                "type": "response.output_text.delta",
                "sequence_number": 4,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hi",
                "usage": STREAM_USAGE,  # not where the Responses API puts it: ignored
            },
            None,
            id="response-output-text-delta",
        ),
        pytest.param(
            {"type": "response.completed", "sequence_number": 9, "response": RESPONSES_RESPONSE},
            RESPONSES_USAGE,
            id="response-completed",
        ),
        pytest.param(
            {
                "type": "response.incomplete",
                "response": {**RESPONSES_RESPONSE, "status": "incomplete"},
            },
            RESPONSES_USAGE,
            id="response-incomplete",
        ),
        pytest.param(
            {"type": "response.failed", "response": {**RESPONSES_RESPONSE, "status": "failed"}},
            RESPONSES_USAGE,
            id="response-failed-with-usage",
        ),
        pytest.param(
            {"type": "response.completed", "response": {"usage": None}}, None, id="completed-null"
        ),
        pytest.param({"type": "response.completed", "response": "x"}, None, id="completed-junk"),
        pytest.param(
            {"type": "error", "code": "rate_limit_exceeded", "message": "slow down"},
            None,
            id="error-event",
        ),
        pytest.param("[DONE]", None, id="not-a-mapping"),
    ],
)
def test_usage_from_stream_event(event: Any, expected: dict[str, Any] | None) -> None:
    assert usage_from_stream_event(event) == expected


def test_stream_usage_round_trip() -> None:
    usage = usage_from_stream_event(FINAL_CHUNK)
    assert cost_from_usage(usage) == Cost(1, 29, 19, 10)


# --- properties ---------------------------------------------------------------------

_TYPES = [
    "text",
    "image_url",
    "input_text",
    "input_image",
    "input_audio",
    "input_file",
    "file",
    "function",
    "function_call",
    "function_call_output",
    "json_schema",
    "message",
]
_KEYS = [
    "role",
    "content",
    "type",
    "text",
    "name",
    "image_url",
    "input_audio",
    "data",
    "tool_calls",
    "function",
    "arguments",
    "output",
    "format",
    "schema",
    "variables",
]
_TOP_KEYS = [
    "messages",
    "input",
    "prompt",
    "suffix",
    "instructions",
    "tools",
    "functions",
    "response_format",
    "text",
    "prediction",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "best_of",
    "model",
    "encoding_format",
    "dimensions",
]
_USAGE_KEYS = [
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
    "total_tokens",
]

scalars: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(_TYPES),
)
json_like: st.SearchStrategy[object] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.sampled_from(_KEYS), st.text(max_size=6), st.integers(), st.none()),
            children,
            max_size=5,
        ),
    ),
    max_leaves=40,
)
bodies = st.dictionaries(
    st.one_of(st.sampled_from(_TOP_KEYS), st.text(max_size=8)), json_like, max_size=6
)
endpoints = st.one_of(
    st.none(),
    st.sampled_from(["/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings"]),
    st.text(max_size=30),
)
estimators = st.sampled_from(
    [
        CostEstimator(),
        CostEstimator(output_rule="max"),
        CostEstimator(chars_per_token=0.001, default_max_output_tokens=0, tokens_per_message=0),
    ]
)


@settings(max_examples=250, deadline=None)
@given(body=st.one_of(bodies, json_like), endpoint=endpoints, estimator=estimators)
def test_estimate_never_raises(body: Any, endpoint: str | None, estimator: CostEstimator) -> None:
    _check_sane(estimator._estimate(body, endpoint), estimator)


@settings(max_examples=150, deadline=None)
@given(
    usage=st.one_of(
        st.dictionaries(st.one_of(st.sampled_from(_USAGE_KEYS), st.text(max_size=6)), json_like),
        json_like,
    )
)
def test_usage_readers_never_raise(usage: Any) -> None:
    result = cost_from_usage(usage)
    if result is not None:
        assert result.requests == 1 and math.isfinite(result.tokens)
    for found in (usage_from_response(usage), usage_from_stream_event(usage)):
        assert found is None or isinstance(found, dict)
    event = {"type": "response.completed", "response": {"usage": usage}}
    assert cost_from_usage(usage_from_stream_event(event)) == result


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.text(max_size=50), max_size=10), limit=st.integers(0, 10_000))
def test_chat_text_matches_the_rule(texts: list[str], limit: int) -> None:
    body = {"messages": [user(text) for text in texts], "max_tokens": limit}
    assert estimate_cost(body) == cost(ceil4(*texts) + FRAME * len(texts), limit)


json_values: st.SearchStrategy[object] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**17), 10**17),
        st.floats(),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(-100, 100), st.booleans(), st.none()),
            children,
            max_size=4,
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_json_length_matches_json_dumps(value: object) -> None:
    tally = _Tally(0)
    tally.json(value, 0)
    assert tally.chars == len(compact(value))
