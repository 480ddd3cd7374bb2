"""Several worker processes on one quota: the "four-workers" scenario and its contender.

A deployment often runs the same job in several processes (or pods) against one API key.
Each process then has its own client, and only a shared backend keeps them, together,
under the key's limits. `four_workers_scenario` is that situation; `ProcessWorkers`
runs ratelimit-llm in it: N worker processes, started with multiprocessing's ``spawn``,
each with its own ``wrap()``ped ``AsyncOpenAI`` on ``backend=<redis url>`` (one quota
for all) or on the default in-process memory backend (one quota *each*, for contrast).

How it fits the harness, which hands out one call at a time: `ProcessWorkers.start`
gives each worker its share of the scenario (calls dealt round-robin, with their
arrival times), waits until all are ready, then lets them go at once; each worker
starts each call at its arrival time and reports it on a queue, and
`ProcessWorkers.call` waits for that report. Throughput, 429s and retries come from the
mock server, as for every contender; latency is the worker's plus the queue hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import multiprocessing
import random
import threading
import time
import uuid
from dataclasses import dataclass
from queue import Empty
from typing import Any, Literal, cast

import openai

from .._types import Limits
from .._wrap import transport_of, wrap
from ..mock import MockLimits
from ._contenders import CALL_TIMEOUT, Contender, RunContext, perform
from ._workload import Call, Scenario, _chat, _server

__all__ = ["ProcessWorkers", "WorkerCallError", "four_workers_scenario"]

#: Spawning a few interpreters that import the SDK takes seconds on a small machine.
READY_TIMEOUT = 90.0
#: How long `ProcessWorkers.stop` lets the workers finish on their own before killing them.
STOP_GRACE = 15.0


def four_workers_scenario(seconds: float = 8.0, *, workers: int = 4) -> Scenario:
    """A backlog of mixed chat calls for ``workers`` processes sharing one key's quota.

    The server enforces its per-minute limits over one-second buckets (so the run is
    about the steady rate, not a minute's opening burst) and every contender is told
    exactly that. ``seconds`` is about how long the limit needs for the backlog.
    """
    rpm, tpm, burst = 1_200, 240_000, 1.0
    rng = random.Random(9)
    # Average admission charge of the mix: ~220 prompt tokens + ~175 output.
    average = 395.0
    count = max(4 * workers, math.ceil((tpm / 60 * burst + tpm / 60 * seconds) / average))
    calls = []
    for index in range(count):
        chars = rng.randint(200, 1_600)
        max_tokens = rng.randint(50, 300)
        calls.append(_chat(index, 0.0, rng, chars, max_tokens, False))
    return Scenario(
        "four-workers" if workers == 4 else f"{workers}-workers",
        f"{count} mixed calls split over {workers} worker processes on one key; TPM binding",
        _server(MockLimits(rpm=rpm, tpm=tpm, burst_seconds=burst)),
        Limits(rpm=rpm, tpm=tpm, burst_seconds=burst),
        tuple(calls),
        max_seconds=max(60.0, 6 * seconds),
    )


class WorkerCallError(Exception):
    """A call that failed in a worker; its subclasses are named after the worker's error."""


@functools.cache
def _error_type(name: str) -> type[WorkerCallError]:
    # The runner tallies errors by class name: carry the worker's name over.
    return cast(type[WorkerCallError], type(name, (WorkerCallError,), {}))


@dataclass(frozen=True)
class _Job:
    """One worker's share of a run (plain data: it crosses into a spawned process)."""

    worker: int
    base_url: str
    key: str
    told: dict[str, Any]
    redis_url: str | None
    namespace: str
    max_seconds: float
    calls: tuple[tuple[int, float, str, dict[str, Any]], ...]


def _error_name(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"{type(error).__name__}({error.status_code})"
    return type(error).__name__


def run_worker(job: _Job, queue: Any, go: Any) -> None:
    """A worker process's entry point (module level, so that ``spawn`` can import it)."""
    try:
        asyncio.run(_work(job, queue, go))
    except BaseException as error:
        queue.put(("crash", job.worker, f"{type(error).__name__}: {error}"))
        raise


async def _work(job: _Job, queue: Any, go: Any) -> None:
    from ..backends import Backend, MemoryBackend, RedisBackend

    backend: Backend = (
        MemoryBackend()
        if job.redis_url is None
        else RedisBackend(job.redis_url, namespace=job.namespace)
    )
    base = openai.AsyncOpenAI(api_key=job.key, base_url=job.base_url, timeout=CALL_TIMEOUT)
    client = wrap(base, limits=Limits(**job.told), backend=backend)
    transport = transport_of(client)
    loop = asyncio.get_running_loop()
    queue.put(("ready", job.worker))
    # The parent lets every worker go at once; if it never does, give up (bounded).
    if not await loop.run_in_executor(None, go.wait, READY_TIMEOUT):
        await client.close()
        return
    cpu_start = time.process_time()
    start = loop.time()

    def tokens() -> tuple[float, float]:
        stats = transport.statistics()
        return sum(s.tokens_estimated for s in stats), sum(s.tokens_actual for s in stats)

    async def one(index: int, endpoint: str, body: dict[str, Any]) -> None:
        began = loop.time()
        call = Call(index, 0.0, cast(Literal["chat", "embeddings"], endpoint), body)
        try:
            await perform(client, call)
        except Exception as error:
            outcome: tuple[bool, str | None] = (False, _error_name(error))
        else:
            outcome = (True, None)
        queue.put(("call", job.worker, index, *outcome, loop.time() - began, *tokens()))

    tasks: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(job.max_seconds):
            for index, at, endpoint, body in job.calls:
                delay = start + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(index, endpoint, body)))
            await asyncio.gather(*tasks)
    except TimeoutError:
        pass  # the parent counts what is still open as unfinished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The last settles reach the shared quota before the process goes.
        for limiter in transport.limiters().values():
            await limiter.aclose()
        await client.close()
        if isinstance(backend, RedisBackend):
            await backend.aclose()
    queue.put(("summary", job.worker, time.process_time() - cpu_start))


