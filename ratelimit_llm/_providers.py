"""Which server answered: a provider's dialect, named or recognised.

"OpenAI-compatible" servers share a request format, not a rate-limit policy. The same
``x-ratelimit-limit`` header is requests per *second* on Together and a platform cap on
OpenRouter's own 429s; Groq's requests triplet is always per *day*; DeepSeek and TGI limit
calls in flight and send no headers at all. `parse_rate_limit_headers` and
`classify_error` read the answer right only when they know whose dialect it is.

A user names the provider when the base URL does not make it obvious (a proxy, a
self-hosted vLLM); otherwise `detect_provider` recognises it from the base URL
(``api.together.xyz``, ``*.openai.azure.com``, ...) and, failing that, from headers only
one provider sends (``anthropic-ratelimit-*``, ``x-tokenlimit-*``, ``x-groq-region``).
Everything here is pure: no I/O, no clock, and detection never raises on what a server
sent (a wrong *argument type* from the caller is a `TypeError`, as everywhere).

Example::

    provider = detect_provider("https://api.together.xyz/v1")   # Provider.TOGETHER
    snapshot = parse_rate_limit_headers(response.headers, provider=provider)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

__all__ = [
    "Provider",
    "ProviderTraits",
    "detect_provider",
    "provider_from_header_names",
    "provider_from_url",
    "to_provider",
]


class Provider(enum.Enum):
    """A server dialect: how its headers read and what its refusals mean.

    See ``docs/providers.md`` for the table of headers, windows and refusals per member.
    """

    #: Not recognised: read only the unambiguous headers (OpenAI's named triplets, ...).
    UNKNOWN = "unknown"
    #: api.openai.com: ``x-ratelimit-*-{requests,tokens}``, Go-duration resets.
    OPENAI = "openai"
    #: Azure OpenAI (``*.openai.azure.com``): bare-second resets, ``-1`` sentinels,
    #: ``retry-after-ms``; provisioned (PTU) deployments add a utilisation hint.
    AZURE = "azure"
    #: api.groq.com: the requests triplet is always per day, the tokens triplet per minute.
    GROQ = "groq"
    #: api.cerebras.ai: the window is in the header name (``requests-day``).
    CEREBRAS = "cerebras"
    #: api.mistral.ai: ``x-ratelimit-*-req-minute`` / ``-tokens-minute``, no resets.
    MISTRAL = "mistral"
    #: api.anthropic.com (native or OpenAI-compatible): ``anthropic-ratelimit-*`` per
    #: minute, RFC 3339 resets, input and output tokens limited apart.
    ANTHROPIC = "anthropic"
    #: api.together.xyz: bare ``x-ratelimit-*`` (requests/s) and ``x-tokenlimit-*``
    #: (tokens/s), dynamic limits; a 503 is the platform's capacity, a 429 our rate.
    TOGETHER = "together"
    #: api.fireworks.ai: adaptive prompt and generated token limits that move.
    FIREWORKS = "fireworks"
    #: openrouter.ai: no headers on success; ``X-RateLimit-*`` on its own 429s (reset in
    #: epoch ms); a 402 with ``Retry-After`` for the in-flight spending budget.
    OPENROUTER = "openrouter"
    #: Gemini's OpenAI-compatible endpoint: no headers; ``RESOURCE_EXHAUSTED`` bodies.
    GEMINI = "gemini"
    #: api.deepseek.com: no headers, 429 past the account's calls in flight.
    DEEPSEEK = "deepseek"
    #: HuggingFace text-generation-inference: 429 "Model is overloaded" past
    #: ``--max-concurrent-requests``.
    TGI = "tgi"
    #: vLLM's OpenAI server: no limits, no 429s; requests queue.
    VLLM = "vllm"

    @property
    def traits(self) -> ProviderTraits:
        """What this provider's limits look like; see `ProviderTraits`."""
        return _TRAITS.get(self, _GENERIC)


@dataclass(frozen=True, slots=True)
class ProviderTraits:
    """Facts about a provider's limits that a pacing policy may want to act on.

    Each flag is what the provider documents (sources in ``docs/providers.md``); `False`
    means "not documented", not "documented as absent".
    """

    #: Every successful answer carries rate-limit headers (OpenRouter's only come on
    #: its own 429s; Gemini, DeepSeek, TGI and vLLM send none).
    headers_on_success: bool = False
    #: The server moves its limits with our traffic (Together's dynamic rate,
    #: Fireworks' adaptive limits): a reported limit is today's, not the contract.
    adaptive_limits: bool = False
    #: The binding limit is calls in flight, not a rate (DeepSeek, TGI).
    limits_concurrency: bool = False
    #: Input and output tokens are limited apart (Anthropic's ITPM/OTPM, Fireworks'
    #: prompt and generated limits).
    splits_input_output: bool = False
    #: Output is charged at admission by the requested ``max_tokens`` (and adjusted
    #: afterwards), so a large ``max_tokens`` spends the output budget up front.
    output_charged_up_front: bool = False


