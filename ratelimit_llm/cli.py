"""The ``ratelimit-llm`` command: ``mock-server``, ``bench`` and ``batch``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: ratelimit-llm COMMAND [options]

commands:
  mock-server   run the mock OpenAI server on a loopback port (prints its URL)
  bench         run the benchmark harness against the mock server
  batch         submit, watch, collect or cancel an OpenAI Batch API job

'ratelimit-llm COMMAND --help' shows a command's options."""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a sub-command; each lives with the part it runs."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "mock-server":
        from .mock._cli import main as mock_main

        return mock_main(rest)
    if command == "bench":
        from .bench import main as bench_main

        return bench_main(rest)
    if command == "batch":
        from .batch._cli import main as batch_main

        return batch_main(rest)
    print(f"ratelimit-llm: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
