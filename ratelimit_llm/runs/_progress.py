"""What a person watching a run sees: a progress line while it runs, a table at the end.

The line reads a `RunProgress` a few times a second: done of total, failed, refused by
the server (429s), tokens, dollars (against the budget), and the ETA, which comes from
the quota (`Run.eta`: what is left over the binding limit), so it is right from the
first second rather than guessed from the first results. The table sums up a
`RunSummary`. ``rich`` draws both (it comes with the ``bench`` extra; without it, plain
lines).
"""

from __future__ import annotations

import math
from typing import IO, Any

from .._durations import format_duration
from ._types import RunProgress, RunSummary

__all__ = ["ProgressLine", "format_eta", "summary_rows"]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if math.isinf(seconds):
        return "never (no quota)"
    if seconds < 1:
        return "<1s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 10 else f"${usd:,.2f}"


def describe(p: RunProgress) -> str:
    """The progress as one line of text (what the bar shows beside it)."""
    parts = [f"{p.done:,}/{p.total:,} done"]
    if p.failed:
        parts.append(f"{p.failed:,} failed")
    if p.refused:
        parts.append(f"{p.refused:,} refused (429)")
    if p.in_batches:
        parts.append(f"{p.in_batches:,} in batches")
    parts.append(f"{p.tokens_actual:,.0f} tokens")
    money = _money(p.usd)
    if p.budget_usd is not None:
        money += f" of {_money(p.budget_usd)}"
    parts.append(money)
    parts.append(f"ETA {format_eta(p.eta_seconds)} (quota)")
    if p.stop_reason is not None:
        parts.append(f"stopping: {p.stop_reason}")
    return " · ".join(parts)


class ProgressLine:
    """A rich progress bar fed with `RunProgress` snapshots (plain lines without rich)."""

    def __init__(self, stream: IO[str], *, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:  # pragma: no cover - rich comes with the bench extra
            return
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=stream),
            refresh_per_second=4,
        )

    def __enter__(self) -> ProgressLine:
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task("run", total=None, detail="starting")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def update(self, p: RunProgress) -> None:
        if not self._enabled:
            return
        if self._progress is None:  # pragma: no cover - without rich
            print(describe(p), file=self._stream, flush=True)
            return
        self._progress.update(
            self._task, description=p.phase, total=p.total, completed=p.done, detail=describe(p)
        )


def summary_rows(s: RunSummary) -> list[tuple[str, str]]:
    """The end-of-run table, as (what, value) rows."""
    rows = [
        ("requests", f"{s.total:,}"),
        ("done", f"{s.done:,} ({s.succeeded:,} ok, {s.failed:,} failed)"),
    ]
    for kind, count in sorted(s.failed_by_kind.items(), key=lambda kv: -kv[1]):
        rows.append((f"  failed: {kind}", f"{count:,}"))
    if s.pending:
        rows.append(("not sent yet", f"{s.pending:,}"))
    rows.append(("answered online / batch", f"{s.online:,} / {s.batch:,}"))
    if s.resent:
        rows.append(("sent again after a cut call", f"{s.resent:,}"))
    rows.append(("refused by the server (429)", f"{s.refused:,}"))
    ratio = ""
    if s.tokens_estimated:
        ratio = f" (actual/estimated {s.tokens_actual / s.tokens_estimated:.2f})"
    rows.append(
        ("tokens estimated / actual", f"{s.tokens_estimated:,.0f} / {s.tokens_actual:,.0f}{ratio}")
    )
    cost = f"{_money(s.usd)} (online {_money(s.usd_online)}, batch {_money(s.usd_batch)}"
    if s.usd_unresolved:
        cost += f", unresolved {_money(s.usd_unresolved)}"
    cost += ")"
    if s.budget_usd is not None:
        cost += f" of {_money(s.budget_usd)}"
    rows.append(("dollars", cost))
    if s.usd_batch:
        saved = s.usd_at_online_price - s.usd_online - s.usd_batch
        rows.append(("saved by the Batch API", _money(saved)))
    if s.unpriced_models:
        rows.append(("no price for", ", ".join(s.unpriced_models)))
    wall = format_duration(s.wall_seconds) if s.wall_seconds < 86_400 else f"{s.wall_seconds:,.0f}s"
    if s.ideal_seconds is not None:
        efficiency = s.efficiency
        shown = "" if efficiency is None else f", efficiency {efficiency:.2f}"
        rows.append(("wall time / quota's ideal", f"{wall} / {s.ideal_seconds:.1f}s{shown}"))
    else:
        rows.append(("wall time", wall))
    if s.stop_reason is not None:
        rows.append(("stopped", s.stop_reason))
    return rows


def print_summary(s: RunSummary, stream: IO[str]) -> None:
    rows = summary_rows(s)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich comes with the bench extra
        for name, value in rows:
            print(f"{name:<30} {value}", file=stream)
        return
    table = Table(title="run summary")
    table.add_column("")
    table.add_column("", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    Console(file=stream).print(table)
