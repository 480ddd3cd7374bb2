"""Each provider dialect: OpenAI, Azure, Groq and a server with no rate-limit headers."""

from __future__ import annotations

import dataclasses

import pytest

from ratelimit_llm.mock import PROFILES, MockLimits, Profile

from ._support import instant, mock
from .test_mock_limits import chat, consume, error


def test_named_profiles() -> None:
    assert Profile.named("openai") == Profile.openai()
    assert Profile.named("azure-sentinels").token_sentinels
    assert set(PROFILES) == {
        "openai",
        "azure",
        "azure-sentinels",
        "azure-ptu",
        "groq",
        "none",
        "together",
        "fireworks",
        "openrouter",
        "gemini",
        "gemini-array",
        "anthropic",
        "deepseek",
        "tgi",
        "vllm",
    }
    assert all(name == profile.name for name, profile in PROFILES.items())
    with pytest.raises(ValueError, match="unknown profile"):
        Profile.named("bedrock")


@pytest.mark.asyncio
async def test_openai_profile_is_the_default() -> None:
    async with mock(limits=MockLimits(rpm=3)) as m:
        for _ in range(3):
            await chat(m)
        refused = await chat(m)
    assert refused.headers["retry-after"] == "20"
    assert "retry-after-ms" not in refused.headers
    assert "x-should-retry" not in refused.headers
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"


@pytest.mark.asyncio
async def test_azure_profile() -> None:
    config = instant(limits=MockLimits(rpm=600, tpm=6_000), profile=Profile.azure())
    async with mock(config) as m:
        ok = await chat(m, max_tokens=96)  # 100 tokens: 1 s to refill
        assert (
            ok.headers["x-ratelimit-reset-requests"] == "1"
        )  # 100 ms, rounded up to whole seconds
        assert ok.headers["x-ratelimit-reset-tokens"] == "1"
        assert ok.headers["x-ratelimit-remaining-tokens"] == "5900"
        await consume(m, 5_880)
        refused = await m.http.post(
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-06-01",
            json={"messages": [{"role": "user", "content": "Hello, world!"}], "max_tokens": 596},
            headers={"api-key": "sk-test-aaaaaaaaaaaaaaaaaaaa1234"},
        )
    assert refused.status_code == 429
    # 20 tokens left, 600 requested: 580 tokens at 100/s is 5.8 s.
    assert refused.json() == {
        "error": {
            "code": "429",
            "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
            "version 2024-06-01 have exceeded token rate limit of your current OpenAI S0 pricing "
            "tier. Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease "
            "if you would like to further increase the default rate limit.",
        }
    }
    assert refused.headers["retry-after"] == "6"
    assert refused.headers["retry-after-ms"] == "5800"


@pytest.mark.asyncio
async def test_azure_call_rate_wording_and_sentinels() -> None:
    config = instant(limits=MockLimits(rpm=1, tpm=6_000), profile=Profile.azure(sentinels=True))
    async with mock(config) as m:
        ok = await chat(m)
        assert ok.headers["x-ratelimit-limit-tokens"] == "-1"
        assert ok.headers["x-ratelimit-remaining-tokens"] == "-1"
        assert ok.headers["x-ratelimit-reset-tokens"] == "0"
        assert ok.headers["x-ratelimit-remaining-requests"] == "0"
        refused = await chat(m)
    assert "have exceeded call rate limit" in refused.json()["error"]["message"]
    assert "API version 2024-10-21" in refused.json()["error"]["message"]


@pytest.mark.asyncio
async def test_remaining_only_variant() -> None:
    config = instant(profile=dataclasses.replace(Profile.azure(), remaining_only=True))
    async with mock(config) as m:
        ok = await chat(m)
    names = {name for name in ok.headers if name.startswith("x-ratelimit-")}
    assert names == {"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"}


@pytest.mark.asyncio
async def test_groq_profile() -> None:
    config = instant(limits=MockLimits(rpm=30, tpm=6_000, rpd=14_400), profile=Profile.groq())
    async with mock(config) as m:
        ok = await chat(m)
        # The requests triplet is the day bucket even though the minute one has less left.
        assert ok.headers["x-ratelimit-limit-requests"] == "14400"
        assert ok.headers["x-ratelimit-remaining-requests"] == "14399"
        assert ok.headers["x-ratelimit-reset-requests"] == "6s"
        assert ok.headers["x-ratelimit-limit-tokens"] == "6000"
        too_large = await chat(m, max_tokens=7_000)
        assert too_large.status_code == 413
        assert too_large.headers["x-should-retry"] == "false"
        assert "Request too large for model `gpt-4o-mini`" in error(too_large)["message"]
        await consume(m, 5_966)  # with the first request's 24: 10 tokens left
        refused = await chat(m, max_tokens=16)
    assert refused.status_code == 429
    message = error(refused)["message"]
    assert message.startswith("Rate limit reached for model `gpt-4o-mini` in organization `org-")
    assert (
        "service tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5990, Requested 20."
        in message
    )
    assert "Please try again in 100ms." in message
    assert refused.headers["retry-after"] == "1"


@pytest.mark.asyncio
async def test_none_profile_sends_no_rate_limit_headers() -> None:
    async with mock(instant(limits=MockLimits(rpm=1), profile=Profile.none())) as m:
        ok = await chat(m)
        refused = await chat(m)
    for response in (ok, refused):
        assert not [
            name for name in response.headers if name.startswith(("x-ratelimit-", "retry-after"))
        ]
        assert response.headers["x-request-id"].startswith("req_")
    assert "Please try again in 1m0s." in error(refused)["message"]
