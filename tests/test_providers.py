"""Recognising the provider from a base URL and from the headers only it sends."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_llm._providers import (
    Provider,
    ProviderTraits,
    detect_provider,
    provider_from_header_names,
    provider_from_url,
    to_provider,
)

URLS = [
    ("https://api.openai.com/v1", Provider.OPENAI),
    ("https://my-resource.openai.azure.com/openai/deployments/gpt-4o", Provider.AZURE),
    ("https://my-resource.cognitiveservices.azure.com/", Provider.AZURE),
    ("https://my-project.services.ai.azure.com/models", Provider.AZURE),
    ("https://api.groq.com/openai/v1", Provider.GROQ),
    ("https://api.cerebras.ai/v1", Provider.CEREBRAS),
    ("https://api.mistral.ai/v1", Provider.MISTRAL),
    ("https://api.anthropic.com/v1/", Provider.ANTHROPIC),
    ("https://api.together.xyz/v1", Provider.TOGETHER),
    ("https://api.together.ai/v1", Provider.TOGETHER),
    ("https://api.fireworks.ai/inference/v1", Provider.FIREWORKS),
    ("https://openrouter.ai/api/v1", Provider.OPENROUTER),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", Provider.GEMINI),
    ("https://api.deepseek.com", Provider.DEEPSEEK),
    ("https://abc123.us-east-1.aws.endpoints.huggingface.cloud/v1/", Provider.TGI),
    # Case, a port, no scheme, a trailing dot, credentials in the authority.
    ("HTTPS://API.GROQ.COM/openai/v1", Provider.GROQ),
    ("https://api.deepseek.com:443/v1", Provider.DEEPSEEK),
    ("api.together.xyz/v1", Provider.TOGETHER),
    ("https://openrouter.ai./api/v1", Provider.OPENROUTER),
    ("https://user:pw@api.fireworks.ai/inference/v1", Provider.FIREWORKS),
    # Look-alikes and the rest.
    ("https://evilopenrouter.ai/api/v1", Provider.UNKNOWN),
    ("https://api.openai.com.example.net/v1", Provider.UNKNOWN),
    ("https://openai.azure.com.attacker.io", Provider.UNKNOWN),
    ("http://localhost:8000/v1", Provider.UNKNOWN),
    ("http://127.0.0.1:8080", Provider.UNKNOWN),
    ("https://[::1]:8000/v1", Provider.UNKNOWN),
    ("http://[::1", Provider.UNKNOWN),  # malformed IPv6
    ("https://api.openai.com:99999/v1", Provider.OPENAI),  # a bad port does not matter
    ("", Provider.UNKNOWN),
    ("   ", Provider.UNKNOWN),
    ("not a url at all", Provider.UNKNOWN),
]


@pytest.mark.parametrize(("url", "provider"), URLS, ids=[u or "empty" for u, _ in URLS])
def test_provider_from_url(url: str, provider: Provider) -> None:
    assert provider_from_url(url) is provider
    assert detect_provider(url) is provider


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_url_objects(module: Any) -> None:
    # AsyncOpenAI.base_url is an httpx(2).URL.
    assert detect_provider(module.URL("https://api.groq.com/openai/v1/")) is Provider.GROQ
    assert detect_provider(module.URL("http://localhost:8000/v1")) is Provider.UNKNOWN


@pytest.mark.parametrize("value", [42, b"https://api.openai.com", ["https://api.openai.com"]])
def test_a_base_url_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(TypeError, match="base_url"):
        detect_provider(value)  # type: ignore[arg-type]


HEADERS = [
    ("anthropic", {"anthropic-ratelimit-requests-limit": "50"}, Provider.ANTHROPIC),
    ("together-tokens", {"x-tokenlimit-limit": "1000"}, Provider.TOGETHER),
    ("together-dynamic", {"X-RateLimit-Limit-Dynamic": "40"}, Provider.TOGETHER),
    ("fireworks", {"x-ratelimit-limit-tokens-generated": "600"}, Provider.FIREWORKS),
    ("fireworks-over", {"x-ratelimit-over-limit": "yes"}, Provider.FIREWORKS),
    (
        "groq",
        {"x-groq-region": "gcp-us-central1", "x-ratelimit-limit-requests": "14400"},
        Provider.GROQ,
    ),
    ("cerebras", {"x-ratelimit-limit-requests-day": "14400"}, Provider.CEREBRAS),
    ("mistral", {"x-ratelimit-limit-req-minute": "60"}, Provider.MISTRAL),
    (
        "openai",
        {"openai-processing-ms": "250", "x-ratelimit-limit-requests": "500"},
        Provider.OPENAI,
    ),
    # Azure answers with OpenAI's headers too; its own ones decide.
    (
        "azure",
        {"openai-processing-ms": "250", "apim-request-id": "a1b2", "x-ms-region": "East US"},
        Provider.AZURE,
    ),
    ("azure-ptu", {"azure-openai-deployment-utilization": "23.5%"}, Provider.AZURE),
    ("tgi", {"x-compute-type": "gpu+optimized"}, Provider.TGI),
    ("openai-named-triplet-alone", {"x-ratelimit-limit-requests": "500"}, Provider.UNKNOWN),
    ("nothing", {"content-type": "application/json"}, Provider.UNKNOWN),
    ("empty", {}, Provider.UNKNOWN),
]


@pytest.mark.parametrize(
    ("headers", "provider"), [h[1:] for h in HEADERS], ids=[h[0] for h in HEADERS]
)
def test_provider_from_headers(headers: dict[str, str], provider: Provider) -> None:
    assert detect_provider(None, headers) is provider
    assert detect_provider(None, list(headers.items())) is provider
    assert detect_provider(None, httpx.Headers(headers)) is provider


def test_the_url_wins_over_the_headers() -> None:
    # A proxy in front of Groq may forward another server's headers; the URL is the user's.
    headers = {"anthropic-ratelimit-requests-limit": "50"}
    assert detect_provider("https://api.groq.com/openai/v1", headers) is Provider.GROQ
    assert detect_provider("http://localhost:4000", headers) is Provider.ANTHROPIC


def test_bytes_header_names() -> None:
    assert detect_provider(None, [(b"X-Groq-Region", b"fra")]) is Provider.GROQ


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (Provider.FIREWORKS, Provider.FIREWORKS),
        ("fireworks", Provider.FIREWORKS),
        (" OpenRouter ", Provider.OPENROUTER),
    ],
)
def test_to_provider(value: Any, expected: Provider | None) -> None:
    assert to_provider(value) is expected


def test_to_provider_refuses_clearly() -> None:
    with pytest.raises(ValueError, match=r"provider: unknown provider 'togetherai'.*'together'"):
        to_provider("togetherai")
    with pytest.raises(TypeError, match="dialect must be"):
        to_provider(3, parameter="dialect")  # type: ignore[arg-type]


def test_traits() -> None:
    assert Provider.DEEPSEEK.traits.limits_concurrency
    assert Provider.TGI.traits.limits_concurrency
    assert Provider.TOGETHER.traits.adaptive_limits
    assert Provider.FIREWORKS.traits.splits_input_output
    assert not Provider.OPENROUTER.traits.headers_on_success
    assert Provider.OPENAI.traits.headers_on_success
    assert Provider.UNKNOWN.traits == ProviderTraits()
    assert all(isinstance(member.traits, ProviderTraits) for member in Provider)


class Exploding:
    def __iter__(self) -> Any:
        raise RuntimeError("boom")

    def items(self) -> Any:
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    "headers",
    [Exploding(), 42, "x-groq-region: fra", [1, None, ("a",), (None, "b")], {None: "x", 3: "y"}],
)
def test_hostile_headers_never_raise(headers: Any) -> None:
    assert detect_provider(None, headers) is Provider.UNKNOWN
    assert provider_from_header_names(headers if isinstance(headers, list) else []) is (
        Provider.UNKNOWN
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=300), st.from_regex(r"https?://[\w.:@\[\]-]{0,60}/\S*")),
    st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=40), st.text(max_size=20), max_size=8),
        st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=10)), max_size=8),
    ),
)
def test_detection_never_raises(url: str | None, headers: Any) -> None:
    assert isinstance(detect_provider(url, headers), Provider)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=50), max_size=20))
def test_header_names_never_raise(names: list[str]) -> None:
    assert isinstance(provider_from_header_names(names), Provider)
