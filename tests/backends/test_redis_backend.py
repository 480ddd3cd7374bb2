"""What only the Redis backend has: keys, scripts, sharing, outages and configuration."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import anyio
import pytest
import pytest_asyncio

from ratelimit_llm import (
    AcquireTimeoutError,
    BackendUnavailableError,
    Cost,
    LimiterPool,
    Limits,
    MemoryBackend,
    RateLimiter,
)
from ratelimit_llm.backends import RedisBackend, RedisRateLimiter, backend_from
from ratelimit_llm.core import Dimension, Limiter, Reservation
from ratelimit_llm.errors import BackendError
from ratelimit_llm.testing import LocalRedisServer

from ._state import quota_state

pytestmark = pytest.mark.asyncio

TOKENS = Dimension("tokens/s", "tokens", 1_000, 1.0, 50)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[LocalRedisServer]:
    """A redis-server of the test's own, to kill and restart."""
    local = LocalRedisServer()
    local.start()
    try:
        yield local
    finally:
        local.close()


def _unused_url() -> str:
    # A port nothing listens on: a fresh server's port, once it is gone.
    probe = LocalRedisServer()
    return f"redis://:hunter2@127.0.0.1:{probe.port}/0"


async def test_keys_are_hash_tagged_namespaced_and_expire(redis_backend: RedisBackend) -> None:
    limiter = redis_backend.limiter([TOKENS], scope="sk-...abcd|gpt-4o")
    await limiter.acquire(Cost(tokens=1))
    state, grants = redis_backend.keys("sk-...abcd|gpt-4o")
    tag = f"{{{redis_backend.namespace}:sk-...abcd|gpt-4o}}"
    assert tag in state and tag in grants
    client = redis_backend.client
    assert await client.exists(state, grants) == 2
    for key in (state, grants):
        assert 0 < await client.ttl(key) <= redis_backend.ttl


async def test_braces_in_a_scope_cannot_break_the_hash_tag(redis_backend: RedisBackend) -> None:
    state, grants = redis_backend.keys("a}b{c")
    assert state.count("{") == 1 and state.count("}") == 1
    assert grants.count("{") == 1 and grants.count("}") == 1


async def test_scripts_are_registered_and_one_call_per_acquire(
    redis_backend: RedisBackend,
) -> None:
    limiter = redis_backend.limiter([TOKENS], scope="scripts")
    await limiter.acquire(Cost(tokens=1))
    client = redis_backend.client
    before = await client.info("commandstats")
    await limiter.acquire(Cost(tokens=1))
    after = await client.info("commandstats")
    calls = {
        name: after.get(name, {}).get("calls", 0) - before.get(name, {}).get("calls", 0)
        for name in ("cmdstat_evalsha", "cmdstat_eval")
    }
    # One EVALSHA for the acquire, plus the INFO call's own bookkeeping: nothing else.
    assert calls == {"cmdstat_evalsha": 1, "cmdstat_eval": 0}
    # Each script is loaded into Redis's cache the first time it runs, then called by SHA.
    assert await client.script_exists(redis_backend._scripts["acquire"].sha) == [True]


async def test_two_clients_share_one_quota(redis_url: str) -> None:
    namespace = f"share-{uuid.uuid4().hex[:8]}"
    first = RedisBackend(redis_url, namespace=namespace)
    second = RedisBackend(redis_url, namespace=namespace)
    try:
        a = first.limiter([TOKENS], scope="org")
        b = second.limiter([TOKENS], scope="org")
        await a.acquire(Cost(tokens=50))
        start = time.monotonic()
        await b.acquire(Cost(tokens=30))  # the other "process" emptied the bucket
        assert time.monotonic() - start >= 0.02
        other = second.limiter([TOKENS], scope="another-org")
        start = time.monotonic()
        await other.acquire(Cost(tokens=50))
        assert time.monotonic() - start < 0.02
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_first_configuration_creates_the_quota_later_ones_join_it(
    redis_backend: RedisBackend,
) -> None:
    first = redis_backend.limiter([TOKENS], scope="org")
    await first.acquire(Cost(tokens=50))
    bigger = Dimension("tokens/s", "tokens", 1_000_000, 1.0, 1_000_000)
    second = redis_backend.limiter([bigger], scope="org")
    start = time.monotonic()
    await second.acquire(Cost(tokens=30))  # Redis's quota (50 deep, empty) decides
    assert time.monotonic() - start >= 0.02


