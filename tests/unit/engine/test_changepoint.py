"""Change points: found exactly at known level shifts, none on stationary series."""

from __future__ import annotations

import numpy as np
import pytest

from shared.engine.changepoint import ChangePointConfig, detect_change_points


def test_level_shifts_are_found_at_their_exact_index() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 600)
    x[200:] += 5
    x[420:] -= 8
    result = detect_change_points(x, ChangePointConfig(period=0))
    assert np.flatnonzero(result.is_change_point).tolist() == [200, 420]
    assert (result.confidence_scores[[200, 420]] >= 0.99).all()
    assert ((result.confidence_scores >= 0) & (result.confidence_scores <= 1)).all()
    assert result.is_change_point.dtype == bool
    assert result.confidence_scores.shape == x.shape


def test_a_modest_shift_that_holds_for_long_is_found() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 8640)
    x[3000:] += 3
    result = detect_change_points(x, ChangePointConfig(period=0))
    assert np.flatnonzero(result.is_change_point).tolist() == [3000]


def test_shift_in_a_seasonal_series_ignores_the_season_and_a_spike() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(720)
    x = 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, t.size)
    x[360:] += 4
    x[100] += 10
    for period in (24, None):
        result = detect_change_points(x, ChangePointConfig(period=period))
        assert result.period == 24
        assert np.flatnonzero(result.is_change_point).tolist() == [360]


def test_stationary_series_have_no_change_points() -> None:
    # At the default threshold (0.99) about one stationary series in a hundred gets one.
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        n = int(rng.integers(300, 3000))
        if seed % 2:
            x = np.zeros(n)
            e = rng.normal(size=n)
            for i in range(1, n):  # autocorrelated noise
                x[i] = 0.8 * x[i - 1] + e[i]
        else:
            x = rng.normal(size=n)
        found += int(detect_change_points(x, ChangePointConfig(period=0)).is_change_point.sum())
    assert found <= 1


def test_steady_trend_is_not_a_change() -> None:
    rng = np.random.default_rng(3)
    x = 0.05 * np.arange(1000) + rng.normal(0, 1, 1000)
    assert not detect_change_points(x, ChangePointConfig(period=0)).is_change_point.any()


def test_stable_trend_window_and_threshold() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 400)
    x[150:] += 6
    wide = detect_change_points(x, ChangePointConfig(period=0, stable_trend_window=30))
    assert np.flatnonzero(wide.is_change_point).tolist() == [150]
    strict = detect_change_points(x, ChangePointConfig(period=0, threshold=0.999999999999))
    loose = detect_change_points(x, ChangePointConfig(period=0, threshold=0.5))
    assert strict.is_change_point.sum() <= loose.is_change_point.sum()


def test_missing_values_and_short_series() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 300)
    x[150:] += 6
    x[[10, 150, 151]] = np.nan
    result = detect_change_points(x, ChangePointConfig(period=0))
    assert np.flatnonzero(result.is_change_point).tolist() == [152]  # first reading after
    assert not result.is_change_point[[10, 150, 151]].any()
    short = detect_change_points(np.arange(15.0), ChangePointConfig(period=0))
    assert not short.is_change_point.any() and (short.confidence_scores == 0).all()


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="stable_trend_window"):
        ChangePointConfig(stable_trend_window=2)
    with pytest.raises(ValueError, match="threshold"):
        ChangePointConfig(threshold=1.0)
    with pytest.raises(ValueError, match="period"):
        ChangePointConfig(period=-2)
