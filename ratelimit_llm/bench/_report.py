"""Show benchmark results: a rich table per scenario, a JSON file, a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ._runner import RunResult
from ._workload import Scenario

__all__ = ["plot_results", "print_results", "write_json"]


def print_results(console: Console, scenario: Scenario, results: Sequence[RunResult]) -> None:
    """One table: every contender's figures on ``scenario``."""
    table = Table(
        title=f"{scenario.name}: {scenario.description}",
        title_justify="left",
        caption="server-side 429s and retries; efficiency = ideal time / wall time",
    )
    for column, justify in (
        ("contender", "left"),
        ("done", "right"),
        ("wall s (ideal)", "right"),
        ("efficiency", "right"),
        ("goodput", "right"),
        ("429s", "right"),
        ("retries", "right"),
        ("p50 / p95 s", "right"),
        ("CPU s/1k", "right"),
        ("tokens est/actual", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in results:
        if result.skipped:
            table.add_row(result.contender, f"[dim]skipped: {result.skipped}[/dim]")
            continue
        done = f"{result.completed}/{result.calls}"
        if result.failed or result.unfinished:
            done += f" [red]({result.failed} failed, {result.unfinished} unfinished)[/red]"
        accounting = "-"
        if result.tokens_estimated and result.tokens_actual:
            accounting = (
                f"{result.tokens_estimated:,.0f}/{result.tokens_actual:,.0f} "
                f"({result.tokens_estimated / result.tokens_actual:.2f}x)"
            )
        table.add_row(
            result.contender,
            done,
            f"{result.wall_seconds:.1f} ({result.ideal_seconds:.1f})",
            f"{result.efficiency:.2f}",
            f"{result.goodput:.2f} {result.binding}",
            _count(result.server_429s),
            _count(result.server_retries),
            f"{result.latency_p50:.2f} / {result.latency_p95:.2f}",
            f"{result.cpu_seconds_per_1k:.2f}",
            accounting,
        )
    console.print(table)


def _count(value: int) -> str:
    return "0" if value == 0 else f"[yellow]{value:,}[/yellow]"


def write_json(path: Path, scenarios: Sequence[Scenario], results: Sequence[RunResult]) -> None:
    """Every figure of every run, with each scenario's setup, as JSON."""
    payload: dict[str, Any] = {
        "scenarios": [
            {
                "name": scenario.name,
                "description": scenario.description,
                "calls": len(scenario.calls),
                "keys": len(scenario.keys),
                "server_limits": scenario.server.limits.as_dict(),
                "told": {
                    "rpm": scenario.told.rpm,
                    "tpm": scenario.told.tpm,
                    "burst_seconds": scenario.told.burst_seconds,
                },
            }
            for scenario in scenarios
        ],
        "results": [result.as_dict() for result in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def plot_results(path: Path, scenarios: Sequence[Scenario], results: Sequence[RunResult]) -> None:
    """Admitted throughput over time against the limit line, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in scenarios if any(r.scenario == s.name and not r.skipped for r in results)]
    if not shown:
        return
    columns = 2 if len(shown) > 1 else 1
    rows = (len(shown) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 3.0 * rows), squeeze=False)
    for ax, scenario in zip(axes.flat, shown, strict=False):
        limits = scenario.server.limits
        runs = [r for r in results if r.scenario == scenario.name and not r.skipped]
        by_tokens = bool(runs) and runs[0].binding == "tokens"
        keys = len(scenario.keys)
        rate = keys * ((limits.tpm or 0) if by_tokens else (limits.rpm or 0)) / 60.0
        for run in runs:
            # The server lists only seconds in which something happened: fill the gaps.
            admitted = {s: (t if by_tokens else a) for s, a, t in run.timeline}
            last = max(admitted, default=0)
            seconds = list(range(last + 1))
            ax.plot(seconds, [admitted.get(s, 0) for s in seconds], label=run.contender, lw=1.2)
        ax.axhline(rate, color="black", linestyle="--", linewidth=1, label="limit (refill rate)")
        # The opening burst (a whole minute's capacity at once) would dwarf the steady
        # state, which is what the plot is about: it is clipped at three times the rate.
        ax.set_ylim(0, 3 * rate)
        ax.set_title(f"{scenario.name} (opening burst clipped)", fontsize=10)
        ax.set_xlabel("second of the run")
        ax.set_ylabel("admitted tokens/s" if by_tokens else "admitted requests/s")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
