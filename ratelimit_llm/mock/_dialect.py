"""One profile's voice: the headers of every answer and the body of every refusal.

The request pipeline (``_handlers.py``) decides *what* happens to a call (admitted,
refused by a bucket, refused for the calls in flight, failed on purpose); a `Dialect`
decides how the provider the profile stands for *says* it. OpenAI, Azure and Groq are
written by ``_headers.py``; the others by ``_provider_headers.py`` and
``_provider_errors.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._buckets import BucketSet, Refusal
from ._config import Profile
from ._errors import SERVER_ERROR, SLOW_DOWN, error_body
from ._headers import (
    Denial,
    quota_denial,
    rate_limit_headers,
    rate_limited_denial,
    retry_headers,
    too_large_denial,
)
from ._inflight import InFlightRefusal
from ._provider_errors import (
    anthropic_overloaded,
    anthropic_quota,
    anthropic_rate_limited,
    deepseek_in_flight,
    deepseek_quota,
    deepseek_rate_limited,
    fireworks_overloaded,
    fireworks_rate_limited,
    gemini_overloaded,
    gemini_rate_limited,
    generic_in_flight,
    openai_overloaded,
    openrouter_in_flight,
    openrouter_quota,
    openrouter_rate_limited,
    tgi_overloaded,
    together_overloaded,
    together_rate_limited,
)
from ._provider_headers import (
    anthropic_headers,
    fireworks_headers,
    openrouter_cap,
    openrouter_headers,
    together_headers,
    utilization_header,
)

__all__ = ["Dialect", "Who"]


@dataclass(frozen=True, slots=True)
class Who:
    """Whom a refusal names: the model, the organization and project, the operation."""

    model: str
    organization: str
    project: str | None
    operation: str
    api_version: str


class Dialect:
    """The headers and refusals of ``profile``."""

    __slots__ = ("_extra", "profile")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._extra = dict(profile.extra_headers)

    def headers(self, buckets: BucketSet, wall: float) -> dict[str, str]:
        """The headers every API answer carries (2xx, refusals, JSON failures), for the
        buckets as they are now; ``wall`` is the Unix time of the answer."""
        profile = self.profile
        headers = dict(self._extra)
        if profile.utilization_header:
            headers.update(utilization_header(buckets))
        if not profile.rate_limit_headers:
            return headers
        style = profile.header_style
        if style == "openai":
            headers.update(rate_limit_headers(profile, buckets))
        elif style == "together":
            headers.update(together_headers(buckets))
        elif style == "fireworks":
            headers.update(fireworks_headers(buckets))
        elif style == "anthropic":
            headers.update(anthropic_headers(buckets, wall))
        # OpenRouter: nothing on success; its caps speak only in their own 429s.
        return headers

    def rate_limited(
        self, buckets: BucketSet, refusal: Refusal, retry_after: float, who: Who, wall: float
    ) -> Denial:
        """The refusal of a call that fits once the buckets refill."""
        profile = self.profile
        style = profile.error_style
        if style in ("openai", "azure", "groq"):
            return rate_limited_denial(
                profile,
                refusal,
                retry_after,
                model=who.model,
                organization=who.organization,
                project=who.project,
                operation=who.operation,
                api_version=who.api_version,
            )
        headers = retry_headers(profile, retry_after)
        body: Any
        if style == "together":
            status, body = together_rate_limited(refusal, model=who.model)
        elif style == "fireworks":
            status, body = fireworks_rate_limited(refusal, model=who.model)
        elif style == "openrouter":
            bucket = buckets.get(refusal.name)
            cap_headers = {} if bucket is None else openrouter_headers(bucket, retry_after, wall)
            headers.update(cap_headers)
            status, body = openrouter_rate_limited(openrouter_cap(refusal.name), cap_headers)
        elif style == "gemini":
            status, body = gemini_rate_limited(refusal, model=who.model, array=profile.array_errors)
        elif style == "anthropic":
            status, body = anthropic_rate_limited(refusal, organization=who.organization)
        elif style == "deepseek":
            status, body = deepseek_rate_limited()
        else:  # tgi: its only refusal is the overloaded one
            status, body = tgi_overloaded()
        return Denial(status, body, headers)

    def too_large(self, refusal: Refusal, who: Who) -> Denial:
        """The refusal of a call bigger than a bucket can ever hold (OpenAI's wording
        unless the provider is Groq, whose 413 is its own)."""
        return too_large_denial(
            self.profile,
            refusal,
            model=who.model,
            organization=who.organization,
            project=who.project,
        )

    def in_flight(self, refusal: InFlightRefusal, who: Who) -> Denial:
        """The refusal of a call past the calls (or tokens) in flight."""
        style = self.profile.error_style
        body: Any
        if style == "openrouter":
            status, body, headers = openrouter_in_flight(refusal)
            return Denial(status, body, headers)
        if style == "deepseek" and refusal.reason == "concurrency":
            status, body = deepseek_in_flight(refusal)
        elif style == "tgi":
            status, body = tgi_overloaded()
        else:
            status, body = generic_in_flight(refusal, model=who.model)
        return Denial(status, body, {})

    def quota(self) -> Denial:
        """The refusal of a key whose balance is spent: never worth a retry."""
        style = self.profile.error_style
        if style == "deepseek":
            return Denial(*deepseek_quota(), {})
        if style == "openrouter":
            return Denial(*openrouter_quota(), {})
        if style == "anthropic":
            return Denial(*anthropic_quota(), {})
        return quota_denial(self.profile)

    def overloaded(self) -> tuple[int, Any]:
        """The overloaded fault: the provider's own capacity, not the caller's limits."""
        style = self.profile.error_style
        if style == "together":
            return together_overloaded()
        if style == "fireworks":
            return fireworks_overloaded()
        if style == "gemini":
            return gemini_overloaded(array=self.profile.array_errors)
        if style == "anthropic":
            return anthropic_overloaded()
        return openai_overloaded()

    @staticmethod
    def server_error() -> tuple[int, Any]:
        """The plain 500 fault."""
        return 500, error_body(SERVER_ERROR, "server_error")

    @staticmethod
    def slow_down() -> tuple[int, Any]:
        """OpenAI's 503 ``slow_down`` fault."""
        return 503, error_body(SLOW_DOWN, "server_error", None, "slow_down")
