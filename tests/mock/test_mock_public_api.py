"""The public names of ``ratelimit_llm.mock``, pinned so a change to them is deliberate."""

from __future__ import annotations

import ratelimit_llm.mock as mock_package

EXPECTED = {
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
}


def test_public_names() -> None:
    assert set(mock_package.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(mock_package, name) is not None
