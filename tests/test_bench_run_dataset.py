"""``benchmarks/run_dataset.py`` runs end to end at 2,000 requests and prints its figures.

No target is asserted (the machine may be busy, and 2,000 calls are inside the
limiter's first burst): only that both phases answer every request and the report
gives the throughput ratio and the peak RSS.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import run_dataset  # noqa: E402


def test_the_benchmark_completes_and_prints_both_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_dataset.main(["--requests", "2000", "--rpm", "600000", "--no-write"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"run\(\) .* \(2,000 ok, 0 failed\)", printed), printed
    assert re.search(r"wrap\(\) directly .* \(2,000 ok, 0 failed\)", printed), printed
    ratio = re.search(r"throughput ratio\s+(\d+\.\d+)", printed)
    rss = re.search(r"peak RSS\s+(\d+\.\d) MB", printed)
    assert ratio is not None and float(ratio.group(1)) > 0, printed
    assert rss is not None and float(rss.group(1)) > 0, printed


def test_the_input_file_is_batch_api_lines_with_distinct_ids(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    assert run_dataset.write_requests(path, 50) == path.stat().st_size
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len({line["custom_id"] for line in lines}) == 50
    assert all(line["url"] == "/v1/chat/completions" and line["body"] for line in lines)