_GENERIC = ProviderTraits()
_TRAITS: dict[Provider, ProviderTraits] = {
    Provider.OPENAI: ProviderTraits(headers_on_success=True, output_charged_up_front=True),
    Provider.AZURE: ProviderTraits(headers_on_success=True, output_charged_up_front=True),
    Provider.GROQ: ProviderTraits(headers_on_success=True, output_charged_up_front=True),
    Provider.CEREBRAS: ProviderTraits(headers_on_success=True),
    Provider.MISTRAL: ProviderTraits(headers_on_success=True),
    Provider.ANTHROPIC: ProviderTraits(
        headers_on_success=True, splits_input_output=True, output_charged_up_front=True
    ),
    Provider.TOGETHER: ProviderTraits(headers_on_success=True, adaptive_limits=True),
    Provider.FIREWORKS: ProviderTraits(
        headers_on_success=True, adaptive_limits=True, splits_input_output=True
    ),
    Provider.OPENROUTER: ProviderTraits(output_charged_up_front=True),
    Provider.DEEPSEEK: ProviderTraits(limits_concurrency=True),
    Provider.TGI: ProviderTraits(limits_concurrency=True),
}


@runtime_checkable
class _HasHost(Protocol):
    """An ``httpx.URL`` / ``httpx2.URL``, as ``AsyncOpenAI.base_url`` is."""

    @property
    def host(self) -> str: ...


# Host (or parent domain) -> provider. A host matches a domain when it is the domain or
# ends with "." + domain, so "evilopenrouter.ai" is not OpenRouter.
_DOMAINS: tuple[tuple[str, Provider], ...] = (
    ("api.openai.com", Provider.OPENAI),
    ("openai.azure.com", Provider.AZURE),
    ("cognitiveservices.azure.com", Provider.AZURE),
    ("services.ai.azure.com", Provider.AZURE),
    ("api.groq.com", Provider.GROQ),
    ("api.cerebras.ai", Provider.CEREBRAS),
    ("api.mistral.ai", Provider.MISTRAL),
    ("api.anthropic.com", Provider.ANTHROPIC),
    ("api.together.xyz", Provider.TOGETHER),
    ("api.together.ai", Provider.TOGETHER),
    ("api.fireworks.ai", Provider.FIREWORKS),
    ("openrouter.ai", Provider.OPENROUTER),
    ("generativelanguage.googleapis.com", Provider.GEMINI),
    ("api.deepseek.com", Provider.DEEPSEEK),
    # HuggingFace Inference Endpoints serve text generation with TGI.
    ("endpoints.huggingface.cloud", Provider.TGI),
)
_MAX_URL_LENGTH = 4_096
# Real responses carry a few dozen headers; the cap only stops an endless iterable.
_MAX_HEADERS = 10_000

#: Header names (lower case) that only one provider sends, checked in this order. A
#: name ending in "*" is a prefix. Azure comes first: it also speaks OpenAI's headers.
_SIGNATURES: tuple[tuple[str, Provider], ...] = (
    ("azure-openai-deployment-utilization", Provider.AZURE),
    ("x-ms-region", Provider.AZURE),
    ("apim-request-id", Provider.AZURE),
    ("anthropic-ratelimit-*", Provider.ANTHROPIC),
    ("x-tokenlimit-*", Provider.TOGETHER),
    ("x-ratelimit-limit-dynamic", Provider.TOGETHER),
    ("x-ratelimit-remaining-dynamic", Provider.TOGETHER),
    ("x-ratelimit-limit-tokens-prompt", Provider.FIREWORKS),
    ("x-ratelimit-remaining-tokens-prompt", Provider.FIREWORKS),
    ("x-ratelimit-limit-tokens-generated", Provider.FIREWORKS),
    ("x-ratelimit-remaining-tokens-generated", Provider.FIREWORKS),
    ("x-ratelimit-over-limit", Provider.FIREWORKS),
    ("x-groq-region", Provider.GROQ),
    ("x-ratelimit-limit-requests-day", Provider.CEREBRAS),
    ("x-ratelimit-remaining-requests-day", Provider.CEREBRAS),
    ("x-ratelimit-limit-req-minute", Provider.MISTRAL),
    ("x-ratelimit-remaining-req-minute", Provider.MISTRAL),
    ("openai-organization", Provider.OPENAI),
    ("openai-processing-ms", Provider.OPENAI),
    ("openai-version", Provider.OPENAI),
    ("x-compute-type", Provider.TGI),
)
_EXACT_RANKS: dict[str, int] = {
    name: rank for rank, (name, _) in enumerate(_SIGNATURES) if not name.endswith("*")
}
_PREFIX_RANKS: tuple[tuple[str, int], ...] = tuple(
    (name[:-1], rank) for rank, (name, _) in enumerate(_SIGNATURES) if name.endswith("*")
)
#: The exact (non-prefix) signature names, for a header reader that keeps only what
#: it needs.
SIGNATURE_NAMES: frozenset[str] = frozenset(_EXACT_RANKS)


