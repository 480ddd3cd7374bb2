"""Reading a provider's answers: its rate-limit headers and its refusals.

The transport does this for every response; these are the same readers, for code that
holds a response of its own (another SDK, a raw HTTP call)::

    snapshot = parse_rate_limit_headers(response.headers, provider="together")
    info = classify_error(response.status_code, response.headers, response.content)
    if info is not None and info.retryable:                # None: not an error
        await anyio.sleep(info.retry_after or 1.0)

`Provider` names the dialects (``docs/providers.md`` has the table); ``wrap(...,
provider=...)`` takes one of them or its name, and recognises most from the base URL.
"""

from __future__ import annotations

from ._classify import RETRYABLE_KINDS, ErrorInfo, ErrorKind, classify_error, classify_error_payload
from ._headers import DimensionSnapshot, RateLimitSnapshot, parse_rate_limit_headers
from ._providers import Provider, ProviderTraits, detect_provider

__all__ = [
    "RETRYABLE_KINDS",
    "DimensionSnapshot",
    "ErrorInfo",
    "ErrorKind",
    "Provider",
    "ProviderTraits",
    "RateLimitSnapshot",
    "classify_error",
    "classify_error_payload",
    "detect_provider",
    "parse_rate_limit_headers",
]
