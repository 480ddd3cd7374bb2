"""``ratelimit-llm batch``: submit a JSONL file, watch it, collect it, cancel it.

The client comes from the environment as the SDK reads it (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``), or ``--base-url``, and is wrapped by the limiter so uploads and
polls are paced. Progress goes to stderr (``rich``), results to stdout or ``--out``, so
``ratelimit-llm batch results --journal j.db > out.jsonl`` works.

``status`` and ``results --no-wait`` only read the journal; like ``results`` and
``cancel``, they need one to exist, and a missing journal is an error (exit 1, the path
named) with no file created. Only ``submit`` creates a journal, from its input file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import anyio

from .._jsonl import read_jsonl

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratelimit-llm batch",
        description="Run requests through the OpenAI Batch API with a crash-safe journal.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--journal", required=True, type=Path, help="the SQLite journal file")
        sub.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI)")

    def adopt_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--adopt",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="adopt this job's batches on the server that the journal does not know "
            "(default; --no-adopt: submit anew)",
        )

    submit = commands.add_parser("submit", help="journal FILE.jsonl and submit its batches")
    submit.add_argument("file", type=Path, help="input lines or request bodies, one per line")
    common(submit)
    submit.add_argument("--endpoint", help="endpoint of plain bodies, e.g. /v1/chat/completions")
    submit.add_argument("--max-requests", type=int, default=50_000, help="requests per batch")
    submit.add_argument("--enqueued-tokens", type=int, help="per-model enqueued-token budget")
    submit.add_argument("--wait", action="store_true", help="then wait and write results")
    submit.add_argument("--out", type=Path, help="with --wait: write results here")
    adopt_flag(submit)

    status = commands.add_parser("status", help="show where a job stands")
    common(status)
    status.add_argument("--offline", action="store_true", help="read the journal only")

    results = commands.add_parser("results", help="wait for the job and write its results")
    common(results)
    results.add_argument("--out", type=Path, help="write JSONL here instead of stdout")
    results.add_argument("--no-wait", action="store_true", help="only what is already done")
    adopt_flag(results)

    cancel = commands.add_parser("cancel", help="cancel the job, keeping partial output")
    common(cancel)
    return parser


def _client(base_url: str | None) -> Any:
    import openai

    from .._wrap import wrap

    return wrap(openai.AsyncOpenAI(base_url=base_url) if base_url else openai.AsyncOpenAI())


def _read_lines(path: Path) -> Iterator[Any]:
    """The file's JSON lines, one at a time; a line that is not JSON ends the command."""
    try:
        yield from read_jsonl(path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def _result_line(result: Any) -> str:
    return json.dumps(
        {
            "custom_id": result.custom_id,
            "response": result.response,
            "error": None if result.error is None else asdict(result.error),
            "batch_id": result.batch_id,
        },
        ensure_ascii=False,
    )


async def _write_results(
    client: Any, journal: Path, out: Path | None, wait: bool, adopt: bool
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from . import cost, results, status

    total = (await status(None, journal)).total
    console = Console(stderr=True)
    handle: TextIO = out.open("w", encoding="utf-8") if out is not None else sys.stdout
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("results", total=total)
            pages = (
                results(client, journal, adopt=adopt)
                if wait
                else results(None, journal, wait=False)
            )
            async for page in pages:
                handle.write("".join(_result_line(r) + "\n" for r in page))
                progress.advance(task, len(page))
    finally:
        if out is not None:
            handle.close()
    console.print(cost(journal).summary(), soft_wrap=True)


def _print_status(state: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title=f"{state.done:,} of {state.total:,} done ({state.journal.name})")
    for column in ("chunk", "model", "state", "batch", "remote", "requests", "completed", "failed"):
        table.add_column(column)
    for c in state.chunks:
        table.add_row(
            str(c.chunk),
            c.model,
            c.state,
            c.batch_id or "",
            c.remote_status or "",
            str(c.requests),
            str(c.completed),
            str(c.failed),
        )
    console.print(table)
    console.print(
        f"succeeded {state.succeeded:,}, failed {state.failed:,}, queued {state.queued:,}, "
        f"pending {state.pending:,}" + (" (cancelled)" if state.cancelled else "")
    )


async def _main(args: argparse.Namespace) -> int:
    from . import BatchLimits, cancel, cost, status, submit
    from ._errors import JournalNotFoundError

    if args.command != "submit" and not args.journal.exists():
        # Before any client is made (an unset API key must not hide a mistyped path).
        raise JournalNotFoundError(args.journal)
    if args.command == "status":
        if args.offline:
            _print_status(await status(None, args.journal))
        else:
            async with _client(args.base_url) as online:
                _print_status(await status(online, args.journal))
        print(cost(args.journal).summary(), file=sys.stderr)
        return 0
    client = _client(args.base_url)
    async with client:
        if args.command == "submit":
            limits = BatchLimits(
                max_requests=args.max_requests, enqueued_tokens=args.enqueued_tokens
            )
            job = await submit(
                client,
                _read_lines(args.file),
                journal=args.journal,
                endpoint=args.endpoint,
                adopt=args.adopt,
                limits=limits,
            )
            ids = ", ".join(job.batch_ids) or "none yet"
            print(f"journaled {job.requests:,} requests; batches: {ids}", file=sys.stderr)
            if args.wait:
                await _write_results(client, args.journal, args.out, True, args.adopt)
            return 0
        if args.command == "results":
            await _write_results(client, args.journal, args.out, not args.no_wait, args.adopt)
            return 0
        _print_status(await cancel(client, args.journal))
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ratelimit-llm batch``."""
    from ._errors import BatchError

    args = _parser().parse_args(argv)
    try:
        return anyio.run(_main, args)
    except BatchError as exc:
        print(f"ratelimit-llm batch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