def to_provider(value: Provider | str | None, *, parameter: str = "provider") -> Provider | None:
    """``value`` as a `Provider`: a member, its value (``"together"``), or `None`.

    Raises `TypeError` for another type and `ValueError` for an unknown name, both
    naming ``parameter``.
    """
    if value is None or isinstance(value, Provider):
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"{parameter} must be a Provider, its name or None, got {type(value).__name__}"
        )
    name = value.strip().lower()
    try:
        return Provider(name)
    except ValueError:
        names = ", ".join(repr(member.value) for member in Provider)
        raise ValueError(
            f"{parameter}: unknown provider {value!r}; expected one of {names}"
        ) from None


def detect_provider(base_url: str | _HasHost | None, headers: object = None) -> Provider:
    """The provider behind ``base_url``, else the one whose headers ``headers`` carries.

    ``base_url`` is a string (``"https://api.groq.com/openai/v1"``; the scheme may be left
    out) or an ``httpx.URL``; ``headers`` is anything `parse_rate_limit_headers` takes.
    The URL wins when it is recognised. `Provider.UNKNOWN` when neither says. Raises
    `TypeError` for a ``base_url`` of another type; never raises on the headers.

    Example::

        detect_provider(client.base_url, response.headers)
    """
    provider = provider_from_url(base_url)
    if provider is Provider.UNKNOWN and headers is not None:
        provider = provider_from_header_names(_header_names(headers))
    return provider


def provider_from_url(base_url: str | _HasHost | None) -> Provider:
    """The provider a base URL belongs to, or `Provider.UNKNOWN`.

    Raises `TypeError` for a value that is neither a string, a URL object nor `None`.
    """
    if base_url is None:
        return Provider.UNKNOWN
    if isinstance(base_url, str):
        host = _host_of(base_url)
    elif isinstance(base_url, _HasHost):
        raw = base_url.host
        host = raw.strip().lower().rstrip(".") if isinstance(raw, str) else ""
    else:
        raise TypeError(f"base_url must be a string or a URL, got {type(base_url).__name__}")
    if not host:
        return Provider.UNKNOWN
    for domain, provider in _DOMAINS:
        if host == domain or host.endswith("." + domain):
            return provider
    return Provider.UNKNOWN


def provider_from_header_names(names: Iterable[str]) -> Provider:
    """The provider whose signature headers appear among ``names`` (lower case).

    Earlier signatures win (Azure before OpenAI, whose headers Azure also sends).
    `Provider.UNKNOWN` when none appears. Never raises.
    """
    # One pass over the names with a precomputed rank per signature: this runs on every
    # response whose sender was not named.
    best = len(_SIGNATURES)
    try:
        for name in names:
            if not isinstance(name, str):
                continue
            rank = _EXACT_RANKS.get(name)
            if rank is None:
                for prefix, prefix_rank in _PREFIX_RANKS:
                    if name.startswith(prefix):
                        rank = prefix_rank
                        break
            if rank is not None and rank < best:
                best = rank
    except Exception:
        pass
    return _SIGNATURES[best][1] if best < len(_SIGNATURES) else Provider.UNKNOWN


def _host_of(url: str) -> str:
    text = url.strip()[:_MAX_URL_LENGTH]
    if "//" not in text:
        text = "//" + text  # "api.groq.com/openai/v1": urlsplit needs the authority mark
    try:
        host = urlsplit(text).hostname
    except ValueError:  # a malformed IPv6 literal, a bad port
        return ""
    return (host or "").rstrip(".")


def _header_names(headers: object) -> set[str]:
    """Lower-case header names, read as safely as `parse_rate_limit_headers` reads them."""
    names: set[str] = set()
    try:
        for count, item in enumerate(header_pairs(headers)):
            if count >= _MAX_HEADERS:
                break
            try:
                name = item[0]
            except Exception:
                continue
            if isinstance(name, bytes | bytearray):
                name = bytes(name).decode("latin-1")
            if isinstance(name, str):
                names.add(name.strip().lower())
    except Exception:
        pass
    return names


def header_pairs(headers: object) -> Iterator[Any]:
    """Every (name, value) of a headers object: httpx's and httpx2's (whose
    ``multi_items()`` keeps repeated headers apart, where ``items()`` would comma-join
    them), a mapping, or an iterable of pairs."""
    multi_items = getattr(headers, "multi_items", None)
    if callable(multi_items):
        yield from multi_items()
    elif isinstance(headers, Mapping):
        yield from headers.items()
    elif isinstance(headers, Iterable) and not isinstance(headers, str | bytes):
        yield from headers
