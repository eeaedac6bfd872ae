"""The streaming severity: a ranked, calibrated surprise on small synthetic series."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from shared.demo.household import household
from shared.engine.likelihood import TailWindow
from shared.engine.streaming import StreamBatch, StreamConfig, StreamDetector


def _bursty(n: int = 4000, seed: int = 21) -> np.ndarray:
    """Heavy-tailed noise with bursts: a busy server's load."""
    rng = np.random.default_rng(seed)
    x = 40 + rng.laplace(0, 2, n)
    for start in rng.choice(np.arange(300, n - 20), 40, replace=False):
        x[start : start + int(rng.integers(2, 6))] += rng.uniform(8, 15)
    return x


def test_a_spike_ranks_above_the_noise_and_bursts_of_a_bursty_heavy_tailed_series() -> None:
    x = _bursty()
    x[3000] += 60
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    assert int(np.argmax(batch.severity[500:])) + 500 == 3000
    assert batch.is_anomaly[3000]
    # Noise and the usual bursts seldom alarm: fewer than one point in a thousand.
    assert np.count_nonzero(batch.is_anomaly[500:]) <= 1 + (x.size - 500) // 1000


def test_a_level_shift_alarms_early_and_not_point_by_point_afterwards() -> None:
    rng = np.random.default_rng(4)
    x = 100 + rng.normal(0, 2, 3000)
    x[2000:] += 14
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    flagged = np.flatnonzero(batch.is_anomaly[1000:]) + 1000
    assert flagged.size >= 1 and 2000 <= flagged[0] <= 2002
    assert np.count_nonzero((flagged > 2002) & (flagged < 2300)) == 0
    # The onset ranks above every later point of the new level.
    assert batch.severity[2000:2003].max() > batch.severity[2003:].max()


def test_a_quantised_count_series_raises_no_alarm_on_its_noise() -> None:
    rng = np.random.default_rng(9)
    x = rng.poisson(0.4, 5000).astype(np.float64)  # a sub-meter: mostly 0, sometimes 1-3
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    assert np.count_nonzero(batch.is_anomaly[300:]) <= 2
    x[4000] = 40.0  # an appliance that never ran before
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    assert batch.is_anomaly[4000] and batch.is_positive_anomaly[4000]


def test_missing_points_are_never_flagged_and_teach_nothing() -> None:
    rng = np.random.default_rng(12)
    x = 10 + rng.normal(0, 1, 2500)
    x[2200] += 12
    gappy = x.copy()
    gappy[1000:1300:3] = np.nan
    batch = StreamDetector(StreamConfig(period=0)).update_many(gappy)
    assert not batch.is_anomaly[1000:1300:3].any()
    assert (batch.severity[1000:1300:3] == 0).all()
    assert np.flatnonzero(batch.is_anomaly[300:]).tolist() == [2200 - 300]
    # Missing points teach nothing: the tails after the gap hold the same known readings.
    detector = StreamDetector(StreamConfig(period=0))
    detector.update_many(gappy[:1300])
    known = StreamDetector(StreamConfig(period=0))
    known.update_many(gappy[:1300][np.isfinite(gappy[:1300])])
    assert sorted(detector._values) == sorted(known._values)
    assert sorted(detector._errors) != [] and detector._known == known._known


@pytest.mark.parametrize("stop", [150, 1234, 3001])
def test_save_and_restore_in_the_middle_of_a_bursty_stream_is_bit_identical(stop: int) -> None:
    x = _bursty()
    x[[200, 1500, 3500]] = np.nan
    x[3002] += 60
    config = StreamConfig(period=0)
    uninterrupted = StreamDetector(config)
    uninterrupted.update_many(x[:stop])
    expected = uninterrupted.update_many(x[stop:])
    first = StreamDetector(config)
    first.update_many(x[:stop])
    restored = StreamDetector.from_state(json.loads(json.dumps(first.to_state(), allow_nan=False)))
    again = restored.update_many(x[stop:])
    for field in fields(StreamBatch):
        assert np.array_equal(getattr(again, field.name), getattr(expected, field.name))


def test_state_of_a_daily_period_at_one_reading_a_minute_is_bounded() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(6000)
    x = np.round(3 + np.sin(2 * np.pi * t / 1440) + rng.gamma(1.0, 0.3, t.size), 3)
    detector = StreamDetector(StreamConfig(period=1440))
    detector.update_many(x)
    # The tails cost the errors and the collective surprises (float16); the readings' tail
    # is the end of the history the state holds anyway.
    assert len(json.dumps(detector.to_state(), allow_nan=False)) < 22_000


