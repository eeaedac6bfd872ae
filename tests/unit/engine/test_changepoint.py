"""Change points: found exactly at known level shifts, none on stationary series."""

from __future__ import annotations

from pathlib import Path

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


def _ar(n: int, rng: np.random.Generator, phi: float = 0.8) -> np.ndarray:
    x = np.zeros(n)
    e = rng.normal(size=n)
    for i in range(1, n):  # autocorrelated noise
        x[i] = phi * x[i - 1] + e[i]
    return x


@pytest.mark.parametrize("kind", ["iid", "ar", "seasonal"])
def test_noise_without_a_change_has_no_change_point(kind: str) -> None:
    # Before: a statistic judged against white noise's tail and corrected per stretch of 100
    # windows found changes in such series (maxima 0.99-1.0 among 40 AR(0.8) series).
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        n = int(rng.integers(300, 8640))
        period = 0
        if kind == "iid":
            x = rng.normal(size=n)
        elif kind == "ar":
            x = _ar(n, rng)
        else:
            period = 144
            x = 3 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(size=n)
        result = detect_change_points(x, ChangePointConfig(period=period))
        assert not result.is_change_point.any(), (kind, seed, n)
        assert result.confidence_scores.max() < 0.99


@pytest.mark.parametrize("kind", ["iid", "ar"])
def test_a_step_of_four_sigma_of_the_long_run_noise_is_found_where_it_is(kind: str) -> None:
    # 4 long-run standard deviations (1 for white noise, 1 / (1 - 0.8) = 5 for AR(0.8)), held
    # to the end, or for 4 windows and back: found within a quarter of a window.
    w = 10
    for seed in range(8):
        rng = np.random.default_rng(300 + seed)
        n = 2000
        x, sigma = (rng.normal(size=n), 1.0) if kind == "iid" else (_ar(n, rng), 5.0)
        at = int(rng.integers(300, 1500))
        end = n if seed % 2 else at + 4 * w
        x[at:end] += (1 if seed % 4 < 2 else -1) * 4 * sigma
        found = np.flatnonzero(detect_change_points(x, ChangePointConfig(period=0)).is_change_point)
        expected = [at] if end == n else [at, end]
        assert found.size == len(expected), (kind, seed, found.tolist(), expected)
        assert (np.abs(found - np.array(expected)) <= w // 4).all(), (kind, seed, found.tolist())


def test_the_obvious_moves_of_the_sample_power_series_are_found(power_csv: Path) -> None:
    # Seen in a running median of the sample (9,999 minutes of reactive power): regimes that
    # hold for hours rise and fall at about 1,000-1,030 (0.07 -> 0.28 kW), 1,820-1,840 (back to
    # 0.13), 8,290-8,330 (0.1 -> 0.4) and 8,430-8,450 (back); a second, shorter bump around
    # 8,680-8,810 and a rise near the end. Between them the meter switches on and off every
    # few minutes, hundreds of moves that do not hold. So at least the four edges of the two
    # long regimes, and not a flood of switches (at most a dozen).
    values = np.loadtxt(power_csv, delimiter=",", skiprows=1, usecols=1, encoding="utf-8-sig")
    result = detect_change_points(values, ChangePointConfig())
    found = np.flatnonzero(result.is_change_point)
    assert 4 <= found.size <= 12, found.tolist()
    for lo, hi in ((1000, 1030), (1820, 1840), (8290, 8330), (8430, 8450)):
        assert ((found >= lo) & (found <= hi)).any(), (lo, hi, found.tolist())
    assert (result.confidence_scores[found] >= 0.99).all()


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
