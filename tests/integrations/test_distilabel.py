"""distilabel's OpenAILLM with the limiter under it: agenerate, generate, a pipeline."""

# mypy: disable-error-code="import-not-found, import-untyped"

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from pydantic import BaseModel, SecretStr

from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

from ._support import Mock, assert_every_call_paced, close, need

need("distilabel")

from distilabel.models.llms import OpenAILLM  # noqa: E402

import ratelimit_llm  # noqa: E402

from .recipes.distilabel_llm import RateLimitedOpenAILLM  # noqa: E402
from .recipes.distilabel_paced import PacedOpenAILLM  # noqa: E402
from .recipes.distilabel_pipeline import generation_pipeline  # noqa: E402

pytestmark = [
    # The pipeline's worker processes are forked from this one, where the mock's thread runs.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class City(BaseModel):
    name: str
    population: int


@pytest.mark.asyncio
async def test_agenerate_is_paced(mock: Mock) -> None:
    llm = RateLimitedOpenAILLM(model="gpt-4o-mini")
    llm.load()
    try:
        outputs = await asyncio.gather(*(llm.agenerate(input=chat(f"Q{i}")) for i in range(5)))
    finally:
        await close(llm._aclient)

    assert all(output["generations"][0] for output in outputs)
    assert_every_call_paced(mock, llm._aclient, calls=5)


def test_generate_outputs_is_paced_with_n_generations_per_call(mock: Mock) -> None:
    # What a Task calls in a pipeline's worker: one request per input, n=2 in each.
    llm = RateLimitedOpenAILLM(model="gpt-4o-mini")
    llm.load()
    try:
        outputs = llm.generate_outputs(inputs=[chat(f"Q{i}") for i in range(4)], num_generations=2)
    finally:
        llm.event_loop.run_until_complete(close(llm._aclient))

    assert [len(output["generations"]) for output in outputs] == [2, 2, 2, 2]
    assert_every_call_paced(mock, llm._aclient, calls=4)


@pytest.mark.asyncio
async def test_structured_output_is_paced_under_instructor(mock: Mock) -> None:
    need("instructor")  # distilabel's structured output is instructor's
    llm = RateLimitedOpenAILLM(model="gpt-4o-mini", structured_output={"schema": City})
    llm.load()
    wrapped = llm._aclient.client  # instructor patched the wrapped client
    try:
        outputs = await asyncio.gather(*(llm.agenerate(input=chat(f"City {i}")) for i in range(3)))
    finally:
        await close(wrapped)

    assert all(City.model_validate(json.loads(o["generations"][0])) for o in outputs)
    assert_every_call_paced(mock, wrapped, calls=3)


def quantized(rpm: int) -> MockConfig:
    """A server that enforces its per-minute limit per second, as OpenAI may: a burst of
    more than rpm / 60 calls at once is refused."""
    return MockConfig(
        limits=MockLimits(rpm=rpm, tpm=200_000, burst_seconds=1), latency=LatencyModel.instant()
    )


INSTRUCTIONS = [f"Write a sentence about the number {i}." for i in range(4)]


def test_a_pipeline_on_the_rate_limited_llm_is_never_refused(
    start_mock: Callable[[MockConfig], Mock],
) -> None:
    mock = start_mock(quantized(rpm=60))
    llm = RateLimitedOpenAILLM(model="gpt-4o-mini", rpm=60, tpm=200_000)

    distiset = generation_pipeline(INSTRUCTIONS, llm).run(use_cache=False)

    rows = distiset["default"]["train"]
    assert len(rows) == len(INSTRUCTIONS) and all(rows["generation"])
    stats = mock.stats()
    assert stats["requests"] == stats["accepted"] == len(INSTRUCTIONS)
    assert stats["rejected"] == 0


def test_the_same_pipeline_on_a_bare_llm_is_refused(
    start_mock: Callable[[MockConfig], Mock],
) -> None:
    # The control: what the seed's users saw. Without the limiter, the batch goes out at
    # once, the server refuses all but one call a second, and the SDK retries blindly.
    # Refusals count against the limit too, so retries that land together may refuse
    # each other until the SDK gives up: whether the other rows ever arrive depends on
    # its jitter (CI saw 1 of the 4 arrive), so only the refusals are asserted.
    mock = start_mock(quantized(rpm=60))

    generation_pipeline(INSTRUCTIONS, OpenAILLM(model="gpt-4o-mini")).run(use_cache=False)

    stats = mock.stats()
    seen = [(round(entry["t"], 3), entry["status"]) for entry in stats["log"]]
    assert stats["accepted"] >= 1, seen
    # Usually 3 of the 4 at once are refused; on a busy machine the burst may straggle.
    assert stats["rejected"] >= 1, seen
    assert stats["requests"] > len(INSTRUCTIONS), seen  # quota spent on refused retries


@pytest.mark.asyncio
async def test_batch_delay_and_several_keys(start_mock: Callable[[MockConfig], Mock]) -> None:
    mock = start_mock(
        MockConfig(limits=MockLimits(rpm=500, tpm=200_000), latency=LatencyModel.instant())
    )
    keys = [SecretStr("sk-mock-project-a-0001"), SecretStr("sk-mock-project-b-0002")]
    llm = PacedOpenAILLM(model="gpt-4o-mini", batch_delay=0.5, batch_size=2, api_keys=keys)
    llm.load()
    try:
        for batch in range(2):  # as a Task sends them: a batch at a time
            inputs = [chat(f"Batch {batch}, row {i}") for i in range(2)]
            await asyncio.gather(*(llm.agenerate(input=item) for item in inputs))
    finally:
        await close(llm._aclient)

    assert_every_call_paced(mock, llm._aclient, calls=4)
    stats = mock.stats()
    assert sorted(cell["gpt-4o-mini"]["accepted"] for cell in stats["by_key"].values()) == [2, 2]
    assert set(stats["by_key"]) == {"sk-...0001", "sk-...0002"}
    arrivals = sorted(entry["t"] for entry in stats["log"])
    assert arrivals[2] - arrivals[1] >= 0.4  # the pause between the two batches
    names = {s.key for s in ratelimit_llm.transport_of(llm._aclient).statistics()}
    assert names == {"sk-...0001", "sk-...0002"}
    # What distilabel writes about the pipeline (its pipeline.yaml) masks the keys.
    assert "sk-mock-project" not in json.dumps(llm.dump(), default=str)