def test_tail_window_surprise_is_empirical_inside_and_exponential_beyond() -> None:
    window = TailWindow(float(v) for v in range(1000))
    assert window.surprise_above(999.0) == pytest.approx(-np.log10(2 / 1001))
    assert window.surprise_above(500.0) == pytest.approx(-np.log10(501 / 1001))
    beyond = [window.surprise_above(999.0 + step) for step in (10.0, 100.0, 1000.0)]
    assert beyond == sorted(beyond) and beyond[0] > -np.log10(2 / 1001)
    window.discard(999.0)
    window.add(-5.0)
    assert window.surprise_below(-5.0) == pytest.approx(-np.log10(2 / 1001))


def test_a_level_shift_after_an_earlier_larger_spike_still_alarms() -> None:
    # One 12-sigma spike must not make a later 10-sigma level shift ordinary (the tail of the
    # errors is modelled beyond the few observations as extreme).
    rng = np.random.default_rng(5)
    x = 50 + rng.normal(0, 1, 5000)
    x[2500] += 12
    x[4000:] += 10
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    assert batch.is_anomaly[4000:4005].any()


def test_an_error_of_another_order_does_not_stretch_the_tail_of_later_errors() -> None:
    # Errors of an outage (hundreds of noise scales) say nothing about the tail an ordinary
    # anomaly of a dozen scales is judged by; an earlier error of the same order still does.
    noise = np.random.default_rng(2).normal(0, 1, 2000)
    plain = TailWindow(float(v) for v in noise)
    with_outage = TailWindow(float(v) for v in noise)
    with_outage.add(-1000.0)
    with_outage.add(1000.0)
    for x in (12.0, -12.0):
        judged = plain.surprise_above(x, pot=True) if x > 0 else plain.surprise_below(x, pot=True)
        after = (
            with_outage.surprise_above(x, pot=True)
            if x > 0
            else with_outage.surprise_below(x, pot=True)
        )
        assert judged > 6.0
        assert after > 0.8 * judged
    similar = TailWindow(float(v) for v in noise)
    for v in (-13.0, -14.0, -15.0):
        similar.add(v)
    assert similar.surprise_below(-12.0, pot=True) < 0.85 * with_outage.surprise_below(
        -12.0, pot=True
    )


def test_an_ordinary_dip_after_an_outage_still_alarms() -> None:
    # A 230 V supply with 1 V of noise: two outages at 0 V, then a 12 V sag 500 points after
    # the second. The outages' errors stay in the error window for ~2,000 points; the sag
    # must still alarm, and so must a later outage.
    rng = np.random.default_rng(4)
    x = np.round(230 + rng.normal(0, 1, 4500), 2)
    x[1500:1530] = 0.0
    x[2000:2060] = 0.0
    x[2560:2562] -= 12
    x[3500:3510] = 0.0
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    flagged = np.flatnonzero(batch.is_anomaly).tolist()
    assert flagged == [1500, 2000, 2560, 3500]
    assert batch.is_negative_anomaly[2560]


def test_every_voltage_event_of_the_demo_household_is_found_live() -> None:
    # The demo's voltage: a daily swing, sags, a swell, a tap change and a meter dropout.
    series = household(days=4, seed=0)["voltage"]
    batch = StreamDetector(StreamConfig()).update_many(np.asarray(series.values, dtype=float))
    for event in series.events:
        assert batch.is_anomaly[event.start : event.end + 1].any(), event
    assert int(batch.is_anomaly.sum()) <= 2 * len(series.events)


def test_bounds_stay_within_the_covered_range_and_are_never_negative_for_a_meter() -> None:
    # A non-negative meter: bursts from an idle floor near zero (an appliance switching on).
    rng = np.random.default_rng(8)
    x = np.abs(rng.normal(0.3, 0.1, 6000))
    for start in rng.choice(np.arange(200, 5900), 60, replace=False):
        x[start : start + int(rng.integers(3, 30))] += rng.uniform(2, 5)
    x = np.round(x, 3)
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    lower = batch.expected_values - batch.lower_margins
    upper = batch.expected_values + batch.upper_margins
    assert (lower[100:] >= 0).all()
    assert (batch.lower_margins >= 0).all() and (batch.upper_margins >= 0).all()
    # The expectation never leaves the range the series has shown.
    assert (batch.expected_values[100:] <= x.max()).all()
    assert (batch.expected_values[100:] >= 0).all()
    assert np.isfinite(upper).all()
