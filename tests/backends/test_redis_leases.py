"""Calls in flight across processes: leases in a real Redis never exceed their cap.

Several `RedisLeases` on one key stand for several processes (each with its own
connection pool); one test kills a real child process holding leases. The waits on the
wall clock are the TTL expiries themselves (ttl 0.3 s), each bounded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from ratelimit_llm import AcquireTimeoutError
from ratelimit_llm._exceptions import (
    BackendError,
    BackendUnavailableError,
    CapacityExceededError,
)
from ratelimit_llm.backends._redis_leases import MAX_POLL, RedisLeases

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def key() -> str:
    return f"rlm:{{test-leases-{uuid.uuid4().hex[:12]}}}:flight"


@pytest_asyncio.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


async def _eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until ``check()`` holds, polling every 10 ms, at most ``within``."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, f"not within {within} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


class _Gated:
    """A client whose ``marker`` script waits for ``gate``, ``before`` or after Redis ran it.

    Stands for a reply that is slow to come back (the script ran, the caller has not
    heard), or a call slow to leave (it runs after what the test does meanwhile).
    """

    def __init__(self, client: Redis, marker: str, *, before: bool) -> None:
        self._client = client
        self._marker = marker
        self._before = before
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    def register_script(self, source: str) -> Callable[..., Awaitable[Any]]:
        script = self._client.register_script(source)
        if self._marker not in source:
            return script

        async def call(keys: Sequence[str], args: Sequence[str]) -> Any:
            if self._before:
                self.reached.set()
                await self.gate.wait()
                return await script(keys=keys, args=args)
            reply = await script(keys=keys, args=args)
            self.reached.set()
            await self.gate.wait()
            return reply

        return call


# -- the cap holds


async def test_never_more_than_cap_in_flight_across_processes(
    redis_url: str, client: Redis, key: str
) -> None:
    cap, processes, tasks, rounds = 8, 4, 200, 3
    rng = random.Random(7)
    clients = [Redis.from_url(redis_url) for _ in range(processes)]
    leases = [RedisLeases(c, key, poll=0.01) for c in clients]
    in_flight = peak = granted = 0
    zcards: list[int] = []
    done = asyncio.Event()

    async def call(owner: RedisLeases, hold: float) -> None:
        nonlocal in_flight, peak, granted
        lease = await owner.acquire(cap, timeout=60)
        in_flight += 1
        granted += 1
        peak = max(peak, in_flight)
        assert in_flight <= cap
        try:
            await asyncio.sleep(hold)
        finally:
            in_flight -= 1
            await owner.release(lease)

    async def worker(i: int) -> None:
        for _ in range(rounds):
            await call(leases[i % processes], rng.uniform(0.0, 0.004))

    async def watch() -> None:
        while not done.is_set():
            zcards.append(int(await client.zcard(key)))

    try:
        async with asyncio.timeout(90):
            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(worker(i) for i in range(tasks)))
            done.set()
            await watcher
    finally:
        for owner in leases:
            await owner.aclose()
        for c in clients:
            await c.aclose()
    assert granted == tasks * rounds
    assert peak == cap  # the load filled every place, and never one more
    assert zcards and max(zcards) <= cap
    assert max(zcards) == cap
    assert await RedisLeases(client, key).count() == 0


async def test_weight_takes_that_many_places(client: Redis, key: str) -> None:
    async with RedisLeases(client, key) as leases:
        heavy = await leases.acquire(3, weight=2)
        assert await leases.count() == 2
        with pytest.raises(AcquireTimeoutError):
            await leases.acquire(3, weight=2, timeout=0)
        light = await leases.acquire(3, timeout=0)
        assert await leases.count() == 3
        await leases.release(heavy)
        await leases.release(heavy)  # idempotent
        await leases.release("never-granted")
        assert await leases.count() == 1
        assert leases.held == 1
        await leases.release(light)
        assert await leases.count() == 0


async def test_heavy_lease_beyond_a_lua_unpack(client: Redis, key: str) -> None:
    async with RedisLeases(client, key) as leases:
        lease = await leases.acquire(10_000, weight=9_000)
        assert await leases.count() == 9_000
        await leases.renew()
        assert await leases.count() == 9_000
        await leases.release(lease)
        assert await leases.count() == 0


async def test_a_released_place_wakes_a_waiter_here_at_once(client: Redis, key: str) -> None:
    # With a 5 s poll, only the wake-up can make the waiter's turn come in time.
    async with RedisLeases(client, key, poll=5.0) as leases:
        first = await leases.acquire(1)
        waiter = asyncio.create_task(leases.acquire(1, timeout=10))
        await asyncio.sleep(0.05)  # let it find the place taken and start its pause
        assert not waiter.done()
        start = time.monotonic()
        await leases.release(first)
        async with asyncio.timeout(2):
            second = await waiter
        assert time.monotonic() - start < 1.0
        assert await leases.count() == 1
        await leases.release(second)


async def test_a_waiter_follows_a_cap_that_changes_while_it_waits(client: Redis, key: str) -> None:
    # "auto" may learn a lower cap, or a higher one, while a call waits for its place.
    cap = 2
    async with RedisLeases(client, key, poll=0.01) as leases:
        first, second = await leases.acquire(2), await leases.acquire(2)
        waiter = asyncio.create_task(leases.acquire(lambda: cap, timeout=10))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        # Lowered to one: a place given back leaves one in flight, which is the cap.
        cap = 1
        await leases.release(first)
        await asyncio.sleep(0.1)
        assert not waiter.done()
        assert await leases.count() == 1
        # Raised to three: it gets in beside the one still held, at its next poll.
        cap = 3
        async with asyncio.timeout(2):
            third = await waiter
        assert await leases.count() == 2
        await leases.release(second)
        await leases.release(third)


async def test_hold_gives_the_place_back_on_error(client: Redis, key: str) -> None:
    async with RedisLeases(client, key) as leases:
        with pytest.raises(RuntimeError, match="boom"):
            async with leases.hold(2) as lease:
                assert isinstance(lease, str)
                assert await leases.count() == 1
                raise RuntimeError("boom")
        assert await leases.count() == 0


async def test_release_soon_gives_the_place_back_in_the_background(client: Redis, key: str) -> None:
    leases = RedisLeases(client, key, ttl=1.0)
    lease = await leases.acquire(1)
    leases.release_soon(lease)
    leases.release_soon(lease)  # again: nothing
    assert leases.held == 0
    await _eventually(lambda: _count_is(leases, 0), within=3.0)
    # Outside an event loop it cannot be sent: it is no longer renewed, so it expires.
    lease = await leases.acquire(1)
    await asyncio.to_thread(leases.release_soon, lease)
    assert leases.held == 0
    assert await leases.count() == 1
    await _eventually(lambda: _count_is(leases, 0), within=3.0)
    await leases.aclose()


async def _count_is(leases: RedisLeases, expected: int) -> bool:
    return await leases.count() == expected


async def test_aclose_gives_back_what_is_held(client: Redis, key: str) -> None:
    leases = RedisLeases(client, key)
    await leases.acquire(4)
    await leases.acquire(4, weight=2)
    assert await leases.count() == 3
    await leases.aclose()
    assert leases.held == 0
    assert await leases.count() == 0
    assert await client.exists(key) == 0 or await leases.count() == 0


# -- cancellations


async def test_thousands_of_random_cancellations_leak_nothing(
    redis_url: str, client: Redis, key: str
) -> None:
    cap, wanted, wave = 5, 2_000, 40
    rng = random.Random(2026)
    clients = [Redis.from_url(redis_url) for _ in range(2)]
    leases = [RedisLeases(c, key, poll=0.005) for c in clients]
    fates = {"waiting": 0, "holding": 0, "finished": 0}
    holding: set[asyncio.Task[None]] = set()

    async def call(owner: RedisLeases) -> None:
        lease = await owner.acquire(cap)
        task = asyncio.current_task()
        assert task is not None
        holding.add(task)
        try:
            await asyncio.sleep(rng.uniform(0.0, 0.01))
        finally:
            await owner.release(lease)

    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(90):
            waves = 0
            while fates["waiting"] + fates["holding"] < wanted:
                waves += 1
                assert waves <= 200
                tasks = [asyncio.create_task(call(leases[i % 2])) for i in range(wave)]
                for task in tasks:
                    # From at once to a few dozen round trips: queued for Redis, with
                    # the script on the wire, just granted, holding, or never.
                    loop.call_later(rng.choice((0.0, rng.uniform(0.0, 0.04))), task.cancel)
                results = await asyncio.gather(*tasks, return_exceptions=True)
                for task, result in zip(tasks, results, strict=True):
                    if not isinstance(result, asyncio.CancelledError):
                        assert result is None, result
                        fates["finished"] += 1
                    elif task in holding:
                        fates["holding"] += 1
                    else:
                        fates["waiting"] += 1
                holding.clear()
        assert all(owner.held == 0 for owner in leases)
        # Wait for the places given back by callers that had left (shielded releases).
        for owner in leases:
            await owner.aclose()
        assert await leases[0].count() == 0
        assert await client.zcard(key) == 0
        # Every place is free at once: one try, the whole cap.
        fresh = RedisLeases(client, key)
        lease = await fresh.acquire(cap, weight=cap, timeout=0)
        await fresh.release(lease)
        await fresh.aclose()
    finally:
        for c in clients:
            await c.aclose()
    assert fates["waiting"] > 200 and fates["holding"] > 50, fates


async def test_cancelled_after_redis_granted_the_place_gives_it_back(
    client: Redis, key: str
) -> None:
    slow = _Gated(client, "Take a place in flight", before=False)
    leases = RedisLeases(cast(Redis, slow), key)
    observer = RedisLeases(client, key)
    caller = asyncio.create_task(leases.acquire(2))
    async with asyncio.timeout(10):
        await slow.reached.wait()
    assert await observer.count() == 1  # Redis granted it; the caller has not heard yet
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert leases.held == 0
    slow.gate.set()  # the reply comes in: the abandoned place goes back
    async with asyncio.timeout(10):
        await leases.aclose()
    assert await observer.count() == 0


async def test_cancelled_release_still_gives_the_place_back(client: Redis, key: str) -> None:
    slow = _Gated(client, "Give places back", before=True)
    leases = RedisLeases(cast(Redis, slow), key)
    observer = RedisLeases(client, key)
    lease = await leases.acquire(1)
    releaser = asyncio.create_task(leases.release(lease))
    async with asyncio.timeout(10):
        await slow.reached.wait()
    releaser.cancel()
    with pytest.raises(asyncio.CancelledError):
        await releaser
    assert await observer.count() == 1
    slow.gate.set()
    async with asyncio.timeout(10):
        await leases.aclose()
    assert await observer.count() == 0


async def test_release_during_a_renewal_leaves_nothing_taken(client: Redis, key: str) -> None:
    # The renewal leaves after the release ran: it finds the lease gone and, there
    # being room, takes it again; the object gives that place back.
    slow = _Gated(client, "Push back the expiry", before=True)
    leases = RedisLeases(cast(Redis, slow), key, auto_renew=False)
    observer = RedisLeases(client, key)
    lease = await leases.acquire(2)
    renewal = asyncio.create_task(leases.renew())
    async with asyncio.timeout(10):
        await slow.reached.wait()
    await leases.release(lease)
    assert await observer.count() == 0
    slow.gate.set()
    async with asyncio.timeout(10):
        await renewal
    assert await observer.count() == 0
    assert leases.lost == frozenset()


# -- a killed process

CHILD = """
import asyncio, sys
from redis.asyncio import Redis
from ratelimit_llm.backends._redis_leases import RedisLeases

