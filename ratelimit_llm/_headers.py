"""Read the server's rate-limit headers into one plain snapshot.

Every provider that speaks the OpenAI protocol reports its buckets a little differently:
OpenAI and Groq send ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with Go
durations, Azure sends bare seconds and ``-1`` sentinels (or only the ``remaining`` half),
Cerebras and Mistral put the window in the header name, Anthropic sends RFC 3339
timestamps under its own prefix, Together sends per-second limits under bare
``x-ratelimit-*`` and ``x-tokenlimit-*``, Fireworks its adaptive prompt and generated
token limits, OpenRouter a bare triplet with an epoch-millisecond reset on its own 429s,
and Azure's provisioned deployments a utilisation figure. This module turns all of them
into a list of `DimensionSnapshot` records so the limiter never has to know who answered.

A few headers mean different things to different servers (a bare ``x-ratelimit-limit``
is requests per second on Together, a platform cap on OpenRouter; Groq's requests
triplet is always per day). Those are read by the `Provider` dialect: named by the
caller, or recognised from headers only one provider sends (see `_providers`). Without
either, an ambiguous header is left unread rather than guessed at.

It runs on every response, so it does one pass over the headers with a precomputed table
of the names it knows, and it never raises on what a server sent: a header it cannot read
is dropped and logged at DEBUG (its name and a short repr of its value, nothing else).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple, TypeAlias

from ._durations import parse_duration
from ._providers import (
    SIGNATURE_NAMES,
    Provider,
    header_pairs,
    provider_from_header_names,
    to_provider,
)
from ._types import METRICS

__all__ = [
    "DimensionSnapshot",
    "HeadersLike",
    "RateLimitSnapshot",
    "parse_rate_limit_headers",
    "parse_retry_after",
]

#: What the parsers accept: a dict, an ``httpx.Headers`` / ``httpx2.Headers`` (both are
#: mappings) or a list of ``(name, value)`` pairs.
HeadersLike: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]

_log = logging.getLogger("ratelimit_llm.headers")

_SECOND, _MINUTE, _HOUR, _DAY = 1.0, 60.0, 3_600.0, 86_400.0
# Windows a server may plausibly use; an inferred window snaps to the nearest of these.
_KNOWN_WINDOWS: tuple[float, ...] = (_SECOND, 10.0, _MINUTE, _HOUR, _DAY)
_PERIODS: dict[str, float] = {"second": _SECOND, "minute": _MINUTE, "hour": _HOUR, "day": _DAY}


class _Spec(NamedTuple):
    """What one header name reports."""

    field: str  # "limit", "remaining" or "reset"
    metric: str
    scope: str
    window: float | None  # known from the name or the provider's documentation
    adaptive: bool = False  # the server moves this limit with our traffic


_Table: TypeAlias = dict[str, _Spec]


def _base_table() -> _Table:
    """The names that mean one thing whoever sends them."""
    table: _Table = {}
    metric_names = {
        "requests": "requests",
        "req": "requests",  # Mistral: x-ratelimit-limit-req-minute
        "tokens": "tokens",
        "input-tokens": "input_tokens",
        "output-tokens": "output_tokens",
    }
    for field in ("limit", "remaining", "reset"):
        prefix = f"x-ratelimit-{field}-"
        for name, metric in metric_names.items():
            table[prefix + name] = _Spec(field, metric, "", None)
            table[f"{prefix}project-{name}"] = _Spec(field, metric, "project", None)
            # Cerebras (requests-day, tokens-minute) and Mistral (tokens-minute).
            for period, window in _PERIODS.items():
                table[f"{prefix}{name}-{period}"] = _Spec(field, metric, "", window)
        # OpenAI 2023-2025 sent a second tokens triplet under this legacy name.
        table[prefix + "tokens_usage_based"] = _Spec(field, "tokens", "usage_based", None)
        # Anthropic meters requests, input and output tokens per minute (and "tokens",
        # the most restrictive of those in force); resets are RFC 3339 instants.
        for name in ("requests", "tokens", "input-tokens", "output-tokens"):
            anthropic = f"anthropic-ratelimit-{name}-{field}"
            table[anthropic] = _Spec(field, name.replace("-", "_"), "", _MINUTE)
        # Together: x-tokenlimit-* is tokens per second; the -dynamic pair is the
        # per-model "dynamic rate" above which it answers 429.
        table[f"x-tokenlimit-{field}"] = _Spec(field, "tokens", "", _SECOND, True)
        table[f"x-tokenlimit-{field}-dynamic"] = _Spec(field, "tokens", "dynamic", _SECOND, True)
        table[f"x-ratelimit-{field}-dynamic"] = _Spec(field, "requests", "dynamic", _SECOND, True)
    # Fireworks: the current effective (adaptive) limits, stated in tokens per second;
    # the cache-adjusted prompt limit counts uncached prompt tokens only.
    for field in ("limit", "remaining"):
        prefix = f"x-ratelimit-{field}-tokens-"
        table[prefix + "prompt"] = _Spec(field, "input_tokens", "", _SECOND, True)
        table[prefix + "generated"] = _Spec(field, "output_tokens", "", _SECOND, True)
        table[prefix + "cache-adjusted-prompt"] = _Spec(
            field, "input_tokens", "uncached", _SECOND, True
        )
    return table


def _dialect_tables(base: _Table) -> dict[Provider, _Table]:
    """The base table with each provider's readings of the ambiguous names on top."""
    bare = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
    together = dict(base)
    for name in bare:  # requests per second, moved with our traffic
        together[name] = _Spec(name.rsplit("-", 1)[1], "requests", "", _SECOND, True)
    openrouter = dict(base)
    for name in bare:  # a platform cap on its own 429s; its window is not stated
        openrouter[name] = _Spec(name.rsplit("-", 1)[1], "requests", "", None)
    groq = dict(base)
    for field in ("limit", "remaining", "reset"):  # "always" RPD and TPM, per its docs
        groq[f"x-ratelimit-{field}-requests"] = _Spec(field, "requests", "", _DAY)
        groq[f"x-ratelimit-{field}-tokens"] = _Spec(field, "tokens", "", _MINUTE)
    fireworks = dict(base)
    for field in ("limit", "remaining", "reset"):
        name = f"x-ratelimit-{field}-requests"
        fireworks[name] = base[name]._replace(adaptive=True)
    tables = {provider: base for provider in Provider}
    tables.update(
        {
            Provider.TOGETHER: together,
            Provider.OPENROUTER: openrouter,
            Provider.GROQ: groq,
            Provider.FIREWORKS: fireworks,
        }
    )
    return tables


