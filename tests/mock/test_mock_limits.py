"""Enforcement and reporting: buckets, headers and 429 texts with exact arithmetic."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ratelimit_llm.mock import KeyConfig, MockLimits, max_rule

from ._support import KEY, OTHER_KEY, Mock, instant, mock

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello, world!"}]  # est. 4


async def chat(
    m: Mock,
    *,
    key: str = KEY,
    model: str = "gpt-4o-mini",
    max_tokens: int = 20,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """A raw chat request; returns the response whatever its status."""
    return await m.http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": HELLO, "max_tokens": max_tokens},
        headers={"authorization": f"Bearer {key}", **(headers or {})},
    )


async def consume(m: Mock, tokens: int, *, model: str = "gpt-4o-mini") -> None:
    """Take exactly ``tokens`` tokens (and one request) with an embedding of known size."""
    response = await m.http.post(
        "/v1/embeddings",
        json={"model": model, "input": "a" * (4 * tokens), "dimensions": 1},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 200, response.text


def error(response: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


@pytest.mark.asyncio
async def test_headers_after_one_request_are_exact() -> None:
    async with mock() as m:
        raw = await m.client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=20
        )
    headers = raw.headers
    assert headers["x-ratelimit-limit-requests"] == "500"
    assert headers["x-ratelimit-remaining-requests"] == "499"
    assert headers["x-ratelimit-reset-requests"] == "120ms"
    # Charged ceil(13/4) + 20 = 24 tokens: 24 / (200000/60) s = 7.2 ms, truncated to 7ms.
    assert headers["x-ratelimit-limit-tokens"] == "200000"
    assert headers["x-ratelimit-remaining-tokens"] == "199976"
    assert headers["x-ratelimit-reset-tokens"] == "7ms"
    assert headers["openai-version"] == "2020-10-01"
    assert headers["openai-processing-ms"] == "0"
    request_id = headers["x-request-id"]
    assert request_id.startswith("req_") and len(request_id) == 36
    int(request_id[4:], 16)
    assert "x-ratelimit-limit-project-tokens" not in headers


@pytest.mark.asyncio
async def test_refill_is_continuous() -> None:
    async with mock() as m:
        for _ in range(3):
            await chat(m)
        m.clock.advance(0.12)  # one request's worth
        response = await chat(m)
    assert response.headers["x-ratelimit-remaining-requests"] == "497"
    assert response.headers["x-ratelimit-reset-requests"] == "360ms"


@pytest.mark.asyncio
async def test_tpm_429_message_matches_the_captured_arithmetic() -> None:
    # Capture: L 30000, U 29937, R 385 -> "Please try again in 644ms".
    async with mock(limits=MockLimits(rpm=10_000, tpm=30_000)) as m:
        await consume(m, 29_937)
        with pytest.raises(openai.RateLimitError) as caught:
            await m.client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "abcd"}], max_tokens=384
            )
    exc = caught.value
    assert exc.body == {
        "message": "Rate limit reached for gpt-4o-mini in organization "
        f"{exc.response.headers['openai-organization']} on tokens per min (TPM): "
        "Limit 30000, Used 29937, Requested 385. Please try again in 644ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert exc.response.headers["retry-after"] == "1"
    assert exc.response.headers["x-ratelimit-remaining-tokens"] == "63"
    # The refused request still spent a request slot; the embedding spent the other.
    assert exc.response.headers["x-ratelimit-remaining-requests"] == "9998"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("limits", "sent", "what", "wait", "retry_after"),
    [
        (MockLimits(rpm=3), 3, "requests per min (RPM): Limit 3, Used 3, Requested 1", "20s", "20"),
        (
            MockLimits(rpm=500),
            500,
            "requests per min (RPM): Limit 500, Used 500, Requested 1",
            "120ms",
            "1",
        ),
        (
            MockLimits(rpd=200),
            200,
            "requests per day (RPD): Limit 200, Used 200, Requested 1",
            "7m12s",
            "432",
        ),
        (
            MockLimits(rpd=1000),
            1000,
            "requests per day (RPD): Limit 1000, Used 1000, Requested 1",
            "1m26.4s",
            "87",
        ),
    ],
)
async def test_request_limit_429s(
    limits: MockLimits, sent: int, what: str, wait: str, retry_after: str
) -> None:
    async with mock(limits=limits) as m:
        for _ in range(sent):
            assert (await chat(m)).status_code == 200
        refused = await chat(m)
    assert refused.status_code == 429
    body = error(refused)
    assert (
        body["type"] == "requests"
        and body["code"] == "rate_limit_exceeded"
        and body["param"] is None
    )
    assert f" on {what}. Please try again in {wait}. Visit " in body["message"]
    assert refused.headers["retry-after"] == retry_after


@pytest.mark.asyncio
async def test_tpd_429_and_refill_after_waiting() -> None:
    async with mock(limits=MockLimits(tpd=1_000)) as m:
        await consume(m, 990)
        refused = await chat(m, max_tokens=16)  # 4 + 16 = 20 tokens, 10 left
        assert refused.status_code == 429
        assert (
            "on tokens per day (TPD): Limit 1000, Used 990, Requested 20. "
            "Please try again in 14m24s." in error(refused)["message"]
        )
        m.clock.advance(864)  # 10 tokens flow in per 864 s
        assert (await chat(m, max_tokens=16)).status_code == 200


@pytest.mark.asyncio
async def test_request_too_large_has_no_retry_after() -> None:
    async with mock(limits=MockLimits(rpm=100, tpm=1_000)) as m:
        with pytest.raises(openai.RateLimitError) as caught:
            await m.client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=1_000)
    exc = caught.value
    org = exc.response.headers["openai-organization"]
    assert exc.message.endswith(
        f"Request too large for gpt-4o in organization {org} on tokens per min (TPM): Limit 1000, "
        "Requested 1004. The input or output tokens must be reduced in order to run successfully."
    )
    assert exc.type == "tokens" and exc.code == "rate_limit_exceeded"
    assert "retry-after" not in exc.response.headers
    assert exc.response.headers["x-ratelimit-remaining-tokens"] == "1000"


@pytest.mark.asyncio
async def test_insufficient_quota_key() -> None:
    config = instant(keys={OTHER_KEY: KeyConfig(insufficient_quota=True)})
    async with mock(config) as m:
        with pytest.raises(openai.RateLimitError) as caught:
            await m.sdk(OTHER_KEY).chat.completions.create(model="gpt-4o", messages=HELLO)
        assert (await chat(m)).status_code == 200  # other keys are fine
    exc = caught.value
    assert exc.code == "insufficient_quota" and exc.type == "insufficient_quota"
    assert "You exceeded your current quota" in exc.message
    assert "retry-after" not in exc.response.headers
    assert exc.response.headers["x-ratelimit-remaining-requests"] == "499"


@pytest.mark.asyncio
async def test_failed_requests_charge_toggle() -> None:
    for charge_failed, remaining in ((True, "0"), (False, "1")):
        async with mock(
            instant(limits=MockLimits(rpm=2, tpm=100), charge_failed_requests=charge_failed)
        ) as m:
            assert (await chat(m, max_tokens=90)).status_code == 200
            refused = await chat(m, max_tokens=90)  # TPM refuses
            assert refused.status_code == 429
            assert refused.headers["x-ratelimit-remaining-requests"] == remaining


@pytest.mark.asyncio
async def test_quantized_burst() -> None:
    async with mock(limits=MockLimits(rpm=600, burst_seconds=1)) as m:
        first = await chat(m)
        assert first.headers["x-ratelimit-limit-requests"] == "600"
        assert first.headers["x-ratelimit-remaining-requests"] == "9"
        assert first.headers["x-ratelimit-reset-requests"] == "100ms"
        for _ in range(9):
            assert (await chat(m)).status_code == 200
        refused = await chat(m)
        assert refused.status_code == 429
        assert (
            "Limit 600, Used 600, Requested 1. Please try again in 100ms."
            in error(refused)["message"]
        )
        m.clock.advance(0.1)
        assert (await chat(m)).status_code == 200
        assert (await chat(m)).status_code == 429


@pytest.mark.asyncio
async def test_limits_change_while_running() -> None:
    async with mock() as m:
        await chat(m)
        m.state.set_limits(MockLimits(rpm=100, tpm=200_000))
        lowered = await chat(m)
        assert lowered.headers["x-ratelimit-limit-requests"] == "100"
        assert lowered.headers["x-ratelimit-remaining-requests"] == "98"
        assert lowered.headers["x-ratelimit-reset-requests"] == "1.2s"
        changed = await m.http.post("/mock/limits", json={"rpm": 1000, "tpm": None})
        assert changed.status_code == 200
        assert changed.json()["limits"]["rpm"] == 1000
        raised = await chat(m)
        assert raised.headers["x-ratelimit-remaining-requests"] == "997"
        assert "x-ratelimit-limit-tokens" not in raised.headers
        per_model = await m.http.post("/mock/limits", json={"model": "gpt-4o", "rpm": 1})
        assert per_model.json() == {
            "model": "gpt-4o",
            "limits": {
                "rpm": 1,
                "tpm": None,
                "rpd": None,
                "tpd": None,
                "project_tpm": None,
                "burst_seconds": None,
                "rps": None,
                "tps": None,
                "input_tpm": None,
                "output_tpm": None,
                "concurrency": None,
                "in_flight_tokens": None,
            },
        }
        assert (await chat(m, model="gpt-4o")).status_code == 200
        assert (await chat(m, model="gpt-4o")).status_code == 429
        assert (await chat(m)).status_code == 200
        bad = await m.http.post("/mock/limits", json={"rpm": -5})
        assert bad.status_code == 400
        unknown = await m.http.post("/mock/limits", json={"rpx": 5})
        assert unknown.status_code == 400
        listed = (await m.http.get("/mock/limits")).json()
        assert listed["default"]["rpm"] == 1000 and listed["models"]["gpt-4o"]["rpm"] == 1


@pytest.mark.asyncio
async def test_lowering_below_usage_leaves_debt() -> None:
    async with mock(limits=MockLimits(rpm=10)) as m:
        for _ in range(6):
            await chat(m)
        m.state.set_limits(MockLimits(rpm=5))
        refused = await chat(m)
        assert refused.status_code == 429
        assert "Limit 5, Used 6, Requested 1. Please try again in 24s." in error(refused)["message"]
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.asyncio
async def test_keys_are_isolated_and_shared_groups_share() -> None:
    config = instant(
        limits=MockLimits(rpm=2), shared_limits={"gpt-4o-family": ("gpt-4o", "gpt-4o-2024-08-06")}
    )
    async with mock(config) as m:
        assert (await chat(m, model="gpt-4o")).status_code == 200
        assert (await chat(m, model="gpt-4o-2024-08-06")).status_code == 200
        refused = await chat(m, model="gpt-4o")
        assert refused.status_code == 429
        assert "Rate limit reached for gpt-4o in organization" in error(refused)["message"]
        assert (await chat(m, model="gpt-4o-2024-08-06")).status_code == 429
        assert (await chat(m, model="gpt-4o-mini")).status_code == 200  # its own bucket
        assert (await chat(m, key=OTHER_KEY, model="gpt-4o")).status_code == 200  # another key


@pytest.mark.asyncio
async def test_organization_scope_shares_buckets_between_keys() -> None:
    config = instant(
        limits=MockLimits(rpm=2),
        limit_scope="organization",
        keys={
            KEY: KeyConfig(organization="org-shared"),
            OTHER_KEY: KeyConfig(organization="org-shared"),
        },
    )
    async with mock(config) as m:
        assert (await chat(m)).status_code == 200
        assert (await chat(m, key=OTHER_KEY)).status_code == 200
        refused = await chat(m)
        assert "in organization org-shared on requests per min" in error(refused)["message"]
        # The organization header picks another org's buckets.
        assert (await chat(m, headers={"openai-organization": "org-other"})).status_code == 200


@pytest.mark.asyncio
async def test_project_bucket_headers_and_wording() -> None:
    config = instant(
        limits=MockLimits(rpm=100, tpm=100_000, project_tpm=60),
        keys={KEY: KeyConfig(organization="org-acme", project="proj_alpha")},
    )
    async with mock(config) as m:
        first = await chat(m, max_tokens=26)  # 30 tokens
        assert first.headers["x-ratelimit-limit-project-tokens"] == "60"
        assert first.headers["x-ratelimit-remaining-project-tokens"] == "30"
        assert first.headers["x-ratelimit-reset-project-tokens"] == "30s"
        assert first.headers["openai-project"] == "proj_alpha"
        await chat(m, max_tokens=26)
        refused = await chat(m, max_tokens=26)
        assert refused.status_code == 429
        assert error(refused)["message"].startswith(
            "Rate limit reached for gpt-4o-mini in project proj_alpha organization org-acme "
            "on tokens per min (TPM): Limit 60, Used 60, Requested 30. Please try again in 30s."
        )


@pytest.mark.asyncio
async def test_project_scope_uses_project_wording() -> None:
    config = instant(limits=MockLimits(rpm=1), limit_scope="project")
    async with mock(config) as m:
        await chat(m, headers={"openai-project": "proj_x", "openai-organization": "org-y"})
        refused = await chat(
            m, headers={"openai-project": "proj_x", "openai-organization": "org-y"}
        )
        assert (
            "in project proj_x organization org-y on requests per min (RPM)"
            in error(refused)["message"]
        )
        assert (
            await chat(m, headers={"openai-project": "proj_z", "openai-organization": "org-y"})
        ).status_code == 200


@pytest.mark.asyncio
async def test_requests_triplet_reports_the_binding_window() -> None:
    async with mock(limits=MockLimits(rpm=10_000, rpd=10_000)) as m:
        tie = await chat(m)
        assert (
            tie.headers["x-ratelimit-reset-requests"] == "8.64s"
        )  # the capture: it is the day bucket
    async with mock(limits=MockLimits(rpm=500, rpd=10_000)) as m:
        minute = await chat(m)
        assert minute.headers["x-ratelimit-reset-requests"] == "120ms"
    async with mock(limits=MockLimits(rpm=500, rpd=3)) as m:
        day = await chat(m)
        assert day.headers["x-ratelimit-limit-requests"] == "3"
        assert day.headers["x-ratelimit-reset-requests"] == "8h0m0s"


@pytest.mark.asyncio
async def test_settle_to_usage_refunds_the_unused_reservation() -> None:
    for settle in (False, True):
        async with mock(instant(limits=MockLimits(tpm=10_000), settle_to_usage=settle)) as m:
            completion = await m.client.chat.completions.create(
                model="gpt-4o", messages=HELLO, max_tokens=200
            )
            assert completion.usage is not None
            after = await chat(m, model="gpt-4o", max_tokens=1)
            remaining = int(after.headers["x-ratelimit-remaining-tokens"])
            # Settled: each request ends up costing its usage (the second's is 10 in, 1 out).
            spent = completion.usage.total_tokens + 11 if settle else 204 + 5
            assert remaining == 10_000 - spent
            stats = m.state.stats()
            assert stats["tokens"]["charged"] == 209
            assert stats["tokens"]["used"] == completion.usage.total_tokens + 10 + 1  # 10 in, 1 out


@pytest.mark.asyncio
async def test_charge_rule_is_pluggable() -> None:
    async with mock(instant(charge_rule=max_rule)) as m:
        response = await chat(m, max_tokens=20)
    assert response.headers["x-ratelimit-remaining-tokens"] == "199980"  # max(4, 20)


@pytest.mark.asyncio
async def test_429_and_stream_responses_carry_headers() -> None:
    async with mock(limits=MockLimits(rpm=1, tpm=1_000)) as m:
        async with m.client.chat.completions.with_streaming_response.create(
            model="gpt-4o",
            messages=HELLO,
            max_tokens=10,
            stream=True,
        ) as streamed:
            assert streamed.headers["x-ratelimit-remaining-requests"] == "0"
            assert streamed.headers["x-ratelimit-remaining-tokens"] == "986"
            async for _ in streamed.iter_lines():
                pass
        refused = await chat(m)
    assert refused.headers["x-ratelimit-limit-requests"] == "1"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert refused.headers["x-request-id"].startswith("req_")
