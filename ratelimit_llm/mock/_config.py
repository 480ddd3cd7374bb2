"""Everything the mock server can be told: limits, keys, profile, latency, output, faults.

All of it is frozen dataclasses validated at construction, so a typo in a benchmark's
configuration fails where it was written and not as a confusing 429 a minute into a run.
The two things that change while the server runs, the limits and the batch settings,
are changed through `MockState.set_limits` (``POST /mock/limits``) and
`BatchEngine.configure` (``POST /mock/batch-config``), never by mutating a config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Literal, TypeAlias

from ._accounting import ChargeRule, sum_rule

__all__ = [
    "DEFAULT_MODELS",
    "PROFILES",
    "BatchConfig",
    "ErrorStyle",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "HeaderStyle",
    "KeyConfig",
    "LatencyModel",
    "LimitScope",
    "MockConfig",
    "MockLimits",
    "OutputCharge",
    "OutputModel",
    "Profile",
]

#: What the buckets are keyed by besides the model: the API key, the organization
#: (``OpenAI-Organization`` header, else the key's configured organization) or the project.
LimitScope: TypeAlias = Literal["key", "organization", "project"]

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class MockLimits:
    """One model's (or shared group's) limits; ``None`` means that dimension is unlimited.

    ``project_tpm`` adds a project-wide token bucket next to the per-key/org one, reported
    in the ``x-ratelimit-*-project-tokens`` headers. ``burst_seconds`` makes enforcement
    *quantized*: the per-minute buckets hold only that many seconds' worth (``1`` enforces
    a minute's limit per second); per-day buckets always hold the whole day.

    The other providers' limits:

    - ``rps`` / ``tps``: requests and tokens per *second* (Together's), each a bucket of
      one second's depth.
    - ``input_tpm`` / ``output_tpm``: input and output tokens per minute, limited apart
      (Anthropic's ITPM and OTPM, Fireworks' prompt and generated limits). The input
      bucket is charged the prompt estimate; how the output bucket is charged is the
      profile's ``output_charge``.
    - ``concurrency``: calls in flight at once (DeepSeek's, TGI's
      ``--max-concurrent-requests``); a call holds its place until its response (a
      stream's last frame) is sent, it fails, or the client goes away.
    - ``in_flight_tokens``: tokens (as admission charges them) that the calls in flight
      may hold together (OpenRouter's in-flight spending budget).

    Example::

        MockLimits(rpm=500, tpm=200_000)
        MockLimits(rpm=10_000, tpm=2_000_000, rpd=1_000_000, burst_seconds=1)
        MockLimits(rps=10, tps=2_000)             # Together
        MockLimits(concurrency=16)                # DeepSeek
    """

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    project_tpm: int | None = None
    burst_seconds: float | None = None
    rps: int | None = None
    tps: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    concurrency: int | None = None
    in_flight_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in _COUNTED_LIMITS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _positive_int(name, value))
        if self.burst_seconds is not None:
            burst = _non_negative("burst_seconds", self.burst_seconds)
            if burst == 0 or burst > 60:
                raise ValueError(f"burst_seconds must be in (0, 60], got {burst!r}")
            object.__setattr__(self, "burst_seconds", burst)

    @property
    def limits_in_flight(self) -> bool:
        """Whether calls in flight are limited (by count or by the tokens they hold)."""
        return self.concurrency is not None or self.in_flight_tokens is not None

    def updated(self, changes: Mapping[str, object]) -> MockLimits:
        """A copy with ``changes`` applied; a ``None`` value removes that limit.

        Raises `ValueError` for a name that is not a field.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown limit(s) {unknown}; expected some of {sorted(known)}")
        return replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, int | float | None]:
        """The limits as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_COUNTED_LIMITS = (
    "rpm",
    "tpm",
    "rpd",
    "tpd",
    "project_tpm",
    "rps",
    "tps",
    "input_tpm",
    "output_tpm",
    "concurrency",
    "in_flight_tokens",
)


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """What the server knows about one API key.

    ``organization`` and ``project`` name the key's org and project in headers and 429
    messages (otherwise stable ids are derived from a hash of the key). A key with
    ``insufficient_quota`` gets the billing 429 on every call.
    """

    organization: str | None = None
    project: str | None = None
    insufficient_quota: bool = False


#: Which family of rate-limit headers a profile sends.
HeaderStyle: TypeAlias = Literal["openai", "together", "fireworks", "anthropic", "openrouter"]
#: Whose wording (and statuses) a profile's refusals and failures use.
ErrorStyle: TypeAlias = Literal[
    "openai",
    "azure",
    "groq",
    "together",
    "fireworks",
    "openrouter",
    "gemini",
    "anthropic",
    "deepseek",
    "tgi",
]
#: How an ``output_tpm`` bucket is charged: the request's ``max_tokens`` at admission
#: (kept, or settled to the output really sent once it is known), or only the output
#: sent, after the fact.
OutputCharge: TypeAlias = Literal["reserve", "settle", "usage"]


@dataclass(frozen=True, slots=True)
class Profile:
    """How a provider reports limits: which headers, in what format, and its refusals.

    Use the presets (`Profile.openai`, `Profile.azure`, `Profile.groq`, `Profile.none`,
    `Profile.together`, `Profile.fireworks`, `Profile.openrouter`, `Profile.gemini`,
    `Profile.anthropic`, `Profile.azure_ptu`, `Profile.deepseek`, `Profile.tgi`,
    `Profile.vllm`, or `Profile.named`) and adjust a field with `dataclasses.replace`.

    - ``rate_limit_headers``: send rate-limit headers at all; ``header_style`` says
      which family (OpenAI's triplets, Together's per-second pairs, Fireworks' prompt
      and generated limits, Anthropic's ``anthropic-ratelimit-*`` with RFC 3339 resets,
      or OpenRouter's, which come only on its own 429s).
    - ``reset_format``: ``"go"`` durations (``1.574s``) or whole ``"seconds"`` (Azure).
    - ``requests_window``: which request bucket the requests triplet reports: the
      ``"binding"`` one (fewest remaining), always the ``"minute"`` or the ``"day"`` one;
      ``tokens_window`` likewise for the tokens triplet.
    - ``remaining_only``: send only ``x-ratelimit-remaining-*`` (older Azure).
    - ``token_sentinels``: tokens triplet reads ``-1`` / ``-1`` / ``0`` (Azure Responses).
    - ``retry_after`` / ``retry_after_ms``: headers on temporary 429s.
    - ``should_retry_header``: ``x-should-retry: false`` on 429s that never clear.
    - ``error_style``: wording and status of the refusals (429 bodies, in-flight
      refusals, the billing refusal, the overloaded fault).
    - ``utilization_header``: ``azure-openai-deployment-utilization`` on every answer,
      the share of the busiest bucket in use (Azure's provisioned deployments).
    - ``output_charge``: how an ``output_tpm`` bucket is charged (`OutputCharge`).
    - ``soft_limit``: the share of each token bucket a caller may run past empty, served
      "over the limit" (Fireworks' ``x-ratelimit-over-limit: yes``) before the 429s.
    - ``array_errors``: error bodies wrapped in a JSON array (Gemini's OpenAI endpoint).
    - ``keepalive_seconds``: while a call waits longer than this, a stream sends
      ``: keep-alive`` comments and a plain answer blank lines, this often (DeepSeek).
    - ``enforce_limits``: refuse anything at all; `False` admits every call (vLLM).
    - ``queue_slots``: calls the server runs at full speed; past them every new call's
      latency stretches by ``in flight / queue_slots`` (vLLM's queue).
    - ``extra_headers``: sent on every API answer (TGI's ``x-compute-type``).
    - ``openai_headers``: send ``openai-version``, ``openai-organization``,
      ``openai-project`` and ``openai-processing-ms`` (OpenAI's, Azure's, Groq's presets;
      the others do not, so that a header reader does not take them for OpenAI).
    """

    name: str
    rate_limit_headers: bool = True
    header_style: HeaderStyle = "openai"
    reset_format: Literal["go", "seconds"] = "go"
    requests_window: Literal["binding", "minute", "day"] = "binding"
    tokens_window: Literal["binding", "minute", "day"] = "binding"
    remaining_only: bool = False
    token_sentinels: bool = False
    retry_after: bool = True
    retry_after_ms: bool = False
    should_retry_header: bool = False
    project_headers: bool = True
    error_style: ErrorStyle = "openai"
    utilization_header: bool = False
    output_charge: OutputCharge = "reserve"
    soft_limit: float = 0.0
    array_errors: bool = False
    keepalive_seconds: float | None = None
    enforce_limits: bool = True
    queue_slots: int | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    openai_headers: bool = True

    def __post_init__(self) -> None:
        share = _non_negative("soft_limit", self.soft_limit)
        if share >= 1:
            raise ValueError(f"soft_limit must be < 1, got {share!r}")
        object.__setattr__(self, "soft_limit", share)
        if self.keepalive_seconds is not None:
            if _non_negative("keepalive_seconds", self.keepalive_seconds) == 0:
                raise ValueError("keepalive_seconds must be > 0")
            object.__setattr__(self, "keepalive_seconds", float(self.keepalive_seconds))
        if self.queue_slots is not None:
            object.__setattr__(self, "queue_slots", _positive_int("queue_slots", self.queue_slots))
        if self.output_charge not in ("reserve", "settle", "usage"):
            raise ValueError(
                f"output_charge must be reserve, settle or usage, got {self.output_charge!r}"
            )
        object.__setattr__(self, "extra_headers", tuple(dict(self.extra_headers).items()))

    @classmethod
    def openai(cls) -> Profile:
        """OpenAI: Go durations, the binding request bucket, ``Retry-After`` in seconds."""
        return cls("openai")

    @classmethod
    def azure(cls, *, sentinels: bool = False) -> Profile:
        """Azure OpenAI: resets in whole seconds, ``retry-after-ms``, Azure's 429 text."""
        return cls(
            "azure-sentinels" if sentinels else "azure",
            reset_format="seconds",
            retry_after_ms=True,
            token_sentinels=sentinels,
            project_headers=False,
            error_style="azure",
        )

    @classmethod
    def azure_ptu(cls) -> Profile:
        """An Azure provisioned (PTU) deployment: no ``x-ratelimit-*``; the utilisation
        header instead (a hint, rising with load), Azure's 429s with ``retry-after-ms``."""
        return cls(
            "azure-ptu",
            rate_limit_headers=False,
            retry_after_ms=True,
            project_headers=False,
            error_style="azure",
            utilization_header=True,
        )

    @classmethod
    def groq(cls) -> Profile:
        """Groq: the requests triplet is per day, the tokens triplet per minute."""
        return cls(
            "groq",
            requests_window="day",
            tokens_window="minute",
            should_retry_header=True,
            project_headers=False,
            error_style="groq",
        )

    @classmethod
    def none(cls) -> Profile:
        """A server that sends no rate-limit headers and no ``Retry-After``: only the 429 text."""
        return cls("none", rate_limit_headers=False, retry_after=False, project_headers=False)

    @classmethod
    def together(cls) -> Profile:
        """Together: ``x-ratelimit-*`` (requests per second) and ``x-tokenlimit-*`` (tokens
        per second) from the ``rps``/``tps`` buckets; 429 ``dynamic_request_limited`` /
        ``dynamic_token_limited``; its overloaded 503 is the platform's capacity."""
        return cls(
            "together",
            header_style="together",
            retry_after=False,
            project_headers=False,
            error_style="together",
            openai_headers=False,
        )

    @classmethod
    def fireworks(cls) -> Profile:
        """Fireworks: prompt and generated token limits stated per second (enforced per
        minute), output charged as it is generated, a soft 10 % past each limit with
        ``x-ratelimit-over-limit: yes``, then 429; its overloaded fault is a 503."""
        return cls(
            "fireworks",
            header_style="fireworks",
            retry_after=False,
            project_headers=False,
            error_style="fireworks",
            openai_headers=False,
            output_charge="usage",
            soft_limit=0.1,
        )

    @classmethod
    def openrouter(cls) -> Profile:
        """OpenRouter: no rate-limit headers on success; ``X-RateLimit-*`` (reset in epoch
        ms) only on its own 429s; 402 with ``Retry-After`` past the in-flight budget;
        ``error.code`` an integer."""
        return cls(
            "openrouter",
            header_style="openrouter",
            retry_after=False,
            project_headers=False,
            error_style="openrouter",
            openai_headers=False,
        )

    @classmethod
    def gemini(cls, *, array: bool = False) -> Profile:
        """Gemini's OpenAI-compatible endpoint: no headers; 429 ``RESOURCE_EXHAUSTED``
        with ``QuotaFailure`` (per minute or per day) and ``RetryInfo`` details; with
        ``array`` the body is wrapped in a JSON array, as that endpoint has sent it."""
        return cls(
            "gemini-array" if array else "gemini",
            rate_limit_headers=False,
            retry_after=False,
            project_headers=False,
            error_style="gemini",
            openai_headers=False,
            array_errors=array,
        )

    @classmethod
    def anthropic(cls) -> Profile:
        """Anthropic's OpenAI-compatible endpoint: ``anthropic-ratelimit-*`` with RFC 3339
        resets, input and output tokens limited apart, output charged by ``max_tokens``
        up front and settled afterwards; 429 typed ``invalid_request_error`` with code
        ``rate_limit_error``; its overloaded fault is a 529."""
        return cls(
            "anthropic",
            header_style="anthropic",
            project_headers=False,
            error_style="anthropic",
            openai_headers=False,
            output_charge="settle",
        )

    @classmethod
    def deepseek(cls) -> Profile:
        """DeepSeek: no headers; 429 past the calls in flight; ``: keep-alive`` comments
        (streams) and blank lines (plain answers) while a call waits; 402 for a spent
        balance."""
        return cls(
            "deepseek",
            rate_limit_headers=False,
            retry_after=False,
            project_headers=False,
            error_style="deepseek",
            openai_headers=False,
            keepalive_seconds=0.5,
        )

    @classmethod
    def tgi(cls) -> Profile:
        """Text-generation-inference: no rate-limit headers, ``x-compute-type``; 429
        "Model is overloaded" past ``--max-concurrent-requests`` (``concurrency``)."""
        return cls(
            "tgi",
            rate_limit_headers=False,
            retry_after=False,
            project_headers=False,
            error_style="tgi",
            openai_headers=False,
            extra_headers=(("x-compute-type", "gpu+optimized"),),
        )

    @classmethod
    def vllm(cls, *, queue_slots: int = 16) -> Profile:
        """vLLM's OpenAI server: no limits and no 429s; calls queue, so past
        ``queue_slots`` calls in flight every call takes longer."""
        return cls(
            "vllm",
            rate_limit_headers=False,
            retry_after=False,
            project_headers=False,
            enforce_limits=False,
            openai_headers=False,
            queue_slots=queue_slots,
        )

    @classmethod
    def named(cls, name: str) -> Profile:
        """The preset called ``name`` (see `PROFILES`)."""
        try:
            return PROFILES[name]
        except KeyError:
            raise ValueError(
                f"unknown profile {name!r}; expected one of {sorted(PROFILES)}"
            ) from None


PROFILES: Mapping[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile.openai(),
        Profile.azure(),
        Profile.azure(sentinels=True),
        Profile.azure_ptu(),
        Profile.groq(),
        Profile.none(),
        Profile.together(),
        Profile.fireworks(),
        Profile.openrouter(),
        Profile.gemini(),
        Profile.gemini(array=True),
        Profile.anthropic(),
        Profile.deepseek(),
        Profile.tgi(),
        Profile.vllm(),
    )
}


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """How long a response takes: generation dominates, as on the real API.

    Time to first token is ``ttft + per_prompt_token * prompt_tokens``; output then flows
    at ``tokens_per_second``. Both vary by up to ``jitter`` (a fraction, seeded per
    request). ``scale`` multiplies every delay: ``0`` makes the server answer at once,
    which is what tests want.
    """

    ttft: float = 0.3
    per_prompt_token: float = 0.00002
    tokens_per_second: float = 80.0
    jitter: float = 0.2
    scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("ttft", "per_prompt_token", "jitter", "scale"):
            object.__setattr__(self, name, _non_negative(name, getattr(self, name)))
        if _non_negative("tokens_per_second", self.tokens_per_second) == 0:
            raise ValueError("tokens_per_second must be > 0")
        if self.jitter >= 1:
            raise ValueError(f"jitter must be < 1, got {self.jitter!r}")

    @classmethod
    def instant(cls) -> LatencyModel:
        """No latency at all: every response is ready immediately."""
        return cls(scale=0.0)


@dataclass(frozen=True, slots=True)
class OutputModel:
    """How much the fake model writes.

    The output length is drawn (seeded) between ``min_tokens`` and the request's cap, or
    ``default_max_tokens`` when the request sets none; the same default is what the
    charge rule reserves for such a request.
    """

    min_tokens: int = 8
    default_max_tokens: int = 256
    embedding_dimensions: int = 1536

    def __post_init__(self) -> None:
        for name in ("min_tokens", "default_max_tokens", "embedding_dimensions"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))


class FaultKind(StrEnum):
    """The failures the mock can inject. The value is the name used on the command line."""

    SERVER_ERROR = "500"
    BAD_GATEWAY = "502"
    OVERLOADED = "503_overloaded"
    SLOW_DOWN = "503_slow_down"
    GATEWAY_TIMEOUT = "504"
    CONNECTION_RESET = "connection_reset"
    STREAM_CUT = "stream_cut"
    STREAM_ERROR = "stream_error"
    KEEPALIVE = "keepalive"
    SLOW_FIRST_BYTE = "slow_first_byte"
    MISSING_HEADERS = "missing_headers"
    GARBLED_HEADERS = "garbled_headers"
    INSUFFICIENT_QUOTA = "insufficient_quota"

    @property
    def stream_only(self) -> bool:
        """Faults that only make sense inside an event stream."""
        return self in (FaultKind.STREAM_CUT, FaultKind.STREAM_ERROR, FaultKind.KEEPALIVE)


_RULE = re.compile(r"^\s*([\w.-]+)\s*(?:=\s*([0-9.eE+-]+)|@\s*(\d+)\s*(?:-\s*(\d+))?)\s*$")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Inject ``kind`` with ``probability`` per request, or on request numbers in ``requests``.

    Request numbers count API calls (not ``/mock`` or ``/v1/models``) from 1 since the
    server started or was last reset; ``requests=(10, 12)`` hits the 10th, 11th and 12th.

    Example::

        FaultRule(FaultKind.OVERLOADED, probability=0.05)
        FaultRule.parse("500@10-12")
    """

    kind: FaultKind
    probability: float = 0.0
    requests: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        probability = _non_negative("probability", self.probability)
        if probability > 1:
            raise ValueError(f"probability must be <= 1, got {probability!r}")
        object.__setattr__(self, "probability", probability)
        if self.requests is not None:
            first, last = self.requests
            if first < 1 or last < first:
                raise ValueError(
                    f"requests must be (first, last) with 1 <= first <= last, got {self.requests!r}"
                )

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Read ``KIND=PROBABILITY``, ``KIND@N`` or ``KIND@FIRST-LAST`` (the CLI syntax)."""
        match = _RULE.match(text)
        if match is None:
            raise ValueError(f"bad fault {text!r}; expected KIND=PROBABILITY or KIND@N or KIND@N-M")
        name, probability, first, last = match.groups()
        try:
            kind = FaultKind(name)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault kind {name!r}; expected one of {known}") from None
        if probability is not None:
            return cls(kind, probability=float(probability))
        start = int(first)
        return cls(kind, requests=(start, int(last) if last is not None else start))


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The fault rules (first match wins) and the knobs of the faults that take a size.

    ``slow_first_byte_seconds`` is how long ``slow_first_byte`` holds the headers back; it
    is *not* multiplied by the latency scale, so it still trips client timeouts in tests.
    ``stream_cut_fraction`` is the share of the output sent before a cut or in-stream error.
    """

    rules: tuple[FaultRule, ...] = ()
    slow_first_byte_seconds: float = 10.0
    stream_cut_fraction: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        _non_negative("slow_first_byte_seconds", self.slow_first_byte_seconds)
        fraction = _non_negative("stream_cut_fraction", self.stream_cut_fraction)
        if fraction > 1:
            raise ValueError(f"stream_cut_fraction must be <= 1, got {fraction!r}")


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """How the Batch API behaves: its pace, its limits and the failures it injects.

    Time is the server clock's: a batch validates for ``validation_seconds``, then runs
    ``lines_per_second`` lines (each batch on its own), then finalizes for
    ``finalizing_seconds``. A batch still running ``expiry_seconds`` after creation expires;
    a cancelled one stays ``cancelling`` for ``cancel_seconds``. A batch keeps the
    configuration it was created with, except the enqueued-token limits, which are read
    when its validation ends.

    - ``max_requests_per_batch``, ``max_file_bytes``, ``max_embedding_inputs``: the
      per-batch limits OpenAI documents (50,000 lines, 200 MB, 50,000 embedding inputs).
    - ``enqueued_token_limit``: tokens (prompt estimate plus reserved output, as the
      charge rule counts them) that one model's running batches may hold; ``None`` is
      unlimited. ``model_enqueued_token_limits`` overrides it per model.
    - ``line_error_rate``: share of lines (seeded) answered with one of
      ``line_error_statuses`` instead of 200; ``not_found_models`` are answered 404
      ``model_not_found`` line by line.
    - ``malformed_output_lines``: that many result lines are written truncated (not JSON).

    Example::

        BatchConfig(validation_seconds=0, lines_per_second=100, line_error_rate=0.1)
        BatchConfig(enqueued_token_limit=90_000, expiry_seconds=60)
    """

    validation_seconds: float = 0.1
    lines_per_second: float = 10_000.0
    finalizing_seconds: float = 0.1
    cancel_seconds: float = 0.1
    expiry_seconds: float = 86_400.0
    max_requests_per_batch: int = 50_000
    max_file_bytes: int = 200_000_000
    max_embedding_inputs: int = 50_000
    enqueued_token_limit: int | None = None
    model_enqueued_token_limits: Mapping[str, int] = field(default_factory=dict)
    line_error_rate: float = 0.0
    line_error_statuses: tuple[int, ...] = (429, 500)
    not_found_models: tuple[str, ...] = ()
    malformed_output_lines: int = 0

    def __post_init__(self) -> None:
        for name in ("validation_seconds", "finalizing_seconds", "cancel_seconds"):
            object.__setattr__(self, name, _non_negative(name, getattr(self, name)))
        for name in ("lines_per_second", "expiry_seconds"):
            if _non_negative(name, getattr(self, name)) == 0:
                raise ValueError(f"{name} must be > 0")
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("max_requests_per_batch", "max_file_bytes", "max_embedding_inputs"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if self.enqueued_token_limit is not None:
            limit = _positive_int("enqueued_token_limit", self.enqueued_token_limit)
            object.__setattr__(self, "enqueued_token_limit", limit)
        object.__setattr__(
            self,
            "model_enqueued_token_limits",
            {
                str(model): _positive_int(f"enqueued token limit of {model}", limit)
                for model, limit in dict(self.model_enqueued_token_limits).items()
            },
        )
        rate = _non_negative("line_error_rate", self.line_error_rate)
        if rate > 1:
            raise ValueError(f"line_error_rate must be <= 1, got {rate!r}")
        object.__setattr__(self, "line_error_rate", rate)
        statuses = tuple(self.line_error_statuses)
        if not statuses or any(
            isinstance(s, bool) or not isinstance(s, int) or not 400 <= s <= 599 for s in statuses
        ):
            raise ValueError(
                f"line_error_statuses must be HTTP error statuses (400-599), got {statuses!r}"
            )
        object.__setattr__(self, "line_error_statuses", statuses)
        object.__setattr__(self, "not_found_models", tuple(self.not_found_models))
        malformed = _non_negative("malformed_output_lines", self.malformed_output_lines)
        if malformed != int(malformed):
            raise ValueError(f"malformed_output_lines must be whole, got {malformed!r}")
        object.__setattr__(self, "malformed_output_lines", int(malformed))

    def enqueued_limit_for(self, model: str) -> int | None:
        """The enqueued-token limit of ``model``'s batches, or ``None`` for unlimited."""
        return self.model_enqueued_token_limits.get(model, self.enqueued_token_limit)

    def updated(self, changes: Mapping[str, object]) -> BatchConfig:
        """A copy with ``changes`` applied (JSON lists become tuples).

        Raises `ValueError` for a name that is not a field.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown batch setting(s) {unknown}; expected {sorted(known)}")
        values = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in changes.items()
        }
        return replace(self, **values)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """The settings as a JSON-ready dict."""
        values: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            values[f.name] = value
        return values


@dataclass(frozen=True)
class MockConfig:
    """The whole mock server configuration.

    ``limits`` apply to every model unless ``model_limits`` names the model or its shared
    group. ``shared_limits`` maps a group name to models that draw on one set of buckets
    (as OpenAI's "shared limit" model families do). Buckets are kept per ``limit_scope``
    (API key by default) and per model or group. ``batch`` sets how the Files and Batch
    APIs behave (`BatchConfig`).

    Example::

        MockConfig(limits=MockLimits(rpm=500, tpm=200_000), latency=LatencyModel.instant())
        MockConfig(
            limits=MockLimits(rpm=60, tpm=10_000),
            shared_limits={"gpt-4o-family": ("gpt-4o", "gpt-4o-2024-08-06")},
            profile=Profile.azure(),
            faults=FaultPlan((FaultRule.parse("503_overloaded=0.05"),)),
            seed=7,
        )
    """

    limits: MockLimits = field(default_factory=lambda: MockLimits(rpm=500, tpm=200_000))
    model_limits: Mapping[str, MockLimits] = field(default_factory=dict)
    shared_limits: Mapping[str, Sequence[str]] = field(default_factory=dict)
    limit_scope: LimitScope = "key"
    keys: Mapping[str, KeyConfig] = field(default_factory=dict)
    require_known_keys: bool = False
    profile: Profile = field(default_factory=Profile.openai)
    charge_rule: ChargeRule = sum_rule
    settle_to_usage: bool = False
    charge_failed_requests: bool = True
    seed: int = 0
    latency: LatencyModel = field(default_factory=LatencyModel)
    output: OutputModel = field(default_factory=OutputModel)
    faults: FaultPlan = field(default_factory=FaultPlan)
    models: tuple[str, ...] = DEFAULT_MODELS
    timeline_seconds: int = 3600
    log_size: int = 1000
    batch: BatchConfig = field(default_factory=BatchConfig)

    def __post_init__(self) -> None:
        if self.limit_scope not in ("key", "organization", "project"):
            raise ValueError(
                f"limit_scope must be key, organization or project, got {self.limit_scope!r}"
            )
        object.__setattr__(self, "model_limits", dict(self.model_limits))
        groups = {name: tuple(models) for name, models in self.shared_limits.items()}
        seen: dict[str, str] = {}
        for name, models in groups.items():
            for model in models:
                if model in seen:
                    raise ValueError(
                        f"model {model!r} is in shared groups {seen[model]!r} and {name!r}"
                    )
                seen[model] = name
        object.__setattr__(self, "shared_limits", groups)
        object.__setattr__(self, "keys", dict(self.keys))
        object.__setattr__(self, "models", tuple(self.models))
        _positive_int("timeline_seconds", self.timeline_seconds)
        _non_negative("log_size", self.log_size)

    def group_of(self, model: str) -> str:
        """The bucket group a model draws on: its shared group, else the model itself."""
        for name, models in self.shared_limits.items():
            if model in models:
                return name
        return model