async def test_fail_closed_raises_a_typed_error_without_secrets() -> None:
    backend = RedisBackend(_unused_url(), timeout=0.5)
    try:
        limiter = backend.limiter([TOKENS], scope="org")
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError) as caught:
            await limiter.acquire(Cost(tokens=1))
        assert time.monotonic() - start < 2.0
        assert "hunter2" not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
        assert "hunter2" not in repr(backend) and "hunter2" not in repr(limiter)
    finally:
        await backend.aclose()


async def test_local_fallback_serves_a_share_of_the_quota() -> None:
    backend = RedisBackend(_unused_url(), timeout=0.5, on_outage="local", local_share=0.5)
    try:
        limiter = backend.limiter([TOKENS], scope="org")
        start = time.monotonic()
        # The local share refills at 500 tokens/s and starts empty (others may have
        # spent the quota just before the outage): 25 tokens take about 50 ms.
        await limiter.acquire(Cost(tokens=25))
        assert 0.03 <= time.monotonic() - start < 1.0
        assert limiter.serving_locally
        # While the outage lasts, Redis is not asked again on every call.
        start = time.monotonic()
        for _ in range(5):
            reservation = await limiter.acquire(Cost(tokens=1))
            reservation.settle(Cost(tokens=1))
        assert time.monotonic() - start < 0.5
    finally:
        await backend.aclose()


async def test_calls_in_flight_are_counted_through_an_outage_and_a_failing_one() -> None:
    """The place in flight is this process's whatever Redis does: a call served by the
    local share holds one until it finishes, and a call refused by the outage (fail
    closed) keeps none."""
    dims = [TOKENS, Dimension("concurrency", "concurrency", 2, math.inf)]
    local = RedisBackend(_unused_url(), timeout=0.5, on_outage="local", local_share=0.5)
    closed = RedisBackend(_unused_url(), timeout=0.5)
    try:
        limiter = local.limiter(dims, scope="org")
        reservation = await limiter.acquire(Cost(tokens=5))
        assert limiter.serving_locally and limiter.in_flight() == (1, 2)
        assert len(reservation.mark) == len(limiter.dimensions) == 2
        reservation.settle(Cost(tokens=5))
        assert limiter.in_flight() == (0, 2)
        failing = closed.limiter(dims, scope="org")
        with pytest.raises(BackendUnavailableError):
            await failing.acquire(Cost(tokens=1))
        assert failing.in_flight() == (0, 2)
    finally:
        await local.aclose()
        await closed.aclose()


async def test_settles_lost_in_an_outage_are_counted_not_raised(
    server: LocalRedisServer,
) -> None:
    backend = RedisBackend(server.url, timeout=0.5)
    try:
        limiter = backend.limiter([TOKENS], scope="org")
        reservation = await limiter.acquire(Cost(tokens=10))
        server.kill()
        reservation.settle(Cost(tokens=1))
        with anyio.fail_after(5):
            await limiter.aclose()
        assert limiter.dropped == 1
    finally:
        await backend.aclose()


@pytest.mark.parametrize("policy", ["fail", "local"])
async def test_redis_killed_and_restarted_mid_run(server: LocalRedisServer, policy: str) -> None:
    """No caller hangs; each gets the configured behaviour; the run completes."""
    backend = RedisBackend(
        server.url,
        timeout=0.3,
        on_outage="local" if policy == "local" else "fail",
        local_share=0.5,
        retry_after=0.2,
        namespace=f"outage-{policy}",
    )
    limiter = backend.limiter([Dimension("requests/s", "requests", 400, 1.0, 20)], scope="org")
    outcomes: dict[str, int] = {"granted": 0, "unavailable": 0}
    granted_after_restart = 0
    restarted = anyio.Event()

    async def caller() -> None:
        nonlocal granted_after_restart
        granted = 0
        while granted < 25:
            try:
                reservation = await limiter.acquire()
            except BackendUnavailableError:
                outcomes["unavailable"] += 1
                await anyio.sleep(0.02)
                continue
            granted += 1
            reservation.settle(Cost(requests=1))
            outcomes["granted"] += 1
            if restarted.is_set():
                granted_after_restart += 1
            await anyio.sleep(0.005)

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(caller)
                await anyio.sleep(0.1)
                server.kill()
                await anyio.sleep(0.5)
                server.start()
                restarted.set()
            await limiter.aclose()
    finally:
        await backend.aclose()
    assert outcomes["granted"] == 20 * 25
    if policy == "fail":
        assert outcomes["unavailable"] > 0
    else:
        assert outcomes["unavailable"] == 0
    assert granted_after_restart > 0
    assert not isinstance(limiter, RedisRateLimiter) or not limiter.serving_locally


