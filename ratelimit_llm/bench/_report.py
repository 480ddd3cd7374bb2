"""Show benchmark results: a rich table per scenario, a JSON file, a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ._runner import RunResult
from ._workload import Scenario, ideal_admissions

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
        ("429s ≤5 s", "right"),
        ("retries", "right"),
        ("p50 / p95 s", "right"),
        ("CPU s/1k", "right"),
        ("tokens est/actual", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    lanes = sorted({call.lane for call in scenario.calls if call.lane is not None})
    for lane in lanes:
        table.add_column(f"{lane} p95 s", justify="right")
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
            _count(result.server_429s_first5),
            _count(result.server_retries),
            f"{result.latency_p50:.2f} / {result.latency_p95:.2f}",
            f"{result.cpu_seconds_per_1k:.2f}",
            accounting,
            *(_seconds(result.lane_latency_p95.get(lane)) for lane in lanes),
        )
    console.print(table)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


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
    """Who keeps up and who stalls, at a glance; and a summary per contender.

    One panel per scenario: calls completed so far against time, each contender's line
    beside the fastest the server's limits allow (dashed). Below them, two bar charts:
    efficiency, and the 429s the server counted, per scenario and contender.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in scenarios if any(r.scenario == s.name and not r.skipped for r in results)]
    if not shown:
        return
    contenders = list(dict.fromkeys(r.contender for r in results))
    colours = {name: f"C{index % 10}" for index, name in enumerate(contenders)}
    columns = min(4, len(shown))
    rows = (len(shown) + columns - 1) // columns
    figure = plt.figure(figsize=(4.2 * columns, 3.0 * rows + 3.4))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[3.0] * rows + [3.4])
    for index, scenario in enumerate(shown):
        ax = figure.add_subplot(grid[index // columns, index % columns])
        ideal = ideal_admissions(scenario)
        ax.step(
            ideal,
            range(1, len(ideal) + 1),
            where="post",
            color="black",
            linestyle="--",
            linewidth=1.2,
            label="fastest the limits allow",
        )
        end = max(ideal, default=0.0)
        for run in results:
            if run.scenario != scenario.name or run.skipped:
                continue
            times = run.finish_times
            ax.step(
                [0.0, *times],
                range(len(times) + 1),
                where="post",
                linewidth=1.3,
                color=colours[run.contender],
                label=run.contender,
            )
            end = max(end, times[-1] if times else 0.0)
        ax.set_xlim(0, end * 1.05 if end else 1)
        ax.set_ylim(0, len(scenario.calls) * 1.05)
        ax.set_title(scenario.name, fontsize=10)
        ax.set_xlabel("seconds", fontsize=8)
        ax.set_ylabel("calls completed", fontsize=8)
        ax.tick_params(labelsize=7)
        if index == 0:
            ax.legend(fontsize=6, loc="lower right")
    names = [s.name for s in shown]
    ran = {(r.scenario, r.contender): r for r in results if not r.skipped}
    efficiency = {key: r.efficiency for key, r in ran.items()}
    refusals = {key: float(r.server_429s) for key, r in ran.items()}
    half = max(1, columns // 2)
    left = figure.add_subplot(grid[rows, 0:half])
    _bars(left, "efficiency (1.0 = as fast as the limits allow)", names, colours, efficiency)
    left.set_ylim(0, 1.05)
    left.legend(fontsize=6, ncol=2)
    if columns > 1:
        right = figure.add_subplot(grid[rows, half:columns])
        _bars(right, "429s counted by the server", names, colours, refusals)
        right.set_yscale("symlog", linthresh=1)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _bars(
    ax: Any,
    title: str,
    scenarios: Sequence[str],
    colours: dict[str, str],
    values: dict[tuple[str, str], float],
) -> None:
    """Grouped bars: one group per scenario, one bar per contender that ran it."""
    width = 0.8 / max(1, len(colours))
    for offset, (contender, colour) in enumerate(colours.items()):
        xs = [i + offset * width for i in range(len(scenarios))]
        heights = [values.get((name, contender), 0.0) for name in scenarios]
        ax.bar(xs, heights, width=width, color=colour, label=contender)
    ax.set_xticks([i + width * (len(colours) - 1) / 2 for i in range(len(scenarios))])
    ax.set_xticklabels(scenarios, rotation=30, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)
