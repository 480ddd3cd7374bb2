"""The benchmark harness: contenders side by side against the bundled mock server.

``ratelimit-llm bench`` runs the built-in scenarios with the contenders this package
needs nothing more for (the bare SDK and ratelimit-llm's strategies);
``benchmarks/run.py`` in the repository adds the rival libraries. Needs the ``bench``
extra (rich, matplotlib, and the ``mock`` extra).
"""

from __future__ import annotations

from ._cli import main, run_benchmark
from ._contenders import BareSDK, Contender, RateLimitLLM, RunContext, builtin_contenders, perform
from ._runner import RunResult, mock_server_process, run_scenario
from ._workload import (
    BackgroundLoad,
    Call,
    Scenario,
    builtin_scenarios,
    ideal_admissions,
    ideal_seconds,
)

__all__ = [
    "BackgroundLoad",
    "BareSDK",
    "Call",
    "Contender",
    "RateLimitLLM",
    "RunContext",
    "RunResult",
    "Scenario",
    "builtin_contenders",
    "builtin_scenarios",
    "ideal_admissions",
    "ideal_seconds",
    "main",
    "mock_server_process",
    "perform",
    "run_benchmark",
    "run_scenario",
]
