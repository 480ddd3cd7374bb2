"""The quickest recent trip: a minimum over a window of time, not over answers."""

from __future__ import annotations

import math

from ratelimit_llm._trips import TRIP_WINDOW, QuickestTrip


def test_the_floor_is_the_quickest_trip_of_the_window() -> None:
    trips = QuickestTrip()
    assert trips.floor == math.inf
    assert trips.add(0.3, now=0.0) == 0.3
    assert trips.add(0.1, now=5.0) == 0.1
    assert trips.add(0.5, now=20.0) == 0.1
    assert trips.floor == 0.1


def test_any_number_of_slow_trips_leaves_a_recent_quick_one_in_force() -> None:
    trips = QuickestTrip()
    trips.add(0.05, now=100.0)
    for i in range(10_000):
        assert trips.add(4.0, now=100.0 + i * 0.004) == 0.05


def test_a_quick_trip_is_remembered_most_of_a_window_then_forgotten() -> None:
    trips = QuickestTrip()
    trips.add(0.05, now=0.0)
    # Remembered for at least 50 s (the window less one of its six slices)...
    assert trips.add(1.0, now=TRIP_WINDOW * 5 / 6 - 0.001) == 0.05
    # ...and gone after the window: a network that slowed is followed.
    assert trips.add(1.0, now=TRIP_WINDOW + 0.001) == 1.0
    assert trips.add(2.0, now=TRIP_WINDOW + 1.0) == 1.0


def test_a_clock_that_steps_back_counts_in_the_newest_slice() -> None:
    trips = QuickestTrip(window=60.0)
    trips.add(0.5, now=100.0)
    assert trips.add(0.2, now=40.0) == 0.2
    assert trips.add(0.9, now=100.0) == 0.2
