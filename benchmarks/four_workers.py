"""Four worker processes, one key's quota: does a shared limiter keep them under it?

The "four-workers" scenario (`ratelimit_llm.bench._workers.four_workers_scenario`): a
backlog of mixed chat calls dealt to four worker processes, each with its own client,
against a mock server whose limit they must share. Contenders:

* ``ratelimit-llm+redis``: four processes (multiprocessing ``spawn``), each with
  ``wrap(AsyncOpenAI(...), limits=told, backend=<redis url>)``: one quota for all;
* ``ratelimit-llm+memory``: the same with the default in-process backend, so each
  worker believes it has the whole quota (four times the limit in all: 429s);
* ``token-throttle+redis``: four processes of the token-throttle worker sharing one
  quota through token-throttle's Redis backend (needs ``benchmarks/.venv-token-throttle``).

A throwaway ``redis-server`` on a free loopback port (`LocalRedisServer`) serves the
Redis contenders. The runner, the mock server and the table are the harness's own
(``ratelimit_llm.bench``), so the figures mean what they mean in ``benchmarks/run.py``.

Run ``python benchmarks/four_workers.py`` (``--quick`` for a short run); it prints the
table and writes ``benchmarks/results/four_workers.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ratelimit_llm.bench import Contender, RunResult, Scenario, run_benchmark
from ratelimit_llm.bench._report import write_json
from ratelimit_llm.bench._workers import ProcessWorkers, four_workers_scenario
from ratelimit_llm.testing import LocalRedisServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # run as a script: make ``rivals`` importable

from rivals import TokenThrottle  # noqa: E402

WORKERS = 4


def contenders(redis_url: str | None, *, workers: int = WORKERS) -> list[Contender]:
    """The three contenders, in table order; Redis ones need ``redis_url``."""
    return [
        ProcessWorkers(
            "ratelimit-llm+redis", backend="redis", redis_url=redis_url, processes=workers
        ),
        ProcessWorkers("ratelimit-llm+memory", backend="memory", processes=workers),
        TokenThrottle("token-throttle+redis", processes=workers, redis_url=redis_url),
    ]


async def run(
    seconds: float,
    console: Console,
    *,
    names: Sequence[str] = (),
    redis_url: str | None = None,
) -> tuple[Scenario, list[RunResult]]:
    """Run the scenario (starting a `LocalRedisServer` unless ``redis_url`` is given)."""
    if redis_url is None:
        with LocalRedisServer() as server:
            return await run(seconds, console, names=names, redis_url=server.url)
    scenario = four_workers_scenario(seconds, workers=WORKERS)
    chosen = [c for c in contenders(redis_url) if not names or c.name in names]
    return scenario, await run_benchmark([scenario], chosen, console)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="about how long the limit needs for the backlog (default 8)",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (--seconds 3)")
    parser.add_argument("--contender", action="append", help="run only these (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    known = [c.name for c in contenders(None)]
    unknown = set(args.contender or ()) - set(known)
    if unknown:
        parser.error(f"unknown contender(s) {sorted(unknown)}; known: {known}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    seconds = 3.0 if args.quick else args.seconds
    scenario, results = asyncio.run(run(seconds, console, names=args.contender or ()))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "four_workers.json"
    write_json(path, [scenario], results)
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
