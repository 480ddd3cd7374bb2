"""One hot Redis quota under 1,000 concurrent workers: acquires per second and latency.

The figure token-throttle publishes for its Redis mode (one hot bucket, 1,000 workers:
~180 acquires/s, p99 ~4.8 s), measured here for ratelimit-llm's `RedisBackend`, for its
in-process `MemoryBackend` as a reference, and for token-throttle's Redis mode when
``benchmarks/.venv-token-throttle`` exists (``benchmarks/setup_token_throttle.sh``).

Every contender gets one quota far above the load (nobody waits for refill), and
``--workers`` asyncio tasks that each loop: acquire ``Cost(requests=1, tokens=1000)``
(timed), then settle it to 700 tokens (untimed; ours sends the settle in the
background, token-throttle awaits its refund). Two loads:

* **paced**: the workers together offer ``--rate`` acquires per second (each worker
  every ``workers / rate`` seconds, phases spread evenly); p50/p99 are the latency at
  that load, which is what a caller feels while the quota's store keeps up;
* **flat out**: each worker acquires again as soon as it can (one event-loop turn in
  between): the most the store sustains. Latency here is mostly queueing: with N
  workers in a closed loop, mean latency = N / throughput.

Each loop is bounded by count and by ``--seconds``; tasks still running ``grace``
seconds later are cancelled and counted as unfinished. Ours include, in their time,
the flush of the settles still in flight at the end (`RedisRateLimiter.aclose`). The
round trip is one acquire alone, from one worker, repeated (mean microseconds).

Run ``python benchmarks/redis_hot_bucket.py`` (``--quick`` for a short run); it starts
its own ``redis-server`` on a free loopback port (`LocalRedisServer`), prints a table
and writes ``benchmarks/results/redis_hot_bucket.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ratelimit_llm import Cost, Limits
from ratelimit_llm.backends import MemoryBackend, RedisBackend
from ratelimit_llm.core import Limiter
from ratelimit_llm.testing import LocalRedisServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # run as a script: make ``rivals`` importable

from rivals._token_throttle import venv_python  # noqa: E402

HOT_WORKER = HERE / "rivals" / "token_throttle_hot_worker.py"

#: What ours should reach with 1,000 workers on a 2-core machine.
TARGET_PER_SECOND = 2_000.0
TARGET_P99_MS = 50.0

COST = Cost(requests=1, tokens=1_000)
ACTUAL = Cost(requests=1, tokens=700)
#: Far above any load this machine can offer: nobody waits for refill.
AMPLE = Limits(rpm=600_000_000, tpm=600_000_000_000)
#: Each worker's count bound when unpaced (the wall-clock bound ends runs long before).
UNPACED_CAP = 100_000
ROUND_TRIP_CALLS = 500
ROUND_TRIP_SECONDS = 3.0


@dataclass
class LoadResult:
    """One contender under one load."""

    contender: str
    load: str
    #: Acquires per second offered by all workers together (0: flat out).
    rate: float
    workers: int
    acquires: int = 0
    seconds: float = 0.0
    acquires_per_second: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    errors: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    #: One acquire alone, one worker (mean microseconds).
    round_trip_us: float = math.nan
    skipped: str | None = None


@dataclass
class Load:
    name: str
    rate: float


def loads_for(rate: float) -> list[Load]:
    """The two loads: paced at ``rate`` in total, then flat out."""
    return [Load(f"paced {rate:,.0f}/s", rate), Load("flat out", 0.0)]


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def summarize(
    contender: str,
    load: Load,
    workers: int,
    latencies_ms: list[float],
    seconds: float,
    errors: dict[str, int],
    unfinished: int,
    round_trip_us: float,
) -> LoadResult:
    ordered = sorted(latencies_ms)
    return LoadResult(
        contender=contender,
        load=load.name,
        rate=load.rate,
        workers=workers,
        acquires=len(ordered),
        seconds=seconds,
        acquires_per_second=len(ordered) / seconds if seconds > 0 else 0.0,
        p50_ms=statistics.median(ordered) if ordered else math.nan,
        p99_ms=_percentile(ordered, 0.99),
        max_ms=ordered[-1] if ordered else math.nan,
        errors=dict(errors),
        unfinished=unfinished,
        round_trip_us=round_trip_us,
    )


async def drive(
    limiter: Limiter, workers: int, seconds: float, rate: float, grace: float
) -> tuple[list[float], float, dict[str, int], int]:
    """Run the workers' loops; returns latencies (ms), seconds, errors, unfinished tasks.

    The same loop as ``rivals/token_throttle_hot_worker.py``.
    """
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    interval = workers / rate if rate > 0 else 0.0
    cap = math.ceil(seconds / interval) + 1 if interval else UNPACED_CAP
    start = loop.time()
    deadline = start + seconds

    async def worker(number: int) -> None:
        due = start + interval * number / workers
        for _ in range(cap):
            if interval:
                if due >= deadline:
                    break
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                due += interval
            else:
                await asyncio.sleep(0)  # let the other workers run, as a real call would
            if loop.time() >= deadline:
                break
            began = time.perf_counter()
            try:
                reservation = await limiter.acquire(COST)
            except Exception as error:
                errors[type(error).__name__] += 1
                continue
            latencies.append((time.perf_counter() - began) * 1e3)
            reservation.settle(ACTUAL)

    tasks = [asyncio.ensure_future(worker(n)) for n in range(workers)]
    unfinished = 0
    try:
        async with asyncio.timeout(seconds + grace):
            await asyncio.gather(*tasks)
            # The settles still in flight are part of the work.
            await limiter.aclose()
    except TimeoutError:
        pass
    finally:
        unfinished = sum(1 for task in tasks if not task.done())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = loop.time() - start
    await limiter.aclose()
    return latencies, elapsed, dict(errors), unfinished


async def round_trip_us(limiter: Limiter, calls: int, seconds: float) -> float:
    """Mean microseconds of one acquire alone (its settle applied, untimed, before the next)."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    for _ in range(calls):
        if time.monotonic() >= deadline:
            break
        began = time.perf_counter()
        reservation = await limiter.acquire(COST)
        samples.append(time.perf_counter() - began)
        reservation.settle(ACTUAL)
        await limiter.aclose()
    return statistics.fmean(samples) * 1e6 if samples else math.nan


