"""The rival "token-throttle": the PyPI package ``token-throttle`` (14.x), the closest peer.

token-throttle needs Python >= 3.12 and ratelimit-llm supports 3.11, so the library runs
in its own interpreter: ``benchmarks/setup_token_throttle.sh`` makes
``benchmarks/.venv-token-throttle`` with token-throttle and openai, and
``token_throttle_worker.py`` (run by that interpreter) drives the calls. The library is
used as its README shows (memory backend, request and token quotas per 60 s per model
family, ``reserve()`` an estimate then ``set_actual_usage`` from ``response.usage``);
only the token estimate is ours (characters / 4 instead of tiktoken, which downloads
its tables at run time). The SDK keeps its default retries, since token-throttle
neither reads headers nor handles 429s.

How it fits the harness, which hands out one call at a time: `TokenThrottle.start`
launches the worker with the *whole* scenario (calls and arrival times) and waits for it
to say it is ready; the worker's clock starts then, a fraction of a millisecond before
the runner's. The worker starts each call at its arrival time, times it, and reports
it on a line of its stdout; `TokenThrottle.call` just waits for that report. So the
latency the runner records is the worker's, plus the pipe hop back (well under a
millisecond). Throughput, 429s and retries come from the server, as for everyone.

One figure is not comparable: the runner measures CPU in its own process, which here
only reads the worker's reports. The worker's own CPU time for the run is in
`TokenThrottle.worker_summary` (``cpu_seconds``).

``TokenThrottle("token-throttle+redis", processes=4, redis_url=...)`` is the same with
several workers sharing one quota through token-throttle's Redis backend (the
"four-workers" scenario): the calls are dealt round-robin to the workers, which all
report "ready" and are then told "go" at once, so that their clocks start together.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

from ratelimit_llm.bench import Call, Contender, RunContext, Scenario

__all__ = ["TokenThrottle", "WorkerCallError", "venv_python"]

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venv-token-throttle"
#: Written by setup_token_throttle.sh once the installation has succeeded.
STAMP = VENV / ".token-throttle-installed"
WORKER = HERE / "token_throttle_worker.py"

#: Importing pydantic and the SDK in a cold interpreter can take a few seconds.
READY_TIMEOUT = 60.0
#: How long `stop` lets the worker finish on its own before killing it.
STOP_GRACE = 5.0
_LINE_LIMIT = 64 * 1024 * 1024


class WorkerCallError(Exception):
    """A call that failed in the worker; its subclasses are named after the worker's error."""


@functools.cache
def _error_type(name: str) -> type[WorkerCallError]:
    # The runner tallies errors by class name, so carry the worker's name over
    # ("RateLimitError(429)", "APIConnectionError", ...).
    return cast(type[WorkerCallError], type(name, (WorkerCallError,), {}))


def venv_python() -> Path | None:
    """The interpreter of ``benchmarks/.venv-token-throttle``, if it is set up."""
    for candidate in (VENV / "bin" / "python", VENV / "Scripts" / "python.exe"):
        if candidate.exists() and STAMP.exists():
            return candidate
    return None


