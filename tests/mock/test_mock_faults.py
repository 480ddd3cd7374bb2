"""Injected faults: what each looks like to the SDK and to a raw client, and when it fires."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from ratelimit_llm.mock import FaultKind, FaultPlan, FaultRule, MockConfig, MockLimits

from ._support import KEY, instant, mock
from .test_mock_limits import HELLO, chat

GARBAGE = {"", "soon", "-5", "1h2x", "NaN", "inf", "499, 499", "9999999999999"}


def on_first(kind: str, **changes: Any) -> MockConfig:
    """A config whose first API request gets fault ``kind``."""
    return instant(faults=FaultPlan((FaultRule.parse(f"{kind}@1"),), **changes))


def test_fault_rule_parsing() -> None:
    assert FaultRule.parse("503_overloaded=0.05") == FaultRule(
        FaultKind.OVERLOADED, probability=0.05
    )
    assert FaultRule.parse("500@10-12") == FaultRule(FaultKind.SERVER_ERROR, requests=(10, 12))
    assert FaultRule.parse(" stream_cut @ 7 ") == FaultRule(FaultKind.STREAM_CUT, requests=(7, 7))
    for bad in ("503", "nope=0.1", "500=2", "500@3-1", "500@0", "500=x"):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "status", "message", "code"),
    [
        ("500", 500, "The server had an error while processing your request.", None),
        ("503_overloaded", 503, "The engine is currently overloaded, please try again later", None),
        (
            "503_slow_down",
            503,
            "A sudden increase in your request rate is impacting service reliability.",
            "slow_down",
        ),
    ],
)
async def test_json_server_errors(kind: str, status: int, message: str, code: str | None) -> None:
    async with mock(on_first(kind)) as m:
        with pytest.raises(openai.InternalServerError) as caught:
            await m.client.chat.completions.create(model="gpt-4o", messages=HELLO)
        after = await chat(m, model="gpt-4o")
    exc = caught.value
    assert exc.status_code == status
    assert message in exc.message
    assert exc.type == "server_error" and exc.code == code
    # Failed requests still spend a request slot (but no tokens) and carry the headers.
    assert exc.response.headers["x-ratelimit-remaining-requests"] == "499"
    assert exc.response.headers["x-ratelimit-remaining-tokens"] == "200000"
    assert after.headers["x-ratelimit-remaining-requests"] == "498"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "status", "title"),
    [("502", 502, "502 Bad Gateway"), ("504", 504, "504 Gateway Time-out")],
)
async def test_gateway_html_errors(kind: str, status: int, title: str) -> None:
    async with mock(on_first(kind)) as m:
        with pytest.raises(openai.InternalServerError) as caught:
            await m.client.chat.completions.create(model="gpt-4o", messages=HELLO)
    response = caught.value.response
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in response.text
    assert not [name for name in response.headers if name.startswith("x-ratelimit-")]


@pytest.mark.asyncio
async def test_connection_reset_before_headers() -> None:
    async with mock(on_first("connection_reset")) as m:
        with pytest.raises(openai.APIConnectionError):
            await m.client.chat.completions.create(model="gpt-4o", messages=HELLO)
        # The failed request still spent a request slot.
        assert (await chat(m, model="gpt-4o")).headers["x-ratelimit-remaining-requests"] == "498"
    assert m.state.stats()["faults"] == {"connection_reset": 1}
    async with mock(on_first("connection_reset")) as m:
        with pytest.raises(httpx2.RemoteProtocolError) as caught:
            await chat(m)
        assert isinstance(caught.value, ConnectionResetError)


@pytest.mark.asyncio
async def test_stream_cut_sends_no_finish_usage_or_done() -> None:
    async with mock(on_first("stream_cut")) as m:
        raw = await m.http.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "messages": HELLO,
                "max_tokens": 20,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert raw.status_code == 200
    assert raw.headers["x-ratelimit-remaining-requests"] == "499"
    assert "[DONE]" not in raw.text
    assert '"finish_reason":"' not in raw.text
    assert '"choices":[]' not in raw.text
    assert raw.text.count("data: ") >= 2  # the role chunk and some content first
    stats = m.state.stats()
    assert stats["failed"] == 1 and stats["faults"] == {"stream_cut": 1}


@pytest.mark.asyncio
async def test_in_stream_error_after_200_raises_in_the_sdk() -> None:
    async with mock(on_first("stream_error")) as m:
        stream = await m.client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=20, stream=True
        )
        received = 0
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                received += 1
        assert received >= 1
        assert "The server had an error" in caught.value.message
        assert caught.value.body == {
            "message": caught.value.message,
            "type": "server_error",
            "param": None,
            "code": None,
        }


@pytest.mark.asyncio
async def test_in_stream_error_in_responses() -> None:
    async with mock(on_first("stream_error")) as m:
        stream = await m.client.responses.create(
            model="gpt-4o", input="hi", max_output_tokens=20, stream=True
        )
        names: list[str] = []
        with pytest.raises(openai.APIError):
            async for event in stream:
                names.append(event.type)  # noqa: PERF401 - the raise must leave what came before
    assert names[0] == "response.created"
    assert "response.completed" not in names


@pytest.mark.asyncio
async def test_stream_only_faults_skip_plain_requests() -> None:
    async with mock(
        instant(faults=FaultPlan((FaultRule.parse("stream_cut=1"), FaultRule.parse("500@2"))))
    ) as m:
        assert (await chat(m)).status_code == 200  # a plain request cannot be cut
        assert (await chat(m)).status_code == 500


@pytest.mark.asyncio
async def test_keepalive_comments_are_harmless() -> None:
    async with mock(instant(faults=FaultPlan((FaultRule.parse("keepalive=1"),)))) as m:
        raw = await m.http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HELLO, "max_tokens": 5, "stream": True},
            headers={"authorization": f"Bearer {KEY}"},
        )
        assert raw.text.startswith(": keep-alive\n\n\n")
        stream = await m.client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=5, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason is not None


@pytest.mark.asyncio
async def test_slow_first_byte_is_not_scaled() -> None:
    async with mock(on_first("slow_first_byte", slow_first_byte_seconds=30)) as m:
        started = m.clock.now
        raw = await m.client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=HELLO
        )
    assert m.clock.sleeps == [30]
    assert m.clock.now - started == 30
    assert raw.headers["openai-processing-ms"] == "30000"


@pytest.mark.asyncio
async def test_missing_and_garbled_headers() -> None:
    plan = FaultPlan((FaultRule.parse("missing_headers@1"), FaultRule.parse("garbled_headers@2-3")))
    async with mock(instant(limits=MockLimits(rpm=2), faults=plan)) as m:
        missing = await chat(m)
        garbled = await chat(m)
        garbled_429 = await chat(m)
    assert missing.status_code == 200
    assert not [name for name in missing.headers if name.startswith("x-ratelimit-")]
    assert missing.headers["x-request-id"].startswith("req_")
    for response in (garbled, garbled_429):
        values = {
            value
            for name, value in response.headers.items()
            if name.startswith(("x-ratelimit-", "retry-after"))
        }
        assert values and values <= GARBAGE
    assert garbled_429.status_code == 429 and "retry-after" in garbled_429.headers


@pytest.mark.asyncio
async def test_insufficient_quota_fault() -> None:
    async with mock(on_first("insufficient_quota")) as m:
        refused = await chat(m)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert (await chat(m)).status_code == 200


@pytest.mark.asyncio
async def test_schedule_and_seeded_probability() -> None:
    async with mock(instant(faults=FaultPlan((FaultRule.parse("500@2-3"),)))) as m:
        statuses = [(await chat(m)).status_code for _ in range(5)]
        assert statuses == [200, 500, 500, 200, 200]
        await m.http.post("/mock/reset")
        assert [(await chat(m)).status_code for _ in range(3)] == [
            200,
            500,
            500,
        ]  # numbering restarts

    runs: list[list[int]] = []
    for seed in (7, 7, 8):
        config = instant(
            seed=seed,
            limits=MockLimits(rpm=10_000),
            faults=FaultPlan((FaultRule.parse("503_overloaded=0.5"),)),
        )
        async with mock(config) as m:
            runs.append([(await chat(m)).status_code for _ in range(40)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert 5 <= runs[0].count(503) <= 35
    assert set(runs[0]) == {200, 503}
