"""``ratelimit-llm run``: a JSONL file of requests through the API, resumably.

    ratelimit-llm run requests.jsonl --out results.jsonl --journal job.db \\
        [--via online|batch|auto] [--deadline 6h] [--budget-usd 40] [--rpm 5000 --tpm 2000000]

The client comes from the environment as the SDK reads it (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``), or ``--base-url``, wrapped by the limiter with ``--rpm``/``--tpm``
(or ``limits="auto"``) and ``--backend`` (a ``redis://`` URL shares the quota with other
machines). Progress goes to stderr; the results to ``--out``.

Ctrl-C (or SIGTERM) stops admitting, waits ``--grace`` seconds for the calls in flight,
journals them and prints the command that resumes; a second Ctrl-C stops at once (the
calls cut then are sent again, once, on resume). Exit status: 0 when every request has
its answer (failures included: they are answers), 3 when the budget, the quota or the
credentials stopped the run, 130 after Ctrl-C, 1 on an error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

__all__ = ["main"]

EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratelimit-llm run",
        description="Run a JSONL file of requests online, through the Batch API, or both; "
        "resumable (run the same command again).",
    )
    parser.add_argument("file", type=Path, help="Batch API input lines (or bodies, --endpoint)")
    parser.add_argument("--out", required=True, type=Path, help="the results, one JSON line each")
    parser.add_argument("--journal", required=True, type=Path, help="the job's SQLite journal")
    parser.add_argument("--via", choices=("online", "batch", "auto"), default="online")
    parser.add_argument(
        "--deadline", help="with --via auto: a duration from now (90m, 6h, 3600) or an ISO time"
    )
    parser.add_argument("--budget-usd", type=float, help="stop before spending more than this")
    parser.add_argument(
        "--prices", type=Path, help='JSON {"model": {"input": x, "output": y, "cached_input": z}}'
    )
    parser.add_argument("--rpm", type=float, help="requests per minute (default: learned)")
    parser.add_argument("--tpm", type=float, help="tokens per minute (default: learned)")
    parser.add_argument("--rpd", type=float, help="requests per day")
    parser.add_argument("--tpd", type=float, help="tokens per day")
    parser.add_argument("--backend", help="redis://... to share the quota with other machines")
    parser.add_argument("--shard", help="INDEX/COUNT: this machine's shard of the inputs")
    parser.add_argument("--concurrency", type=int, help="requests in progress at once")
    parser.add_argument(
        "--retry-failed", action="store_true", help="send the job's failed requests again"
    )
    parser.add_argument("--grace", type=float, default=30.0, help="seconds Ctrl-C waits (30)")
    parser.add_argument("--endpoint", help="endpoint of plain bodies, e.g. /v1/chat/completions")
    parser.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI)")
    parser.add_argument("--max-requests", type=int, help="Batch API: requests per batch")
    parser.add_argument(
        "--adopt",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="adopt this job's batches on the server the journal does not know (default)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_deadline(text: str) -> float | _dt.datetime:
    """``90m``, ``6h``, ``3600`` (seconds from now) or an ISO 8601 time with its zone."""
    from .._durations import parse_duration

    seconds = parse_duration(text)
    if seconds is not None and seconds > 0:
        return seconds
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--deadline {text!r}: give a duration (90m, 6h, 3600) or an ISO time with its zone"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"--deadline {text!r}: an ISO time needs its zone (Z or +01:00)")
    return moment


def load_prices(path: Path) -> Any:
    """The shipped price table with the file's models added or replaced."""
    from ..batch._cost import DEFAULT_PRICES, ModelPrice, PriceTable

    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON object of model -> prices")
    prices = dict(DEFAULT_PRICES)
    for model, entry in data.items():
        if not isinstance(entry, dict) or "input" not in entry:
            raise ValueError(f"{path}: {model!r} needs at least an 'input' price")
        prices[str(model)] = ModelPrice(
            entry["input"], entry.get("output", 0.0), entry.get("cached_input")
        )
    return PriceTable(prices)