class ProcessWorkers(Contender):
    """ratelimit-llm in ``processes`` worker processes; see the module docstring.

    :param backend: ``"redis"`` (one quota in the Redis at ``redis_url``, shared by all
        workers) or ``"memory"`` (each worker has its own in-process quota).
    """

    def __init__(
        self,
        name: str,
        *,
        backend: Literal["redis", "memory"],
        redis_url: str | None = None,
        processes: int = 4,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes!r}")
        self.name = name
        self.backend = backend
        self.redis_url = redis_url
        self.processes = processes
        self._workers: list[Any] = []
        self._queue: Any = None
        self._go: Any = None
        self._pump: threading.Thread | None = None
        self._pumping = threading.Event()
        self._outcomes: dict[int, asyncio.Future[tuple[bool, str | None]]] = {}
        self._owner: dict[int, int] = {}
        self._ready: set[int] = set()
        self._tokens: dict[int, tuple[float, float]] = {}
        self._cpu: dict[int, float] = {}
        self._crashes: list[str] = []

    def skip_reason(self, scenario: Scenario) -> str | None:
        if len(scenario.keys) != 1:
            return "runs one key per worker set"
        if self.backend == "redis":
            if self.redis_url is None:
                return "no Redis server to share the quota through"
            try:
                import redis  # noqa: F401
            except ImportError:
                return "needs the redis package (pip install 'ratelimit-llm[redis]')"
        return None

    async def start(self, context: RunContext) -> None:
        if self.backend == "redis" and self.redis_url is None:
            raise RuntimeError("ProcessWorkers(backend='redis') needs redis_url")
        loop = asyncio.get_running_loop()
        mp = multiprocessing.get_context("spawn")
        self._queue, self._go = mp.Queue(), mp.Event()
        self._ready.clear()
        self._tokens.clear()
        self._cpu.clear()
        self._crashes.clear()
        self._owner.clear()
        scenario = context.scenario
        self._outcomes = {call.index: loop.create_future() for call in scenario.calls}
        # A namespace of its own per run: the shared quota starts full, as the server does.
        namespace = f"bench-{uuid.uuid4().hex[:12]}"
        told = {
            "rpm": context.told.rpm,
            "tpm": context.told.tpm,
            "rpd": context.told.rpd,
            "tpd": context.told.tpd,
            "burst_seconds": context.told.burst_seconds,
        }
        shares: list[list[tuple[int, float, str, dict[str, Any]]]] = [
            [] for _ in range(self.processes)
        ]
        for position, call in enumerate(sorted(scenario.calls, key=lambda c: c.at)):
            worker = position % self.processes
            shares[worker].append((call.index, call.at, call.endpoint, call.body))
            self._owner[call.index] = worker
        self._pumping.clear()
        self._pump = threading.Thread(
            target=self._read_queue, args=(loop, self._queue), daemon=True
        )
        self._pump.start()
        self._workers = []
        for worker, share in enumerate(shares):
            job = _Job(
                worker=worker,
                base_url=context.base_url,
                key=context.keys[0],
                told=told,
                redis_url=self.redis_url if self.backend == "redis" else None,
                namespace=namespace,
                # A little past the runner's own bound: the runner counts the unfinished.
                max_seconds=scenario.max_seconds + 2.0,
                calls=tuple(share),
            )
            process = mp.Process(target=run_worker, args=(job, self._queue, self._go), daemon=True)
            process.start()
            self._workers.append(process)
        try:
            deadline = loop.time() + READY_TIMEOUT
            while len(self._ready) < self.processes:
                if self._crashes or not all(p.is_alive() for p in self._workers):
                    raise RuntimeError(f"a worker did not start: {self._last_words()}")
                if loop.time() > deadline:
                    raise RuntimeError(f"workers not ready in {READY_TIMEOUT:g} s")
                await asyncio.sleep(0.05)
        except BaseException:
            await self.stop()
            raise
        self._go.set()

    async def call(self, call: Call) -> None:
        ok, error = await self._outcomes[call.index]
        if not ok:
            raise _error_type(error or "WorkerError")(f"call {call.index} failed in a worker")

    def token_accounting(self) -> tuple[float, float] | None:
        # Each report carries its worker's running totals; all are in once every call is.
        if not self._tokens:
            return None
        return (
            sum(estimated for estimated, _ in self._tokens.values()),
            sum(actual for _, actual in self._tokens.values()),
        )

    def extra_cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        if self._go is not None:
            self._go.set()  # a worker still waiting for it exits instead of hanging
        deadline = time.monotonic() + STOP_GRACE
        for process in workers:
            await asyncio.to_thread(process.join, max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5.0)
        pump, self._pump = self._pump, None
        if pump is not None:
            # Workers put their summaries just before exiting: let the pump pass them on.
            await asyncio.sleep(0.3)
            self._pumping.set()
            await asyncio.to_thread(pump.join, 5.0)
        await asyncio.sleep(0)  # deliveries the pump scheduled
        if self._queue is not None:
            with contextlib.suppress(Empty, OSError, EOFError, ValueError):
                while True:
                    self._deliver(self._queue.get_nowait())
            self._queue.close()
            self._queue = None
        self._fail_pending(f"the worker processes stopped: {self._last_words()}")

    # -- the parent's side of the queue ----------------------------------------------

    def _read_queue(self, loop: asyncio.AbstractEventLoop, queue: Any) -> None:
        while not self._pumping.is_set():
            try:
                message = queue.get(timeout=0.1)
            except Empty:
                continue
            except (EOFError, OSError, ValueError):
                return
            try:
                loop.call_soon_threadsafe(self._deliver, message)
            except RuntimeError:  # the loop is closed
                return

    def _deliver(self, message: tuple[Any, ...]) -> None:
        kind, worker = message[0], int(message[1])
        if kind == "ready":
            self._ready.add(worker)
        elif kind == "call":
            index, ok, error, _latency, estimated, actual = message[2:]
            self._tokens[worker] = (float(estimated), float(actual))
            outcome = self._outcomes.get(int(index))
            if outcome is not None and not outcome.done():
                outcome.set_result((bool(ok), error))
        elif kind == "summary":
            self._cpu[worker] = float(message[2])
        elif kind == "crash":
            self._crashes.append(f"worker {worker}: {message[2]}")
            for index, owner in self._owner.items():
                if owner == worker:
                    self._fail(index, f"worker {worker} crashed: {message[2]}")

    def _fail(self, index: int, text: str) -> None:
        outcome = self._outcomes.get(index)
        if outcome is not None and not outcome.done():
            outcome.set_exception(RuntimeError(text))
            outcome.exception()  # nobody may be waiting any more: no warning at collection

    def _fail_pending(self, text: str) -> None:
        for index in list(self._outcomes):
            self._fail(index, text)

    def _last_words(self) -> str:
        return " | ".join(self._crashes) or "(no error reported)"
