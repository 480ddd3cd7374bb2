"""The ``ratelimit-llm`` command: ``mock-server``, ``bench``, ``batch`` and ``run``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: ratelimit-llm COMMAND [options]

commands:
  mock-server   run the mock OpenAI server on a loopback port (prints its URL)
  bench         run the benchmark harness against the mock server
  batch         submit, watch, collect or cancel an OpenAI Batch API job
  run           run a JSONL file of requests online, through the Batch API, or both (resumable)

'ratelimit-llm COMMAND --help' shows a command's options."""

# What the mock server needs beyond the core install (the ``mock`` extra).
_MOCK_EXTRA = frozenset({"starlette", "uvicorn"})
_MOCK_MISSING = (
    "ratelimit-llm mock-server: {module} is not installed; the mock server needs the "
    "'mock' extra:\n    pip install 'ratelimit-llm[mock]'"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a sub-command; each lives with the part it runs."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "mock-server":
        try:
            from .mock._cli import main as mock_main
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in _MOCK_EXTRA:
                raise
            print(_MOCK_MISSING.format(module=missing), file=sys.stderr)
            return 1
        return mock_main(rest)
    if command == "bench":
        from .bench import main as bench_main

        return bench_main(rest)
    if command == "batch":
        from .batch._cli import main as batch_main

        return batch_main(rest)
    if command == "run":
        from .runs._cli import main as run_main

        return run_main(rest)
    print(f"ratelimit-llm: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
