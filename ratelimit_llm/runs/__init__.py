"""Run a whole dataset: online, through the Batch API, or both, resumable across kills.

One job model for both paths: a job is its inputs (a JSONL file or any iterable of
Batch API input lines, streamed), its journal (one SQLite file: every request, its
state and its final answer, whichever path gave it) and its output file (one line per
request, derived from the journal)::

    import ratelimit_llm

    client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=5_000, tpm=2_000_000)
    async with ratelimit_llm.run(
        client, "requests.jsonl", journal="job.db", out="results.jsonl",
        via="auto", deadline=6 * 3600, budget_usd=40.0,
    ) as job:
        async for result in job:
            ...

Killed, it resumes where it stopped: nothing answered is sent again, a call in flight
at the kill is sent again at most once, and the output holds each request once. See
``docs/runs.md``; the command is ``ratelimit-llm run``.
"""

from __future__ import annotations

from ._auto import AutoPolicy
from ._inputs import Shard
from ._output import OutputError
from ._run import Run, run
from ._types import RunError, RunProgress, RunResult, RunSummary

__all__ = [
    "AutoPolicy",
    "OutputError",
    "Run",
    "RunError",
    "RunProgress",
    "RunResult",
    "RunSummary",
    "Shard",
    "run",
]
