"""The public surface, pinned: what each public module exports, and nothing else.

A name added to or dropped from a public module must be added to or dropped from this
file too: the surface changes on purpose, never by accident (as httpx pins its own).
"""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import pytest

import ratelimit_llm

TOP_LEVEL = [
    "AcquireTimeoutError",
    "AdaptiveBackoff",
    "BackendUnavailableError",
    "CapacityExceededError",
    "Cost",
    "CredentialsExhaustedError",
    "FixedDelay",
    "KeyRotation",
    "LimiterPool",
    "Limits",
    "MemoryBackend",
    "RateLimitLLMError",
    "RateLimitedTransport",
    "RateLimiter",
    "RedisBackend",
    "http_client",
    "lane",
    "run",
    "transport_of",
    "wrap",
]

SUBMODULES = {
    "ratelimit_llm.core": [
        "DEFAULT_LANES",
        "Bucket",
        "Dimension",
        "Learner",
        "Limiter",
        "Reservation",
        "current_lane",
    ],
    "ratelimit_llm.backends": [
        "Backend",
        "MemoryBackend",
        "RedisBackend",
        "RedisRateLimiter",
        "RedisReservation",
        "backend_from",
    ],
    "ratelimit_llm.costs": ["CostEstimator", "cost_from_usage", "estimate_cost"],
    "ratelimit_llm.errors": [
        "AcquireTimeoutError",
        "BackendError",
        "BackendUnavailableError",
        "CapacityExceededError",
        "CredentialsExhaustedError",
        "RateLimitLLMError",
        "ReservationError",
        "WouldBlock",
    ],
    "ratelimit_llm.providers": [
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
    ],
    "ratelimit_llm.strategies": [
        "RETRY_BUDGETS",
        "AdaptiveBackoff",
        "Attempt",
        "Credential",
        "CredentialState",
        "Decision",
        "FixedDelay",
        "KeyRotation",
        "Strategy",
        "compose",
        "redact_key",
    ],
    "ratelimit_llm.runs": [
        "AutoPolicy",
        "OutputError",
        "Run",
        "RunError",
        "RunProgress",
        "RunResult",
        "RunSummary",
        "Shard",
        "run",
    ],
    "ratelimit_llm.telemetry": [
        "Event",
        "EventKind",
        "LimiterStatistics",
        "RouteStatistics",
        "Telemetry",
    ],
    "ratelimit_llm.testing": ["LocalRedisServer"],
}


def test_the_top_level_exports_exactly_the_pinned_names() -> None:
    assert ratelimit_llm.__all__ == TOP_LEVEL
    for name in TOP_LEVEL:
        assert getattr(ratelimit_llm, name) is not None, name
    public = {
        name
        for name, value in vars(ratelimit_llm).items()
        if not name.startswith("_") and not isinstance(value, type(ratelimit_llm))
    }
    # Nothing public sits at the top level without being exported (TYPE_CHECKING-only
    # and lazily loaded names aside).
    assert public - set(TOP_LEVEL) <= {"TYPE_CHECKING", "Any", "annotations"}


def test_top_level_objects_say_they_live_at_the_top_level() -> None:
    for name in TOP_LEVEL:
        if name == "RedisBackend":
            continue  # the optional extra's, loaded on first use
        assert getattr(ratelimit_llm, name).__module__ == "ratelimit_llm", name
    # So what a worker raises or is given comes back whole through pickle (process
    # pools, distilabel's step workers, job queues).
    limits = ratelimit_llm.Limits(rpm=10, tpm=1_000)
    assert pickle.loads(pickle.dumps(limits)) == limits
    for error in (
        ratelimit_llm.AcquireTimeoutError(2.5),
        ratelimit_llm.CapacityExceededError("tokens/min", 9_000, 4_000),
        ratelimit_llm.CredentialsExhaustedError({"sk-...WXYZ": "401"}),
        ratelimit_llm.BackendUnavailableError("redis at cache:6379 did not answer"),
        ratelimit_llm.errors.WouldBlock(),
    ):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert vars(back) == vars(error)


@pytest.mark.parametrize("module_name", sorted(SUBMODULES))
def test_each_public_module_exports_exactly_the_pinned_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(SUBMODULES[module_name])
    for name in module.__all__:
        assert hasattr(module, name), (module_name, name)
    # Loaded with the package: ``import ratelimit_llm`` is enough to reach them.
    assert getattr(ratelimit_llm, module_name.rsplit(".", 1)[1]) is module


def test_every_public_name_has_one_meaning() -> None:
    # A name exported from two public modules is the same object in both.
    seen: dict[str, object] = {name: getattr(ratelimit_llm, name) for name in TOP_LEVEL}
    for module_name, names in SUBMODULES.items():
        module = importlib.import_module(module_name)
        for name in names:
            value = getattr(module, name)
            if name in seen:
                assert seen[name] is value, (module_name, name)
            seen[name] = value


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'Bucket'"):
        ratelimit_llm.Bucket  # type: ignore[attr-defined]  # noqa: B018


def test_private_modules_declare_all() -> None:
    for module_name in (
        "_bucket",
        "_classify",
        "_credentials",
        "_decorator",
        "_durations",
        "_estimate",
        "_exceptions",
        "_headers",
        "_limiter",
        "_pool",
        "_sse",
        "_strategy",
        "_telemetry",
        "_transport",
        "_types",
        "_wrap",
    ):
        module = importlib.import_module(f"ratelimit_llm.{module_name}")
        assert isinstance(module.__all__, list | tuple), module_name
        for name in module.__all__:
            assert hasattr(module, name), (module_name, name)


def test_importing_the_package_needs_no_optional_extra() -> None:
    # redis, starlette, uvicorn, rich and matplotlib are extras: the package and its
    # public modules import without them, and RedisBackend only when named.
    code = (
        "import sys\n"
        "for name in ('redis', 'starlette', 'uvicorn', 'rich', 'matplotlib'):\n"
        "    sys.modules[name] = None\n"
        "import ratelimit_llm, ratelimit_llm.strategies, ratelimit_llm.backends\n"
        "assert 'redis' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_redis_classes_import_without_redis_and_name_the_extra_on_use() -> None:
    # Importing them (and the testing helpers) needs no redis; making a backend says
    # which extra to install.
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from ratelimit_llm.backends import RedisBackend, backend_from\n"
        "from ratelimit_llm.testing import LocalRedisServer\n"
        "for make in (lambda: RedisBackend('redis://127.0.0.1:1/0'),\n"
        "             lambda: backend_from('redis://127.0.0.1:1/0')):\n"
        "    try:\n"
        "        make()\n"
        "    except ImportError as exc:\n"
        '        assert "ratelimit-llm[redis]" in str(exc), exc\n'
        "    else:\n"
        "        raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
