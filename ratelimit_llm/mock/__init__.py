"""A faithful mock of the OpenAI API's rate limiting, for tests and benchmarks.

It enforces RPM/TPM (and RPD/TPD, project and shared-model limits) with the same
continuous token buckets the real service's headers and 429 messages reveal, and the
other providers' limits (per second, input and output apart, calls in flight), and
reports them in each provider's own headers and refusals (the `Profile` presets:
OpenAI, Azure, Groq, Together, Fireworks, OpenRouter, Gemini, Anthropic, DeepSeek, TGI,
vLLM), generates
deterministic fake output whose ``usage`` matches what it emitted (prose, JSON valid for
a requested schema, or tool calls, so framework loops run against it), models latency
and injects faults. It also serves the Files and Batch APIs, whose batches run in the same
clock time. Use it in-process through ``httpx2.ASGITransport`` (`create_app`) or on
a loopback port (`serve`, or ``ratelimit-llm mock-server``). See ``docs/mock-server.md``.

Needs the ``mock`` extra (starlette and uvicorn).
"""

from __future__ import annotations

from ._accounting import (
    ChargeRequest,
    ChargeRule,
    count_tokens,
    max_rule,
    prompt_only_rule,
    sum_rule,
)
from ._app import create_app
from ._config import (
    DEFAULT_MODELS,
    PROFILES,
    BatchConfig,
    FaultKind,
    FaultPlan,
    FaultRule,
    KeyConfig,
    LatencyModel,
    LimitScope,
    MockConfig,
    MockLimits,
    OutputModel,
    Profile,
)
from ._keys import redact
from ._server import MockServer, run_server, serve
from ._state import Clock, MockState, Sleep

__all__ = [
    "DEFAULT_MODELS",
    "PROFILES",
    "BatchConfig",
    "ChargeRequest",
    "ChargeRule",
    "Clock",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "KeyConfig",
    "LatencyModel",
    "LimitScope",
    "MockConfig",
    "MockLimits",
    "MockServer",
    "MockState",
    "OutputModel",
    "Profile",
    "Sleep",
    "count_tokens",
    "create_app",
    "max_rule",
    "prompt_only_rule",
    "redact",
    "run_server",
    "serve",
    "sum_rule",
]