def _is_312_or_newer(python: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; sys.exit(sys.version_info < (3, 12))"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.cache
def _python_312_exists() -> bool:
    """Whether setup_token_throttle.sh would find an interpreter (pyenv, then PATH)."""
    if sys.version_info >= (3, 12):
        return True
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = glob.glob(os.path.join(root, "versions", "3.1[2-9].*", "bin", "python3.1[2-9]"))
    for name in ("python3.12", "python3.13", "python3.14", "python3"):
        path = shutil.which(name)
        if path is not None:
            found.append(path)
    return any(_is_312_or_newer(python) for python in found)


class TokenThrottle(Contender):
    """token-throttle in its worker process(es); see the module docstring."""

    def __init__(
        self, name: str = "token-throttle", *, processes: int = 1, redis_url: str | None = None
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes!r}")
        self.name = name
        self.processes = processes
        self.redis_url = redis_url
        self._workers: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._outcomes: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._estimated = 0.0
        self._actual = 0.0
        #: Each worker's last line: counts, latencies, its CPU seconds and token totals.
        self.worker_summaries: list[dict[str, Any]] = []

    @property
    def worker_summary(self) -> dict[str, Any] | None:
        """The (first) worker's summary line, once it has arrived."""
        return self.worker_summaries[0] if self.worker_summaries else None

    def skip_reason(self, scenario: Scenario) -> str | None:
        if venv_python() is not None:
            return None
        if _python_312_exists():
            return (
                "needs Python >= 3.12 with token-throttle installed: run scripts/bench, "
                "which sets it up (benchmarks/setup_token_throttle.sh)"
            )
        return "no Python >= 3.12 found"

    async def start(self, context: RunContext) -> None:
        python = venv_python()
        if python is None:
            raise RuntimeError(self.skip_reason(context.scenario) or "token-throttle missing")
        scenario = context.scenario
        ordered = sorted(scenario.calls, key=lambda c: c.at)
        shares = [ordered[n :: self.processes] for n in range(self.processes)]
        job: dict[str, Any] = {
            "base_url": context.base_url,
            "keys": list(context.keys),
            "rpm": context.told.rpm,
            "tpm": context.told.tpm,
            "burst_seconds": context.told.burst_seconds,
            "max_seconds": scenario.max_seconds,
            "wait_for_go": True,
        }
        if self.redis_url is not None:
            # A prefix of its own per run: the shared quota starts full, as the server does.
            job["redis_url"] = self.redis_url
            job["key_prefix"] = f"tt-bench-{uuid.uuid4().hex[:12]}"
        loop = asyncio.get_running_loop()
        self._estimated = self._actual = 0.0
        self.worker_summaries = []
        self._stderr.clear()
        self._outcomes = {call.index: loop.create_future() for call in scenario.calls}
        try:
            for share in shares:
                calls = [
                    {"index": c.index, "at": c.at, "endpoint": c.endpoint, "body": c.body}
                    for c in share
                ]
                process = await asyncio.create_subprocess_exec(
                    str(python),
                    str(WORKER),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    limit=_LINE_LIMIT,
                )
                self._workers.append(process)
                assert process.stdin is not None and process.stderr is not None
                self._readers.append(asyncio.ensure_future(self._read_stderr(process.stderr)))
                process.stdin.write(json.dumps({**job, "calls": calls}).encode() + b"\n")
                await process.stdin.drain()
            async with asyncio.timeout(READY_TIMEOUT):
                for process in self._workers:
                    assert process.stdout is not None
                    line = await process.stdout.readline()
                    if not line or json.loads(line).get("event") != "ready":
                        raise RuntimeError(
                            f"token-throttle worker did not start: {self._last_words()}"
                        )
            for process, share in zip(self._workers, shares, strict=True):
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(b"go\n")
                await process.stdin.drain()
                process.stdin.close()
                indices = [call.index for call in share]
                reader = self._read_reports(process.stdout, indices)
                self._readers.append(asyncio.ensure_future(reader))
        except BaseException:
            await self.stop()
            raise

    async def call(self, call: Call) -> None:
        report = await self._outcomes[call.index]
        if not report["ok"]:
            error = str(report.get("error") or "WorkerError")
            raise _error_type(error)(f"call {call.index} failed in the token-throttle worker")

    def token_accounting(self) -> tuple[float, float] | None:
        # Summed from the per-call reports (over completed calls), which have all
        # arrived once every call has returned; the summary line may still be on its way.
        return self._estimated, self._actual

    def extra_cpu_seconds(self) -> float:
        # The calls ran in the workers' processes; their own CPU counts are in their summaries.
        return sum(float(s.get("cpu_seconds", 0.0)) for s in self.worker_summaries)

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        for process in workers:
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()  # a worker still waiting for "go" stops
        # The workers exit by themselves once their calls are done (or at max_seconds).
        for process in workers:
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        readers, self._readers = self._readers, []
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_pending("the token-throttle worker stopped")

    async def _read_reports(self, stdout: asyncio.StreamReader, indices: list[int]) -> None:
        while line := await stdout.readline():
            report = json.loads(line)
            event = report.get("event")
            if event == "summary":
                self.worker_summaries.append(report)
            elif event == "call":
                if report["ok"]:
                    self._estimated += float(report["estimated"])
                    self._actual += float(report["actual"])
                outcome = self._outcomes.get(int(report["index"]))
                if outcome is not None and not outcome.done():
                    outcome.set_result(report)
        self._fail_pending(f"the token-throttle worker exited: {self._last_words()}", indices)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    def _fail_pending(self, message: str, indices: list[int] | None = None) -> None:
        """Fail the calls still waiting (of one worker, given its ``indices``)."""
        chosen = (
            self._outcomes.values()
            if indices is None
            else (self._outcomes[index] for index in indices if index in self._outcomes)
        )
        for outcome in chosen:
            if not outcome.done():
                outcome.set_exception(RuntimeError(message))
                # Nobody may be waiting any more; don't warn about it at collection.
                outcome.exception()

    def _last_words(self) -> str:
        return " | ".join(self._stderr) or "(nothing on stderr)"
