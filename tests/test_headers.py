"""Rate-limit headers from every provider in the research notes, and hostile header maps."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_llm._headers import (
    DimensionSnapshot,
    RateLimitSnapshot,
    parse_rate_limit_headers,
    parse_retry_after,
)
from ratelimit_llm._providers import Provider

# 2024-08-21T17:06:40Z, and the HTTP-date form of the same instant.
NOW = 1_724_260_000.0
NOW_HTTP = "Wed, 21 Aug 2024 17:06:40 GMT"


def openai(metric: str, limit: str, remaining: str, reset: str) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{metric}": limit,
        f"x-ratelimit-remaining-{metric}": remaining,
        f"x-ratelimit-reset-{metric}": reset,
    }


def only(headers: Any, metric: str, scope: str = "") -> DimensionSnapshot:
    dimension = parse_rate_limit_headers(headers, wall_time=NOW).get(metric, scope)
    assert dimension is not None
    return dimension


# Captures from research §1.1: each fits a 60 s bucket, except 8.64 s which is per day.
CAPTURES = [
    ("requests", "500", "499", "120ms", 0.12, 60.0),
    ("tokens", "30000", "29996", "8ms", 0.008, 60.0),
    ("requests", "5000", "4999", "12ms", 0.012, 60.0),
    ("tokens", "160000", "159976", "9ms", 0.009, 60.0),
    ("requests", "3000", "2999", "20ms", 0.02, 60.0),
    ("requests", "200", "199", "300ms", 0.3, 60.0),
    ("requests", "10000", "9999", "8.64s", 8.64, 86_400.0),
    ("tokens", "30000", "29999", "2ms", 0.002, 60.0),  # 2.64 ms truncated to 2ms
]


@pytest.mark.parametrize(
    ("metric", "limit", "remaining", "reset", "reset_s", "window"),
    CAPTURES,
    ids=[f"{m}-{lim}/{rem}-{r}" for m, lim, rem, r, _, _ in CAPTURES],
)
def test_openai_captures(
    metric: str, limit: str, remaining: str, reset: str, reset_s: float, window: float
) -> None:
    dimension = only(openai(metric, limit, remaining, reset), metric)
    assert dimension == DimensionSnapshot(
        metric, "", float(limit), float(remaining), reset_s, window
    )


def test_openai_six_headers() -> None:
    headers = {
        **openai("requests", "500", "499", "120ms"),
        **openai("tokens", "30000", "29996", "8ms"),
        "x-request-id": "req_0123456789abcdef0123456789abcdef",
        "openai-processing-ms": "250",
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert [(d.metric, d.scope) for d in snapshot.dimensions] == [("requests", ""), ("tokens", "")]
    assert snapshot.retry_after is None
    assert snapshot.should_retry is None
    assert not snapshot.is_empty


def test_full_bucket_has_no_inferred_window() -> None:
    dimension = only(openai("tokens", "30000", "30000", "0s"), "tokens")
    assert dimension == DimensionSnapshot("tokens", "", 30000.0, 30000.0, 0.0, None)


def test_project_triplet_sits_beside_the_organisation_one() -> None:
    headers = {
        **openai("tokens", "30000", "29000", "2s"),
        **openai("project-tokens", "60000", "57000", "3s"),
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.get("tokens") == DimensionSnapshot("tokens", "", 30000.0, 29000.0, 2.0, 60.0)
    assert snapshot.get("tokens", "project") == DimensionSnapshot(
        "tokens", "project", 60000.0, 57000.0, 3.0, 60.0
    )
    assert [d.scope for d in snapshot.dimensions] == ["", "project"]


def test_legacy_usage_based_triplet() -> None:
    headers = {
        **openai("tokens", "250000", "249000", "240ms"),
        **openai("tokens_usage_based", "250000", "249000", "240ms"),
    }
    dimension = only(headers, "tokens", "usage_based")
    assert dimension == DimensionSnapshot("tokens", "usage_based", 250000.0, 249000.0, 0.24, 60.0)


# --- Azure -------------------------------------------------------------------------


def test_azure_bare_second_resets() -> None:
    headers = {
        **openai("requests", "600", "500", "10"),
        **openai("tokens", "60000", "59000", "300"),
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.get("requests") == DimensionSnapshot("requests", "", 600.0, 500.0, 10.0, 60.0)
    tokens = snapshot.get("tokens")
    assert tokens is not None
    assert tokens.reset == 300.0


def test_azure_responses_sentinels_mean_unknown() -> None:
    headers = {
        **openai("requests", "1000", "999", "60ms"),
        **openai("tokens", "-1", "-1", "0"),
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.get("tokens") is None
    assert snapshot.get("requests") is not None


def test_azure_remaining_only() -> None:
    headers = {"x-ratelimit-remaining-requests": "299", "x-ratelimit-remaining-tokens": "239000"}
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.dimensions == (
        DimensionSnapshot("requests", "", None, 299.0, None, None),
        DimensionSnapshot("tokens", "", None, 239000.0, None, None),
    )


def test_azure_retry_after_ms_and_retry_after() -> None:
    headers = {"retry-after-ms": "6000", "retry-after": "6", **openai("tokens", "1", "0", "6")}
    assert parse_rate_limit_headers(headers, wall_time=NOW).retry_after == 6.0


# --- Groq, Cerebras, Mistral, Anthropic ----------------------------------------------


def test_groq_requests_triplet_is_per_day() -> None:
    headers = {
        **openai("requests", "14400", "14399", "6s"),
        **openai("tokens", "6000", "5940", "600ms"),
        "x-should-retry": "true",
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    requests, tokens = snapshot.get("requests"), snapshot.get("tokens")
    assert requests is not None and requests.window == 86_400.0
    assert tokens is not None and tokens.window == 60.0
    assert snapshot.should_retry is True


@pytest.mark.parametrize("reset", ["2m59.56s", "11m0.528s", "1h23m31s"])
def test_groq_long_resets(reset: str) -> None:
    assert only(openai("tokens", "500000", "400000", reset), "tokens").reset is not None


def test_cerebras_window_is_in_the_name() -> None:
    headers = {
        **openai("requests-day", "14400", "14370", "33011.382867097855"),
        **openai("tokens-minute", "60000", "59000", "11.38"),
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.dimensions == (
        DimensionSnapshot(
            "requests", "", 14400.0, 14370.0, 33011.382867097855, 86_400.0, window_known=True
        ),
        DimensionSnapshot("tokens", "", 60000.0, 59000.0, 11.38, 60.0, window_known=True),
    )


def test_mistral_has_no_reset() -> None:
    headers = {
        "x-ratelimit-limit-tokens-minute": "500000",
        "x-ratelimit-remaining-tokens-minute": "499000",
        "x-ratelimit-limit-req-minute": "60",
        "x-ratelimit-remaining-req-minute": "59",
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.dimensions == (
        DimensionSnapshot("requests", "", 60.0, 59.0, None, 60.0, window_known=True),
        DimensionSnapshot("tokens", "", 500000.0, 499000.0, None, 60.0, window_known=True),
    )


def anthropic(metric: str, limit: str, remaining: str, reset: str) -> dict[str, str]:
    return {
        f"anthropic-ratelimit-{metric}-limit": limit,
        f"anthropic-ratelimit-{metric}-remaining": remaining,
        f"anthropic-ratelimit-{metric}-reset": reset,
    }


def test_anthropic_rfc3339_resets() -> None:
    headers = {
        **anthropic("requests", "50", "49", "2024-08-21T17:06:41Z"),
        **anthropic("tokens", "100000", "90000", "2024-08-21T17:06:46Z"),
        **anthropic("input-tokens", "20000", "19000", "2024-08-21T19:06:43+02:00"),
        **anthropic("output-tokens", "8000", "8000", "2024-08-21T17:06:40Z"),
        "retry-after": "17",
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.dimensions == (
        DimensionSnapshot("requests", "", 50.0, 49.0, 1.0, 60.0, window_known=True),
        DimensionSnapshot("tokens", "", 100000.0, 90000.0, 6.0, 60.0, window_known=True),
        DimensionSnapshot("input_tokens", "", 20000.0, 19000.0, 3.0, 60.0, window_known=True),
        # Full, so nothing to infer a window from: Anthropic's limits are per minute.
        DimensionSnapshot("output_tokens", "", 8000.0, 8000.0, 0.0, 60.0, window_known=True),
    )
    assert snapshot.retry_after == 17.0


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("2024-08-21T17:06:56Z", 16.0),
        ("2024-08-21T17:06:56.5Z", 16.5),
        ("2024-08-21T17:06:56.123456789Z", 16.123456),  # beyond µs is dropped
        ("2024-08-21T18:06:56+01:00", 16.0),
        ("2024-08-21T17:06:56", 16.0),  # no offset: UTC
        ("2024-08-21T17:00:00Z", 0.0),  # in the past
        ("2024-02-30T17:00:00Z", None),  # no such day
        ("9999-12-31T23:59:59+14:00", 253402250399.0 - NOW),
        ("0001-01-01T00:00:00Z", 0.0),
    ],
)
def test_anthropic_reset_values(reset: str, expected: float | None) -> None:
    headers = {"anthropic-ratelimit-tokens-reset": reset}
    dimension = parse_rate_limit_headers(headers, wall_time=NOW).get("tokens")
    if expected is None:
        assert dimension is None
    else:
        assert dimension is not None and dimension.reset is not None
        assert math.isclose(dimension.reset, expected, abs_tol=1e-6)


def test_wall_time_defaults_to_now() -> None:
    headers = {"anthropic-ratelimit-tokens-reset": "2999-01-01T00:00:00Z"}
    dimension = parse_rate_limit_headers(headers).get("tokens")
    assert dimension is not None and dimension.reset is not None
    assert 32_000_000_000 > dimension.reset > 29_000_000_000


# --- reset values, windows, odd values --------------------------------------------

RESETS = [
    ("0s", 0.0),
    ("2ms", 0.002),
    ("6ms", 0.006),
    ("162ms", 0.162),
    ("1s", 1.0),
    ("8.64s", 8.64),
    ("6m0s", 360.0),
    ("6m 11.52s", 371.52),
    ("1.5", 1.5),
    ("-1s", 0.0),
    ("-5", 0.0),
    (str(NOW + 30), 30.0),  # epoch seconds
    (str(int((NOW + 30.5) * 1000)), 30.5),  # epoch milliseconds
    (str(NOW - 30), 0.0),  # an instant in the past
    ("2024-08-21T17:06:50Z", 10.0),
]


@pytest.mark.parametrize(("reset", "seconds"), RESETS, ids=[r for r, _ in RESETS])
def test_reset_forms(reset: str, seconds: float) -> None:
    dimension = only({"x-ratelimit-reset-tokens": reset}, "tokens")
    assert dimension.reset is not None
    assert math.isclose(dimension.reset, seconds, abs_tol=1e-6)


WINDOWS = [
    ("one-minute", "600", "300", "30s", 60.0),
    ("one-second", "100", "0", "1s", 1.0),
    ("ten-seconds", "600", "0", "9.5s", 10.0),
    ("one-hour", "1000", "999", "3.6s", 3600.0),
    ("groq-rpd", "14400", "14399", "6s", 86_400.0),
    ("between-windows", "100", "50", "600s", None),  # 1200 s: nothing within 2x
    ("far-too-long", "100", "99", "3000h", None),
    ("remaining-above-limit", "100", "150", "5s", None),
    ("remaining-equals-limit", "100", "100", "5s", None),
    ("zero-reset", "100", "50", "0s", None),
]


@pytest.mark.parametrize(
    ("limit", "remaining", "reset", "window"),
    [w[1:] for w in WINDOWS],
    ids=[w[0] for w in WINDOWS],
)
def test_window_inference(limit: str, remaining: str, reset: str, window: float | None) -> None:
    assert only(openai("tokens", limit, remaining, reset), "tokens").window == window


ODD = [
    ("remaining-above-limit", ("100", "150", "1s"), (100.0, 150.0, 1.0)),
    ("remaining-negative", ("100", "-3", "1s"), (100.0, 0.0, 1.0)),
    ("limit-zero", ("0", "0", "1s"), (None, 0.0, 1.0)),
    ("limit-negative", ("-1", "5", "1s"), (None, 5.0, None)),
    ("float-values", ("59.5", "10.25", "1.5s"), (59.5, 10.25, 1.5)),
    ("whitespace", ("  500 ", "\t499", " 120ms "), (500.0, 499.0, 0.12)),
    ("comma-joined", ("60, 60", "59,59", "1s, 1s"), (60.0, 59.0, 1.0)),
    ("comma-joined-garbage-first", ("abc, 60", ",59", "x,1s"), (60.0, 59.0, 1.0)),
    ("empty-limit", ("", "5", "1s"), (None, 5.0, 1.0)),
    ("garbage-limit", ("lots", "5", "1s"), (None, 5.0, 1.0)),
    ("inf-limit", ("inf", "5", "nan"), (None, 5.0, None)),
    ("huge-limit", ("1e400", "5", "1e400"), (None, 5.0, None)),
    ("exponent", ("1e3", "5e2", "1s"), (1000.0, 500.0, 1.0)),
]


@pytest.mark.parametrize(("values", "expected"), [o[1:] for o in ODD], ids=[o[0] for o in ODD])
def test_odd_values(values: tuple[str, str, str], expected: tuple[Any, Any, Any]) -> None:
    dimension = only(openai("requests", *values), "requests")
    assert (dimension.limit, dimension.remaining, dimension.reset) == expected


def test_remaining_minus_one_alone_is_the_azure_sentinel() -> None:
    snapshot = parse_rate_limit_headers({"x-ratelimit-remaining-tokens": "-1"}, wall_time=NOW)
    assert snapshot.dimensions == ()
    assert snapshot.is_empty


def test_partial_sets() -> None:
    snapshot = parse_rate_limit_headers(openai("tokens", "100", "90", "1s"), wall_time=NOW)
    assert snapshot.get("requests") is None
    assert snapshot.get("tokens") is not None
    assert snapshot.get("tokens", "project") is None


def test_no_headers_at_all() -> None:
    snapshot = parse_rate_limit_headers({}, wall_time=NOW)
    assert snapshot == RateLimitSnapshot()
    assert snapshot.is_empty


# --- containers, names, duplicates ---------------------------------------------------


def test_names_are_case_insensitive() -> None:
    headers = {
        "X-RateLimit-Limit-Requests": "500",
        "X-RATELIMIT-REMAINING-REQUESTS": "499",
        "x-ratelimit-reset-requests": "120ms",
        "Retry-After-Ms": "250",
        "X-Should-Retry": "FALSE",
    }
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.get("requests") == DimensionSnapshot("requests", "", 500.0, 499.0, 0.12, 60.0)
    assert snapshot.retry_after == 0.25
    assert snapshot.should_retry is False


def test_list_of_pairs_takes_first_readable_duplicate() -> None:
    pairs = [
        ("x-ratelimit-limit-requests", "oops"),
        ("x-ratelimit-limit-requests", "500"),
        ("x-ratelimit-limit-requests", "400"),
        ("x-ratelimit-remaining-requests", "499"),
    ]
    assert only(pairs, "requests").limit == 500.0


def test_bytes_pairs() -> None:
    pairs = [(b"x-ratelimit-limit-tokens", b"30000"), (b"X-RateLimit-Remaining-Tokens", b"29996")]
    dimension = only(pairs, "tokens")
    assert (dimension.limit, dimension.remaining) == (30000.0, 29996.0)


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_httpx_headers(module: Any) -> None:
    headers = module.Headers(
        [
            ("X-RateLimit-Limit-Requests", "500"),
            ("x-ratelimit-limit-requests", "500"),  # a proxy repeated it
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("retry-after", "3"),
        ]
    )
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert snapshot.get("requests") == DimensionSnapshot("requests", "", 500.0, 499.0, 0.12, 60.0)
    assert parse_retry_after(headers, wall_time=NOW) == 3.0


def test_httpx_response_headers() -> None:
    response = httpx.Response(429, headers={"retry-after-ms": "1500"})
    assert parse_retry_after(response.headers) == 1.5


# --- retry-after ---------------------------------------------------------------------

RETRY_AFTER = [
    ("seconds", {"retry-after": "56"}, 56.0),
    ("float-seconds", {"retry-after": "1.5"}, 1.5),
    ("zero", {"retry-after": "0"}, 0.0),
    ("ms", {"retry-after-ms": "644"}, 0.644),
    ("ms-beats-seconds", {"retry-after-ms": "2000", "retry-after": "10"}, 2.0),
    ("ms-inf-falls-back", {"retry-after-ms": "inf", "retry-after": "10"}, 10.0),
    ("ms-negative-falls-back", {"retry-after-ms": "-5", "retry-after": "10"}, 10.0),
    ("ms-garbage-falls-back", {"retry-after-ms": "soon", "retry-after": "10"}, 10.0),
    ("ms-empty-falls-back", {"retry-after-ms": "", "retry-after": "10"}, 10.0),
    ("inf", {"retry-after": "inf"}, None),
    ("nan", {"retry-after": "nan"}, None),
    ("negative", {"retry-after": "-10"}, None),
    ("empty", {"retry-after": ""}, None),
    ("garbage", {"retry-after": "later"}, None),
    ("huge", {"retry-after": "1e400"}, None),
    ("http-date", {"retry-after": "Wed, 21 Aug 2024 17:07:10 GMT"}, 30.0),
    ("http-date-now", {"retry-after": NOW_HTTP}, 0.0),
    ("http-date-past", {"retry-after": "Wed, 21 Aug 2024 17:06:20 GMT"}, None),
    ("http-date-bad-day-name", {"retry-after": "Zun, 21 Aug 2024 17:07:10 GMT"}, 30.0),
    ("http-date-bad-day", {"retry-after": "Wed, 99 Aug 2024 17:07:10 GMT"}, None),
    ("http-date-garbage", {"retry-after": "Wed, 21 Foo 2024 17:07:10 GMT"}, None),
    ("http-date-then-number", {"retry-after": "not a date, 7"}, 7.0),
    (
        "number-beats-a-date",
        [("retry-after", "Wed, 21 Aug 2024 17:07:10 GMT"), ("retry-after", "7")],
        7.0,
    ),
    # Measured from the server's own Date, not from a local clock an hour off.
    (
        "http-date-against-the-server-clock",
        {"retry-after": "Wed, 21 Aug 2024 18:07:10 GMT", "date": "Wed, 21 Aug 2024 18:06:40 GMT"},
        30.0,
    ),
    ("neither", {"x-ratelimit-limit-requests": "5"}, None),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [r[1:] for r in RETRY_AFTER], ids=[r[0] for r in RETRY_AFTER]
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, wall_time=NOW) == expected
    assert parse_rate_limit_headers(headers, wall_time=NOW).retry_after == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("false", False),
        ("True", True),
        (" FALSE ", False),
        ("yes", None),
        ("", None),
    ],
)
def test_should_retry(value: str, expected: bool | None) -> None:
    snapshot = parse_rate_limit_headers({"x-should-retry": value}, wall_time=NOW)
    assert snapshot.should_retry is expected


# --- hostile input and logging -------------------------------------------------------


class ExplodingMapping(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")


def half_then_explode() -> Iterator[tuple[str, str]]:
    yield ("x-ratelimit-limit-tokens", "100")
    raise RuntimeError("boom")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("boom")

    __repr__ = __str__


HOSTILE: list[tuple[str, object]] = [
    ("none", None),
    ("int", 42),
    ("str", "x-ratelimit-limit-tokens: 5"),
    ("bytes", b"x-ratelimit-limit-tokens: 5"),
    ("exploding-mapping", ExplodingMapping()),
    ("not-pairs", [1, "ab", ("a", "b", "c"), None, Unprintable()]),
    ("odd-values", {"x-ratelimit-limit-tokens": Unprintable(), "retry-after": ["3"]}),
    ("non-str-names", {1: "5", None: "5", ("x",): "5"}),
    ("huge-int-value", {"x-ratelimit-limit-tokens": 10**5000}),
    ("bool-value", {"x-ratelimit-limit-tokens": True}),
    ("nan-float-value", {"x-ratelimit-limit-tokens": math.nan}),
    ("very-long-value", {"x-ratelimit-limit-tokens": "9" * 100_000}),
]


@pytest.mark.parametrize("headers", [h for _, h in HOSTILE], ids=[n for n, _ in HOSTILE])
def test_hostile_input_never_raises(headers: Any) -> None:
    snapshot = parse_rate_limit_headers(headers, wall_time=NOW)
    assert isinstance(snapshot, RateLimitSnapshot)
    assert parse_retry_after(headers, wall_time=NOW) is None


def test_reading_stops_where_the_iterable_fails() -> None:
    assert only(half_then_explode(), "tokens").limit == 100.0


def test_number_values_are_accepted() -> None:
    headers = {"x-ratelimit-limit-tokens": 30000, "x-ratelimit-remaining-tokens": 29999.5}
    dimension = only(headers, "tokens")
    assert (dimension.limit, dimension.remaining) == (30000.0, 29999.5)


def test_unreadable_values_are_logged_by_name_only(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-proj-" + "A" * 40
    headers: dict[str, Any] = {
        "Authorization": f"Bearer {secret}",
        "api-key": secret,
        "x-ratelimit-limit-tokens": "lots and lots" * 10,
        "x-ratelimit-remaining-tokens": Unprintable(),
        "retry-after": "whenever",
    }
    with caplog.at_level(logging.DEBUG, logger="ratelimit_llm.headers"):
        parse_rate_limit_headers(headers, wall_time=NOW)
    assert "x-ratelimit-limit-tokens" in caplog.text
    assert "x-ratelimit-remaining-tokens" in caplog.text
    assert "retry-after" in caplog.text
    assert secret not in caplog.text
    assert "authorization" not in caplog.text.lower()
    assert all(len(record.getMessage()) < 200 for record in caplog.records)


def test_snapshot_is_frozen() -> None:
    snapshot = parse_rate_limit_headers(openai("tokens", "1", "0", "1s"), wall_time=NOW)
    with pytest.raises(AttributeError):
        snapshot.retry_after = 5.0  # type: ignore[misc]
    dimension = snapshot.dimensions[0]
    with pytest.raises(AttributeError):
        dimension.limit = 5.0  # type: ignore[misc]
    assert not hasattr(dimension, "__dict__")


# --- properties ----------------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        f"{prefix}-{field}-{metric}"
        for prefix in ("x-ratelimit", "X-RateLimit")
        for field in ("limit", "remaining", "reset")
        for metric in (
            "requests",
            "tokens",
            "project-tokens",
            "tokens_usage_based",
            "requests-day",
            "tokens-minute",
            "req-minute",
        )
    ]
    + [
        f"anthropic-ratelimit-{metric}-{field}"
        for metric in ("requests", "tokens", "input-tokens", "output-tokens")
        for field in ("limit", "remaining", "reset")
    ]
    + [
        # The dialects: Together, Fireworks, OpenRouter, Azure PTU, Groq's signature.
        f"{prefix}-{field}{suffix}"
        for prefix in ("x-ratelimit", "x-tokenlimit", "X-RateLimit")
        for field in ("limit", "remaining", "reset")
        for suffix in ("", "-dynamic")
    ]
    + [
        f"x-ratelimit-{field}-tokens-{kind}"
        for field in ("limit", "remaining")
        for kind in ("prompt", "generated", "cache-adjusted-prompt")
    ]
    + ["azure-openai-deployment-utilization", "x-ratelimit-over-limit", "x-groq-region"]
    + ["retry-after", "retry-after-ms", "x-should-retry", "authorization"]
)
_PROVIDERS = st.one_of(st.none(), st.sampled_from(list(Provider)))
_NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(repr),
    st.floats().map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "-1", "0", "", " ", "1e308", "1e-320"]),
)
_DURATION_TEXT = st.from_regex(
    r"-?(\d{1,6}(\.\d{0,9})?(h|m|s|ms|us|\u00b5s|ns) ?){1,4}", fullmatch=True
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    _NUMBER_TEXT,
    _DURATION_TEXT,
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.integers(),
    st.floats(),
    st.none(),
    st.lists(_NUMBER_TEXT, max_size=3).map(", ".join),
)
_HEADER_MAPS = st.one_of(
    st.dictionaries(st.one_of(_NAMES, st.text(max_size=20)), _VALUES, max_size=12),
    st.lists(st.tuples(st.one_of(_NAMES, st.binary(max_size=30)), _VALUES), max_size=12),
)


def _finite_non_negative(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value >= 0)


@settings(max_examples=400, deadline=None)
@given(_HEADER_MAPS, st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)), _PROVIDERS)
def test_never_raises_and_numbers_are_sane(
    headers: Any, wall_time: float | None, provider: Provider | None
) -> None:
    snapshot = parse_rate_limit_headers(headers, wall_time=wall_time, provider=provider)
    assert isinstance(snapshot.provider, Provider)
    assert provider is None or snapshot.provider is provider
    assert _finite_non_negative(snapshot.retry_after)
    assert _finite_non_negative(snapshot.utilization)
    assert snapshot.over_limit in (None, True, False)
    for dimension in snapshot.dimensions:
        values = (dimension.limit, dimension.remaining, dimension.reset, dimension.window)
        assert all(_finite_non_negative(value) for value in values), dimension
        assert dimension.limit is None or dimension.limit > 0
        assert (dimension.limit, dimension.remaining, dimension.reset) != (None, None, None)
        assert _finite_non_negative(dimension.rate)
    assert _finite_non_negative(parse_retry_after(headers, wall_time=wall_time))
