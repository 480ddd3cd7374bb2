"""Go-style durations: every form in the research notes, hostile input, and round trips."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_llm._durations import format_duration, parse_duration

# Reset values seen in OpenAI headers (research §1.1).
HEADER_RESETS = [
    ("0s", 0.0),
    ("2ms", 0.002),
    ("6ms", 0.006),
    ("8ms", 0.008),
    ("9ms", 0.009),
    ("12ms", 0.012),
    ("20ms", 0.02),
    ("120ms", 0.12),
    ("162ms", 0.162),
    ("300ms", 0.3),
    ("1s", 1.0),
    ("8.64s", 8.64),
    ("6m0s", 360.0),
]

# "Please try again in ..." values from OpenAI 429 messages, then Groq's (research §1.1).
MESSAGE_RESETS = [
    ("174ms", 0.174),
    ("644ms", 0.644),
    ("1.574s", 1.574),
    ("3.89s", 3.89),
    ("9.816s", 9.816),
    ("18.642s", 18.642),
    ("41.724s", 41.724),
    ("20s", 20.0),
    ("1m26.4s", 86.4),
    ("7m12s", 432.0),
    ("2m59.56s", 179.56),
    ("11m0.528s", 660.528),
    ("1h23m31s", 5011.0),
]

OTHER_FORMS = [
    ("6m 11.52s", 371.52),  # Groq, with a space
    ("1h2m3.5s", 3723.5),
    ("5\u00b5s", 5e-6),  # MICRO SIGN, as Go prints it
    ("5\u03bcs", 5e-6),  # GREEK SMALL LETTER MU
    ("5us", 5e-6),
    ("250ns", 2.5e-7),
    ("1m0.000000001s", 60.000000001),
    ("10", 10.0),  # Azure: bare seconds
    ("300", 300.0),
    ("1.5", 1.5),
    ("1e3", 1000.0),
    ("  2ms  ", 0.002),
    ("+2s", 2.0),
    (".5s", 0.5),
    ("-3s", 0.0),  # negative: clamp
    ("-10", 0.0),
    ("-1m26.4s", 0.0),
]

UNREADABLE = [
    "",
    "   ",
    "-",
    "s",
    "ms",
    "inf",
    "-inf",
    "nan",
    "Infinity",
    "1e400",
    "-1e400",
    "garbage",
    "1.5.5s",
    "1d",
    "5 seconds",
    "0x10",
    "1_000",
    "\u0661\u0662s",  # Arabic-Indic digits: str.isdigit() says yes, Go says no
    "1" * 101 + "s",
    "\x00",
]


@pytest.mark.parametrize(("text", "seconds"), HEADER_RESETS, ids=[t for t, _ in HEADER_RESETS])
def test_header_resets(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "seconds"), MESSAGE_RESETS, ids=[t for t, _ in MESSAGE_RESETS])
def test_message_resets(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "seconds"), OTHER_FORMS, ids=[t for t, _ in OTHER_FORMS])
def test_other_forms(text: str, seconds: float) -> None:
    result = parse_duration(text)
    assert result is not None
    assert math.isclose(result, seconds, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("text", UNREADABLE, ids=repr)
def test_unreadable_is_none(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("value", [None, 5, 1.5, b"5s", ["5s"]], ids=repr)
def test_non_text_is_none(value: object) -> None:
    assert parse_duration(value) is None  # type: ignore[arg-type]


def test_units_out_of_order_do_not_raise() -> None:
    assert parse_duration("1s1h") in (None, 3601.0)


FORMATS = [
    (0, "0s"),
    (0.0, "0s"),
    (0.0004, "0s"),
    (0.0026, "2ms"),  # truncated, not rounded
    (0.12, "120ms"),
    (0.999, "999ms"),
    (1, "1s"),
    (1.001, "1.001s"),  # its binary value is 1.000999…, yet the caller meant 1.001
    (1.5744, "1.574s"),
    (8.64, "8.64s"),
    (59.9999, "59.999s"),
    (60, "1m0s"),
    (360, "6m0s"),
    (86.4, "1m26.4s"),
    (432, "7m12s"),
    (3600, "1h0m0s"),
    (5011, "1h23m31s"),
    (3723.5, "1h2m3.5s"),
    (-3, "0s"),
]


@pytest.mark.parametrize(("seconds", "text"), FORMATS, ids=[t for _, t in FORMATS])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=repr)
def test_format_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_duration(value)


def test_format_rejects_non_numbers() -> None:
    with pytest.raises(TypeError):
        format_duration("5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_duration(True)


def _truncated_to_ms(seconds: float) -> float:
    return int(Decimal(repr(seconds)) * 1000) / 1000


GO_FORM = re.compile(r"0s|[1-9]\d*ms|(?:\d+h)?(?:\d+m)?\d+(?:\.\d{1,3})?s")


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_round_trip(seconds: float) -> None:
    text = format_duration(seconds)
    assert GO_FORM.fullmatch(text), text
    assert parse_duration(text) == _truncated_to_ms(seconds)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_round_trip_whole_milliseconds(millis: int) -> None:
    assert parse_duration(format_duration(millis / 1000)) == millis / 1000


_GO_PIECES = st.lists(
    st.tuples(
        st.from_regex(r"\d{0,4}(\.\d{0,4})?", fullmatch=True),
        st.sampled_from(["h", "m", "s", "ms", "us", "\u00b5s", "ns", "", " ", "d"]),
    ),
    max_size=5,
).map(lambda parts: "".join(number + unit for number, unit in parts))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        _GO_PIECES,
        st.sampled_from(["-", "+", " "]).flatmap(
            lambda sign: _GO_PIECES.map(lambda body: sign + body)
        ),
    )
)
def test_parse_never_raises(text: str) -> None:
    result = parse_duration(text)
    assert result is None or (math.isfinite(result) and result >= 0)
