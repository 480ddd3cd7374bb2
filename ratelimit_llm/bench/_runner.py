"""Run contenders against the mock server, one scenario at a time, and measure them.

The mock server runs in its own process (so its CPU is not the client's), one per
scenario, reset between contenders so each starts with full buckets and clean counters.
Throughput, 429s and retries are read from the server's own statistics, never taken
from a contender's claims; latency and client CPU are measured here, the same way for
everyone. Every run is bounded: calls still open at ``scenario.max_seconds`` are
cancelled and counted as unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from queue import Empty
from typing import Any

import openai

from .._clients import sdk_library
from ..mock import MockConfig, run_server
from ._contenders import CALL_TIMEOUT, Contender, RunContext
from ._workload import BackgroundLoad, Call, Scenario, ideal_seconds, mean_latency

__all__ = ["RunResult", "mock_server_process", "run_scenario"]

_STARTUP_TIMEOUT = 30.0


@dataclass
class RunResult:
    """Every figure of one contender on one scenario."""

    scenario: str
    contender: str
    skipped: str | None = None
    calls: int = 0
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    ideal_seconds: float = 0.0
    #: The ideal time of the calls that completed, over wall: 1.0 is as fast as the
    #: limits allow for the work that was done.
    efficiency: float = 0.0
    #: What the server admitted of the binding dimension, over what it could have.
    goodput: float = 0.0
    binding: str = ""
    #: Seen by the server.
    server_requests: int = 0
    server_429s: int = 0
    #: Of those, the ones in the run's first five seconds (a cold start's refusals).
    server_429s_first5: int = 0
    server_429s_by_reason: dict[str, int] = field(default_factory=dict)
    server_retries: int = 0
    latency_p50: float = 0.0
    latency_p95: float = 0.0
    #: Per priority lane of the scenario's calls (`Call.lane`): 95th percentile of the
    #: time from a call's arrival to its answer, over the lane's completed calls.
    lane_latency_p95: dict[str, float] = field(default_factory=dict)
    cpu_seconds_per_1k: float = 0.0
    tokens_estimated: float | None = None
    tokens_actual: float | None = None
    server_tokens_charged: float = 0.0
    server_tokens_used: float = 0.0
    #: Accepted (requests, tokens) per second of the run, from the server's timeline.
    timeline: list[tuple[int, int, int]] = field(default_factory=list)
    #: When each call that completed did, in seconds from the start, in order.
    finish_times: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _serve_in_child(config: MockConfig, queue: Any) -> None:
    run_server(config, host="127.0.0.1", port=0, on_ready=lambda server: queue.put(server.url))


@contextlib.contextmanager
def mock_server_process(config: MockConfig) -> Any:
    """Run the mock server in a child process on a free loopback port; yields its URL."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_serve_in_child, args=(config, queue), daemon=True)
    process.start()
    try:
        yield _wait_for_url(process, queue)
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
        queue.close()


def _wait_for_url(process: Any, queue: Any) -> str:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            return str(queue.get(timeout=0.2))
        except Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"the mock server process exited (code {process.exitcode}) before it was "
                    "ready; a script that runs the benchmark must guard its entry point with "
                    "'if __name__ == \"__main__\":' (multiprocessing's spawn re-imports it)"
                ) from None
    raise RuntimeError(f"the mock server did not start within {_STARTUP_TIMEOUT:g} s")


