"""The full benchmark: ratelimit-llm's own contenders side by side with the rival libraries.

Usage (same options as ``ratelimit-llm bench``)::

    python benchmarks/run.py [--quick] [--scenario NAME] [--contender NAME] [--out DIR]

It is ``ratelimit_llm.bench.main(argv, extra=rival_contenders())``. token-throttle runs
only when ``benchmarks/setup_token_throttle.sh`` has made its Python >= 3.12 venv;
otherwise the tables show it as skipped, with the reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ratelimit_llm.bench import main

# Run as a script: make this folder importable so that ``rivals`` resolves.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rivals import rival_contenders

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], extra=rival_contenders()))
