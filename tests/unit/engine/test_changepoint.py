"""Change points: found exactly at known level shifts, none on stationary series."""

from __future__ import annotations

import numpy as np
import pytest

from shared.engine.changepoint import ChangePointConfig, detect_change_points
from shared.errors import EngineError


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
    with pytest.raises(EngineError, match="stable_trend_window"):
        ChangePointConfig(stable_trend_window=2)
    with pytest.raises(EngineError, match="threshold"):
        ChangePointConfig(threshold=1.0)
    with pytest.raises(EngineError, match="period"):
        ChangePointConfig(period=-2)


def _on_off_meter(n: int, seed: int) -> np.ndarray:
    """A meter switching between 0 and ~0.13 in runs of 8-30 points, with spikes (like the
    reactive power of ``power.csv``), quantised to 0.001."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    pos, on = 0, False
    while pos < n:
        run = int(rng.integers(8, 30))
        x[pos : pos + run] = rng.normal(0.13, 0.01) if on else 0.0
        on, pos = not on, pos + run
    spikes = rng.choice(n, n // 50, replace=False)
    x[spikes] += rng.exponential(0.2, spikes.size)
    return np.round(x, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_obvious_step_in_an_on_off_meter_is_found_at_the_default_threshold(seed: int) -> None:
    # Before: medians of a series switching between two levels flip between them, and the
    # confidence was corrected for every test of the whole series (0.0 to 0.998 here).
    x = _on_off_meter(9999, seed)
    x[6000:6600] += 0.3  # a load left on for ten hours
    result = detect_change_points(x, ChangePointConfig())
    assert np.flatnonzero(result.is_change_point).tolist() == [6000, 6600]
    assert (result.confidence_scores[[6000, 6600]] >= 0.99).all()


def test_a_one_sigma_shift_that_holds_is_found_in_a_short_and_a_long_series() -> None:
    # The long (16-window) scale sees it, and the confidence is corrected per stretch of 100
    # stable windows, not per series (before: 0.94 in both, under the threshold).
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 8000)
    x[1000:] += 1.0
    for n in (2000, 8000):
        result = detect_change_points(x[:n], ChangePointConfig(period=0))
        found = np.flatnonzero(result.is_change_point)
        assert found.size == 1 and abs(int(found[0]) - 1000) <= 10
        assert result.confidence_scores[found[0]] >= 0.99