_BASE: _Table = _base_table()
_TABLES: dict[Provider, _Table] = _dialect_tables(_BASE)
_BARE_RESET = "x-ratelimit-reset"
_UTILIZATION = "azure-openai-deployment-utilization"
_OVER_LIMIT = "x-ratelimit-over-limit"
_RETRY_AFTER_MS = "retry-after-ms"
_RETRY_AFTER = "retry-after"
_SHOULD_RETRY = "x-should-retry"
# The server's own clock: an HTTP-date retry-after is measured from it, not from ours.
_DATE = "date"

_WANTED: frozenset[str] = (
    frozenset(name for table in _TABLES.values() for name in table)
    | {_RETRY_AFTER_MS, _RETRY_AFTER, _SHOULD_RETRY, _UTILIZATION, _OVER_LIMIT, _DATE}
    | SIGNATURE_NAMES
)

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", re.ASCII)
_MAX_VALUE_LENGTH = 200
# Past these a reset is a point in time, not a span: 1e9 s is 31 years, and 1e12 is the
# same instant written in milliseconds.
_EPOCH_SECONDS = 1e9
_EPOCH_MILLIS = 1e12
# Real responses carry a few dozen headers; the cap only stops an endless iterable.
_MAX_HEADERS = 10_000


@dataclass(frozen=True, slots=True)
class DimensionSnapshot:
    """What the server said about one bucket, e.g. the organisation's tokens per minute.

    ``metric`` is one of ``requests``, ``tokens``, ``input_tokens`` (Anthropic's input,
    Fireworks' prompt) and ``output_tokens`` (Anthropic's output, Fireworks' generated).
    ``scope`` is ``""`` for the account's own bucket, ``"project"`` for OpenAI's project
    triplet, ``"usage_based"`` for its legacy one, ``"dynamic"`` for Together's dynamic
    rate and ``"uncached"`` for Fireworks' cache-adjusted prompt limit.

    ``limit`` and ``remaining`` are counts per ``window``. ``reset`` is the number of
    seconds until the bucket is *full* again (OpenAI's meaning), not until the next unit
    frees up. ``window`` is the bucket's period in seconds: known from the header name
    (Cerebras ``requests-day``) or the provider's documentation (Together's per-second
    limits, Groq's requests per day, Anthropic's per-minute ones), else inferred from
    ``reset * limit / (limit - remaining)`` and snapped to 1 s, 10 s, a minute, an hour or
    a day; `None` when neither works. Any value may be `None` when it was absent,
    unreadable or a sentinel (Azure's ``-1``).

    ``adaptive`` is true when the server moves this limit with our traffic (Together's
    dynamic rate, Fireworks' adaptive limits): the figure is what holds now, and it may
    grow with steady use or shrink after a burst.

    ``window_known`` is true when the window comes from the header name or the
    provider's documentation, so that ``limit`` is a count per that window (Together's
    10 requests per *second*); an inferred window only tells how fast the bucket refills,
    and ``limit`` keeps the server's own unit (OpenAI's per-minute limit, enforced in
    one-second slices, shows a window of about a second).
    """

    metric: str
    scope: str
    limit: float | None
    remaining: float | None
    reset: float | None
    window: float | None
    adaptive: bool = False
    window_known: bool = False

    @property
    def rate(self) -> float | None:
        """``limit / window``, units per second: comparable across windows; or `None`."""
        if self.limit is None or not self.window:
            return None
        return self.limit / self.window


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """Everything rate-limit related in one response's headers.

    ``dimensions`` holds one record per bucket that had at least one readable value, in a
    stable order (requests, tokens, input tokens, output tokens; the default scope first).
    ``retry_after`` is in seconds, from ``retry-after-ms`` or else ``retry-after``
    (seconds before an HTTP-date); ``retry_after_is_date`` says it came from an
    HTTP-date, the least trustworthy form (a wait in the 429 message is preferred to it).
    ``should_retry`` is the ``x-should-retry`` header, or `None` without one.

    ``provider`` is the dialect the headers were read in: the one the caller named, or
    the one recognised from the headers (`Provider.UNKNOWN` when neither).
    ``utilization`` is a provisioned (PTU) Azure deployment's
    ``azure-openai-deployment-utilization`` as a fraction (``0.235`` for ``23.5%``): a
    hint of how busy the deployment is, *never* a limit (Microsoft calls it unreliable;
    a PTU deployment starts refusing near 100 %). ``over_limit`` is Fireworks'
    ``x-ratelimit-over-limit``: true when we are above the adaptive limit and served at
    lower priority, a sign to slow down before the 429s start.
    """

    dimensions: tuple[DimensionSnapshot, ...] = ()
    retry_after: float | None = None
    should_retry: bool | None = None
    provider: Provider = Provider.UNKNOWN
    retry_after_is_date: bool = False
    utilization: float | None = None
    over_limit: bool | None = None

    def get(self, metric: str, scope: str = "") -> DimensionSnapshot | None:
        """The first dimension counting ``metric`` in ``scope``, or `None`."""
        for dimension in self.dimensions:
            if dimension.metric == metric and dimension.scope == scope:
                return dimension
        return None

    @property
    def is_empty(self) -> bool:
        """True when the headers said nothing about rate limits at all."""
        return (
            not self.dimensions
            and self.retry_after is None
            and self.should_retry is None
            and self.utilization is None
            and self.over_limit is None
        )


