"""Bad arguments fail at the door: one kind of error per kind of mistake, naming it.

A wrong type is a `TypeError`, a wrong value a `ValueError`, and the message names the
parameter: for every public constructor, `wrap`, `http_client` and `acquire`. (`wrap`'s
own table is in ``test_wrap_clients.py``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import httpx2
import pytest

from ratelimit_llm import (
    AdaptiveBackoff,
    Cost,
    FixedDelay,
    KeyRotation,
    LimiterPool,
    Limits,
    RateLimitedTransport,
    RateLimiter,
)
from ratelimit_llm.core import Dimension, Learner
from ratelimit_llm.costs import CostEstimator
from ratelimit_llm.strategies import Credential

KEY = "sk-test-argumentsargumentsargs001"
NAN = math.nan

CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # Cost and Limits
    ("cost-negative", lambda: Cost(tokens=-1), ValueError, "tokens"),
    ("cost-nan", lambda: Cost(requests=NAN), ValueError, "requests"),
    ("cost-string", lambda: Cost(tokens="5"), TypeError, "tokens"),  # type: ignore[arg-type]
    ("cost-bool", lambda: Cost(requests=True), TypeError, "requests"),
    ("limits-none", lambda: Limits(), ValueError, "at least one"),
    ("limits-zero", lambda: Limits(rpm=0), ValueError, "rpm"),
    ("limits-inf", lambda: Limits(tpm=math.inf), ValueError, "tpm"),
    ("limits-string", lambda: Limits(rpm="500"), TypeError, "rpm"),  # type: ignore[arg-type]
    ("limits-burst", lambda: Limits(rpm=60, burst_seconds=61), ValueError, "burst_seconds"),
    ("limits-concurrency", lambda: Limits(concurrency=0), ValueError, "concurrency"),
    # Dimension
    ("dim-capacity", lambda: Dimension("d", "requests", 10, 1.0, -1), ValueError, "capacity"),
    ("dim-metric", lambda: Dimension("d", "bananas", 10, 1.0), ValueError, "metric"),
    ("dim-name", lambda: Dimension(3, "requests", 10, 1.0), TypeError, "name"),  # type: ignore[arg-type]
    ("dim-window", lambda: Dimension("d", "tokens", 10, 0), ValueError, "window"),
    # RateLimiter
    ("limiter-limits", lambda: RateLimiter("rpm=5"), TypeError, "limits"),  # type: ignore[arg-type]
    ("limiter-fill", lambda: RateLimiter(Limits(rpm=1), initial_fill=2), ValueError, "fill"),
    (
        "limiter-fill-type",
        lambda: RateLimiter(Limits(rpm=1), initial_fill=cast(Any, "full")),
        TypeError,
        "fill",
    ),
    ("limiter-clock", lambda: RateLimiter(Limits(rpm=1), clock=5.0), TypeError, "clock"),  # type: ignore[arg-type]
    (
        "limiter-follow",
        lambda: RateLimiter(Limits(rpm=1), follow_server_limits=cast(Any, "yes")),
        TypeError,
        "follow_server_limits",
    ),
    (
        "limiter-lanes",
        lambda: RateLimiter(Limits(rpm=1), lanes={"default": -1}),
        ValueError,
        "lanes",
    ),
    # LimiterPool
    ("pool-limits", lambda: LimiterPool(5), TypeError, "limits"),  # type: ignore[arg-type]
    ("pool-shared", lambda: LimiterPool("auto", shared={"a": 1}), TypeError, "shared"),  # type: ignore[dict-item]
    (
        "pool-auto-start",
        lambda: LimiterPool("auto", auto_start=cast(Any, {"rpm": 5})),
        TypeError,
        "auto_start",
    ),
    ("pool-backend", lambda: LimiterPool("auto", backend="memcached://x"), ValueError, "backend"),
    # Strategies and the learner
    ("backoff-attempts", lambda: AdaptiveBackoff(max_attempts=0), ValueError, "max_attempts"),
    ("backoff-cap", lambda: AdaptiveBackoff(cap="30"), TypeError, "cap"),  # type: ignore[arg-type]
    ("fixed-seconds", lambda: FixedDelay(-1), ValueError, "seconds"),
    ("fixed-every", lambda: FixedDelay(1, every=1.5), TypeError, "every"),  # type: ignore[arg-type]
    ("rotation-empty", lambda: KeyRotation([]), ValueError, "credential"),
    ("rotation-cooldown", lambda: KeyRotation([KEY], cooldown="1"), TypeError, "cooldown"),  # type: ignore[arg-type]
    ("rotation-cooldown-value", lambda: KeyRotation([KEY], cooldown=-1), ValueError, "cooldown"),
    ("rotation-item", lambda: KeyRotation([KEY, 7]), TypeError, "credentials"),  # type: ignore[list-item]
    ("learner-hold", lambda: Learner(max_hold=0), ValueError, "max_hold"),
    # Credential, estimator, telemetry
    ("credential-empty", lambda: Credential(""), ValueError, "api_key"),
    ("credential-type", lambda: Credential(12345), TypeError, "api_key"),  # type: ignore[arg-type]
    ("credential-name", lambda: Credential(KEY, name=3), TypeError, "name"),  # type: ignore[arg-type]
    ("estimator-chars", lambda: CostEstimator(chars_per_token=0), ValueError, "chars_per_token"),
    ("estimator-rule", lambda: CostEstimator(output_rule="min"), ValueError, "output_rule"),  # type: ignore[arg-type]
]


def transport(**options: Any) -> RateLimitedTransport:
    return RateLimitedTransport(
        httpx2.MockTransport(lambda r: httpx2.Response(200)), limits=Limits(rpm=60), **options
    )


CASES += [
    ("transport-timeout", lambda: transport(acquire_timeout=-1), ValueError, "acquire_timeout"),
    (
        "transport-timeout-type",
        lambda: transport(acquire_timeout="5"),
        TypeError,
        "acquire_timeout",
    ),
    ("transport-inflight", lambda: transport(max_in_flight=2.5), TypeError, "max_in_flight"),
    ("transport-inflight-value", lambda: transport(max_in_flight=0), ValueError, "max_in_flight"),
    ("transport-strategy", lambda: transport(strategy="adaptive"), TypeError, "strategy"),
    ("transport-snapshot", lambda: transport(snapshot_at="later"), ValueError, "snapshot_at"),
    ("transport-telemetry", lambda: transport(telemetry=object()), TypeError, "telemetry"),
    ("transport-estimator", lambda: transport(estimator=object()), TypeError, "estimator"),
    ("transport-provider", lambda: transport(provider="acme"), ValueError, "provider"),
]


@pytest.mark.parametrize(
    ("make", "error", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_argument_is_refused_at_the_door(
    make: Callable[[], object], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        make()


@pytest.mark.anyio
async def test_acquire_checks_its_arguments() -> None:
    limiter = RateLimiter(Limits(rpm=60, burst_seconds=60))
    with pytest.raises(ValueError, match="timeout"):
        limiter.acquire(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        limiter.acquire(timeout=NAN)
    with pytest.raises(TypeError, match="timeout"):
        limiter.acquire(timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cost"):
        limiter.acquire("5 tokens")  # type: ignore[arg-type]
