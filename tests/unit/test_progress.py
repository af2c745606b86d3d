"""A projection's apply rate over a recent window, its ETA and the catch-up line."""

from __future__ import annotations

import pytest

from workers.projector.progress import RateWindow, catch_up_line, eta_secs, format_secs


def test_the_rate_is_measured_over_the_recent_window_up_to_now():
    """Positions reached over time give events per second over the last window, not since start."""
    window = RateWindow(window_secs=10)
    window.add(0.0, 0)
    window.add(100.0, 1000)  # a slow start long ago
    for t in range(101, 111):
        window.add(float(t), 1000 + (t - 100) * 500)  # then 500 events/s
    assert window.rate(110.0) == pytest.approx(500)


def test_a_projection_that_stops_moving_decays_to_zero():
    """No move within the window: the rate falls to 0 (and there is no ETA)."""
    window = RateWindow(window_secs=5)
    window.add(0.0, 0)
    window.add(1.0, 1000)
    assert window.rate(1.0) == pytest.approx(1000)
    for t in range(2, 12):
        window.add(float(t), 1000)  # the heartbeat keeps sampling the same position
    assert window.rate(11.0) == 0
    assert RateWindow().rate(5.0) == 0  # nothing measured yet
    assert eta_secs(100, 0.0) is None


def test_a_position_that_goes_back_starts_the_measure_again():
    """Another version (position from 0 again) does not give a negative rate."""
    window = RateWindow(window_secs=10)
    window.add(0.0, 5000)
    window.add(1.0, 10)
    assert window.rate(1.0) == 0
    window.add(2.0, 110)
    assert window.rate(2.0) == pytest.approx(100)


def test_bad_window_is_refused():
    """A window of 0 seconds measures nothing: refused with the value."""
    with pytest.raises(ValueError, match="window_secs=0"):
        RateWindow(window_secs=0)


@pytest.mark.parametrize(("lag", "rate", "line"), [
    (870_000, 52_310.4, "catching up: lag 870,000, 52,310 events/s, ETA 17s"),
    (1_000, 2.5, "catching up: lag 1,000, 2.5 events/s, ETA 6m40s"),
    (5_000_000, 1000.0, "catching up: lag 5,000,000, 1,000 events/s, ETA 1h23m"),
    (10, 0.0, "catching up: lag 10, 0 events/s, ETA unknown"),
])
def test_the_catch_up_line(lag, rate, line):
    """`catching up: lag N, R events/s, ETA T`, ETA = lag / rate."""
    assert catch_up_line(lag, rate) == line


def test_format_secs():
    """Seconds, minutes and seconds, hours and minutes."""
    assert [format_secs(s) for s in (0, 59.4, 61, 3599, 3600, None)] == [
        "0s", "59s", "1m01s", "59m59s", "1h00m", "unknown"]
