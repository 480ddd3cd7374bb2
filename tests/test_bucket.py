"""The pure bucket: arithmetic in explicit time, no event loop, no clock."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_llm import CapacityExceededError, Cost, Limits
from ratelimit_llm._bucket import FIRST_ANSWER_GRACE, Bucket
from ratelimit_llm.core import Dimension


def make(rpm: float = 60, tpm: float = 600, **kwargs: Any) -> Bucket:
    """A bucket whose depth is known (no slow start) unless ``burst_seconds`` says so."""
    kwargs.setdefault("burst_seconds", 60)
    return Bucket(Limits(rpm=rpm, tpm=tpm, **kwargs).dimensions(), now=0.0)


def slow_start(rpm: float = 1_200, tpm: float = 120_000, **kwargs: Any) -> Bucket:
    """A bucket as `Limits` makes it by default: its depth not yet known."""
    return Bucket(Limits(rpm=rpm, tpm=tpm, **kwargs).dimensions(), now=0.0)


def test_starts_full_and_takes_from_every_dimension() -> None:
    bucket = make()
    assert bucket.try_take(bucket.amounts(Cost(requests=1, tokens=100)), now=0.0)
    assert bucket.levels(0.0) == (59.0, 500.0)


def test_refill_is_continuous_and_capped() -> None:
    bucket = make()
    bucket.try_take((60.0, 600.0), now=0.0)
    assert bucket.levels(0.5) == pytest.approx((0.5, 5.0))
    assert bucket.levels(1_000.0) == (60.0, 600.0)


def test_grant_is_all_or_nothing() -> None:
    bucket = make()
    assert bucket.try_take((1.0, 600.0), now=0.0)
    # requests have room, tokens do not: nothing may be taken from either.
    assert not bucket.try_take((1.0, 1.0), now=0.0)
    assert bucket.levels(0.0) == (59.0, 0.0)


def test_delay_is_the_slowest_dimension() -> None:
    bucket = make()
    bucket.try_take((60.0, 600.0), now=0.0)
    # 2 requests need 2 s at 1/s; 50 tokens need 5 s at 10/s.
    assert bucket.delay((2.0, 50.0), now=0.0) == pytest.approx(5.0)
    assert bucket.delay((2.0, 50.0), now=5.0) == 0.0


def test_a_cost_larger_than_capacity_fails_at_once_naming_the_limit() -> None:
    bucket = make()
    with pytest.raises(CapacityExceededError, match=r"tokens/min \(600\)") as info:
        bucket.check_fits((1.0, 601.0))
    assert info.value.dimension == "tokens/min"
    assert bucket.delay((1.0, 601.0), now=0.0) == math.inf
    assert not bucket.try_take((1.0, 601.0), now=1e9)


def test_quantized_burst_capacity() -> None:
    bucket = Bucket(Limits(rpm=600, burst_seconds=1).dimensions(), now=0.0)
    # A minute's 600 enforced as 10 per second.
    assert [bucket.try_take((1.0,), now=0.0) for _ in range(11)].count(True) == 10
    with pytest.raises(CapacityExceededError):
        bucket.check_fits((11.0,))


def test_fill_sets_the_starting_level() -> None:
    bucket = Bucket(Limits(rpm=60).dimensions(), now=0.0, fill=0.0)
    assert not bucket.try_take((1.0,), now=0.0)
    assert bucket.try_take((1.0,), now=1.0)
    with pytest.raises(ValueError, match="fill"):
        Bucket(Limits(rpm=60).dimensions(), now=0.0, fill=1.5)


def test_settle_refunds_unspent_and_debits_overspend() -> None:
    bucket = make()
    bucket.try_take((1.0, 300.0), now=0.0)
    bucket.settle((1.0, 300.0), (1.0, 100.0), now=0.0)
    assert bucket.levels(0.0) == (59.0, 500.0)
    bucket.try_take((1.0, 500.0), now=0.0)
    bucket.settle((1.0, 500.0), (1.0, 800.0), now=0.0)
    assert bucket.levels(0.0) == (58.0, -300.0)  # debt, repaid by refill
    assert bucket.delay((0.0, 10.0), now=0.0) == pytest.approx(31.0)
    taken, refunded, spent = bucket.totals()
    assert taken == (2.0, 800.0)
    assert refunded == (0.0, 200.0)
    assert spent == (2.0, 900.0)


def test_give_back_never_overfills() -> None:
    bucket = make()
    bucket.try_take((10.0, 100.0), now=0.0)
    bucket.give_back((10.0, 100.0), now=30.0)
    assert bucket.levels(30.0) == (60.0, 600.0)


def test_clock_stepping_back_does_not_drain_or_refill() -> None:
    bucket = make()
    bucket.try_take((30.0, 0.0), now=10.0)
    assert bucket.levels(5.0) == (30.0, 600.0)
    assert bucket.try_take((30.0, 0.0), now=5.0)
    assert bucket.levels(10.0) == (0.0, 600.0)


def test_observe_lowers_the_level_net_of_later_sends() -> None:
    bucket = make(rpm=100, tpm=10_000)
    bucket.try_take((1.0, 1_000.0), now=0.0)
    mark = bucket.mark()
    bucket.try_take((1.0, 2_000.0), now=0.0)  # sent after the first call's response
    # The server had 4,000 tokens left when it answered the first call (someone else
    # spends the same quota). The second call has to come off that too.
    name = bucket.observe("tokens", now=0.0, limit=10_000, remaining=4_000, window=60, mark=mark)
    assert name == "tokens/min"
    assert bucket.levels(0.0)[1] == 2_000.0


def test_observe_never_raises_the_level() -> None:
    bucket = make(rpm=100, tpm=10_000)
    bucket.try_take((1.0, 9_000.0), now=0.0)
    bucket.observe("tokens", now=0.0, limit=10_000, remaining=9_999, window=60)
    assert bucket.levels(0.0)[1] == 1_000.0


def test_observe_resizes_on_a_changed_limit_keeping_what_was_used() -> None:
    bucket = make(rpm=100, tpm=10_000)
    bucket.try_take((1.0, 4_000.0), now=0.0)
    bucket.observe("tokens", now=0.0, limit=30_000, window=60)
    assert bucket.dimensions[1].limit == 30_000
    assert bucket.levels(0.0)[1] == 26_000.0
    assert bucket.delay((0.0, 4_000.0), now=0.0) == 0.0


def test_observe_resize_can_be_turned_off() -> None:
    bucket = make(rpm=100, tpm=10_000)
    bucket.observe("tokens", now=0.0, limit=30_000, window=60, resize=False)
    assert bucket.dimensions[1].limit == 10_000


def test_observe_matches_the_day_bucket_by_window() -> None:
    bucket = Bucket(Limits(rpm=500, rpd=10_000, burst_seconds=60).dimensions(), now=0.0)
    name = bucket.observe("requests", now=0.0, limit=10_000, remaining=200, window=86_400)
    assert name == "requests/day"
    assert bucket.levels(0.0) == (500.0, 200.0)


def test_observe_with_unknown_window_never_resizes_the_minute_bucket() -> None:
    bucket = make(rpm=500)
    # A requests triplet whose window can't be inferred and whose limit matches nothing
    # may be a per-day limit (Groq): it must not turn 500 RPM into 14,400.
    assert bucket.observe("requests", now=0.0, limit=14_400, remaining=14_400) is None
    assert bucket.dimensions[0].limit == 500
    # Remaining-only snapshots (old Azure) speak of the per-minute bucket.
    assert bucket.observe("requests", now=0.0, remaining=7) == "requests/min"
    assert bucket.levels(0.0)[0] == 7.0


def test_observe_unknown_metric_is_ignored() -> None:
    bucket = make()
    assert bucket.observe("input_tokens", now=0.0, remaining=0) is None


def test_resize_by_name() -> None:
    bucket = make()
    bucket.resize("requests/min", 120, now=0.0)
    assert bucket.dimensions[0].rate == 2.0
    with pytest.raises(KeyError):
        bucket.resize("nope", 1, now=0.0)


def test_input_and_output_token_dimensions() -> None:
    bucket = Bucket(Limits(input_tpm=1_000, output_tpm=100).dimensions(), now=0.0)
    assert bucket.amounts(Cost(tokens=300, input_tokens=200, output_tokens=100)) == (200.0, 100.0)
    # Without the split the whole of `tokens` is charged to both (the safe side).
    assert bucket.amounts(Cost(tokens=50)) == (50.0, 50.0)


def test_bad_construction() -> None:
    dims = Limits(rpm=1).dimensions()
    with pytest.raises(ValueError, match="at least one"):
        Bucket((), now=0.0)
    with pytest.raises(ValueError, match="unique"):
        Bucket(dims + dims, now=0.0)


# -- properties -------------------------------------------------------------------------

_DIMS = (
    Dimension("requests/min", "requests", 60, 60.0, 5.0),
    Dimension("tokens/min", "tokens", 6_000, 60.0, 1_000.0),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=3.0),  # time step
            st.integers(min_value=0, max_value=3),  # requests
            st.integers(min_value=0, max_value=1_000),  # tokens
            st.integers(min_value=-300, max_value=300),  # settle delta on tokens
        ),
        max_size=120,
    ),
    st.booleans(),
)
def test_granted_in_any_window_never_exceeds_capacity_plus_refill(
    ops: list[tuple[float, int, int, int]], settle: bool
) -> None:
    """Over any window [t_i, t_j]: what grants i..j-1 really cost plus what grant j took
    is at most capacity + rate * (t_j - t_i). Without settles "really cost" is what was
    taken; with them, refunds make room and overspend is debt that delays later grants.
    """
    bucket = Bucket(_DIMS, now=0.0)
    now = 0.0
    grants: list[tuple[float, tuple[float, float], tuple[float, float]]] = []
    for step, requests, tokens, delta in ops:
        now += step
        taken = (float(requests), float(tokens))
        if bucket.try_take(taken, now):
            charged = taken
            if settle:
                charged = (float(requests), max(0.0, tokens + delta))
                bucket.settle(taken, charged, now)
            grants.append((now, taken, charged))
    for i, (start, _, _) in enumerate(grants):
        before = [0.0, 0.0]
        for end, taken, charged in grants[i:]:
            for d, dim in enumerate(_DIMS):
                bound = dim.capacity + dim.rate * (end - start)
                assert before[d] + taken[d] <= bound + 1e-6, (d, start, end, before[d], bound)
                before[d] += charged[d]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=5.0), st.integers(0, 5), st.integers(0, 900)),
        max_size=60,
    )
)
def test_take_then_give_back_is_as_if_never_taken(ops: list[tuple[float, int, int]]) -> None:
    with_refunds = Bucket(_DIMS, now=0.0)
    untouched = Bucket(_DIMS, now=0.0)
    now = 0.0
    for step, requests, tokens in ops:
        now += step
        amounts = (float(requests), float(tokens))
        if with_refunds.try_take(amounts, now):
            with_refunds.give_back(amounts, now + step / 2)
    assert with_refunds.levels(now + 1) == pytest.approx(untouched.levels(now + 1), abs=1e-9)


def test_refunds_never_lift_the_level_above_the_servers_last_word() -> None:
    bucket = make(rpm=100, tpm=6_000)  # 100 tokens per second
    bucket.try_take((1.0, 1_000.0), now=0.0)  # a stream, reserving 1,000 tokens
    # Its headers: the server charged the 1,000 at admission, 5,000 remain.
    bucket.observe("tokens", now=0.0, limit=6_000, remaining=5_000, window=60)
    bucket.try_take((1.0, 500.0), now=1.0)  # another call, sent after the headers
    # The stream ends having used 200: 800 would come back, but the server (which
    # keeps its admission charge) has 5,000 + 100 refill - 500 = 4,600 at t=1.
    bucket.settle((1.0, 1_000.0), (1.0, 200.0), now=1.0)
    assert bucket.levels(1.0)[1] == pytest.approx(4_600)
    # Without a server figure the refund goes back in full.
    plain = make(rpm=100, tpm=6_000)
    plain.try_take((1.0, 1_000.0), now=0.0)
    plain.settle((1.0, 1_000.0), (1.0, 200.0), now=0.0)
    assert plain.levels(0.0)[1] == 5_800


def test_a_released_reservation_is_not_counted_as_sent() -> None:
    bucket = make(rpm=100, tpm=6_000)
    bucket.observe("tokens", now=0.0, limit=6_000, remaining=6_000, window=60)
    bucket.try_take((1.0, 1_000.0), now=0.0)
    bucket.give_back((1.0, 1_000.0), now=0.0)
    bucket.try_take((1.0, 300.0), now=0.0)
    bucket.settle((1.0, 300.0), (1.0, 100.0), now=0.0)
    # Only the 300 call went out: the server's 6,000 minus 300 caps the refund.
    assert bucket.levels(0.0)[1] == 5_700


def test_quantized_enforcement_is_learned_from_the_reset_header() -> None:
    bucket = make(rpm=1_200, tpm=1_000_000)
    # The server holds 1,200 RPM as 20 per second: after 20 calls in a burst it reports
    # 0 remaining and "full again in 1s", a window of one second, not a minute.
    name = bucket.observe("requests", now=0.0, limit=1_200, remaining=0, window=1.0, reset=1.0)
    assert name == "requests/min"
    # Inferred, so it is the depth in force that changes, not the stated capacity: a
    # call that fits the stated limit is never refused because of an estimate.
    assert bucket.depths()[0] == pytest.approx(20)
    assert bucket.dimensions[0].capacity == 1_200
    assert bucket.dimensions[0].limit == 1_200
    # A normal minute bucket's headers leave the depth alone (reset truncated to ms).
    bucket = make(rpm=500, tpm=1_000_000)
    bucket.observe("requests", now=0.0, limit=500, remaining=499, window=60.0, reset=0.12)
    assert bucket.depths()[0] == 500


def test_sent_at_reads_what_had_left_by_then() -> None:
    bucket = Bucket([Dimension("tokens/min", "tokens", 6_000, 60.0)], 0.0)
    assert bucket.sent_at(10.0) is None  # nothing recorded: callers fall back to grants
    bucket.wire((100.0,), 1.0)
    bucket.wire((50.0,), 3.0)
    assert bucket.sent_at(0.5) == (0.0,)
    assert bucket.sent_at(1.0) == (100.0,)
    assert bucket.sent_at(2.0) == (100.0,)
    assert bucket.sent_at(9.0) == (150.0,)


# -- slow start: the depth is not trusted before it is seen -----------------------------


def test_slow_start_opens_with_one_seconds_worth_and_no_refill_before_an_answer() -> None:
    bucket = slow_start(rpm=1_200, tpm=120_000)  # 20 requests and 2,000 tokens a second
    assert bucket.probing() == (True, True)
    assert bucket.depths() == (20.0, 2_000.0)
    granted = sum(bucket.try_take((1.0, 50.0), now=0.0) for _ in range(100))
    assert granted == 20
    # The server may not have seen the first call yet: nothing refills until it answers.
    assert not bucket.try_take((1.0, 50.0), now=0.5)
    assert bucket.delay((1.0, 50.0), now=0.5) == pytest.approx(0.5 + 0.05)
    # The first answer at 0.6 s: refill runs from then on.
    bucket.resume_refill(0.6)
    assert bucket.levels(0.7) == pytest.approx((2.0, 1_200.0))


def test_without_an_answer_refill_starts_one_grace_period_after_the_first_grant() -> None:
    bucket = slow_start(rpm=60, tpm=60_000)
    assert bucket.try_take((1.0, 10.0), now=5.0)
    assert bucket.levels(5.0 + FIRST_ANSWER_GRACE) == pytest.approx((0.0, 990.0))
    assert bucket.levels(5.0 + FIRST_ANSWER_GRACE + 0.5) == pytest.approx((0.5, 1_000.0))


def test_the_first_header_opens_a_full_minute_bucket_to_its_depth() -> None:
    bucket = slow_start(rpm=1_200, tpm=120_000)
    assert bucket.try_take((1.0, 100.0), now=0.0)
    mark = bucket.grant_mark(0.0)
    for _ in range(19):
        assert bucket.try_take((1.0, 100.0), now=0.0)
    # OpenAI's headers after the first of them: 1,199 left, full again in 50 ms.
    name = bucket.observe(
        "requests", now=0.3, limit=1_200, remaining=1_199, reset=0.05, window=None, mark=mark
    )
    assert name == "requests/min"
    assert bucket.probing() == (False, True)
    assert bucket.depths()[0] == pytest.approx(1_200)
    # Opened: the server's word, net of the 19 sent after the answered call's grant.
    assert bucket.levels(0.3)[0] == pytest.approx(1_199 - 19)


def test_a_quantized_server_shows_its_shallow_depth_and_keeps_it() -> None:
    bucket = slow_start(rpm=1_200, tpm=120_000)
    for _ in range(20):
        bucket.try_take((1.0, 10.0), now=0.0)
    bucket.observe("requests", now=0.3, limit=1_200, remaining=0, reset=1.0, window=1.0)
    assert bucket.probing()[0] is False
    assert bucket.depths()[0] == pytest.approx(20)
    assert bucket.levels(0.3)[0] == 0.0  # never raised by an opening that shows no room


def test_a_call_above_the_inferred_depth_goes_when_the_bucket_is_full() -> None:
    # A 2-second slice holds 5,000 tokens; the limiter only inferred 2,168 (say, from a
    # truncated reset). A 2,534-token call must not fail: it goes, in debt.
    bucket = Bucket(Limits(tpm=150_000).dimensions(), now=0.0)
    bucket.observe("tokens", now=0.0, limit=150_000, remaining=0, reset=0.8672, window=1.0)
    assert bucket.depths()[0] == pytest.approx(2_168, rel=1e-3)
    bucket.check_fits((2_534.0,))  # the stated capacity (a whole minute) admits it
    assert not bucket.try_take((2_534.0,), now=0.0)
    wait = bucket.delay((2_534.0,), now=0.0)
    assert wait == pytest.approx(2_168 / 2_500, rel=1e-3)  # until full at its depth
    assert bucket.try_take((2_534.0,), now=wait)
    assert bucket.levels(wait)[0] == pytest.approx(2_168 - 2_534, rel=1e-3)


def test_answers_without_headers_open_slow_start_one_round_trip_at_a_time() -> None:
    bucket = slow_start(rpm=600, tpm=600_000)  # 10 requests a second, a minute's 600
    extra = []
    for _round in range(14):
        # Send what the bucket holds (no time passes: no refill), then all are answered.
        marks = []
        while bucket.try_take((1.0, 0.0), now=0.0):
            marks.append(bucket.grant_mark(0.0))
        for mark in marks:
            bucket.grow((1.0, 0.0), mark, now=0.0)
        extra.append(len(marks))
    # The first round is the opening; each next one sends the last probe: 1, 2, 4, ...
    assert extra[:7] == [10, 1, 2, 4, 8, 16, 32]
    assert bucket.depths()[0] == 600 and bucket.probing()[0] is False
    # What went beyond refill never exceeded the stated capacity.
    assert sum(extra) <= 600


def test_a_refusal_while_probing_gives_the_last_probe_back() -> None:
    bucket = slow_start(rpm=600, tpm=600_000)
    for _ in range(3):
        assert bucket.try_take((1.0, 0.0), now=0.0)
        bucket.grow((1.0, 0.0), bucket.grant_mark(0.0), now=0.0)
    assert bucket.depths()[0] == 10 + 1 + 2 + 4
    assert bucket.fall_back(now=0.0, metric="requests") == ("requests/min",)
    assert bucket.depths()[0] == 13 and bucket.probing()[0] is False
    # Probing goes on only where no refusal was seen.
    assert bucket.try_take((1.0, 5.0), now=0.0)
    assert bucket.grow((1.0, 5.0), bucket.grant_mark(0.0), now=0.0) == ("tokens/min",)
    # Never below the opening allowance; a call granted before the last probe confirms
    # nothing.
    fresh = slow_start(rpm=600, tpm=600_000)
    fresh.try_take((1.0, 0.0), now=0.0)
    early = fresh.grant_mark(0.0)
    fresh.try_take((1.0, 0.0), now=0.0)
    assert fresh.grow((1.0, 0.0), fresh.grant_mark(0.0), now=0.0) == ("requests/min",)
    assert fresh.grow((1.0, 0.0), early, now=0.0) == ()
    fresh.fall_back(now=0.0)
    assert fresh.depths() == (10.0, 10_000.0)


def test_an_inferred_pace_slows_refill_but_keeps_the_stated_capacity() -> None:
    bucket = make(rpm=600, tpm=60_000)
    bucket.try_take((600.0, 0.0), now=0.0)
    bucket.set_pace("requests/min", 300, now=0.0)
    assert bucket.paces() == (300.0, 60_000.0)
    assert bucket.dimensions[0].limit == 600 and bucket.dimensions[0].capacity == 600
    assert bucket.levels(1.0)[0] == pytest.approx(5.0)
    bucket.check_fits((600.0, 0.0))
    bucket.set_pace("requests/min", 10_000, now=1.0)  # never above the stated limit
    assert bucket.paces()[0] == 600.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=0.2), st.integers(1, 3), st.integers(0, 900)),
        min_size=1,
        max_size=80,
    )
)
def test_before_the_first_answer_no_more_than_the_opening_is_granted(
    ops: list[tuple[float, int, int]],
) -> None:
    bucket = slow_start(rpm=1_200, tpm=120_000)
    depth = bucket.depths()
    now, taken, first = 0.0, [0.0, 0.0], None
    for step, requests, tokens in ops:
        now += step
        if first is not None and now >= first + FIRST_ANSWER_GRACE:
            break
        if bucket.try_take((float(requests), float(tokens)), now):
            first = now if first is None else first
            taken[0] += requests
            taken[1] += tokens
    # One call may go above the opening (it is never refused for the allowance's sake).
    assert taken[0] <= depth[0] + 3 and taken[1] <= depth[1] + 900
    assert taken[0] - 3 <= depth[0]