async def ping_us(backend: RedisBackend, calls: int, seconds: float) -> float:
    """Mean microseconds of a bare ``PING`` on the same client: the floor of a round trip."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    for _ in range(calls):
        if time.monotonic() >= deadline:
            break
        began = time.perf_counter()
        await backend.client.ping()
        samples.append(time.perf_counter() - began)
    return statistics.fmean(samples) * 1e6 if samples else math.nan


async def measure_ours(
    name: str,
    backend: RedisBackend | MemoryBackend,
    workers: int,
    seconds: float,
    loads: Sequence[Load],
    grace: float,
    round_trip_calls: int = ROUND_TRIP_CALLS,
) -> list[LoadResult]:
    tag = uuid.uuid4().hex[:8]
    rt = await round_trip_us(
        backend.limiter(AMPLE, scope=f"hot-{tag}-rt"), round_trip_calls, ROUND_TRIP_SECONDS
    )
    results = []
    for number, load in enumerate(loads):
        # A quota of its own per load, so that each starts full.
        limiter = backend.limiter(AMPLE, scope=f"hot-{tag}-{number}")
        await limiter.acquire(Cost(requests=1, tokens=1))  # scripts loaded, pool warm
        latencies, elapsed, errors, unfinished = await drive(
            limiter, workers, seconds, load.rate, grace
        )
        results.append(summarize(name, load, workers, latencies, elapsed, errors, unfinished, rt))
    return results


def measure_token_throttle(
    redis_url: str,
    workers: int,
    seconds: float,
    loads: Sequence[Load],
    grace: float,
    round_trip_calls: int = ROUND_TRIP_CALLS,
) -> list[LoadResult]:
    """token-throttle's Redis mode, in its own interpreter; skipped rows if it is not set up."""
    name = "token-throttle (redis)"
    python = venv_python()
    if python is None:
        reason = "no benchmarks/.venv-token-throttle (run benchmarks/setup_token_throttle.sh)"
        return [LoadResult(name, load.name, load.rate, workers, skipped=reason) for load in loads]
    job = {
        "redis_url": redis_url,
        "key_prefix": f"hot-{uuid.uuid4().hex[:8]}",
        "workers": workers,
        "seconds": seconds,
        "grace": grace,
        "loads": [{"name": load.name, "rate": load.rate} for load in loads],
        "round_trip_calls": round_trip_calls,
        "round_trip_seconds": ROUND_TRIP_SECONDS,
    }
    # Bounded: every load ends by seconds + grace; imports and clean-up get a minute.
    timeout = len(loads) * (seconds + grace) + ROUND_TRIP_SECONDS + 60.0
    done = subprocess.run(
        [str(python), str(HOT_WORKER)],
        input=json.dumps(job) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"token-throttle hot worker failed ({done.returncode}): {tail}")
    output = json.loads(done.stdout.strip().splitlines()[-1])
    by_name = {row["name"]: row for row in output["loads"]}
    results = []
    for load in loads:
        row = by_name[load.name]
        results.append(
            summarize(
                name,
                load,
                workers,
                [float(value) for value in row["latencies_ms"]],
                float(row["seconds"]),
                {str(k): int(v) for k, v in row["errors"].items()},
                int(row["unfinished"]),
                float(output["round_trip_us"]),
            )
        )
    return results


