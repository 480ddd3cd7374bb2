"""What the limiter itself costs, side by side with aiolimiter in the same run.

Three figures, each as microseconds per call and as a ratio to aiolimiter:

* **uncontended**: one two-dimension ``acquire`` + ``settle`` on a limiter with room to
  spare, against an aiolimiter *pair* (one limiter for requests, one for tokens), which
  is what it takes to hold RPM and TPM with aiolimiter at all.
* **join a line of N**: what one more ``acquire`` costs while N waiters already stand
  in line (N = 10 and 10,000), task start included.
* **grant from a line of N**: the cost per grant while that line drains.
  A limiter that scans its waiters shows it as a ratio between the two depths far
  above 1.

Run ``python benchmarks/overhead.py`` (``--quick`` for a short run); it prints a table
and writes ``benchmarks/results/overhead.json`` and ``overhead.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiolimiter import AsyncLimiter
from rich.console import Console
from rich.table import Table

from ratelimit_llm import Cost, Limits, RateLimiter
from ratelimit_llm.core import Dimension

RESULTS = Path(__file__).parent / "results"


async def _time_per_call(run: Callable[[int], Awaitable[None]], calls: int, repeats: int) -> float:
    """Best-of-``repeats`` microseconds per call (the minimum is the least noisy)."""
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        await run(calls)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return min(samples)


async def ours_uncontended(calls: int) -> None:
    limiter = RateLimiter(Limits(rpm=1e12, tpm=1e15))
    cost = Cost(requests=1, tokens=1_000)
    actual = Cost(requests=1, tokens=700)
    for _ in range(calls):
        async with limiter.acquire(cost) as reservation:
            reservation.settle(actual)


async def aiolimiter_pair_uncontended(calls: int) -> None:
    requests = AsyncLimiter(1e12, 60)
    tokens = AsyncLimiter(1e15, 60)
    for _ in range(calls):
        await requests.acquire()
        await tokens.acquire(1_000)


async def _park(
    limiter_acquire: Callable[[], Awaitable[object]], count: int
) -> list[asyncio.Task[object]]:
    """Start ``count`` tasks that each acquire once, and let them all reach the line."""

    async def one() -> object:
        return await limiter_acquire()

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    await asyncio.sleep(0)  # every new task runs until it parks on the limiter
    return tasks


async def queued_costs(depth: int, extra: int, ours: bool) -> tuple[float, float | None]:
    """Microseconds to join a line ``depth`` deep, and (ours only) per grant as it drains.

    The line is made with a bucket that holds nothing and barely refills, so nobody is
    served while it is measured. Then (ours) the limit is raised so the line drains, and
    the time per grant is measured too; aiolimiter has no way to change its rate, so only
    the joining cost is compared with it.
    """
    if ours:
        limiter = RateLimiter([Dimension("r", "requests", 1e-3, 1.0, 1.0)], initial_fill=0)
        acquire: Callable[[], Awaitable[object]] = lambda: limiter.acquire()  # noqa: E731
    else:
        aio = AsyncLimiter(1, 1e3)
        await aio.acquire()
        acquire = aio.acquire
    background = await _park(acquire, depth)
    gc.collect()
    start = time.perf_counter()
    joined = await _park(acquire, extra)
    join_us = (time.perf_counter() - start) / extra * 1e6
    grant_us: float | None = None
    everyone = background + joined
    if ours:
        start = time.perf_counter()
        limiter.resize("r", 1e9)  # capacity grows in proportion: the whole line fits
        await asyncio.gather(*everyone)
        grant_us = (time.perf_counter() - start) / len(everyone) * 1e6
    else:
        for task in everyone:
            task.cancel()
        await asyncio.gather(*everyone, return_exceptions=True)
    return join_us, grant_us


async def measure(quick: bool) -> list[dict[str, float | str]]:
    scale = 0.1 if quick else 1.0
    repeats = 3 if quick else 5
    rows: list[dict[str, float | str]] = []
    ours = await _time_per_call(ours_uncontended, int(200_000 * scale), repeats)
    theirs = await _time_per_call(aiolimiter_pair_uncontended, int(200_000 * scale), repeats)
    rows.append(
        {
            "case": "uncontended acquire+settle (2 dimensions)",
            "ratelimit_llm_us": ours,
            "aiolimiter_us": theirs,
            "aiolimiter_is": "pair: requests + tokens",
        }
    )
    extra = int(20_000 * scale)
    for depth in (10, 10_000):
        ours_join = []
        ours_grant = []
        theirs_join = []
        for _ in range(repeats):
            join_us, grant_us = await queued_costs(depth, extra, ours=True)
            ours_join.append(join_us)
            ours_grant.append(grant_us or 0.0)
            theirs_join.append((await queued_costs(depth, extra, ours=False))[0])
        rows.append(
            {
                "case": f"join a line of {depth:,} waiters",
                "ratelimit_llm_us": min(ours_join),
                "aiolimiter_us": min(theirs_join),
                "aiolimiter_is": "single limiter",
            }
        )
        rows.append(
            {
                "case": f"grant from a line of {depth:,} waiters",
                "ratelimit_llm_us": min(ours_grant),
                "aiolimiter_us": float("nan"),
                "aiolimiter_is": "cannot change its rate",
            }
        )
    return rows


def report(rows: list[dict[str, float | str]], console: Console) -> None:
    table = Table(title="Limiter overhead (microseconds per call, best of runs; lower is better)")
    table.add_column("case")
    table.add_column("ratelimit-llm", justify="right")
    table.add_column("aiolimiter", justify="right")
    table.add_column("ratio", justify="right")
    for row in rows:
        ours, theirs = float(row["ratelimit_llm_us"]), float(row["aiolimiter_us"])
        table.add_row(
            str(row["case"]),
            f"{ours:.2f}",
            "n/a" if theirs != theirs else f"{theirs:.2f} ({row['aiolimiter_is']})",
            "-" if theirs != theirs else f"{ours / theirs:.2f}x",
        )
    console.print(table)
    by_case = {str(row["case"]): float(row["ratelimit_llm_us"]) for row in rows}
    for verb in ("join", "grant from"):
        deep = by_case[f"{verb} a line of 10,000 waiters"]
        shallow = by_case[f"{verb} a line of 10 waiters"]
        console.print(
            f"ratelimit-llm '{verb}' cost, 10,000 queued vs 10 queued: {deep / shallow:.2f}x"
        )


def plot(rows: list[dict[str, float | str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(row["case"]).replace(" (2 dimensions)", "") for row in rows]
    ours = [float(row["ratelimit_llm_us"]) for row in rows]
    theirs = [float(row["aiolimiter_us"]) for row in rows]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    positions = range(len(rows))
    ax.barh([p + 0.2 for p in positions], ours, height=0.4, label="ratelimit-llm")
    ax.barh([p - 0.2 for p in positions], theirs, height=0.4, label="aiolimiter")
    ax.set_yticks(list(positions), labels)
    ax.set_xlabel("microseconds per call (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write results")
    args = parser.parse_args(argv)
    console = Console()
    rows = asyncio.run(measure(args.quick))
    report(rows, console)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, args.out / "overhead.png")
    console.print(f"wrote {args.out / 'overhead.json'} and {args.out / 'overhead.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
