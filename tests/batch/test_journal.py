"""The journal on its own: ingest and resume, duplicates, planning, results, replays."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from ratelimit_llm.batch import (
    BatchLimits,
    BatchLineError,
    DuplicateCustomIdError,
    JournalMismatchError,
)
from ratelimit_llm.batch._journal import Journal
from ratelimit_llm.batch._lines import LineOutcome
from ratelimit_llm.batch._split import prepare

from ._support import CHAT, chat_bodies


def ingest(journal: Journal, items: list[Any], *, endpoint: str = CHAT) -> int:
    generation = journal.begin_ingest()
    journal.ingest(generation, [prepare(item, i, endpoint) for i, item in enumerate(items)])
    return journal.finish_ingest(generation, complete=True)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    opened = Journal(tmp_path / "job.db")
    yield opened
    opened.close()


def test_settings_and_schema(journal: Journal) -> None:
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "requests", "chunks", "budgets"} <= tables
    db.close()


def test_resume_with_the_same_inputs_adds_nothing(journal: Journal) -> None:
    bodies = list(chat_bodies(5))
    assert ingest(journal, bodies) == 5
    assert ingest(journal, bodies) == 5
    assert journal.count("pending") == 5


def test_a_duplicate_in_the_inputs_is_refused_and_rolled_back(journal: Journal) -> None:
    items = [
        {**body, "custom_id": "same" if i in (1, 3) else f"x{i}"}
        for i, body in enumerate(chat_bodies(4))
    ]
    with pytest.raises(DuplicateCustomIdError) as caught:
        ingest(journal, items)
    assert caught.value.custom_id == "same"
    assert journal.count() == 0  # nothing of the failed ingest stays


def test_a_duplicate_across_pages_is_found(journal: Journal) -> None:
    generation = journal.begin_ingest()
    journal.ingest(generation, [prepare({**b, "custom_id": "d"}, 0, CHAT) for b in chat_bodies(1)])
    with pytest.raises(DuplicateCustomIdError):
        journal.ingest(
            generation, [prepare({**b, "custom_id": "d"}, 1, CHAT) for b in chat_bodies(1)]
        )
    assert journal.count() == 0


def test_a_changed_body_on_resume_is_refused(journal: Journal) -> None:
    ingest(journal, list(chat_bodies(3)))
    changed = list(chat_bodies(3))
    changed[2]["max_tokens"] = 99
    with pytest.raises(DuplicateCustomIdError) as caught:
        ingest(journal, changed)
    assert caught.value.changed_body
    assert journal.count() == 3


def test_inputs_that_drop_requests_are_a_mismatch(journal: Journal) -> None:
    ingest(journal, list(chat_bodies(3)))
    with pytest.raises(JournalMismatchError):
        ingest(journal, list(chat_bodies(2)))
    assert ingest(journal, list(chat_bodies(4))) == 4  # adding is fine


def test_planning_groups_by_model_and_writes_the_file(journal: Journal) -> None:
    ingest(journal, [*chat_bodies(3), *chat_bodies(2, model="gpt-4o", start=3)])
    limits = BatchLimits(max_requests=2)
    first = journal.plan_chunk(CHAT, "gpt-4o-mini", limits, "n1")
    assert first is not None and first.requests == 2
    out = io.BytesIO()
    assert journal.write_chunk_file(first.id, out) == 2
    lines = [json.loads(line) for line in out.getvalue().decode().splitlines()]
    assert [line["custom_id"] for line in lines] == ["request-0", "request-1"]
    assert {line["body"]["model"] for line in lines} == {"gpt-4o-mini"}
    assert len(out.getvalue()) == first.bytes
    assert sorted(journal.pending_groups()) == [(CHAT, "gpt-4o"), (CHAT, "gpt-4o-mini")]


def test_the_token_budget_holds_chunks_back_until_room(journal: Journal) -> None:
    ingest(journal, list(chat_bodies(4)))
    per_request = journal.plan_chunk(CHAT, "gpt-4o-mini", BatchLimits(max_requests=1), "probe")
    assert per_request is not None
    journal.release_chunk(per_request.id, "abandoned")
    limits = BatchLimits(enqueued_tokens=per_request.tokens * 2)
    first = journal.plan_chunk(CHAT, "gpt-4o-mini", limits, "a")
    assert first is not None and first.requests == 2
    assert journal.plan_chunk(CHAT, "gpt-4o-mini", limits, "b") is None  # budget taken
    journal.update_chunk(first.id, state="collected")
    second = journal.plan_chunk(CHAT, "gpt-4o-mini", limits, "c")
    assert second is not None and second.requests == 2


def ok(custom_id: str) -> LineOutcome:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return LineOutcome(custom_id, "ok", 200, {"id": custom_id, "usage": usage}, None, usage)


def failure(custom_id: str, kind: Any, status: int | None = 500) -> LineOutcome:
    error = BatchLineError(status, "server_error", "boom", kind != "final")
    return LineOutcome(custom_id, kind, status, None, error, None)


def test_results_retries_and_missing_lines(journal: Journal) -> None:
    ingest(journal, list(chat_bodies(6)))
    limits = BatchLimits(max_retries=1)
    chunk = journal.plan_chunk(CHAT, "gpt-4o-mini", limits, "n")
    assert chunk is not None
    outcomes = [
        ok("request-0"),
        failure("request-1", "final", 400),
        failure("request-2", "retry"),
        failure("request-3", "expired", None),
        ok("nobody"),  # unknown custom_id: ignored
    ]
    assert journal.apply(chunk.id, "b1", outcomes, limits) == 4
    assert journal.apply(chunk.id, "b1", outcomes, limits) == 0  # a replay changes nothing
    assert journal.finish_chunk(chunk.id, "b1", limits, expired=False) == 2  # request-4, 5
    status = journal.status()
    assert (status.succeeded, status.failed, status.pending) == (1, 1, 4)
    results = {r.custom_id: r for page in journal.iter_done() for r in page}
    assert results["request-0"].response == {"id": "request-0", "usage": ok("x").usage}
    assert results["request-0"].batch_id == "b1"
    assert results["request-1"].error is not None and results["request-1"].error.status_code == 400
    assert journal.usage_by_model() == [("gpt-4o-mini", 2, 3, 2)]

    # Second round: the retry budget (1) is spent, so retryable errors become final.
    again = journal.plan_chunk(CHAT, "gpt-4o-mini", limits, "n2")
    assert again is not None and again.requests == 4
    journal.apply(again.id, "b2", [failure("request-2", "retry")], limits)
    journal.finish_chunk(again.id, "b2", limits, expired=False)
    status = journal.status()
    assert status.failed == 4  # request-1 (final), request-2, 4, 5 (budget spent)
    assert status.pending == 1  # request-3 expired: not charged to the retry budget
    missing = next(r for page in journal.iter_done() for r in page if r.custom_id == "request-4")
    assert missing.error is not None and missing.error.code == "missing_result"


def test_budget_halves_and_counts_lonely_failures(journal: Journal) -> None:
    assert journal.shrink_budget("m", float("inf"), 1_000, alone=False) == 0
    assert journal.budget("m", float("inf")) == 500
    assert journal.shrink_budget("m", float("inf"), 1_000, alone=True) == 1
    assert journal.budget("m", float("inf")) == 250
    assert journal.shrink_budget("m", float("inf"), 1, alone=True) == 2
    assert journal.budget("m", float("inf")) == 1  # never below one token
    journal.reset_failures("m")
    assert journal.shrink_budget("m", float("inf"), 1, alone=True) == 1


def test_ingest_throughput(journal: Journal) -> None:
    """Measures journal inserts per second (printed with -s); asserts a generous floor."""
    count = 20_000
    prepared = [prepare(body, i, CHAT) for i, body in enumerate(chat_bodies(count))]
    started = time.perf_counter()
    generation = journal.begin_ingest()
    for i in range(0, count, 2_000):
        journal.ingest(generation, prepared[i : i + 2_000])
    journal.finish_ingest(generation, complete=True)
    elapsed = time.perf_counter() - started
    print(f"journal ingest: {count / elapsed:,.0f} requests/s")
    assert count / elapsed > 5_000