async def hot_bucket(
    *,
    workers: int = 1_000,
    seconds: float = 10.0,
    rate: float = TARGET_PER_SECOND,
    grace: float = 10.0,
    redis_url: str | None = None,
    token_throttle: bool = True,
    round_trip_calls: int = ROUND_TRIP_CALLS,
) -> dict[str, Any]:
    """Every measurement; starts a `LocalRedisServer` unless ``redis_url`` is given."""
    if redis_url is None:
        with LocalRedisServer() as server:
            return await hot_bucket(
                workers=workers,
                seconds=seconds,
                rate=rate,
                grace=grace,
                redis_url=server.url,
                token_throttle=token_throttle,
                round_trip_calls=round_trip_calls,
            )
    loads = loads_for(rate)
    backend = RedisBackend(redis_url, namespace=f"hot-bucket-{uuid.uuid4().hex[:8]}")
    try:
        ping = await ping_us(backend, round_trip_calls, ROUND_TRIP_SECONDS)
        rows = await measure_ours(
            "ratelimit-llm (redis)", backend, workers, seconds, loads, grace, round_trip_calls
        )
    finally:
        await backend.aclose()
    rows += await measure_ours(
        "ratelimit-llm (memory)", MemoryBackend(), workers, seconds, loads, grace, round_trip_calls
    )
    if token_throttle:
        rows += await asyncio.to_thread(
            measure_token_throttle, redis_url, workers, seconds, loads, grace, round_trip_calls
        )
    return {
        "workers": workers,
        "seconds": seconds,
        "rate": rate,
        "redis_ping_us": ping,
        "targets": {"acquires_per_second": TARGET_PER_SECOND, "p99_ms": TARGET_P99_MS},
        "results": [asdict(row) for row in rows],
    }


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def report(payload: dict[str, Any], console: Console) -> None:
    table = Table(
        title=(
            f"One hot quota, {payload['workers']:,} concurrent workers "
            "(acquire + settle; latency of the acquire)"
        ),
        title_justify="left",
        caption=(
            f"targets for ratelimit-llm (redis): >= {TARGET_PER_SECOND:,.0f} acquires/s, "
            f"p99 < {TARGET_P99_MS:.0f} ms; bare Redis PING {payload['redis_ping_us']:.0f} us"
        ),
    )
    for column, justify in (
        ("contender", "left"),
        ("load", "left"),
        ("acquires", "right"),
        ("acquires/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("max ms", "right"),
        ("errors / unfinished", "right"),
        ("round trip us", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in payload["results"]:
        if row["skipped"]:
            table.add_row(row["contender"], row["load"], f"[dim]skipped: {row['skipped']}[/dim]")
            continue
        errors = sum(row["errors"].values())
        trouble = f"{errors:,} / {row['unfinished']:,}"
        if errors or row["unfinished"]:
            trouble = f"[yellow]{trouble}[/yellow]"
        table.add_row(
            row["contender"],
            row["load"],
            f"{row['acquires']:,}",
            f"{row['acquires_per_second']:,.0f}",
            _ms(row["p50_ms"]),
            _ms(row["p99_ms"]),
            _ms(row["max_ms"]),
            trouble,
            f"{row['round_trip_us']:,.0f}",
        )
    console.print(table)
    ours = [r for r in payload["results"] if r["contender"] == "ratelimit-llm (redis)"]
    if ours:
        best = max(r["acquires_per_second"] for r in ours)
        paced = ours[0]
        console.print(
            f"ratelimit-llm (redis): up to {best:,.0f} acquires/s "
            f"({'meets' if best >= TARGET_PER_SECOND else 'misses'} the "
            f"{TARGET_PER_SECOND:,.0f}/s target); p99 {_ms(paced['p99_ms'])} ms at "
            f"{paced['load']} ({'meets' if paced['p99_ms'] < TARGET_P99_MS else 'misses'} "
            f"the {TARGET_P99_MS:.0f} ms target)"
        )


def _finite(value: Any) -> Any:
    """``value`` with NaN (a figure that was not measured) as ``null``: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1_000, help="concurrent workers")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load")
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_PER_SECOND,
        help="acquires/s all workers offer together in the paced load",
    )
    parser.add_argument("--quick", action="store_true", help="short loads (--seconds 3)")
    parser.add_argument("--no-token-throttle", action="store_true", help="leave token-throttle out")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seconds <= 0 or args.rate <= 0:
        parser.error("--workers, --seconds and --rate must be positive")
    seconds = 3.0 if args.quick else args.seconds
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    payload = asyncio.run(
        hot_bucket(
            workers=args.workers,
            seconds=seconds,
            rate=args.rate,
            grace=5.0 if args.quick else 10.0,
            token_throttle=not args.no_token_throttle,
        )
    )
    report(payload, console)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "redis_hot_bucket.json"
    path.write_text(json.dumps(_finite(payload), indent=2) + "\n")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