async def main() -> None:
    url, key, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
    leases = RedisLeases(Redis.from_url(url), key, ttl=0.3)
    for _ in range(cap):
        await leases.acquire(cap)
    print("ready", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_a_killed_process_leases_return_within_ttl(
    redis_url: str, client: Redis, key: str
) -> None:
    cap, ttl, margin = 4, 0.3, 1.0
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        redis_url,
        key,
        str(cap),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    leases = RedisLeases(client, key)
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            line = await child.stdout.readline()
        assert line.strip() == b"ready"
        # Alive, the child renews: its places outlive their TTL.
        await asyncio.sleep(2 * ttl)
        assert await leases.count() == cap
        child.kill()
        killed = time.monotonic()
        await child.wait()
        assert child.returncode == -9
        assert await leases.count() == cap  # not before they expire
        members = cast(list[tuple[bytes, float]], await client.zrange(key, 0, -1, withscores=True))
        expiries = [expiry for _member, expiry in members]
        assert len(expiries) == cap
        lease = await leases.acquire(cap, weight=cap, timeout=ttl + margin)
        regained = time.monotonic() - killed
        assert regained <= ttl + margin
        score = await client.zscore(key, lease)
        assert score is not None
        granted_at = float(score) - leases.ttl  # on Redis's clock, as the expiries
        assert granted_at >= max(expiries) - 1e-6
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await leases.aclose()


# -- waiting, timeouts, refusals


async def test_timeout_raises_in_time_and_leaves_nothing_taken(client: Redis, key: str) -> None:
    async with RedisLeases(client, key) as other, RedisLeases(client, key) as leases:
        await other.acquire(1)
        start = time.monotonic()
        with pytest.raises(AcquireTimeoutError, match=r"^no capacity was granted within 0.25 s$"):
            await leases.acquire(1, timeout=0.25)
        waited = time.monotonic() - start
        assert 0.25 <= waited <= 1.5 * 0.25
        start = time.monotonic()
        with pytest.raises(AcquireTimeoutError, match="within 0 s"):
            await leases.acquire(1, timeout=0)
        assert time.monotonic() - start < 0.25
        assert await leases.count() == 1
        assert leases.held == 0


async def test_backoff_doubles_to_its_cap_with_jitter(client: Redis, key: str) -> None:
    now = 0.0
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        pauses.append(seconds)
        now += seconds

    async with RedisLeases(client, key) as other:
        await other.acquire(1)
        leases = RedisLeases(client, key, poll=0.05, sleep=sleep, clock=lambda: now)
        with pytest.raises(AcquireTimeoutError):
            await leases.acquire(1, timeout=3.0)
    assert now == pytest.approx(3.0)
    bounds = [min(0.05 * 2**i, MAX_POLL) for i in range(len(pauses))]
    for pause, bound in zip(pauses[:-1], bounds, strict=False):
        assert bound / 2 <= pause <= bound
    assert 0 < pauses[-1] <= bounds[-1]
    assert len(set(pauses)) > len(pauses) // 2  # jittered, not lockstep
    assert 8 <= len(pauses) <= 13


async def test_waiter_wakes_at_the_earliest_expiry(client: Redis, key: str) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(seconds)

    async with RedisLeases(client, key, ttl=0.3, auto_renew=False) as other:
        await other.acquire(1)
        leases = RedisLeases(client, key, poll=2.0, sleep=sleep)
        lease = await leases.acquire(1, timeout=5)
        assert pauses and max(pauses) <= 0.31  # the hint, not the 2 s poll
        await leases.release(lease)
        await leases.aclose()


async def test_weight_above_cap_is_refused_at_once(client: Redis, key: str) -> None:
    async with RedisLeases(client, key) as leases:
        with pytest.raises(CapacityExceededError) as caught:
            await leases.acquire(2, weight=3)
        assert (caught.value.dimension, caught.value.requested, caught.value.capacity) == (
            "concurrency",
            3,
            2,
        )
        assert await leases.count() == 0


async def test_a_key_of_another_type_is_a_backend_error(client: Redis, key: str) -> None:
    await client.set(key, "not a sorted set")
    async with RedisLeases(client, key) as leases:
        with pytest.raises(BackendError, match="WRONGTYPE"):
            await leases.acquire(1)


async def test_an_unreachable_redis_is_unavailable_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis = Redis.from_url(f"redis://:hunter2@127.0.0.1:{port}/0", socket_connect_timeout=1)
    try:
        leases = RedisLeases(redis, "rlm:{nowhere}:flight")
        with pytest.raises(BackendUnavailableError) as caught:
            await leases.acquire(1, timeout=1)
        assert "hunter2" not in str(caught.value)
        assert caught.value.__cause__ is None
        assert "hunter2" not in repr(leases)
    finally:
        await redis.aclose()


# -- renewal


async def test_renewer_keeps_a_lease_alive_and_without_it_it_expires(
    client: Redis, key: str
) -> None:
    ttl = 0.3
    async with RedisLeases(client, key, ttl=ttl) as renewed:
        lease = await renewed.acquire(2)
        await asyncio.sleep(3 * ttl)
        assert await renewed.count() == 1
        assert await client.zscore(key, lease) is not None
        await renewed.release(lease)
    async with RedisLeases(client, key, ttl=ttl, auto_renew=False) as left:
        start = time.monotonic()
        await left.acquire(2)
        assert await left.count() == 1

        async def gone() -> bool:
            return await left.count() == 0

        await _eventually(gone, within=ttl + 1.0)
        assert time.monotonic() - start >= ttl - 0.02


async def test_an_expired_lease_is_reported_once_and_taken_again_when_there_is_room(
    client: Redis, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    ttl = 0.3
    async with (
        RedisLeases(client, key, ttl=ttl, auto_renew=False) as stalled,
        RedisLeases(client, key) as other,
    ):
        lease = await stalled.acquire(2)

        async def expired() -> bool:
            return await other.count() == 0

        await _eventually(expired, within=ttl + 1.0)
        taken = [await other.acquire(2), await other.acquire(2)]
        with caplog.at_level(logging.WARNING, logger="ratelimit_llm.redis"):
            await stalled.renew()
            assert stalled.lost == {lease}
            assert await other.count() == 2  # no room: the cap holds
            await stalled.renew()
            assert len(caplog.records) == 1
            assert "expired while held" in caplog.records[0].getMessage()
            await other.release(taken[0])
            await stalled.renew()
            assert stalled.lost == frozenset()
            assert await other.count() == 2
            assert await client.zscore(key, lease) is not None
            assert len(caplog.records) == 1


async def test_renewer_stops_when_nothing_is_held(client: Redis, key: str) -> None:
    def renewers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("RedisLeases renewer")]

    leases = RedisLeases(client, key, ttl=0.3)
    lease = await leases.acquire(1)
    assert len(renewers()) == 1
    await leases.release(lease)

    async def stopped() -> bool:
        return not renewers()

    await _eventually(stopped, within=1.0)
    await leases.acquire(1)
    assert len(renewers()) == 1
    await leases.aclose()
    assert not renewers()


# -- at the door


class _NotRedis:
    pass


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"client": _NotRedis()}, TypeError, "client"),
        ({"key": 5}, TypeError, "key"),
        ({"key": ""}, ValueError, "key"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": -1.0}, ValueError, "ttl"),
        ({"ttl": float("inf")}, ValueError, "ttl"),
        ({"ttl": float("nan")}, ValueError, "ttl"),
        ({"ttl": "30"}, TypeError, "ttl"),
        ({"ttl": True}, TypeError, "ttl"),
        ({"poll": 0.0}, ValueError, "poll"),
        ({"poll": None}, TypeError, "poll"),
        ({"sleep": 1.0}, TypeError, "sleep"),
        ({"clock": "now"}, TypeError, "clock"),
        ({"auto_renew": 1}, TypeError, "auto_renew"),
    ],
)
async def test_bad_settings_are_refused_naming_the_parameter(
    client: Redis, options: dict[str, Any], error: type[Exception], name: str
) -> None:
    arguments: dict[str, Any] = {"client": client, "key": "k", **options}
    with pytest.raises(error, match=rf"^{name} "):
        RedisLeases(arguments.pop("client"), arguments.pop("key"), **arguments)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        ({"cap": 0}, ValueError, "cap"),
        ({"cap": 2.0}, TypeError, "cap"),
        ({"cap": True}, TypeError, "cap"),
        ({"cap": lambda: 0}, ValueError, "cap"),
        ({"cap": lambda: "2"}, TypeError, "cap"),
        ({"weight": 0}, ValueError, "weight"),
        ({"weight": 1.5}, TypeError, "weight"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": "1"}, TypeError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
    ],
)
async def test_bad_acquires_are_refused_naming_the_parameter(
    client: Redis, key: str, call: dict[str, Any], error: type[Exception], name: str
) -> None:
    arguments: dict[str, Any] = {"cap": 2, **call}
    async with RedisLeases(client, key) as leases:
        with pytest.raises(error, match=rf"^{name} "):
            await leases.acquire(arguments.pop("cap"), **arguments)
        with pytest.raises(TypeError, match=r"^lease "):
            await leases.release(cast(str, 42))
        assert await leases.count() == 0
