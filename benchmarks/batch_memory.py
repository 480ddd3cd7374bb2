"""The Batch API path end to end at 200,000 requests: wall time and the client's memory.

`ratelimit_llm.batch.run` streams its inputs into the SQLite journal, writes each batch
file from the journal to a spool file, uploads it, polls, and streams the output back
line by line into the journal, so the client's memory should not grow with the job. This
runs ``--requests`` small chat requests (default 200,000: four batches of 50,000) against
the mock server in a child process (its memory is not counted) with a fast `BatchConfig`
(batches validate and finalize in 0.1 s and run 200,000 lines per second), consumes every
result without keeping it, and reports:

* wall time, from the first input read to the last result;
* peak RSS of the client process: ``getrusage(RUSAGE_SELF).ru_maxrss`` (the whole life of
  the process, imports included), and, when psutil is installed, RSS sampled every 50 ms
  (its baseline before the run and its peak during it);
* the journal's size on disk. Target: peak RSS under 200 MB;
* the time the journal spent committing, and syncing (the checkpoint that copies every
  commit into the main file before each remote change, so the main file alone is the
  record), in total and per request.

``--journal-only`` times the journal alone on the same job, without a server: the ingest,
then for each chunk the commits a run makes (planned, uploaded, creating, submitted,
collecting, its results in pages of 1,000, collected) and its syncs (before the upload,
the create and the files' deletion); the best of ``--repeat`` runs.

Run ``python benchmarks/batch_memory.py`` (``--quick`` for 20,000 requests, ``--requests
N`` for any count, ``--max-requests N`` for smaller batches, hence more journal commits);
it prints a table and writes ``benchmarks/results/batch_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openai
from _memory import RssSampler, max_rss_mb

from ratelimit_llm import batch
from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import BatchConfig, LatencyModel, MockConfig, MockLimits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KEY = "sk-bench-batchbatchbatchbatch0042"
CHAT = "/v1/chat/completions"
TARGET_MB = 200.0


class _CommitTimer:
    """Counts and times the journal's commits and checkpoints (where the journal has them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"_commit": 0.0, "sync": 0.0}
        self.calls: dict[str, int] = {"_commit": 0, "sync": 0}
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> _CommitTimer:
        from ratelimit_llm.batch._journal import Journal

        for name in self.seconds:
            original = getattr(Journal, name, None)
            if original is None:
                continue
            self._saved[name] = original

            def timed(journal: Any, *args: Any, _name: str = name, _f: Any = original) -> Any:
                started = time.perf_counter()
                done = _f(journal, *args)
                self.seconds[_name] += time.perf_counter() - started
                # A sync with nothing to copy is not a checkpoint: count those that were.
                self.calls[_name] += 1 if done is not False else 0
                return done

            setattr(Journal, name, timed)
        return self

    def __exit__(self, *_: object) -> None:
        from ratelimit_llm.batch._journal import Journal

        for name, original in self._saved.items():
            setattr(Journal, name, original)

    def row(self, count: int) -> dict[str, Any]:
        if "sync" not in self._saved:  # a journal that never checkpoints by itself
            return {"commits": None, "commit_s": None, "syncs": None, "sync_s": None}
        return {
            "commits": self.calls["_commit"],
            "commit_s": round(self.seconds["_commit"], 3),
            "syncs": self.calls["sync"],
            "sync_s": round(self.seconds["sync"], 3),
            "sync_us_per_request": round(self.seconds["sync"] / count * 1e6, 1),
        }


def requests(count: int) -> Iterator[dict[str, Any]]:
    """Small chat bodies, generated lazily (the inputs are never a list)."""
    for i in range(count):
        yield {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Label item number {i}, briefly."}],
            "max_tokens": 16,
        }


async def drive(base_url: str, journal: Path, count: int, max_requests: int) -> dict[str, Any]:
    """Run the whole job; returns counts (results are counted, never kept)."""
    stats = batch.BatchStatistics()
    ok = failed = 0
    client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=3)
    # Consumed to the end, so the generator closes itself (`run` is typed as an
    # AsyncIterator, which has no ``aclose``: `contextlib.aclosing` does not type-check).
    async with client:
        results = batch.run(
            client,
            requests(count),
            journal=journal,
            endpoint=CHAT,
            limits=batch.BatchLimits(max_requests=max_requests),
            poll=batch.FixedPoll(0.1),
            statistics=stats,
            spool_dir=journal.parent,
        )
        async for result in results:
            if result.ok:
                ok += 1
            else:
                failed += 1
    return {
        "ok": ok,
        "failed": failed,
        "batches": stats.batches_created,
        "files_uploaded": stats.files_uploaded,
        "polls": stats.polls,
    }