def parse_rate_limit_headers(
    headers: HeadersLike,
    *,
    wall_time: float | None = None,
    provider: Provider | str | None = None,
) -> RateLimitSnapshot:
    """Read every rate-limit header in ``headers`` into a `RateLimitSnapshot`.

    Names are case-insensitive. ``wall_time`` (Unix seconds, default `time.time()`) is
    "now" for the headers that give a point in time: Anthropic's RFC 3339 resets, epoch
    resets (OpenRouter's are in milliseconds) and an HTTP-date ``retry-after``.

    ``provider`` (a `Provider` or its name, e.g. ``"together"``) says whose dialect the
    headers are in; it decides the headers that mean different things to different
    servers: a bare ``x-ratelimit-limit`` is requests per second for Together and
    OpenRouter's platform cap, Groq's requests triplet is per day. Without it the
    provider is recognised from the headers themselves (``x-tokenlimit-*`` is Together,
    an epoch-millisecond bare reset OpenRouter, ``x-groq-region`` Groq, ...), and an
    ambiguous header from an unrecognised server is not read. Never raises on what the
    server sent; a ``provider`` that is neither a `Provider`, a known name nor `None`
    raises `TypeError` or `ValueError`.

    Example::

        snapshot = parse_rate_limit_headers(response.headers, provider="together")
        tokens = snapshot.get("tokens")
        if tokens is not None and tokens.remaining is not None: ...
    """
    named = to_provider(provider)
    found = _collect(headers)
    if not found:
        return RateLimitSnapshot(provider=named or Provider.UNKNOWN)
    now = time.time() if wall_time is None else wall_time
    dialect = named if named is not None else _recognise(found)
    table = _TABLES[dialect]
    raw: dict[tuple[str, str, float | None, bool], dict[str, float]] = {}
    for name, values in found.items():
        spec = table.get(name)
        if spec is None:
            continue
        value = _read_reset(values, now) if spec.field == "reset" else _read_number(values)
        if value is None:
            _log.debug("ignored header %s: %s", name, _short(values))
            continue
        raw.setdefault((spec.metric, spec.scope, spec.window, spec.adaptive), {})[spec.field] = (
            value
        )
    dimensions = [
        dimension
        for key, fields in raw.items()
        if (dimension := _dimension(key, fields)) is not None
    ]
    dimensions.sort(key=_order)
    retry_after, is_date = _retry_after(found, now)
    return RateLimitSnapshot(
        dimensions=tuple(dimensions),
        retry_after=retry_after,
        should_retry=_should_retry(found),
        provider=dialect,
        utilization=_utilization(found),
        over_limit=_over_limit(found),
        retry_after_is_date=is_date,
    )