async def test_a_paused_redis_counts_as_an_outage_after_the_timeout(
    server: LocalRedisServer,
) -> None:
    backend = RedisBackend(server.url, timeout=0.3)
    try:
        limiter = backend.limiter([TOKENS], scope="org")
        await limiter.acquire(Cost(tokens=1))
        server.pause()
        try:
            start = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                await limiter.acquire(Cost(tokens=1))
            assert time.monotonic() - start < 2.0
        finally:
            server.resume()
    finally:
        await backend.aclose()


async def test_configuration_from_urls() -> None:
    assert isinstance(backend_from(None), MemoryBackend)
    assert isinstance(backend_from("memory"), MemoryBackend)
    memory = MemoryBackend()
    assert backend_from(memory) is memory
    redis = backend_from("rediss://user:s3cret@cache.internal:6380/2", on_outage="local")
    assert isinstance(redis, RedisBackend)
    assert redis.on_outage == "local"
    assert "s3cret" not in repr(redis) and "cache.internal:6380/2" in repr(redis)
    with pytest.raises(ValueError, match="redis://"):
        backend_from("http://cache.internal")
    with pytest.raises(TypeError):
        backend_from(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_outage"):
        RedisBackend("redis://x", on_outage="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="local_share"):
        RedisBackend("redis://x", local_share=0)


async def test_a_pool_on_redis_gives_one_scope_per_credential_and_model(
    redis_backend: RedisBackend,
) -> None:
    pool = LimiterPool(Limits(rpm=600, tpm=10_000), backend=redis_backend)
    limiter = pool.get("sk-...abcd", "gpt-4o-mini")
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter.scope == "sk-...abcd|gpt-4o-mini"
    assert pool.get("sk-...abcd", "gpt-4o-mini") is limiter
    assert pool.get("sk-...wxyz", "gpt-4o-mini") is not limiter


async def test_settles_in_flight_together_are_sent_as_one_sum(
    redis_backend: RedisBackend,
) -> None:
    slow = Dimension("tokens/min", "tokens", 6_000, 60.0, 6_000)  # 100 tokens a second
    limiter = redis_backend.limiter([slow], scope="settles")
    reservations = [await limiter.acquire(Cost(tokens=50)) for _ in range(100)]
    client = redis_backend.client
    before = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    for reservation in reservations:
        reservation.settle(Cost(tokens=5))
    await limiter.aclose()
    after = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    assert after - before < 10  # 100 settles, a handful of script calls
    # Every refund arrived: 100 x 45 tokens back, so 5,000 of 6,000 are free again (the
    # level was 1,000 after the acquires, plus a little refill).
    start = time.monotonic()
    await limiter.acquire(Cost(tokens=5_000))
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("policy", ["fail", "local"])
async def test_a_wrong_password_is_a_typed_error_whatever_the_policy(policy: str) -> None:
    with LocalRedisServer(password="right-horse-battery") as guarded:
        wrong = guarded.url.replace("right-horse-battery", "wrong-horse-battery")
        backend = RedisBackend(wrong, on_outage="local" if policy == "local" else "fail")
        try:
            limiter = backend.limiter([TOKENS], scope="org")
            with pytest.raises(BackendError) as caught:
                await limiter.acquire(Cost(tokens=1))
            message = str(caught.value)
            assert "credentials" in message
            assert "horse" not in message and "horse" not in repr(backend)
            assert caught.value.__cause__ is None
        finally:
            await backend.aclose()
        right = RedisBackend(guarded.url)
        try:
            reservation = await right.limiter([TOKENS], scope="org").acquire(Cost(tokens=1))
            assert not reservation.closed
        finally:
            await right.aclose()


async def test_a_key_of_the_wrong_type_in_the_namespace_is_a_typed_error(
    redis_backend: RedisBackend,
) -> None:
    state, _ = redis_backend.keys("clash")
    await redis_backend.client.set(state, "not a hash")
    limiter = redis_backend.limiter([TOKENS], scope="clash")
    with pytest.raises(BackendError, match="ResponseError"):
        await limiter.acquire(Cost(tokens=1))


# -- a sibling of the memory limiter ----------------------------------------------------


async def test_the_redis_limiter_is_a_full_limiter_not_a_memory_one(
    redis_backend: RedisBackend,
) -> None:
    limiter = redis_backend.limiter([TOKENS], scope="sibling")
    assert isinstance(limiter, Limiter)
    assert not isinstance(limiter, RateLimiter)
    assert not hasattr(limiter, "acquire_nowait")  # use acquire(cost, timeout=0)
    reservation = await limiter.acquire(Cost(tokens=1))
    assert isinstance(reservation, Reservation)


async def test_three_cold_processes_share_one_opening_and_one_pause(redis_url: str) -> None:
    """Slow start is the quota's, not each process's: three processes starting cold on
    one quota get one opening between them, and one answer ends the pause for all."""
    namespace = f"cold-{uuid.uuid4().hex[:8]}"
    backends = [RedisBackend(redis_url, namespace=namespace) for _ in range(3)]
    try:
        limiters = [b.limiter(Limits(rpm=600), scope="org") for b in backends]
        assert all(limiter.probing() == ("requests/min",) for limiter in limiters)

        async def try_one(limiter: RedisRateLimiter) -> bool:
            try:
                await limiter.acquire(timeout=0)
                return True
            except AcquireTimeoutError:
                return False

        granted = await asyncio.gather(*(try_one(limiters[i % 3]) for i in range(30)))
        assert sum(granted) == 10  # one second's worth of 600 a minute, for all three
        # The pause is shared: nothing refills for anyone until an answer...
        with pytest.raises(AcquireTimeoutError):
            await limiters[1].acquire(timeout=0.5)
        limiters[0].answered()
        await limiters[0].aclose()
        # ...and one process's answer resumes refill for the others: 0.1 s a request.
        start = time.monotonic()
        await limiters[2].acquire()
        assert time.monotonic() - start < 0.5
        # One process's headers open the depth for every process.
        limiters[0].observe("requests", limit=600, remaining=580, window=60.0, reset=2.0)
        await limiters[0].aclose()
        await limiters[2].acquire()
        assert limiters[2].probing() == ()
        assert limiters[2].statistics().depths == {"requests/min": 600}
    finally:
        for backend in backends:
            await backend.aclose()


async def test_a_process_never_writes_its_own_depth_into_the_quota(redis_url: str) -> None:
    """A process that joins with slow start (depth 5) does not make the shared quota,
    created 50 deep, 5 deep: holds are computed in Redis from Redis's depth."""
    namespace = f"depth-{uuid.uuid4().hex[:8]}"
    creator, joiner = (RedisBackend(redis_url, namespace=namespace) for _ in range(2))
    try:
        known = creator.limiter([Dimension("requests/s", "requests", 100, 1.0, 50)], scope="q")
        await known.acquire()
        cold = joiner.limiter(
            [Dimension("requests/s", "requests", 100, 1.0, 50, opening=5)], scope="q"
        )
        cold.hold(0.1, cost=Cost(requests=40))
        await cold.aclose()
        stored = (await quota_state(creator, "q")).dims["requests/s"]
        assert stored["depth"] == 50
        assert stored["level"] == pytest.approx(40 - 10, abs=0.5)  # min(40, 50) - 100 * 0.1
        await cold.acquire()
        assert cold.probing() == () and cold.statistics().depths == {"requests/s": 50}
    finally:
        await creator.aclose()
        await joiner.aclose()


async def test_statistics_are_this_process_and_the_quota_as_redis_reported(
    redis_url: str,
) -> None:
    namespace = f"stats-{uuid.uuid4().hex[:8]}"
    mine, theirs = (RedisBackend(redis_url, namespace=namespace) for _ in range(2))
    try:
        a = mine.limiter([TOKENS], scope="q")
        b = theirs.limiter([TOKENS], scope="q")
        await b.acquire(Cost(tokens=30))
        reservation = await a.acquire(Cost(tokens=10))
        reservation.settle(Cost(tokens=4))
        await a.aclose()
        stats = a.statistics()
        assert stats.granted == 1 and stats.settled == 1
        assert stats.estimated == {"tokens/s": 10}  # this process's, not the other's
        assert stats.refunded == {"tokens/s": 6} and stats.actual == {"tokens/s": 4}
        # The level is the quota's (the other process took 30 of it), refilled to now.
        assert 50 - 30 - 4 - 1 <= stats.levels["tokens/s"] <= 50
        assert a.mark()[0] >= 40  # the running total taken, by everyone
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_acquires_made_together_share_round_trips(redis_backend: RedisBackend) -> None:
    ample = Dimension("tokens/s", "tokens", 1_000_000, 1.0, 1_000_000)
    limiter = redis_backend.limiter([ample], scope="batched")
    await limiter.acquire(Cost(tokens=1))
    client = redis_backend.client
    before = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    reservations = await asyncio.gather(*(limiter.acquire(Cost(tokens=1)) for _ in range(500)))
    after = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    assert len(reservations) == 500
    assert after - before <= 10  # 500 acquires, each in exactly one of a few round trips
    marks = sorted(r.mark[0] for r in reservations)
    assert marks == [float(k) for k in range(2, 502)]  # served one after another, in Redis


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"namespace": 5}, TypeError, "namespace"),
        ({"namespace": ""}, ValueError, "namespace"),
        ({"on_outage": "maybe"}, ValueError, "on_outage"),
        ({"on_outage": 1}, TypeError, "on_outage"),
        ({"local_share": 0}, ValueError, "local_share"),
        ({"local_share": "half"}, TypeError, "local_share"),
        ({"retry_after": -1}, ValueError, "retry_after"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"timeout": math.inf}, ValueError, "timeout"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"history": 1.5}, TypeError, "history"),
        ({"history": 0}, ValueError, "history"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": "8"}, TypeError, "max_connections"),
    ],
)
async def test_every_argument_is_checked_at_the_door(
    options: dict[str, object], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        RedisBackend("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]


async def test_bad_urls_clients_and_limiter_arguments_fail_at_the_door(
    redis_backend: RedisBackend,
) -> None:
    with pytest.raises(TypeError, match="url"):
        RedisBackend(b"redis://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="url"):
        RedisBackend("memcached://x")
    with pytest.raises(TypeError, match="client"):
        RedisBackend(client=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not both"):
        RedisBackend("redis://x", client=redis_backend.client)
    with pytest.raises(TypeError, match="scope"):
        redis_backend.limiter([TOKENS], scope=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limits"):
        redis_backend.limiter(["tokens"], scope="q")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="tab or newline"):
        redis_backend.limiter([Dimension("a\tb", "tokens", 1, 1.0)], scope="q")
    limiter = redis_backend.limiter([TOKENS], scope="q")
    with pytest.raises(ValueError, match="timeout"):
        limiter.acquire(timeout=-1)
    with pytest.raises(TypeError, match="cost"):
        limiter.acquire(5)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        limiter.resize("tokens/day", 10)
    with pytest.raises(ValueError, match="limit"):
        limiter.set_pace("tokens/s", 0)


async def test_a_snapshot_known_by_its_time_is_placed_by_the_grant_history(
    redis_backend: RedisBackend,
) -> None:
    slow = Dimension("tokens/h", "tokens", 3_600, 3600.0, 1_000)  # one token a second
    limiter = redis_backend.limiter([slow], scope="history")
    before_all = limiter.clock() - 1.0
    await limiter.acquire(Cost(tokens=10))
    await asyncio.sleep(0.05)
    between = limiter.clock()
    await asyncio.sleep(0.05)
    await limiter.acquire(Cost(tokens=20))
    # The server had 900 left when it answered at `between`: the 20 granted later were
    # not in it.
    limiter.observe("tokens", remaining=900, window=3600.0, since=between)
    await limiter.aclose()
    level = (await quota_state(redis_backend, "history")).dims["tokens/h"]["level"]
    assert level == pytest.approx(900 - 20, abs=1.0)
    # A snapshot older than every grant remembered (none forgotten) counts them all.
    limiter.observe("tokens", remaining=900, window=3600.0, since=before_all)
    await limiter.aclose()
    level = (await quota_state(redis_backend, "history")).dims["tokens/h"]["level"]
    assert level == pytest.approx(900 - 30, abs=1.0)


async def test_grants_made_at_one_moment_keep_their_order_in_the_history(
    redis_backend: RedisBackend,
) -> None:
    """Fifty grants of one burst share their time; a snapshot taken after them all must
    count all fifty as before it (ordered by their totals, not their text)."""
    slow = Dimension("tokens/h", "tokens", 3_600, 3600.0, 1_000)
    limiter = redis_backend.limiter([slow], scope="burst")
    await asyncio.gather(*(limiter.acquire(Cost(tokens=1)) for _ in range(50)))
    await asyncio.sleep(0.05)
    after = limiter.clock()
    limiter.observe("tokens", remaining=900, window=3600.0, since=after)
    await limiter.aclose()
    level = (await quota_state(redis_backend, "burst")).dims["tokens/h"]["level"]
    assert level == pytest.approx(900, abs=1.0)  # none of the fifty came after it


async def _latest_score(backend: RedisBackend, key: str) -> float:
    pairs = await backend.client.zrange(key, 0, -1, withscores=True)
    return max(float(pair[1]) for pair in cast(list[tuple[str, float]], pairs))


async def test_an_early_answer_moves_the_grants_that_counted_on_the_pause(
    redis_backend: RedisBackend,
) -> None:
    """Grants made during slow start's pause were placed after its planned end; when an
    answer ends it sooner, their times in the history move with them, so a snapshot
    taken once they were sent does not count them as still to come."""
    slow = Dimension("requests/s", "requests", 100, 1.0, 50, opening=5)
    limiter = redis_backend.limiter([slow], scope="pause-history")
    for _ in range(5):
        await limiter.acquire()
    sleepers = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0.05)
    _, grants = redis_backend.keys("pause-history")
    planned = await _latest_score(redis_backend, grants)
    limiter.answered()
    await asyncio.gather(*sleepers)  # woken about 30 ms after the answer, not a second
    await limiter.aclose()
    moved = await _latest_score(redis_backend, grants)
    assert moved < planned - 0.5
    limiter.observe("requests", remaining=0, window=1.0, since=limiter.clock())
    await limiter.aclose()
    # All 8 had been sent: the level is the server's 0, not 0 minus 3 still "to come".
    level = (await quota_state(redis_backend, "pause-history")).dims["requests/s"]["level"]
    assert level >= -0.5


async def test_calls_in_flight_are_capped_across_processes(
    redis_backend: RedisBackend,
) -> None:
    """Two processes on one quota with ``concurrency=1``: one call in flight between
    them (each place is a lease in Redis), and the rate stays one quota too."""
    dims = [
        Dimension("requests/s", "requests", 2, 1.0, 3),
        Dimension("concurrency", "concurrency", 1, math.inf),
    ]
    first = redis_backend.limiter(dims, scope="across")
    second = redis_backend.limiter(dims, scope="across")
    one = await first.acquire(timeout=0.5)
    with pytest.raises(AcquireTimeoutError):
        await second.acquire(timeout=0.2)  # the other process holds the one place
    assert second.in_flight() == (0, 1)  # and the refused call keeps no place here
    one.finish()
    two = await second.acquire(timeout=2.0)  # the lease came back
    with pytest.raises(AcquireTimeoutError):
        await first.acquire(timeout=0.2)
    two.finish()
    await first.acquire(timeout=2.0)  # the third request of the shared 3
    await first.aclose()
    await second.aclose()


async def test_a_timed_out_acquire_leaves_no_lease_behind(redis_backend: RedisBackend) -> None:
    dims = [
        Dimension("requests/s", "requests", 1, 1.0, 1),
        Dimension("concurrency", "concurrency", 2, math.inf),
    ]
    first = redis_backend.limiter(dims, scope="no-lease-leak")
    second = redis_backend.limiter(dims, scope="no-lease-leak")
    held = await first.acquire(timeout=0.5)  # spends the only request of this second
    with pytest.raises(AcquireTimeoutError):
        await second.acquire(timeout=0.1)  # a lease, then no rate: the lease comes back
    held.finish()
    await second.aclose()
    await first.aclose()
    state = redis_backend.client
    key = redis_backend.keys("no-lease-leak")[0].removesuffix(":state") + ":flight"
    assert await state.zcard(key) == 0


async def test_calls_in_flight_alone_are_no_shared_quota(redis_backend: RedisBackend) -> None:
    with pytest.raises(ValueError, match="needs a rate"):
        redis_backend.limiter(Limits(concurrency=4), scope="only-in-flight")


_ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import asyncio, math, sys
from ratelimit_llm.backends import RedisBackend
from ratelimit_llm.core import Dimension

async def main() -> None:
    backend = RedisBackend(sys.argv[1], namespace=sys.argv[2], lease_ttl=float(sys.argv[3]))
    limiter = backend.limiter(
        [Dimension("requests/s", "requests", 100, 1.0, 100),
         Dimension("concurrency", "concurrency", 2, math.inf)],
        scope="killed",
    )
    for _ in range(2):
        await limiter.acquire(timeout=5)
    print("holding", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_a_killed_process_gives_its_places_in_flight_back_within_the_lease_ttl(
    redis_url: str, redis_backend: RedisBackend
) -> None:
    ttl = 1.0
    root = _ROOT
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        redis_url,
        redis_backend.namespace,
        str(ttl),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=root,
    )
    dims = [
        Dimension("requests/s", "requests", 100, 1.0, 100),
        Dimension("concurrency", "concurrency", 2, math.inf),
    ]
    limiter = redis_backend.limiter(dims, scope="killed")
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            assert (await child.stdout.readline()).strip() == b"holding"
        with pytest.raises(AcquireTimeoutError):
            await limiter.acquire(timeout=0.1)  # both places are the child's
        child.kill()
        await child.wait()
        killed = time.monotonic()
        reservation = await limiter.acquire(timeout=ttl + 5.0)
        assert time.monotonic() - killed <= ttl + 5.0
        reservation.finish()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await limiter.aclose()


async def test_calls_in_flight_never_pass_the_cap_across_processes_with_cancellations(
    redis_backend: RedisBackend,
) -> None:
    """Three limiters (as three processes) on one scope with ``concurrency=3``: 300
    calls, a third of them cancelled at random moments (seeded); never more than three
    in flight between them, and nothing left taken at the end."""
    import random

    rng = random.Random(14)
    dims = [
        Dimension("requests/s", "requests", 10_000, 1.0, 10_000),
        Dimension("concurrency", "concurrency", 3, math.inf),
    ]
    limiters = [redis_backend.limiter(dims, scope="cap-cancel") for _ in range(3)]
    in_flight = peak = done = 0

    async def call(limiter: RedisRateLimiter) -> None:
        nonlocal in_flight, peak, done
        reservation = await limiter.acquire(timeout=30)
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(rng.uniform(0, 0.01))
        finally:
            in_flight -= 1
            reservation.finish()
        done += 1

    async with asyncio.timeout(60):
        tasks = [asyncio.create_task(call(limiters[i % 3])) for i in range(300)]
        for task in rng.sample(tasks, 100):
            await asyncio.sleep(rng.uniform(0, 0.005))
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert peak <= 3
    assert done >= 150  # most of those not cancelled (or cancelled after the end) ran
    for limiter in limiters:
        assert limiter.in_flight() == (0, 3)
    # Leases go back in the background: every one is gone before anything is closed.
    key = redis_backend.keys("cap-cancel")[0].removesuffix(":state") + ":flight"
    async with asyncio.timeout(5):
        while await redis_backend.client.zcard(key):  # noqa: ASYNC110 - no event in Redis
            await asyncio.sleep(0.01)
    for limiter in limiters:
        await limiter.aclose()
