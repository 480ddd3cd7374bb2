"""Inputs become journal rows (three shapes, generated ids) and rows become files that fit."""

from __future__ import annotations

import json

import pytest

from ratelimit_llm.batch import BatchLimits, BatchRequest
from ratelimit_llm.batch._split import RowSize, count_embedding_inputs, line_prefix, prepare, take

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}


def test_the_three_input_shapes_become_the_same_row() -> None:
    plain = prepare({**BODY, "custom_id": "a"}, 0, "/v1/chat/completions")
    line = prepare(
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": BODY}, 0, None
    )
    request = prepare(BatchRequest(BODY, endpoint="chat/completions", custom_id="a"), 0, None)
    assert plain == line == request
    assert plain.model == "gpt-4o-mini"
    assert "custom_id" not in json.loads(plain.body)  # taken out of the body sent


def test_missing_custom_ids_are_named_by_position() -> None:
    assert prepare(BODY, 7, "/v1/chat/completions").custom_id == "request-7"


def test_line_size_is_the_exact_bytes_of_the_uploaded_line() -> None:
    row = prepare({**BODY, "custom_id": "é"}, 0, "/v1/chat/completions")
    text = f"{line_prefix(row.custom_id, row.endpoint)}{row.body}}}\n"
    assert row.size == len(text.encode())
    assert json.loads(text)["body"] == BODY


def test_tokens_use_the_limiter_estimate() -> None:
    row = prepare(BODY, 0, "/v1/chat/completions")
    assert row.tokens >= 5  # prompt plus the requested output


@pytest.mark.parametrize(
    ("item", "endpoint", "error"),
    [
        (BODY, None, ValueError),  # a plain body needs endpoint=
        ({**BODY, "stream": True}, "/v1/chat/completions", ValueError),
        (BODY, "/v1/audio/speech", ValueError),
        ("not a dict", "/v1/chat/completions", TypeError),
        ({"method": "GET", "url": "/v1/embeddings", "body": {}}, None, ValueError),
        ({**BODY, "custom_id": ""}, "/v1/chat/completions", ValueError),
        ({"model": "m", "x": object()}, "/v1/chat/completions", TypeError),
    ],
)
def test_bad_inputs_are_refused_up_front(item: object, endpoint: str | None, error: type) -> None:
    with pytest.raises(error):
        prepare(item, 0, endpoint)


@pytest.mark.parametrize(
    ("value", "count"),
    [("one", 1), (["a", "b", "c"], 3), ([1, 2, 3], 1), ([[1, 2], [3]], 2), ([], 1)],
)
def test_embedding_inputs_are_counted(value: object, count: int) -> None:
    assert count_embedding_inputs({"input": value}) == count


def rows(n: int, *, size: int = 10, tokens: int = 1, inputs: int = 1) -> list[RowSize]:
    return [RowSize(tokens, inputs, size) for _ in range(n)]


def test_take_stops_at_the_request_limit() -> None:
    limits = BatchLimits(max_requests=3)
    assert (
        take(rows(10), limits, endpoint="/v1/chat/completions", token_room=1e9, force_first=True)
        == 3
    )


def test_take_stops_at_the_byte_limit_exactly() -> None:
    limits = BatchLimits(max_bytes=30)
    chat = "/v1/chat/completions"
    assert take(rows(10, size=10), limits, endpoint=chat, token_room=1e9, force_first=True) == 3
    assert take(rows(10, size=11), limits, endpoint=chat, token_room=1e9, force_first=True) == 2


def test_embedding_inputs_limit_applies_to_embeddings_only() -> None:
    limits = BatchLimits(max_embedding_inputs=5)
    many = rows(10, inputs=2)
    assert take(many, limits, endpoint="/v1/embeddings", token_room=1e9, force_first=True) == 2
    assert (
        take(many, limits, endpoint="/v1/chat/completions", token_room=1e9, force_first=True) == 10
    )


def test_token_room_limits_and_an_oversized_first_row_goes_alone_when_forced() -> None:
    limits = BatchLimits()
    chat = "/v1/chat/completions"
    assert take(rows(10, tokens=4), limits, endpoint=chat, token_room=10, force_first=False) == 2
    big = rows(3, tokens=100)
    assert take(big, limits, endpoint=chat, token_room=10, force_first=False) == 0
    assert take(big, limits, endpoint=chat, token_room=10, force_first=True) == 1
    assert (
        take(
            rows(3, size=100),
            BatchLimits(max_bytes=50),
            endpoint=chat,
            token_room=1e9,
            force_first=True,
        )
        == 1
    )


def test_limits_validate_and_resolve_per_model_budgets() -> None:
    with pytest.raises(ValueError):
        BatchLimits(max_requests=0)
    with pytest.raises(ValueError):
        BatchLimits(max_retries=-1)
    limits = BatchLimits(enqueued_tokens={"gpt-4o": 100, "*": 1_000})
    assert limits.budget_for("gpt-4o") == 100
    assert limits.budget_for("other") == 1_000
    assert BatchLimits().budget_for("x") == float("inf")