def _recognise(found: dict[str, list[str]]) -> Provider:
    """The dialect of headers whose sender was not named."""
    provider = provider_from_header_names(found)
    if provider is Provider.UNKNOWN and _BARE_RESET in found:
        # OpenRouter's platform 429s reset at an instant in epoch milliseconds; no other
        # server we know of sends a bare reset that way.
        reset = _read_number(found[_BARE_RESET])
        if reset is not None and reset > _EPOCH_MILLIS:
            provider = Provider.OPENROUTER
    return provider


def parse_retry_after(headers: HeadersLike, *, wall_time: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``retry-after``.

    ``retry-after`` may be seconds (a float) or an HTTP-date, measured from ``wall_time``
    (default `time.time()`). A value that is negative, not finite or unreadable is skipped
    in favour of the next source; `None` when none is usable. Never raises.
    """
    found = _collect(headers)
    if _RETRY_AFTER_MS not in found and _RETRY_AFTER not in found:
        return None
    return _retry_after(found, time.time() if wall_time is None else wall_time)[0]


def _collect(headers: object) -> dict[str, list[str]]:
    """The values of the headers this module knows, by lower-case name, in arrival order."""
    found: dict[str, list[str]] = {}
    try:
        for count, item in enumerate(header_pairs(headers)):
            if count >= _MAX_HEADERS:
                break
            try:
                name, value = item
            except Exception:
                continue
            # str first: this loop sees every header of every response.
            key = name if isinstance(name, str) else _as_text(name)
            if key is None:
                continue
            key = key.strip().lower()
            if key not in _WANTED:
                continue  # never look further at, or log, headers we don't own
            text = _as_text(value)
            if text is None:
                _log.debug("ignored header %s: value of type %s", key, type(value).__name__)
                continue
            found.setdefault(key, []).append(text)
    except Exception as exc:
        _log.debug("stopped reading headers: %s", type(exc).__name__)
    return found


def _as_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")  # HTTP's own fallback; cannot fail
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # an int past Python's digit limit
            return None
    return None


def _pieces(values: list[str]) -> Iterator[str]:
    # Duplicates arrive as repeated values or comma-joined ("60, 60"); first readable wins.
    for value in values:
        if len(value) > _MAX_VALUE_LENGTH:
            continue
        for piece in value.split(","):
            piece = piece.strip()
            if piece:
                yield piece


def _to_float(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _read_number(values: list[str]) -> float | None:
    for piece in _pieces(values):
        number = _to_float(piece)
        if number is not None:
            return number
    return None


def _read_reset(values: list[str], now: float) -> float | None:
    for piece in _pieces(values):
        number = _to_float(piece)
        if number is not None:
            if number > _EPOCH_MILLIS:
                return max(0.0, number / 1000 - now)
            if number > _EPOCH_SECONDS:
                return max(0.0, number - now)
            return max(0.0, number)
        seconds = parse_duration(piece)
        if seconds is not None:
            return seconds
        if _RFC3339.match(piece):
            instant = _timestamp(piece)
            if instant is not None:
                return max(0.0, instant - now)
    return None


def _timestamp(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        instant = moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return instant if math.isfinite(instant) else None


def _dimension(
    key: tuple[str, str, float | None, bool], fields: dict[str, float]
) -> DimensionSnapshot | None:
    metric, scope, known_window, adaptive = key
    raw_limit = fields.get("limit")
    raw_remaining = fields.get("remaining")
    reset = fields.get("reset")
    # Azure's Responses API sends limit -1, remaining -1, reset 0 to mean "not tracked".
    sentinel = raw_limit is not None and raw_limit < 0
    limit = raw_limit if raw_limit is not None and raw_limit > 0 else None
    remaining = raw_remaining
    if raw_remaining is not None and raw_remaining < 0:
        unknown = sentinel or (raw_limit is None and raw_remaining == -1)
        remaining = None if unknown else 0.0
    if sentinel:
        reset = None
    if limit is None and remaining is None and reset is None:
        return None
    window = known_window
    if window is None:
        window = _infer_window(limit, remaining, reset)
    return DimensionSnapshot(
        metric, scope, limit, remaining, reset, window, adaptive, known_window is not None
    )


def _infer_window(
    limit: float | None, remaining: float | None, reset: float | None
) -> float | None:
    """The bucket's period from how long it takes to refill what has been used.

    Resets are truncated to milliseconds, so a small one (2.64 ms sent as ``2ms``) is off
    by a good fraction; snapping to the nearest plausible window absorbs that, and a
    result more than a factor of two from every plausible window is not trusted.
    """
    if limit is None or remaining is None or reset is None:
        return None
    if not (0 <= remaining < limit) or reset <= 0:
        return None
    estimate = reset * limit / (limit - remaining)
    if not math.isfinite(estimate) or estimate <= 0:
        return None
    nearest = min(_KNOWN_WINDOWS, key=lambda window: abs(math.log(estimate / window)))
    return nearest if nearest / 2 <= estimate <= nearest * 2 else None


def _order(dimension: DimensionSnapshot) -> tuple[int, bool, str, float]:
    metric = METRICS.index(dimension.metric) if dimension.metric in METRICS else len(METRICS)
    return (metric, dimension.scope != "", dimension.scope, dimension.window or 0.0)


def _retry_after(found: dict[str, list[str]], now: float) -> tuple[float | None, bool]:
    """The named wait in seconds, and whether it came from an HTTP-date.

    Relative forms first (``retry-after-ms``, then seconds in ``retry-after``): a date
    depends on two clocks agreeing. A date is measured from the response's own ``Date``
    header when it has one (the server's clock against the server's clock), so that a
    skewed local clock cannot stretch a one-minute wait into an hour.
    """
    millis_values = found.get(_RETRY_AFTER_MS, [])
    for piece in _pieces(millis_values):
        millis = _to_float(piece)
        if millis is not None and millis >= 0:
            return millis / 1000, False
    if millis_values:
        _log.debug("ignored header %s: %s", _RETRY_AFTER_MS, _short(millis_values))
    values = found.get(_RETRY_AFTER, [])
    server_now: float | None = None
    dated: float | None = None
    for value in values:
        # An HTTP-date has a comma of its own ("Wed, 21 Oct 2015 07:28:00 GMT"), so each
        # whole value is tried as a date before being split as a list of numbers.
        if server_now is None:
            server_now = _server_time(found, now)
        seconds = _http_date(value, server_now)
        if seconds is not None:
            dated = seconds if dated is None else dated
            continue
        for piece in _pieces([value]):
            seconds = _to_float(piece)
            if seconds is not None and seconds >= 0:
                return seconds, False
    if dated is not None:
        return dated, True
    if values:
        _log.debug("ignored header %s: %s", _RETRY_AFTER, _short(values))
    return None, False


def _server_time(found: dict[str, list[str]], now: float) -> float:
    """The response's ``Date`` as Unix seconds, or ``now`` without a readable one."""
    for value in found.get(_DATE, []):
        stamp = _http_date(value, 0.0)
        if stamp is not None:
            return stamp
    return now


def _http_date(value: str, now: float) -> float | None:
    if len(value) > _MAX_VALUE_LENGTH or not any(c.isalpha() for c in value):
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    except Exception:  # the stdlib date parser has raised several types over the years
        return None
    # A date already past is as unusable as "-10": let the caller fall back.
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _should_retry(found: dict[str, list[str]]) -> bool | None:
    for piece in _pieces(found.get(_SHOULD_RETRY, [])):
        lowered = piece.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return None


def _utilization(found: dict[str, list[str]]) -> float | None:
    values = found.get(_UTILIZATION, [])
    for piece in _pieces(values):
        number = _to_float(piece.removesuffix("%").strip())
        if number is not None and number >= 0:
            return number / 100
    if values:
        _log.debug("ignored header %s: %s", _UTILIZATION, _short(values))
    return None


def _over_limit(found: dict[str, list[str]]) -> bool | None:
    for piece in _pieces(found.get(_OVER_LIMIT, [])):
        lowered = piece.lower()
        if lowered in ("yes", "true"):
            return True
        if lowered in ("no", "false"):
            return False
    return None


def _short(values: list[str]) -> str:
    text = values[0] if len(values) == 1 else ", ".join(values)
    return repr(text[:40] + "…") if len(text) > 40 else repr(text)
