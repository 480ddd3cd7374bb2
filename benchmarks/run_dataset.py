"""`run` online over a 200,000-line JSONL file: peak memory, and its pace beside `wrap`.

The runner journals every request before it is sent and every answer before it is
written out, keeps a bounded window of calls in flight and reads its inputs in pages:
its memory should not grow with the job, and it should go as fast as the limiter lets
the same calls go without it. This measures both:

1. writes ``--requests`` small chat requests (default 200,000) as a JSONL file in a
   temporary directory;
2. **runner**: ``ratelimit_llm.run(client, file, journal=..., out=...)`` online, to the
   end, against the mock server in a child process (its memory is not counted), with
   limits high enough that the client's limiter (``--rpm``) is the pace, not the server;
3. **wrap**: the same requests from the same file, sent by ``--concurrency`` tasks
   through a fresh `ratelimit_llm.wrap` client with the same limits, answers dropped;
4. reports each phase's wall time and throughput, their ratio, and the client's peak
   RSS during the runner phase (``getrusage(RUSAGE_SELF).ru_maxrss``, imports included;
   the runner goes first, so the peak is its own; and RSS sampled every 50 ms with
   psutil when it is installed).

Targets: peak RSS under 200 MB; runner throughput within 10 % of `wrap`'s.

The pace, ``--rpm`` (default 9,000: 150 calls a second after the first minute's burst),
must stay below what the client process can send at all: through the SDK, each call
costs about 3 ms of CPU in this process (``us CPU each`` in the report), so one core
tops out near 300 calls a second, and a faster pace would measure the CPU, not the
runner. At the default, 200,000 requests take about 22 minutes a phase.

Run ``python benchmarks/run_dataset.py`` (``--requests N`` for another size); it prints a
table and, unless ``--no-write``, writes ``benchmarks/results/run_dataset.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openai
from _memory import RssSampler, max_rss_mb

import ratelimit_llm
from ratelimit_llm.bench._runner import mock_server_process
from ratelimit_llm.mock import LatencyModel, MockConfig, MockLimits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KEY = "sk-bench-runsrunsrunsruns0042"
CHAT = "/v1/chat/completions"
TARGET_MB = 200.0
TARGET_RATIO = 0.90
#: The default pace: below the client's own ceiling (see the module docstring).
DEFAULT_RPM = 9_000.0


def requests(count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {
            "custom_id": f"req-{i:07d}",
            "method": "POST",
            "url": CHAT,
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Summarize item {i} in one line."}],
                "max_tokens": 16,
            },
        }


def write_requests(path: Path, count: int) -> int:
    with path.open("w", encoding="utf-8") as out:
        for item in requests(count):
            out.write(json.dumps(item, separators=(",", ":")) + "\n")
    return path.stat().st_size


def client_for(base_url: str, rpm: float, tpm: float) -> openai.AsyncOpenAI:
    base = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0)
    return ratelimit_llm.wrap(base, rpm=rpm, tpm=tpm)


async def through_run(
    base_url: str, source: Path, work: Path, rpm: float, tpm: float, concurrency: int
) -> dict[str, Any]:
    journal, out = work / "job.db", work / "results.jsonl"
    async with client_for(base_url, rpm, tpm) as client:
        started = time.perf_counter()
        async with ratelimit_llm.run(
            client, source, journal=journal, out=out, concurrency=concurrency
        ) as job:
            summary = await job.wait()
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "journal_mb": journal.stat().st_size / 1e6,
        "output_mb": out.stat().st_size / 1e6,
    }


async def through_wrap(
    base_url: str, source: Path, rpm: float, tpm: float, concurrency: int
) -> dict[str, Any]:
    succeeded = failed = 0
    async with client_for(base_url, rpm, tpm) as client:
        started = time.perf_counter()
        with source.open(encoding="utf-8") as handle:
            lines = iter(handle)

            async def worker() -> None:
                nonlocal succeeded, failed
                for raw in lines:  # one shared iterator: each line read by one task
                    body = json.loads(raw)["body"]
                    try:
                        await client.chat.completions.create(**body)
                        succeeded += 1
                    except openai.APIError:
                        failed += 1

            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "succeeded": succeeded, "failed": failed}


def measure(count: int, rpm: float, concurrency: int) -> dict[str, Any]:
    tpm = 1e12  # requests bind: the tokens never do
    config = MockConfig(
        limits=MockLimits(rpm=1_000_000_000, tpm=1_000_000_000_000),
        latency=LatencyModel(scale=0.05),
        seed=1,
    )
    with mock_server_process(config) as base_url, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "requests.jsonl"
        input_bytes = write_requests(source, count)
        rss_before = max_rss_mb()
        cpu = time.process_time()
        with RssSampler() as sampler:
            runner = anyio.run(through_run, base_url, source, work, rpm, tpm, concurrency)
        runner["cpu_seconds"] = time.process_time() - cpu
        runner["peak_rss_mb"] = max_rss_mb()
        runner["sampled_peak_rss_mb"] = sampler.peak_mb
        cpu = time.process_time()
        wrapped = anyio.run(through_wrap, base_url, source, rpm, tpm, concurrency)
        wrapped["cpu_seconds"] = time.process_time() - cpu
    for phase in (runner, wrapped):
        phase["per_second"] = count / phase["seconds"]
    return {
        "requests": count,
        "rpm": rpm,
        "concurrency": concurrency,
        "input_mb": input_bytes / 1e6,
        "rss_before_mb": rss_before,
        "runner": runner,
        "wrap": wrapped,
        "ratio": runner["per_second"] / wrapped["per_second"],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def report(payload: dict[str, Any]) -> str:
    runner, wrapped = payload["runner"], payload["wrap"]
    sampled = runner["sampled_peak_rss_mb"]
    rows = [
        f"requests           {payload['requests']:,} ({payload['input_mb']:.1f} MB of JSONL)",
        f"limiter pace       {payload['rpm']:,.0f} rpm = {payload['rpm'] / 60:,.0f}/s, "
        f"concurrency {payload['concurrency']}",
        f"run()              {runner['seconds']:8.1f} s  {runner['per_second']:8.0f}/s  "
        f"({runner['succeeded']:,} ok, {runner['failed']:,} failed), "
        f"{runner['cpu_seconds'] / payload['requests'] * 1e6:,.0f} us CPU each",
        f"wrap() directly    {wrapped['seconds']:8.1f} s  {wrapped['per_second']:8.0f}/s  "
        f"({wrapped['succeeded']:,} ok, {wrapped['failed']:,} failed), "
        f"{wrapped['cpu_seconds'] / payload['requests'] * 1e6:,.0f} us CPU each",
        f"throughput ratio   {payload['ratio']:.3f}  (run / wrap; target >= {TARGET_RATIO:.2f})",
        f"peak RSS           {runner['peak_rss_mb']:.1f} MB"
        + (f" (sampled {sampled:.1f} MB)" if sampled is not None else "")
        + f", {payload['rss_before_mb']:.1f} MB before the run (target < {TARGET_MB:.0f} MB)",
        f"journal, output    {runner['journal_mb']:.1f} MB, {runner['output_mb']:.1f} MB",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=200_000, help="lines (200,000)")
    parser.add_argument(
        "--rpm", type=float, default=DEFAULT_RPM, help=f"the limiter's pace ({DEFAULT_RPM:,.0f})"
    )
    parser.add_argument("--concurrency", type=int, default=256, help="calls in progress (256)")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON results")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.rpm <= 0:
        parser.error("--rpm must be > 0")
    payload = measure(args.requests, args.rpm, args.concurrency)
    print(report(payload))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "run_dataset.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
