"""Result lines: both error shapes, retryable versus final, malformed input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ratelimit_llm.batch._lines import parse_line


def http_line(status: int, body: dict[str, Any], custom_id: str = "a") -> str:
    return json.dumps(
        {
            "id": "batch_req_1",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": "req", "body": body},
            "error": None,
        }
    )


def error_body(
    code: str | None, message: str = "boom", kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def test_a_success_carries_body_and_usage() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    outcome = parse_line(http_line(200, {"id": "x", "usage": usage}))
    assert outcome is not None
    assert outcome.kind == "ok"
    assert outcome.response == {"id": "x", "usage": usage}
    assert outcome.usage == usage
    assert outcome.error is None


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "rate_limit_exceeded", "retry"),
        (500, "server_error", "retry"),
        (503, None, "retry"),
        (408, None, "retry"),
        (400, "context_length_exceeded", "final"),
        (404, "model_not_found", "final"),
        (429, "insufficient_quota", "final"),
        (401, "invalid_api_key", "final"),
    ],
)
def test_http_errors_are_sorted(status: int, code: str | None, kind: str) -> None:
    outcome = parse_line(http_line(status, error_body(code)))
    assert outcome is not None
    assert outcome.kind == kind
    assert outcome.error is not None
    assert outcome.error.status_code == status
    assert outcome.error.code == code
    assert outcome.error.retryable is (kind == "retry")


@pytest.mark.parametrize("code", ["batch_expired", "batch_cancelled"])
def test_never_ran_errors_are_expiries(code: str) -> None:
    line = json.dumps({"custom_id": "a", "response": None, "error": {"code": code, "message": "m"}})
    outcome = parse_line(line)
    assert outcome is not None
    assert outcome.kind == "expired"
    assert outcome.error is not None and outcome.error.retryable


def test_api_keys_are_redacted_from_messages() -> None:
    outcome = parse_line(
        http_line(401, error_body("invalid_api_key", "bad key sk-abcdefghijklmnop1234"))
    )
    assert outcome is not None and outcome.error is not None
    assert "abcdefghijklmnop" not in outcome.error.message


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        '{"custom_id": "a", "response": {"status_co',
        "[1, 2]",
        '{"response": null}',
        '{"custom_id": "a"}',
    ],
)
def test_malformed_lines_yield_nothing(line: str) -> None:
    assert parse_line(line) is None


def test_bytes_are_accepted() -> None:
    assert parse_line(http_line(200, {"id": "x"}).encode()) is not None