async def run_scenario(
    scenario: Scenario,
    contenders: Sequence[Contender],
    *,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[RunResult]:
    """Run every contender on ``scenario``; returns one result each (skips included)."""
    results: list[RunResult] = []
    with mock_server_process(scenario.server) as url:
        for contender in contenders:
            reason = _skip_reason(scenario, contender)
            if reason is not None:
                results.append(RunResult(scenario.name, contender.name, skipped=reason))
                continue
            results.append(await _run_one(scenario, contender, url, on_progress))
    return results


def _skip_reason(scenario: Scenario, contender: Contender) -> str | None:
    if scenario.only and contender.name not in scenario.only:
        return "not meant for this scenario"
    return contender.skip_reason(scenario)


async def _run_one(
    scenario: Scenario,
    contender: Contender,
    url: str,
    on_progress: Callable[[str, int, int], None] | None,
) -> RunResult:
    origin = url.removesuffix("/v1")
    # The SDK's own HTTP library (httpx2 for openai 3.x, httpx before): no other needed.
    async with sdk_library().AsyncClient(timeout=30) as control:
        (await control.post(f"{origin}/mock/reset", json={"buckets": True})).raise_for_status()
    result = RunResult(scenario.name, contender.name, calls=len(scenario.calls))
    await contender.start(RunContext(url, scenario.keys, scenario.told, scenario))
    latencies: list[float] = []
    by_lane: dict[str, list[float]] = {}
    completed: list[Call] = []
    finished: list[float] = []
    errors: Counter[str] = Counter()
    finished_at = 0.0
    background_sent = 0
    loop = asyncio.get_running_loop()
    cpu_start = time.process_time()
    start = loop.time()

    async def one(call: Call) -> None:
        nonlocal finished_at
        began = loop.time()
        try:
            await contender.call(call)
        except Exception as error:
            errors[_error_name(error)] += 1
        else:
            latencies.append(loop.time() - began)
            if call.lane is not None:
                by_lane.setdefault(call.lane, []).append(loop.time() - began)
            completed.append(call)
            finished.append(loop.time() - start)
        finally:
            finished_at = max(finished_at, loop.time())
            if on_progress is not None:
                handled = len(latencies) + sum(errors.values())
                on_progress(contender.name, handled, len(scenario.calls))

    async def background(load: BackgroundLoad, until: asyncio.Event) -> None:
        nonlocal background_sent
        async with _background_client(url, scenario.keys[0]) as client:
            tasks: set[asyncio.Task[None]] = set()
            while not until.is_set():
                task = asyncio.ensure_future(_background_call(client, load))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                background_sent += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), 1 / load.per_second)
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    done = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    helper = (
        asyncio.ensure_future(background(scenario.background, done))
        if scenario.background is not None
        else None
    )
    try:
        async with asyncio.timeout(scenario.max_seconds):
            for call in scenario.calls:
                delay = start + call.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(call)))
            await asyncio.gather(*tasks)
    except TimeoutError:
        pass
    finally:
        unfinished = [task for task in tasks if not task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        done.set()
        if helper is not None:
            await helper
    cpu = time.process_time() - cpu_start
    accounting = contender.token_accounting()
    await contender.stop()
    cpu += contender.extra_cpu_seconds()
    async with sdk_library().AsyncClient(timeout=30) as control:
        server = (await control.get(f"{origin}/mock/stats")).json()

    result.completed = len(latencies)
    result.failed = sum(errors.values())
    result.unfinished = len(scenario.calls) - len(tasks) + len(unfinished)
    result.errors = dict(errors)
    result.wall_seconds = (finished_at - start) if not unfinished else scenario.max_seconds
    result.ideal_seconds = ideal_seconds(scenario)
    if result.wall_seconds:
        # Credit only the work done: dropping calls is no way to finish sooner.
        done_ideal = ideal_seconds(scenario, completed)
        result.efficiency = min(1.0, done_ideal / result.wall_seconds)
    result.server_requests = int(server["requests"])
    result.server_429s = int(server["rejected"])
    result.server_429s_by_reason = dict(server["rejected_by_reason"])
    result.server_retries = max(0, result.server_requests - background_sent - len(tasks))
    if latencies:
        result.latency_p50 = statistics.median(latencies)
        result.latency_p95 = _p95(latencies)
    result.lane_latency_p95 = {lane: _p95(values) for lane, values in sorted(by_lane.items())}
    handled = result.completed + result.failed
    result.cpu_seconds_per_1k = cpu / handled * 1_000 if handled else 0.0
    if accounting is not None:
        result.tokens_estimated, result.tokens_actual = accounting
    result.server_tokens_charged = float(server["tokens"]["charged"])
    result.server_tokens_used = float(server["tokens"]["used"])
    result.timeline = [
        (int(row["second"]), int(row["accepted"]), int(row["tokens_charged"]))
        for row in server["timeline"]
    ]
    result.server_429s_first5 = sum(
        int(row["rejected"]) for row in server["timeline"] if int(row["second"]) < 5
    )
    result.finish_times = sorted(round(at, 3) for at in finished)
    result.goodput, result.binding = _goodput(scenario, server, result.wall_seconds)
    return result


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _goodput(scenario: Scenario, server: dict[str, Any], wall: float) -> tuple[float, str]:
    """Admitted units of the binding dimension over what the limits allowed in ``wall``.

    Per-second buckets count as the per-minute ones do (a second's depth, then their
    rate); a server that limits calls in flight to N allowed N calls at once, then N
    more every mean latency of the workload's calls.
    """
    limits = scenario.server.limits
    keys = len(scenario.keys)
    share = 1.0 if limits.burst_seconds is None else limits.burst_seconds / 60.0
    best, binding = 0.0, ""
    if wall <= 0:
        return best, binding
    admitted = {"requests": float(server["accepted"]), "tokens": float(server["tokens"]["charged"])}
    for name, limit, window, depth in (
        ("requests", limits.rpm, 60.0, share),
        ("tokens", limits.tpm, 60.0, share),
        ("requests", limits.rps, 1.0, 1.0),
        ("tokens", limits.tps, 1.0, 1.0),
    ):
        if not limit:
            continue
        ceiling = keys * limit * depth + keys * limit / window * wall
        fraction = admitted[name] / ceiling
        if fraction > best:
            best, binding = fraction, name
    if limits.concurrency:
        places = keys * limits.concurrency
        allowed = places * (1 + wall / max(1e-9, mean_latency(scenario)))
        fraction = admitted["requests"] / allowed
        if fraction > best:
            best, binding = fraction, "in flight"
    return best, binding


def _error_name(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"{type(error).__name__}({error.status_code})"
    return type(error).__name__


@contextlib.asynccontextmanager
async def _background_client(url: str, key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0, timeout=CALL_TIMEOUT)
    try:
        yield client
    finally:
        await client.close()


async def _background_call(client: openai.AsyncOpenAI, load: BackgroundLoad) -> None:
    with contextlib.suppress(openai.APIError):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "b" * load.prompt_chars}],
            max_tokens=load.max_tokens,
        )
