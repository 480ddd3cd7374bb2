"""The OpenAI Batch API, with a journal that survives any crash.

Half the price of the synchronous API for work that can wait up to 24 hours. Give it
requests; it splits them into batch files (one endpoint and model per file, 50,000 lines,
190 MB, 50,000 embedding inputs, a per-model enqueued-token budget), uploads them,
creates the batches, polls them adaptively, reads the output and error files line by
line and resubmits only what failed retryably or went missing. Every step is recorded in
an SQLite journal before it is taken, so a killed process resumes where it stopped,
with every request answered exactly once and no batch created twice. The journal is one
file (``job.db``: copy it alone and resume anywhere); one that is damaged is an error,
never a fresh start; and a run without its journal adopts the job's batches still on
the server instead of paying for them again::

    from ratelimit_llm import batch

    async for result in batch.run(client, bodies, journal="job.db",
                                  endpoint="/v1/chat/completions"):
        ...

    job = await batch.submit(client, bodies, journal="job.db", endpoint="/v1/embeddings")
    async for page in batch.results(client, job, chunk_size=500):
        ...
    print(batch.cost(job).summary())

See ``docs/batch.md``.
"""

from __future__ import annotations

from ._api import cancel, cost, results, run, status, submit
from ._cost import DEFAULT_PRICES, PRICES_AS_OF, BatchCost, ModelPrice, ModelUsage, PriceTable
from ._errors import (
    BatchError,
    BatchFailedError,
    DuplicateCustomIdError,
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalMismatchError,
    JournalNotFoundError,
)
from ._poll import AdaptivePoll, FixedPoll, PollPolicy
from ._runner import BatchStatistics, Checkpoint
from ._types import (
    BatchJob,
    BatchLimits,
    BatchLineError,
    BatchRequest,
    BatchResult,
    ChunkStatus,
    JobStatus,
)

__all__ = [
    "DEFAULT_PRICES",
    "PRICES_AS_OF",
    "AdaptivePoll",
    "BatchCost",
    "BatchError",
    "BatchFailedError",
    "BatchJob",
    "BatchLimits",
    "BatchLineError",
    "BatchRequest",
    "BatchResult",
    "BatchStatistics",
    "Checkpoint",
    "ChunkStatus",
    "DuplicateCustomIdError",
    "FixedPoll",
    "JobStatus",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalNotFoundError",
    "ModelPrice",
    "ModelUsage",
    "PollPolicy",
    "PriceTable",
    "cancel",
    "cost",
    "results",
    "run",
    "status",
    "submit",
]
