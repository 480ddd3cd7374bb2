"""``ratelimit-llm mock-server``: run the mock on a loopback port from a shell.

Prints the base URL (``http://127.0.0.1:PORT/v1``) on one line as soon as the server
accepts connections, so a script can read it and point a client there, then serves
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._accounting import ChargeRule, max_rule, prompt_only_rule, sum_rule
from ._config import (
    PROFILES,
    BatchConfig,
    FaultKind,
    FaultPlan,
    FaultRule,
    KeyConfig,
    LatencyModel,
    MockConfig,
    MockLimits,
    OutputModel,
    Profile,
)
from ._server import MockServer, run_server

__all__ = ["build_config", "build_parser", "main"]

_RULES: dict[str, ChargeRule] = {"sum": sum_rule, "max": max_rule, "prompt": prompt_only_rule}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``prog`` is the subcommand as users type it)."""
    parser = argparse.ArgumentParser(
        prog="ratelimit-llm mock-server",
        description="Serve a mock OpenAI API with real rate-limit behaviour on a loopback port.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument("--rpm", type=int, default=500, help="requests per minute (0: unlimited)")
    limits.add_argument("--tpm", type=int, default=200_000, help="tokens per minute (0: unlimited)")
    limits.add_argument("--rpd", type=int, help="requests per day")
    limits.add_argument("--tpd", type=int, help="tokens per day")
    limits.add_argument("--project-tpm", type=int, help="project-wide tokens per minute")
    limits.add_argument("--rps", type=int, help="requests per second (Together's window)")
    limits.add_argument("--tps", type=int, help="tokens per second (Together's window)")
    limits.add_argument(
        "--input-tpm",
        type=int,
        help="input tokens per minute, limited apart (Anthropic, Fireworks)",
    )
    limits.add_argument(
        "--output-tpm",
        type=int,
        help="output tokens per minute, limited apart (charged as the profile says)",
    )
    limits.add_argument(
        "--concurrency", type=int, help="calls in flight at once per key (DeepSeek, TGI)"
    )
    limits.add_argument(
        "--in-flight-tokens",
        type=int,
        help="tokens the calls in flight may hold together (OpenRouter's in-flight budget)",
    )
    limits.add_argument(
        "--burst-seconds",
        type=float,
        help="quantized enforcement: buckets hold this many seconds' worth",
    )
    limits.add_argument(
        "--model-limit",
        action="append",
        default=[],
        metavar="MODEL:rpm=N,tpm=N",
        help="limits for one model or shared group (repeatable)",
    )
    limits.add_argument(
        "--shared-limit",
        action="append",
        default=[],
        metavar="GROUP=MODEL,MODEL",
        help="models that share one set of buckets (repeatable)",
    )
    limits.add_argument(
        "--limit-scope",
        choices=("key", "organization", "project"),
        default="key",
        help="what buckets are kept per",
    )
    limits.add_argument(
        "--charge-rule", choices=sorted(_RULES), default="sum", help="admission charge rule"
    )
    limits.add_argument(
        "--settle-to-usage", action="store_true", help="refund unused reservations after responses"
    )
    limits.add_argument(
        "--no-charge-failed",
        action="store_true",
        help="refused and failed requests do not spend a request slot",
    )
    limits.add_argument(
        "--quota-exhausted-key",
        action="append",
        default=[],
        metavar="KEY",
        help="an API key that always gets insufficient_quota (repeatable)",
    )

    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="openai",
        help="whose headers, refusals and behaviour the server has",
    )
    behaviour.add_argument(
        "--seed", type=int, default=0, help="seed for output, latency jitter and faults"
    )
    behaviour.add_argument(
        "--latency-ttft", type=float, default=0.3, help="base time to first token, seconds"
    )
    behaviour.add_argument(
        "--latency-per-prompt-token",
        type=float,
        default=0.00002,
        help="extra TTFT per prompt token, seconds",
    )
    behaviour.add_argument("--tokens-per-second", type=float, default=80.0, help="output speed")
    behaviour.add_argument(
        "--latency-jitter", type=float, default=0.2, help="relative jitter of TTFT and speed"
    )
    behaviour.add_argument(
        "--latency-scale", type=float, default=1.0, help="multiply every delay (0 = instant)"
    )
    behaviour.add_argument(
        "--min-output-tokens", type=int, default=8, help="shortest generated output"
    )
    behaviour.add_argument(
        "--default-max-tokens",
        type=int,
        default=256,
        help="output cap and reservation when a request sets none",
    )
    behaviour.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P | KIND@N[-M]",
        help="inject a fault with probability P or on request numbers N..M (repeatable); kinds: "
        + ", ".join(kind.value for kind in FaultKind),
    )
    behaviour.add_argument(
        "--slow-first-byte-seconds",
        type=float,
        default=10.0,
        help="delay of the slow_first_byte fault",
    )

    batch = parser.add_argument_group("batch API")
    batch.add_argument(
        "--batch-validation-seconds", type=float, default=0.1, help="time a batch validates"
    )
    batch.add_argument(
        "--batch-lines-per-second", type=float, default=10_000.0, help="lines each batch runs"
    )
    batch.add_argument(
        "--batch-finalizing-seconds", type=float, default=0.1, help="time a batch finalizes"
    )
    batch.add_argument(
        "--batch-cancel-seconds", type=float, default=0.1, help="time a batch stays cancelling"
    )
    batch.add_argument(
        "--batch-expiry-seconds",
        type=float,
        default=86_400.0,
        help="completion window: a batch still running this long after creation expires",
    )
    batch.add_argument(
        "--batch-max-requests", type=int, default=50_000, help="most lines in one batch"
    )
    batch.add_argument(
        "--batch-max-file-bytes", type=int, default=200_000_000, help="largest input file"
    )
    batch.add_argument(
        "--batch-max-embedding-inputs",
        type=int,
        default=50_000,
        help="most embedding inputs in one batch",
    )
    batch.add_argument(
        "--batch-token-limit",
        type=int,
        help="enqueued tokens each model's running batches may hold (default: unlimited)",
    )
    batch.add_argument(
        "--batch-model-token-limit",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="enqueued-token limit of one model (repeatable)",
    )
    batch.add_argument(
        "--batch-line-error-rate",
        type=float,
        default=0.0,
        help="share of batch lines answered with an error status",
    )
    batch.add_argument(
        "--batch-line-error-statuses",
        default="429,500",
        metavar="S,S",
        help="statuses those lines get",
    )
    batch.add_argument(
        "--batch-not-found-model",
        action="append",
        default=[],
        metavar="MODEL",
        help="batch lines for this model get 404 model_not_found (repeatable)",
    )
    batch.add_argument(
        "--batch-malformed-lines",
        type=int,
        default=0,
        help="result lines written truncated into each batch's output file",
    )

    network = parser.add_argument_group("network")
    network.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    network.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    return parser


