"""A batch client the SIGKILL test starts, kills and restarts (``python _kill_worker.py``).

Usage: ``python _kill_worker.py BASE_URL JOURNAL COUNT MAX_REQUESTS ENQUEUED_TOKENS``.
It runs `ratelimit_llm.batch.run` over ``COUNT`` small chat requests (custom_ids
``r-00000``...; about 17 estimated tokens each) in batches of at most ``MAX_REQUESTS``,
with at most ``ENQUEUED_TOKENS`` estimated tokens in unfinished batches, on the given
journal; it consumes every result and exits 0 once the job is finished. The journal is
the record: the worker writes nothing else. Run as a script (not imported), so it is its
own process and a SIGKILL takes nothing else down.

With ``KILL_AT=STEP:N`` in the environment it SIGKILLs itself at the ``N``-th durable
step named ``STEP`` (see `batch.Checkpoint`): a kill at an exact point, -wal and all.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openai

from ratelimit_llm import batch

KEY = "sk-test-batchbatchbatchbatch0042"
CHAT = "/v1/chat/completions"


def requests(count: int) -> Iterator[dict[str, Any]]:
    """The same inputs on every start: input-line dicts with fixed custom_ids."""
    for i in range(count):
        yield {
            "custom_id": f"r-{i:05d}",
            "method": "POST",
            "url": CHAT,
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Request number {i}."}],
                "max_tokens": 8,
            },
        }


def kill_at(spec: str | None) -> batch.Checkpoint | None:
    """A checkpoint that SIGKILLs this process at the ``N``-th step ``STEP`` (``STEP:N``)."""
    if not spec:
        return None
    step, _, nth = spec.partition(":")
    hits: Counter[str] = Counter()

    def checkpoint(name: str) -> None:
        hits[name] += 1
        if name == step and hits[name] == int(nth or "1"):
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


async def drive(base_url: str, journal: Path, count: int, max_requests: int, budget: int) -> int:
    """Run the job to its end; returns how many results this run yielded."""
    seen = 0
    client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=3, timeout=30.0)
    # Consumed to the end, so the generator closes itself (`run` is typed as an
    # AsyncIterator, which has no ``aclose``: `contextlib.aclosing` does not type-check).
    async with client:
        results = batch.run(
            client,
            requests(count),
            journal=journal,
            limits=batch.BatchLimits(max_requests=max_requests, enqueued_tokens=budget),
            poll=batch.FixedPoll(0.05),
            spool_dir=journal.parent,
            retry_backoff=0.05,
            checkpoint=kill_at(os.environ.get("KILL_AT")),
        )
        async for _ in results:
            seen += 1
    return seen


def main(argv: list[str]) -> int:
    base_url, journal, count, max_requests, budget = argv
    seen = anyio.run(drive, base_url, Path(journal), int(count), int(max_requests), int(budget))
    print(f"yielded {seen}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
