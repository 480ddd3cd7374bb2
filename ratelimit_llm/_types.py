"""Value types: what a call costs (`Cost`) and what an account allows (`Limits`).

Both are immutable and validated at construction, so a bad number fails where the user
wrote it instead of deep inside the limiter. A `Limits` expands into named `Dimension`
objects; the bucket only ever sees dimensions, which is what lets one limiter hold
requests and tokens per minute, per-day windows and separate input/output token buckets
side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ._validate import check_type

__all__ = [
    "AUTO_CONCURRENCY",
    "AUTO_CONCURRENCY_START",
    "METRICS",
    "OPENING_SECONDS",
    "Cost",
    "Dimension",
    "Limits",
]

#: The quantities a dimension can count. ``input_tokens`` and ``output_tokens`` exist for
#: providers that meter them separately (Anthropic); OpenAI meters ``tokens``.
#: ``concurrency`` counts calls in flight: taken with the reservation, given back when the
#: call is over (`Reservation.finish`), never refilled by time.
METRICS: tuple[str, ...] = ("requests", "tokens", "input_tokens", "output_tokens", "concurrency")

#: Where ``Limits(concurrency="auto")`` may go at most, and where it starts probing from.
AUTO_CONCURRENCY = 1_024
AUTO_CONCURRENCY_START = 16

MINUTE = 60.0
DAY = 86_400.0

#: While a bucket's depth is unknown, about this many seconds' worth of each per-minute
#: limit may be spent at once (slow start; see `Limits`).
OPENING_SECONDS = 1.0


def _check_amount(name: str, value: float, *, allow_zero: bool = True) -> float:
    # Fast path: a Cost is built for every call, so the common case is checked first.
    if (type(value) is float or type(value) is int) and (
        0 < value < math.inf or (allow_zero and value == 0)
    ):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Cost:
    """What one call spends, in every metric at once.

    ``tokens`` is the total the server charges against TPM (prompt plus reserved output).
    ``input_tokens`` and ``output_tokens`` are the two parts of it; they are only needed
    where a provider meters them separately, and when left out a dimension counting them
    is charged the whole of ``tokens`` (the safe side).

    Example::

        Cost(requests=1, tokens=1_500)
        Cost(tokens=1_200, input_tokens=200, output_tokens=1_000)
    """

    requests: float = 1
    tokens: float = 0
    input_tokens: float | None = None
    output_tokens: float | None = None

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "requests", _check_amount("Cost.requests", self.requests))
        setter(self, "tokens", _check_amount("Cost.tokens", self.tokens))
        if self.input_tokens is not None:
            setter(self, "input_tokens", _check_amount("Cost.input_tokens", self.input_tokens))
        if self.output_tokens is not None:
            setter(self, "output_tokens", _check_amount("Cost.output_tokens", self.output_tokens))

    def amount(self, metric: str) -> float:
        """The amount this cost takes from a dimension counting ``metric``."""
        if metric == "requests":
            return self.requests
        if metric == "tokens":
            return self.tokens
        if metric == "input_tokens":
            return self.tokens if self.input_tokens is None else self.input_tokens
        if metric == "output_tokens":
            return self.tokens if self.output_tokens is None else self.output_tokens
        if metric == "concurrency":
            return self.requests  # each request is one call in flight
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented

        def part(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return Cost(
            requests=self.requests + other.requests,
            tokens=self.tokens + other.tokens,
            input_tokens=part(self.input_tokens, other.input_tokens),
            output_tokens=part(self.output_tokens, other.output_tokens),
        )


@dataclass(frozen=True, slots=True, init=False)
class Dimension:
    """One bucket: ``limit`` units of ``metric`` per ``window`` seconds.

    ``capacity`` is the largest amount the account is *stated* to allow at once (by
    you or by the server): a call costing more can never be granted and fails at once
    with `CapacityExceededError`. It defaults to the whole ``limit``; a server that
    enforces a minute's limit per second (OpenAI calls this *quantized* limits) is
    modelled with ``capacity = limit / 60``. The bucket refills continuously at
    ``limit / window`` units per second.

    ``opening`` turns on *slow start*: until the server has shown how deep the bucket
    really is, no more than ``opening`` units are granted at once (see
    ``docs/concepts.md``); ``None`` means the depth is known to be ``capacity``.
    `Limits` sets it to one second's worth of each per-minute limit unless you give
    ``burst_seconds``.

    Example::

        Dimension("requests/s", "requests", limit=10, window=1.0)
        Dimension("tokens/min", "tokens", limit=90_000, window=60.0, opening=1_500)
    """

    name: str
    metric: str
    limit: float
    window: float
    capacity: float
    opening: float | None

    def __init__(
        self,
        name: str,
        metric: str,
        limit: float,
        window: float,
        capacity: float | None = None,
        opening: float | None = None,
    ) -> None:
        check_type("Dimension.name", name, str)
        check_type("Dimension.metric", metric, str)
        if metric not in METRICS:
            raise ValueError(f"Dimension.metric must be one of {METRICS}, got {metric!r}")
        limit = _check_amount(f"Dimension {name!r}: limit", limit, allow_zero=False)
        if metric == "concurrency":
            # Calls in flight have no window: they come back when they end, not by time.
            window = math.inf
        else:
            window = _check_amount(f"Dimension {name!r}: window", window, allow_zero=False)
        if capacity is None:
            capacity = limit
        else:
            capacity = _check_amount(f"Dimension {name!r}: capacity", capacity, allow_zero=False)
        if opening is not None:
            opening = _check_amount(f"Dimension {name!r}: opening", opening, allow_zero=False)
            if opening >= capacity:
                opening = None  # an opening as deep as the bucket is no slow start at all
        setter = object.__setattr__
        setter(self, "name", name)
        setter(self, "metric", metric)
        setter(self, "limit", limit)
        setter(self, "window", window)
        setter(self, "capacity", capacity)
        setter(self, "opening", opening)

    @property
    def rate(self) -> float:
        """Refill rate in units per second (0 for calls in flight, which never refill)."""
        return self.limit / self.window

    @property
    def holding(self) -> bool:
        """Whether this dimension counts calls in flight (given back, not refilled)."""
        return self.metric == "concurrency"

    def resized(self, limit: float) -> Dimension:
        """The same dimension with a new ``limit``; capacity and opening keep their
        proportion to it."""
        share = limit / self.limit
        opening = None if self.opening is None else self.opening * share
        return Dimension(self.name, self.metric, limit, self.window, self.capacity * share, opening)


@dataclass(frozen=True, slots=True)
class Limits:
    """What an account (or key, or model) may spend.

    Per-minute limits (``rpm``, ``tpm`` and, for providers that meter them apart,
    ``input_tpm`` and ``output_tpm``) and optional per-day limits (``rpd``, ``tpd``).
    ``burst_seconds`` is how many seconds' worth of the per-minute limits the server
    lets you spend at once, if you know it. ``None`` (the default) means it is not
    known: the limiter *slow-starts*, granting about one second's worth
    (`OPENING_SECONDS`, never less than one call) until the server's first answers show
    the real depth (up to the whole minute, as OpenAI allows), so that a server that
    enforces its per-minute limits per second ("quantized") sees no refusal storm in
    the first second. ``60`` says the whole minute may be spent at once and skips the
    slow start; ``1.0`` says the server enforces a minute's limit per second.

    ``concurrency`` caps the calls in flight at once (DeepSeek caps calls in flight per
    account, TGI refuses past ``--max-concurrent-requests``). ``"auto"`` learns the cap:
    it starts at `AUTO_CONCURRENCY_START`, grows while answers come without refusal, and
    shrinks on a refusal that names concurrency or on latency that climbs while
    throughput does not (a server that queues, as vLLM does).

    Example::

        Limits(rpm=500, tpm=200_000)
        Limits(rpm=10_000, tpm=2_000_000, rpd=1_000_000, burst_seconds=1)
        Limits(rpm=3_000, concurrency=16)
    """

    rpm: float | None = None
    tpm: float | None = None
    rpd: float | None = None
    tpd: float | None = None
    input_tpm: float | None = None
    output_tpm: float | None = None
    burst_seconds: float | None = None
    concurrency: int | Literal["auto"] | None = None

    def __post_init__(self) -> None:
        named = ("rpm", "tpm", "rpd", "tpd", "input_tpm", "output_tpm")
        for name in named:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_amount(name, value, allow_zero=False))
        concurrency = self.concurrency
        if concurrency is not None and concurrency != "auto":
            if isinstance(concurrency, bool) or not isinstance(concurrency, int):
                raise TypeError(
                    f"concurrency must be an int, 'auto' or None, got {type(concurrency).__name__}"
                )
            if concurrency < 1:
                raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        if all(getattr(self, name) is None for name in named) and concurrency is None:
            raise ValueError(
                "Limits needs at least one of rpm, tpm, rpd, tpd, input_tpm, output_tpm, "
                "concurrency"
            )
        if self.burst_seconds is not None:
            burst = _check_amount("burst_seconds", self.burst_seconds, allow_zero=False)
            if burst > MINUTE:
                raise ValueError(f"burst_seconds must be at most 60, got {burst!r}")
            object.__setattr__(self, "burst_seconds", burst)

    def dimensions(self) -> tuple[Dimension, ...]:
        """The named dimensions these limits stand for, per-minute ones first.

        Without ``burst_seconds`` each per-minute dimension carries an ``opening`` of
        `OPENING_SECONDS` of its rate (at least one request), which is slow start.
        """
        share = 1.0 if self.burst_seconds is None else self.burst_seconds / MINUTE
        out: list[Dimension] = []
        for metric, limit in (
            ("requests", self.rpm),
            ("tokens", self.tpm),
            ("input_tokens", self.input_tpm),
            ("output_tokens", self.output_tpm),
        ):
            if limit is not None:
                opening = None
                if self.burst_seconds is None:
                    opening = limit / MINUTE * OPENING_SECONDS
                    if metric == "requests":
                        opening = max(1.0, opening)
                out.append(
                    Dimension(f"{metric}/min", metric, limit, MINUTE, limit * share, opening)
                )
        for metric, limit in (("requests", self.rpd), ("tokens", self.tpd)):
            if limit is not None:
                out.append(Dimension(f"{metric}/day", metric, limit, DAY))
        if self.concurrency == "auto":
            # Not stated: probe upwards from a few calls, as slow start does with a rate.
            out.append(
                Dimension(
                    "concurrency",
                    "concurrency",
                    AUTO_CONCURRENCY,
                    math.inf,
                    opening=AUTO_CONCURRENCY_START,
                )
            )
        elif self.concurrency is not None:
            out.append(Dimension("concurrency", "concurrency", self.concurrency, math.inf))
        return tuple(out)