def _parse_model_limit(text: str, burst: float | None) -> tuple[str, MockLimits]:
    model, sep, spec = text.partition(":")
    if not sep or not model:
        raise ValueError(f"bad --model-limit {text!r}; expected MODEL:rpm=N,tpm=N")
    values: dict[str, int] = {}
    for part in spec.split(","):
        name, eq, number = part.partition("=")
        if not eq:
            raise ValueError(f"bad --model-limit {text!r}; expected NAME=N pairs")
        values[name.strip()] = int(number)
    return model, MockLimits(burst_seconds=burst).updated(values)


def _parse_shared(text: str) -> tuple[str, tuple[str, ...]]:
    group, sep, models = text.partition("=")
    names = tuple(name.strip() for name in models.split(",") if name.strip())
    if not sep or not group or not names:
        raise ValueError(f"bad --shared-limit {text!r}; expected GROUP=MODEL,MODEL")
    return group, names


def _parse_token_limit(text: str) -> tuple[str, int]:
    model, sep, number = text.rpartition("=")
    if not sep or not model:
        raise ValueError(f"bad --batch-model-token-limit {text!r}; expected MODEL=N")
    return model, int(number)


def _batch_config(args: argparse.Namespace) -> BatchConfig:
    return BatchConfig(
        validation_seconds=args.batch_validation_seconds,
        lines_per_second=args.batch_lines_per_second,
        finalizing_seconds=args.batch_finalizing_seconds,
        cancel_seconds=args.batch_cancel_seconds,
        expiry_seconds=args.batch_expiry_seconds,
        max_requests_per_batch=args.batch_max_requests,
        max_file_bytes=args.batch_max_file_bytes,
        max_embedding_inputs=args.batch_max_embedding_inputs,
        enqueued_token_limit=args.batch_token_limit,
        model_enqueued_token_limits=dict(
            _parse_token_limit(text) for text in args.batch_model_token_limit
        ),
        line_error_rate=args.batch_line_error_rate,
        line_error_statuses=tuple(
            int(status) for status in args.batch_line_error_statuses.split(",") if status.strip()
        ),
        not_found_models=tuple(args.batch_not_found_model),
        malformed_output_lines=args.batch_malformed_lines,
    )


def build_config(args: argparse.Namespace) -> MockConfig:
    """The `MockConfig` the parsed arguments describe; raises `ValueError` on bad values."""
    burst = args.burst_seconds
    return MockConfig(
        limits=MockLimits(
            rpm=args.rpm or None,
            tpm=args.tpm or None,
            rpd=args.rpd,
            tpd=args.tpd,
            project_tpm=args.project_tpm,
            burst_seconds=burst,
            rps=args.rps,
            tps=args.tps,
            input_tpm=args.input_tpm,
            output_tpm=args.output_tpm,
            concurrency=args.concurrency,
            in_flight_tokens=args.in_flight_tokens,
        ),
        model_limits=dict(_parse_model_limit(text, burst) for text in args.model_limit),
        shared_limits=dict(_parse_shared(text) for text in args.shared_limit),
        limit_scope=args.limit_scope,
        keys={key: KeyConfig(insufficient_quota=True) for key in args.quota_exhausted_key},
        profile=Profile.named(args.profile),
        charge_rule=_RULES[args.charge_rule],
        settle_to_usage=args.settle_to_usage,
        charge_failed_requests=not args.no_charge_failed,
        seed=args.seed,
        latency=LatencyModel(
            ttft=args.latency_ttft,
            per_prompt_token=args.latency_per_prompt_token,
            tokens_per_second=args.tokens_per_second,
            jitter=args.latency_jitter,
            scale=args.latency_scale,
        ),
        output=OutputModel(
            min_tokens=args.min_output_tokens, default_max_tokens=args.default_max_tokens
        ),
        faults=FaultPlan(
            tuple(FaultRule.parse(text) for text in args.fault),
            slow_first_byte_seconds=args.slow_first_byte_seconds,
        ),
        batch=_batch_config(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ratelimit-llm mock-server``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already reported
        return exc.code if isinstance(exc.code, int) else 2
    try:
        config = build_config(args)
    except (TypeError, ValueError) as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2

    def ready(server: MockServer) -> None:
        print(server.url, flush=True)

    try:
        run_server(config, host=args.host, port=args.port, on_ready=ready)
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
