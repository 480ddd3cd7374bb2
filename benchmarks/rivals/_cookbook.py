"""The rival "cookbook": the algorithm of the OpenAI cookbook's parallel-request script.

``examples/api_request_parallel_processor.py`` in openai/openai-cookbook is the most
copied recipe for staying under OpenAI's limits. This module re-implements its
algorithm from a description of it (``peers.md`` section 4), not from its code:

* a request budget and a token budget, each starting full, refilled continuously at
  limit/60 per second and capped at one minute's worth;
* a single dispatcher loop that wakes every 1 ms and sends the next queued call when
  both budgets hold its estimated cost, at most one call per wake-up, retries first;
* the estimate is the prompt plus ``n x max_tokens`` (15 when ``max_tokens`` is
  absent, as in the original), charged up front and never refunded;
* after any rate-limit error the whole loop pauses 15 s; a failed call is queued again
  until it has had 5 attempts, then reported as failed.

Where it departs from the original, and why:

* The original sends with aiohttp; here the openai SDK is the sender, with
  ``max_retries=0`` so that every retry is the script's own. The SDK also covers the
  streaming and embeddings calls of the workloads.
* The original counts prompt tokens with tiktoken, which downloads its tables at run
  time; here the prompt is estimated as characters / 4.
* The original recognises a rate-limit error by ``error["code"] == "429"``, which
  OpenAI never sends (its ``code`` is ``"rate_limit_exceeded"``), so its 15 s pause
  likely never fires. Here it is detected properly: status 429 with code
  ``rate_limit_exceeded``. A 429 for ``insufficient_quota`` does not pause.
* The original reads one JSONL file for one key. With several keys, calls are dealt to
  the keys round-robin and each key has its own budget pair and dispatcher loop (as if
  the script ran once per key on its share of the work).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import openai

from ratelimit_llm.bench import Call, Contender, RunContext, perform
from ratelimit_llm.bench._contenders import sdk_clients

from .chars_estimate import estimate_tokens as shared_estimate

__all__ = ["Cookbook"]

#: The original's constants.
TICK_SECONDS = 0.001
PAUSE_AFTER_RATE_LIMIT_SECONDS = 15.0
MAX_ATTEMPTS = 5
DEFAULT_MAX_TOKENS = 15


def estimate_tokens(call: Call) -> int:
    """Prompt characters / 4 (rounded up), plus ``n x max_tokens`` for chat calls."""
    return shared_estimate(call.endpoint, call.body, DEFAULT_MAX_TOKENS)


def is_rate_limit_error(error: BaseException) -> bool:
    """A temporary rate-limit 429 (not an ``insufficient_quota`` one)."""
    return (
        isinstance(error, openai.APIStatusError)
        and error.status_code == 429
        and error.code == "rate_limit_exceeded"
    )


class _Budget:
    """One minute's worth of a limit, refilled continuously; ``None`` never runs out."""

    def __init__(self, per_minute: float | None, now: float) -> None:
        self._capacity = per_minute
        self._level = per_minute or 0.0
        self._updated = now

    def refill(self, now: float) -> None:
        if self._capacity is not None:
            gained = (now - self._updated) * self._capacity / 60.0
            self._level = min(self._capacity, self._level + gained)
        self._updated = now

    def holds(self, amount: float) -> bool:
        return self._capacity is None or self._level >= amount

    def take(self, amount: float) -> None:
        if self._capacity is not None:
            self._level -= amount


@dataclass(eq=False)
class _Job:
    call: Call
    cost: int
    future: asyncio.Future[int]
    attempts_left: int = MAX_ATTEMPTS


@dataclass(eq=False)
class _Lane:
    """One key: its client, its budget pair, its queues and its dispatcher."""

    client: openai.AsyncOpenAI
    requests: _Budget
    tokens: _Budget
    queue: collections.deque[_Job] = field(default_factory=collections.deque)
    retries: collections.deque[_Job] = field(default_factory=collections.deque)
    last_rate_limit: float = -math.inf
    dispatcher: asyncio.Task[None] | None = None


class Cookbook(Contender):
    """The cookbook's dispatcher loop; `call` enqueues and awaits the call's outcome."""

    name = "cookbook"

    def __init__(self) -> None:
        self._lanes: list[_Lane] = []
        self._next_lane: Iterator[_Lane] = iter(())
        self._sending: set[asyncio.Task[None]] = set()
        self._estimated = 0.0
        self._actual = 0.0

    async def start(self, context: RunContext) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._estimated = self._actual = 0.0
        self._lanes = [
            _Lane(client, _Budget(context.told.rpm, now), _Budget(context.told.tpm, now))
            for client in sdk_clients(context, max_retries=0)
        ]
        for lane in self._lanes:
            lane.dispatcher = asyncio.ensure_future(self._dispatch(lane))
        self._next_lane = itertools.cycle(self._lanes)

    async def call(self, call: Call) -> None:
        cost = estimate_tokens(call)
        job = _Job(call, cost, asyncio.get_running_loop().create_future())
        next(self._next_lane).queue.append(job)
        used = await job.future
        self._estimated += cost
        self._actual += used

    async def stop(self) -> None:
        tasks = [lane.dispatcher for lane in self._lanes if lane.dispatcher is not None]
        tasks.extend(self._sending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes:
            await lane.client.close()
        self._lanes = []
        self._sending.clear()

    def token_accounting(self) -> tuple[float, float] | None:
        # Over completed calls, each counted once (retries spend budget again, but the
        # call's estimate is the same each time).
        return self._estimated, self._actual

    async def _dispatch(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        pending: _Job | None = None
        while True:
            if pending is None:
                pending = _take(lane.retries) or _take(lane.queue)
            now = loop.time()
            lane.requests.refill(now)
            lane.tokens.refill(now)
            if pending is not None and lane.requests.holds(1) and lane.tokens.holds(pending.cost):
                lane.requests.take(1)
                lane.tokens.take(pending.cost)
                pending.attempts_left -= 1
                task = asyncio.ensure_future(self._send(lane, pending))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
                pending = None
            # One call per tick at most: the original's throughput ceiling.
            await asyncio.sleep(TICK_SECONDS)
            paused_for = lane.last_rate_limit + PAUSE_AFTER_RATE_LIMIT_SECONDS - loop.time()
            if paused_for > 0:
                await asyncio.sleep(paused_for)

    async def _send(self, lane: _Lane, job: _Job) -> None:
        try:
            used = await perform(lane.client, job.call)
        except Exception as error:
            if is_rate_limit_error(error):
                lane.last_rate_limit = asyncio.get_running_loop().time()
            if isinstance(error, openai.APIError) and job.attempts_left > 0:
                lane.retries.append(job)
            elif not job.future.done():
                job.future.set_exception(error)
        else:
            if not job.future.done():
                job.future.set_result(used)


def _take(queue: collections.deque[_Job]) -> _Job | None:
    """The next job whose caller still waits (the runner cancels calls at its deadline)."""
    while queue:
        job = queue.popleft()
        if not job.future.done():
            return job
    return None