def resume_command(argv: Sequence[str]) -> str:
    """The command that resumes this run (the same, without ``--retry-failed``)."""
    kept = [arg for arg in argv if arg != "--retry-failed"]
    return shlex.join(["ratelimit-llm", "run", *kept])


def _client(args: argparse.Namespace) -> Any:
    import openai

    from .._wrap import wrap

    base = openai.AsyncOpenAI(base_url=args.base_url) if args.base_url else openai.AsyncOpenAI()
    limits = {
        name: getattr(args, name)
        for name in ("rpm", "tpm", "rpd", "tpd")
        if getattr(args, name) is not None
    }
    return wrap(base, backend=args.backend, **limits)


async def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from ..batch._types import BatchLimits

    options: dict[str, Any] = {}
    if args.max_requests is not None:
        options["batch_limits"] = BatchLimits(max_requests=args.max_requests)
    async with _client(args) as client:
        return await _drive(client, args, argv, options)


async def _drive(
    client: Any, args: argparse.Namespace, argv: Sequence[str], options: dict[str, Any]
) -> int:
    from ._progress import ProgressLine, print_summary
    from ._run import run

    job = run(
        client,
        args.file,
        journal=args.journal,
        out=args.out,
        via=args.via,
        deadline=None if args.deadline is None else parse_deadline(args.deadline),
        budget_usd=args.budget_usd,
        prices=None if args.prices is None else load_prices(args.prices),
        endpoint=args.endpoint,
        concurrency=args.concurrency,
        retry_failed=args.retry_failed,
        shard=args.shard,
        grace=args.grace,
        replay=False,
        adopt=args.adopt,
        **options,
    )
    interrupted = False
    err = sys.stderr
    async with job:
        if job.recovered:
            print(
                f"resuming: {job.recovered:,} call(s) the last run left in flight go again",
                file=err,
            )
        if job.retried:
            print(f"sending {job.retried:,} failed request(s) again", file=err)
        with ProgressLine(err, enabled=not args.no_progress) as bar:
            async with anyio.create_task_group() as group:

                async def watch_signals() -> None:
                    nonlocal interrupted
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            if not interrupted:
                                interrupted = True
                                print(
                                    f"\nstopping: no new requests; waiting up to {args.grace:g} s"
                                    " for the calls in flight (Ctrl-C again to stop now)",
                                    file=err,
                                    flush=True,
                                )
                                job.stop()
                            else:
                                job.abort()

                async def tick() -> None:
                    while True:
                        bar.update(job.progress())
                        await anyio.sleep(0.5)

                group.start_soon(watch_signals)
                group.start_soon(tick)
                summary = await job.wait()
                bar.update(job.progress())
                group.cancel_scope.cancel()
    print_summary(summary, err)
    if summary.finished:
        if summary.failed:
            print(
                f"{summary.failed:,} request(s) failed (their errors are in {args.out}); "
                "to send them again: " + resume_command(argv) + " --retry-failed",
                file=err,
            )
        return 0
    why = {
        "budget": "the budget would be exceeded by the next request",
        "quota": "the account's quota is exhausted (insufficient_quota)",
        "credentials": "the server refused the API key",
        "stopped": "interrupted",
    }.get(summary.stop_reason or "stopped", "stopped")
    print(
        f"stopped ({why}): {summary.done:,} of {summary.total:,} answered, journaled in "
        f"{args.journal}.\nresume with: {resume_command(argv)}",
        file=err,
    )
    return EXIT_INTERRUPTED if interrupted else EXIT_STOPPED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ratelimit-llm run``."""
    from ..batch._errors import BatchError
    from ._output import OutputError

    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    try:
        return anyio.run(_main, args, arguments)
    except (BatchError, OutputError, ValueError, FileNotFoundError) as exc:
        print(f"ratelimit-llm run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - before the signal handler was set
        print(
            "interrupted; resume with: " + resume_command(arguments),
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
