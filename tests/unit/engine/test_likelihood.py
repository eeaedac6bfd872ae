"""The streaming severity: a ranked, calibrated surprise on small synthetic series."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

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