def measure(count: int, max_requests: int = 50_000) -> dict[str, Any]:
    config = MockConfig(
        limits=MockLimits(rpm=10_000_000, tpm=10_000_000_000),
        latency=LatencyModel.instant(),
        batch=BatchConfig(validation_seconds=0.1, finalizing_seconds=0.1, lines_per_second=200_000),
    )
    with mock_server_process(config) as base_url, tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "job.db"
        sampler = RssSampler()
        baseline = sampler.current_mb()
        rss_before = max_rss_mb()
        with sampler, _CommitTimer() as commits:
            started = time.perf_counter()
            counts = anyio.run(drive, base_url, journal, count, max_requests)
            wall = time.perf_counter() - started
        journal_mb = sum(
            path.stat().st_size for path in Path(tmp).glob("job.db*") if path.is_file()
        ) / (1024 * 1024)
    peak = max_rss_mb()
    return {
        "requests": count,
        "max_requests": max_requests,
        **counts,
        "wall_s": round(wall, 2),
        "requests_per_s": round(count / wall, 1),
        "ru_maxrss_mb": round(peak, 1),
        "ru_maxrss_before_run_mb": round(rss_before, 1),
        "psutil_baseline_mb": round(baseline, 1) if baseline is not None else None,
        "psutil_peak_mb": round(sampler.peak_mb, 1) if sampler.peak_mb is not None else None,
        "psutil_samples": sampler.samples,
        "journal_mb": round(journal_mb, 1),
        **commits.row(count),
        "target_mb": TARGET_MB,
        "under_target": peak < TARGET_MB,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def report(row: dict[str, Any]) -> None:
    labels = [
        ("requests", f"{row['requests']:,}"),
        ("ok / failed", f"{row['ok']} / {row['failed']}"),
        ("batches", str(row["batches"])),
        ("wall time", f"{row['wall_s']:.2f} s ({row['requests_per_s']:,.0f} requests/s)"),
        ("peak RSS (ru_maxrss)", f"{row['ru_maxrss_mb']:.1f} MB"),
        ("  before the run", f"{row['ru_maxrss_before_run_mb']:.1f} MB"),
        (
            "peak RSS (psutil, sampled)",
            "n/a" if row["psutil_peak_mb"] is None else f"{row['psutil_peak_mb']:.1f} MB",
        ),
        (
            "  baseline",
            "n/a" if row["psutil_baseline_mb"] is None else f"{row['psutil_baseline_mb']:.1f} MB",
        ),
        ("journal on disk", f"{row['journal_mb']:.1f} MB"),
        (
            "journal commits",
            "n/a" if row["commits"] is None else f"{row['commits']:,}: {row['commit_s']:.2f} s",
        ),
        (
            "journal syncs (checkpoints)",
            "n/a"
            if row["syncs"] is None
            else f"{row['syncs']:,}: {row['sync_s']:.2f} s ({row['sync_us_per_request']:.1f} µs "
            "a request)",
        ),
        ("target", f"< {TARGET_MB:.0f} MB: {'met' if row['under_target'] else 'MISSED'}"),
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for name, value in labels:
            print(f"{name:<28} {value}")
        return
    table = Table(title="Batch API, end to end (client process)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in labels:
        table.add_row(name, value)
    Console().print(table)


def journal_only(count: int, max_requests: int, repeat: int) -> dict[str, Any]:
    """The journal's own work for a job of ``count`` requests (best of ``repeat``)."""
    from ratelimit_llm.batch._journal import Journal
    from ratelimit_llm.batch._lines import LineOutcome
    from ratelimit_llm.batch._split import prepare

    limits = batch.BatchLimits(max_requests=max_requests)
    usage = {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28}
    walls = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            journal = Journal(Path(tmp) / "job.db")
            generation = journal.begin_ingest()
            page = []
            for position, body in enumerate(requests(count)):
                page.append(prepare(body, position, CHAT))
                if len(page) == 2_000:
                    journal.ingest(generation, page)
                    page = []
            if page:
                journal.ingest(generation, page)
            journal.finish_ingest(generation, complete=True)
            # Where the runner syncs: before each upload, create and deletion of files.
            sync = getattr(journal, "sync", lambda: None)
            number = 0
            while True:
                chunk = journal.plan_chunk(CHAT, "gpt-4o-mini", limits, f"n{number}")
                if chunk is None:
                    break
                number += 1
                batch_id = f"batch_{number}"
                sync()
                for state in ("uploaded", "creating"):
                    journal.update_chunk(chunk.id, state=state)
                sync()
                journal.update_chunk(chunk.id, state="submitted", batch_id=batch_id)
                journal.update_chunk(chunk.id, state="collecting")
                ids = [
                    r[0]
                    for r in journal._db.execute(
                        "SELECT custom_id FROM requests WHERE chunk_id = ?", (chunk.id,)
                    )
                ]
                for start in range(0, len(ids), 1_000):
                    outcomes = [
                        LineOutcome(c, "ok", 200, {"id": c, "usage": usage}, None, usage)
                        for c in ids[start : start + 1_000]
                    ]
                    journal.apply(chunk.id, batch_id, outcomes, limits)
                journal.finish_chunk(chunk.id, batch_id, limits, expired=False)
                sync()
            journal.close()
            walls.append(time.perf_counter() - started)
    best = min(walls)
    return {
        "journal_only": True,
        "requests": count,
        "max_requests": max_requests,
        "chunks": number,
        "repeat": repeat,
        "best_s": round(best, 3),
        "median_s": round(sorted(walls)[len(walls) // 2], 3),
        "us_per_request": round(best / count * 1e6, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200_000, help="requests (200,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 requests")
    parser.add_argument(
        "--max-requests", type=int, default=50_000, help="requests per batch (50,000)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON")
    parser.add_argument(
        "--journal-only", action="store_true", help="time the journal alone (no server)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="with --journal-only: runs (5)")
    args = parser.parse_args(argv)
    count = 20_000 if args.quick else args.requests
    if count < 1:
        parser.error("--requests must be >= 1")
    if args.max_requests < 1:
        parser.error("--max-requests must be >= 1")
    if args.journal_only:
        if args.repeat < 1:
            parser.error("--repeat must be >= 1")
        row = journal_only(count, args.max_requests, args.repeat)
        print(json.dumps(row, indent=2))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "batch_journal.json").write_text(json.dumps(row, indent=2) + "\n")
        return 0
    row = measure(count, args.max_requests)
    report(row)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "batch_memory.json"
    path.write_text(json.dumps(row, indent=2) + "\n")
    print(f"wrote {path}")
    return 0 if row["ok"] + row["failed"] == count else 1


if __name__ == "__main__":
    sys.exit(main())
