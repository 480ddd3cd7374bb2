"""The pieces under the endpoints: tokenizer, fake text, charge rules, latency, config checks."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratelimit_llm.mock import (
    ChargeRequest,
    FaultPlan,
    LatencyModel,
    MockConfig,
    MockLimits,
    OutputModel,
    count_tokens,
    max_rule,
    prompt_only_rule,
    sum_rule,
)
from ratelimit_llm.mock._text import fake_pieces

from ._support import KEY, mock
from .test_mock_limits import HELLO


def test_tokenizer() -> None:
    assert count_tokens("") == 0
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("extraordinary") == 3  # long words split like BPE does
    assert count_tokens("  spaced   out  ") == 2


@given(st.integers(min_value=0, max_value=400), st.integers())
def test_fake_text_tokenizes_to_its_length(count: int, seed: int) -> None:
    pieces = fake_pieces(random.Random(seed), count)
    assert len(pieces) == count
    assert count_tokens("".join(pieces)) == count
    assert all(count_tokens(piece) == 1 for piece in pieces)


def test_charge_rules() -> None:
    request = ChargeRequest(
        "chat.completions", prompt_chars=13, max_output_tokens=20, n=2, best_of=3
    )
    assert request.estimated_prompt_tokens == 4
    assert request.reserved_output_tokens == 60
    assert sum_rule(request) == 64
    assert max_rule(request) == 60
    assert prompt_only_rule(request) == 4
    embedding = ChargeRequest("embeddings", prompt_chars=5, prompt_token_ids=7)
    assert sum_rule(embedding) == 9


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        MockLimits(rpm=0)
    with pytest.raises(TypeError):
        MockLimits(rpm="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MockLimits(burst_seconds=61)
    with pytest.raises(ValueError):
        MockLimits(rpm=1).updated({"bogus": 1})
    assert MockLimits(rpm=1, tpm=2).updated({"tpm": None}) == MockLimits(rpm=1)
    with pytest.raises(ValueError):
        LatencyModel(tokens_per_second=0)
    with pytest.raises(ValueError):
        LatencyModel(jitter=1)
    with pytest.raises(ValueError):
        OutputModel(min_tokens=0)
    with pytest.raises(ValueError):
        FaultPlan(stream_cut_fraction=2)
    with pytest.raises(ValueError, match="shared groups"):
        MockConfig(shared_limits={"a": ("m",), "b": ("m",)})
    with pytest.raises(ValueError):
        MockConfig(limit_scope="user")  # type: ignore[arg-type]
    assert MockConfig(shared_limits={"g": ("m1", "m2")}).group_of("m2") == "g"


@pytest.mark.asyncio
async def test_latency_model_in_virtual_time() -> None:
    latency = LatencyModel(ttft=0.5, per_prompt_token=0.01, tokens_per_second=20, jitter=0)
    config = MockConfig(latency=latency, limits=MockLimits(rpm=100, tpm=100_000))
    async with mock(config) as m:
        started = m.clock.now
        raw = await m.client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=HELLO, max_tokens=30
        )
        completion = raw.parse()
        assert completion.usage is not None
        prompt, output = completion.usage.prompt_tokens, completion.usage.completion_tokens
        expected = 0.5 + 0.01 * prompt + output / 20
        assert m.clock.now - started == pytest.approx(expected)
        assert raw.headers["openai-processing-ms"] == str(round(expected * 1000))
        # Headers are taken when the response is ready: the request slot (0.6 s at 100 RPM)
        # refilled while the answer was being generated.
        assert expected > 0.6
        assert raw.headers["x-ratelimit-remaining-requests"] == "100"
        assert raw.headers["x-ratelimit-reset-requests"] == "0s"

        m.clock.sleeps.clear()
        body = {"model": "gpt-4o", "messages": HELLO, "max_tokens": 30, "stream": True}
        streamed = await m.http.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
        )
        first, *pacing = m.clock.sleeps
        assert first == pytest.approx(0.5 + 0.01 * prompt)
        assert streamed.headers["openai-processing-ms"] == str(round(first * 1000))
        tokens = streamed.text.count('"content":"') - 1  # less the role chunk's empty content
        assert sum(pacing) == pytest.approx(
            tokens / 20 + 1 / 20
        )  # one more step for the closing frames
        assert all(pause >= 0.01 for pause in pacing[:-1])


@pytest.mark.asyncio
async def test_latency_jitter_is_seeded_and_bounded() -> None:
    latency = LatencyModel(ttft=1.0, per_prompt_token=0, tokens_per_second=1_000_000, jitter=0.2)
    firsts: list[float] = []
    for _ in range(2):
        async with mock(MockConfig(latency=latency)) as m:
            await m.http.post(
                "/v1/embeddings",
                json={
                    "model": "text-embedding-3-small",
                    "input": "abc",
                    "encoding_format": "float",
                },
                headers={"authorization": f"Bearer {KEY}"},
            )
            firsts.extend(m.clock.sleeps)
    assert firsts[0] == firsts[1]
    assert 0.8 <= firsts[0] <= 1.2
