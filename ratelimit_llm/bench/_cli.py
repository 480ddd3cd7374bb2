"""``ratelimit-llm bench``: run scenarios and contenders, print tables, write JSON and a plot."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ._contenders import Contender, builtin_contenders
from ._report import plot_results, print_results, write_json
from ._runner import RunResult, run_scenario
from ._workload import Scenario, builtin_scenarios

__all__ = ["main", "run_benchmark"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratelimit-llm bench",
        description="Run contenders side by side against the bundled mock OpenAI server.",
    )
    parser.add_argument("--scenario", action="append", help="run only these (repeatable)")
    parser.add_argument("--contender", action="append", help="run only these (repeatable)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="about how long each scenario needs beyond its burst (default 8)",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (--seconds 3)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results"), help="where JSON and PNG go"
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and contenders")
    return parser


async def run_benchmark(
    scenarios: Sequence[Scenario], contenders: Sequence[Contender], console: Console
) -> list[RunResult]:
    """Run everything with a live progress bar, printing each scenario's table as it ends."""
    results: list[RunResult] = []
    for scenario in scenarios:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(scenario.name, total=len(scenario.calls))

            def update(
                name: str, done: int, total: int, task: TaskID = task, label: str = scenario.name
            ) -> None:
                progress.update(task, description=f"{label}: {name}", completed=done)

            outcome = await run_scenario(scenario, contenders, on_progress=update)
        print_results(console, scenario, outcome)
        results.extend(outcome)
    return results


def main(argv: Sequence[str] | None = None, *, extra: Sequence[Contender] = ()) -> int:
    """Entry point; ``extra`` adds contenders (the rival libraries in ``benchmarks/``)."""
    args = _parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:
        # Piped to a file or CI log: rich would fold the table to 80 columns.
        console = Console(width=170)
    seconds = 3.0 if args.quick else args.seconds
    scenarios = builtin_scenarios(seconds)
    contenders = [*builtin_contenders(), *extra]
    if args.list:
        for scenario in scenarios:
            console.print(f"scenario  {scenario.name:14} {scenario.description}")
        for contender in contenders:
            console.print(f"contender {contender.name}")
        return 0
    if args.scenario:
        unknown = set(args.scenario) - {s.name for s in scenarios}
        if unknown:
            console.print(f"[red]unknown scenario(s): {', '.join(sorted(unknown))}[/red]")
            return 2
        scenarios = [s for s in scenarios if s.name in args.scenario]
    if args.contender:
        unknown = set(args.contender) - {c.name for c in contenders}
        if unknown:
            console.print(f"[red]unknown contender(s): {', '.join(sorted(unknown))}[/red]")
            return 2
        contenders = [c for c in contenders if c.name in args.contender]
    results = asyncio.run(run_benchmark(scenarios, contenders, console))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "benchmark.json", scenarios, results)
    plot_results(args.out / "benchmark.png", scenarios, results)
    console.print(f"wrote {args.out / 'benchmark.json'} and {args.out / 'benchmark.png'}")
    return 0
