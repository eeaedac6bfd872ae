"""Univariate detection: exact points on small series with known anomalies."""

from __future__ import annotations

import numpy as np
import pytest

from shared.engine.recent import SUSTAINED_WINDOW, horizon
from shared.engine.univariate import (
    UnivariateConfig,
    detect_entire,
    detect_last,
    detect_period,
    margin_factor,
    suggested_window,
)
from shared.errors import EngineError


def _seasonal(n: int = 400, period: int = 50, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 5 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.3, n)


def _noise(n: int, seed: int, level: float = 10.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, 1, n)


@pytest.mark.parametrize("period", [None, 50])
def test_entire_finds_exactly_the_spike_and_the_dip(period: int | None) -> None:
    x = _seasonal()
    x[123] += 6
    x[301] -= 6
    result = detect_entire(x, UnivariateConfig(period=period))
    assert result.period == 50
    assert np.flatnonzero(result.is_anomaly).tolist() == [123, 301]
    assert np.flatnonzero(result.is_positive_anomaly).tolist() == [123]
    assert np.flatnonzero(result.is_negative_anomaly).tolist() == [301]
    # The expected value follows the season, not the anomaly.
    assert abs(result.expected_values[123] - (x[123] - 6)) < 1.0


def test_result_arrays_are_well_formed() -> None:
    x = _seasonal()
    x[200] += 8
    result = detect_entire(x, UnivariateConfig())
    for array in (result.expected_values, result.upper_margins, result.lower_margins):
        assert array.shape == x.shape and array.dtype == np.float64
        assert np.isfinite(array).all()
    assert (result.upper_margins >= 0).all() and (result.lower_margins >= 0).all()
    for flags in (result.is_anomaly, result.is_positive_anomaly, result.is_negative_anomaly):
        assert flags.dtype == bool and flags.shape == x.shape
    assert ((result.severity > 0) == result.is_anomaly).all()
    assert ((result.severity >= 0) & (result.severity <= 1)).all()
    # Every point outside its band is flagged, every flagged point (no flat-line here) is out.
    outside = (x > result.expected_values + result.upper_margins) | (
        x < result.expected_values - result.lower_margins
    )
    assert np.array_equal(outside, result.is_anomaly)


@pytest.mark.parametrize("period", [12, 24, 60, 144])
def test_detect_period_of_a_noisy_sine(period: int) -> None:
    rng = np.random.default_rng(period)
    n = 12 * period if period > 60 else 2000
    x = np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 0.5, n)
    assert detect_period(x) == period


def test_detect_period_prefers_the_day_to_the_week_and_to_half_a_day() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(24 * 7 * 8)
    day = np.sin(2 * np.pi * t / 24) + 0.6 * np.sin(4 * np.pi * t / 24)
    week = np.where((t // 24) % 7 >= 5, -0.3, 0.0)
    assert detect_period(10 + day + week + rng.normal(0, 0.2, t.size)) == 24


def test_no_period_in_noise_and_rarely_one_in_a_random_walk() -> None:
    noise = [detect_period(np.random.default_rng(s).normal(size=3000)) for s in range(10)]
    assert noise == [0] * 10
    # A random walk's slow wander can look periodic by chance; it must stay rare.
    walks = [
        detect_period(np.cumsum(np.random.default_rng(s).normal(size=3000))) for s in range(20)
    ]
    assert sum(1 for p in walks if p) <= 1


def test_higher_sensitivity_narrows_margins_and_never_finds_fewer() -> None:
    rng = np.random.default_rng(5)
    x = _seasonal(1000, 50, seed=5)
    spikes = rng.choice(np.arange(20, 980), 12, replace=False)
    x[spikes] += rng.uniform(1.0, 6.0, 12)
    counts = []
    previous = None
    for sensitivity in (0, 25, 50, 75, 90, 95, 99):
        result = detect_entire(x, UnivariateConfig(sensitivity=sensitivity, period=50))
        counts.append(int(result.is_anomaly.sum()))
        if previous is not None:
            assert (result.upper_margins <= previous.upper_margins + 1e-12).all()
            assert (result.lower_margins <= previous.lower_margins + 1e-12).all()
        previous = result
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]
    assert [margin_factor(s) for s in (0, 50, 95, 99)] == sorted(
        [margin_factor(s) for s in (0, 50, 95, 99)], reverse=True
    )


def test_max_anomaly_ratio_keeps_the_most_severe() -> None:
    x = _noise(200, seed=11)
    spikes = np.arange(10, 190, 9)  # 20 spikes of growing size
    x[spikes] += np.linspace(8, 27, spikes.size)
    full = detect_entire(x, UnivariateConfig(period=0))
    assert np.array_equal(np.flatnonzero(full.is_anomaly), spikes)
    capped = detect_entire(x, UnivariateConfig(period=0, max_anomaly_ratio=0.05))
    most_severe = np.sort(np.argsort(-full.severity)[:10])
    assert np.array_equal(np.flatnonzero(capped.is_anomaly), most_severe)
    assert set(most_severe) <= set(spikes[5:].tolist())  # the smallest spikes go first
    assert (capped.severity[~capped.is_anomaly] == 0).all()


def test_severity_grows_with_the_distance_outside_the_band() -> None:
    x = _noise(300, seed=2)
    x[100] += 8
    x[200] += 30
    result = detect_entire(x, UnivariateConfig(period=0))
    assert np.flatnonzero(result.is_anomaly).tolist() == [100, 200]
    assert 0 < result.severity[100] < result.severity[200] < 1


def test_missing_values_are_never_flagged_but_get_expectations() -> None:
    x = _seasonal()
    x[123] += 6
    x[301] -= 6
    x[[50, 51, 52, 200, 301]] = np.nan  # the dip at 301 goes missing
    result = detect_entire(x, UnivariateConfig(period=50))
    assert np.flatnonzero(result.is_anomaly).tolist() == [123]
    assert np.isfinite(result.expected_values).all()
    assert np.isfinite(result.upper_margins).all() and np.isfinite(result.lower_margins).all()
    assert abs(result.expected_values[51] - (10 + 5 * np.sin(2 * np.pi * 51 / 50))) < 1.0


def test_level_shift_is_flagged_at_its_start_then_adapted_to() -> None:
    x = _noise(500, seed=3)
    x[250:] += 8
    result = detect_entire(x, UnivariateConfig(period=0))
    assert np.flatnonzero(result.is_anomaly).tolist() == [250]
    # At the onset the expectation is the old level; afterwards the new one.
    assert abs(result.expected_values[250] - 10) < 1.0
    assert abs(result.expected_values[300] - 18) < 1.0


def test_flatline_is_flagged_inside_the_stuck_stretch_only() -> None:
    x = _noise(600, seed=4)
    x[300:340] = x[299]
    result = detect_entire(x, UnivariateConfig(period=0))
    flagged = np.flatnonzero(result.is_anomaly)
    assert flagged.size > 0
    inside = flagged[(flagged > 299) & (flagged < 340)]
    assert inside.tolist() == list(range(inside.min(), 340))  # from the rule's onset to the end
    # Outside the stretch, at most the reading just before it, whose expectation the stuck run
    # pulls (the trend is a running median), and only barely.
    outside = flagged[(flagged <= 299) | (flagged >= 340)]
    assert outside.size <= 1 and (outside >= 295).all() and (outside < 300).all()
    assert (result.severity[outside] < 0.1).all()


def test_normal_bursts_of_a_sub_meter_are_not_flagged_but_an_extreme_one_is() -> None:
    rng = np.random.default_rng(6)
    x = np.zeros(2000)
    start = 30
    while start < 1990:  # mostly zero, an appliance every hour or two
        x[start : start + int(rng.integers(3, 15))] = rng.integers(30, 40)
        start += int(rng.integers(40, 160))
    x[1233:1236] = [0, 150, 0]
    assert np.flatnonzero(detect_entire(x, UnivariateConfig()).is_anomaly).tolist() == [1234]


def test_constant_series_with_one_blip() -> None:
    x = np.full(100, 3.0)
    x[40] = 4.0
    result = detect_entire(x, UnivariateConfig())
    assert np.flatnonzero(result.is_anomaly).tolist() == [40]
    assert np.allclose(result.expected_values, 3.0)


def test_last_judges_the_final_point_like_entire() -> None:
    x = _noise(300, seed=9)
    x[-1] = 20
    last = detect_last(x, UnivariateConfig(period=0))
    entire = detect_entire(x, UnivariateConfig(period=0))
    assert last.is_anomaly and last.is_positive_anomaly and not last.is_negative_anomaly
    assert entire.is_anomaly[-1]
    assert 0 < last.severity < 1
    assert abs(last.expected_value - 10) < 1.0
    assert abs(last.expected_value - entire.expected_values[-1]) < 1.0
    assert last.suggested_window >= 12

    x[-1] = 10.2
    last = detect_last(x, UnivariateConfig(period=0))
    assert not last.is_anomaly and last.severity == 0.0
    assert not detect_entire(x, UnivariateConfig(period=0)).is_anomaly[-1]


def test_last_uses_the_season_one_cycle_back() -> None:
    x = _seasonal(400, 50)
    last = detect_last(x, UnivariateConfig(period=50))
    assert last.period == 50
    assert abs(last.expected_value - (10 + 5 * np.sin(2 * np.pi * 399 / 50))) < 1.0
    assert not last.is_anomaly
    x[-1] -= 6
    assert detect_last(x, UnivariateConfig(period=50)).is_negative_anomaly


def test_last_of_a_missing_point_is_not_an_anomaly() -> None:
    x = _noise(100, seed=1)
    x[-1] = np.nan
    last = detect_last(x, UnivariateConfig())
    assert not last.is_anomaly and np.isfinite(last.expected_value)


def test_bad_input_and_configuration_are_refused() -> None:
    with pytest.raises(EngineError, match="at least 12"):
        detect_entire(np.ones(11), UnivariateConfig())
    with pytest.raises(EngineError, match="at least 12"):
        detect_last(np.ones((20, 2)), UnivariateConfig())
    with pytest.raises(EngineError, match="sensitivity"):
        UnivariateConfig(sensitivity=100)
    with pytest.raises(EngineError, match="max_anomaly_ratio"):
        UnivariateConfig(max_anomaly_ratio=0.6)
    with pytest.raises(EngineError, match="period"):
        UnivariateConfig(period=-1)


def test_period_longer_than_half_the_series_is_ignored() -> None:
    x = _noise(100, seed=8)
    assert detect_entire(x, UnivariateConfig(period=60)).period == 0


def _positive_skewed(n: int, seed: int = 3) -> np.ndarray:
    """A busy positive meter (power, flow): never near zero, heavy upper tail."""
    return 0.3 + np.random.default_rng(seed).gamma(1.0, 1.5, n)


def test_dropout_of_a_positive_series_is_flagged_inside_a_wide_band() -> None:
    x = _positive_skewed(1500)
    x[[700, 701]] = 0.0  # the meter reports 0
    result = detect_entire(x, UnivariateConfig(period=0))
    # The band is wide enough to hold 0 (the series is busy), yet a reading far below
    # anything the series shows is a dropout
    # (its lower bound is clipped at 0: the series has never been negative).
    assert result.expected_values[700] - result.lower_margins[700] == pytest.approx(0.0)
    assert np.flatnonzero(result.is_anomaly).tolist() == [700, 701]
    assert result.is_negative_anomaly[[700, 701]].all()
    assert detect_last(x[:701], UnivariateConfig(period=0)).is_anomaly
    assert not detect_last(x[:700], UnivariateConfig(period=0)).is_anomaly


def test_series_reaching_zero_have_no_dropout_floor() -> None:
    x = _positive_skewed(1500) - 0.3  # now reaching 0 now and then
    x[[700, 701]] = 0.0
    assert not detect_entire(x, UnivariateConfig(period=0)).is_anomaly[[700, 701]].any()


def test_heater_cycling_on_busy_evenings_is_not_flagged() -> None:
    rng = np.random.default_rng(4)
    p = 1440
    t = np.arange(6 * p)
    x = 0.8 + 0.2 * np.sin(2 * np.pi * t / p) + rng.normal(0, 0.03, t.size)
    for day in range(6):  # every evening a thermostat switches a 2 kW heater on and off
        pos = day * p + 1000 + int(rng.integers(0, 120))
        end = pos + int(rng.integers(60, 200))
        while pos < end:
            on = int(rng.integers(2, 10))
            x[pos : pos + on] += rng.uniform(1.8, 2.6)
            pos += on + int(rng.integers(2, 12))
    # Its switching makes steps far larger than the quiet noise, but they are this series'
    # normal behaviour where it is busy: none is a level shift.
    assert not detect_entire(x, UnivariateConfig(period=p)).is_anomaly.any()


def test_a_stuck_sub_meter_is_flagged_even_when_its_run_is_the_longest_in_the_window() -> None:
    # The first day of the synthetic kitchen meter: mostly 0 with short appliance bursts, and
    # stuck at 37 for three hours (a labelled flat-line). In a one-day window the stuck run is
    # the longest run there is: it must not set its own threshold.
    from shared.demo.household import household

    kitchen = household(days=4, seed=0)["kitchen"]
    (stuck,) = [e for e in kitchen.events if e.kind == "flatline"]
    result = detect_entire(kitchen.values[:1440], UnivariateConfig(sensitivity=95))
    assert result.is_anomaly[stuck.start : stuck.end + 1].mean() > 0.9
    assert not result.is_anomaly[: stuck.start].any()


def _five_minute_month(seed: int = 3) -> tuple[np.ndarray, list[int]]:
    """30 days at 5 minutes, daily and weekly rhythm, noise 0.5, and three 2-hour shifts of
    5 sigma."""
    rng = np.random.default_rng(seed)
    t = np.arange(30 * 288)
    daily = 2.0 * np.sin(2 * np.pi * t / 288) + 0.8 * np.sin(4 * np.pi * t / 288)
    weekly = np.where((t // 288) % 7 >= 5, 1.5, 0.0)
    x = 10 + daily + weekly + rng.normal(0, 0.5, t.size)
    starts = [5 * 288 + 100, 13 * 288 + 200, 22 * 288 + 40]
    for start in starts:
        x[start : start + 24] += 2.5
    return x, starts


def test_two_hour_level_shifts_are_found_and_do_not_widen_their_own_band() -> None:
    x, starts = _five_minute_month()
    result = detect_entire(x, UnivariateConfig())
    assert result.period == 288
    quiet = np.ones(x.size, dtype=bool)
    for start in starts:
        assert result.is_anomaly[start : start + 24].sum() >= 20  # (before: none)
        quiet[start - 24 : start + 48] = False
        # The band around a shift is the band of the same hours a day before and after
        # (before: about 3x wider).
        around = result.upper_margins[start : start + 24].mean()
        days = [result.upper_margins[start + d : start + d + 24].mean() for d in (-288, 288)]
        assert around < 1.2 * np.mean(days)
    assert result.is_anomaly[quiet].sum() <= 2


def _bursty_household(seed: int = 5) -> np.ndarray:
    """Four days of per-minute power: a quiet base and, on some evenings, 2-3 kW bursts."""
    rng = np.random.default_rng(seed)
    p = 1440
    t = np.arange(4 * p)
    x = 0.4 + 0.3 * np.sin(2 * np.pi * t / p) ** 2 + rng.normal(0, 0.03, t.size)
    for day in (1, 3):
        pos = day * p + 1100
        while pos < day * p + 1250:
            on = int(rng.integers(3, 15))
            x[pos : pos + on] += rng.uniform(2.0, 3.0)
            pos += on + int(rng.integers(5, 30))
    return np.round(np.maximum(x, 0.0), 3)


def test_the_band_does_not_balloon_around_bursts_nor_go_negative() -> None:
    x = _bursty_household()
    result = detect_entire(x, UnivariateConfig())
    upper = result.expected_values + result.upper_margins
    lower = result.expected_values - result.lower_margins
    # Never far beyond anything the meter read (before: bands to ~5x the highest reading).
    assert upper.max() <= x.max() + np.median(result.upper_margins) + 1e-9
    # A meter that has never been negative gets no negative bound (before: below -2 kW).
    assert lower.min() >= 0.0
    assert (result.expected_values >= 0.0).all()
    # A 10 kW spike in a quiet morning is still found.
    x[2 * 1440 + 300] = 10.0
    assert detect_entire(x, UnivariateConfig()).is_anomaly[2 * 1440 + 300]


def test_last_keeps_the_lower_bound_of_a_never_negative_meter_at_or_above_zero() -> None:
    x = _bursty_household()
    for end in (1 * 1440 + 1160, 2 * 1440 + 200, x.size):
        result = detect_last(x[:end], UnivariateConfig())
        assert result.expected_value - result.lower_margin >= 0.0


def test_last_keeps_flagging_a_two_hour_shift_while_it_lasts() -> None:
    # Each call judges the final point of the window a v1.1 client sends (four days), as the
    # window slides over the shift. Before: at most one point of each shift was flagged.
    x, starts = _five_minute_month()
    window = suggested_window(288)
    config = UnivariateConfig()

    def flagged(end: int) -> bool:
        return detect_last(x[end + 1 - window : end + 1], config).is_anomaly

    for start in starts:
        assert sum(flagged(end) for end in range(start, start + 24)) >= 16
        assert not any(flagged(end) for end in range(start - 24, start))
        assert sum(flagged(end) for end in range(start + 24, start + 72)) <= 3
    # Far from the shifts nothing is flagged, except the first hours after the weekly rhythm
    # steps by 3 sigma at midnight (Saturday up, Monday down): four days of history have no
    # weekend in them, so from the past only that step is a shift too (see recent.horizon).
    day = np.arange(x.size) // 288
    steps = np.flatnonzero(np.diff((day % 7 >= 5).astype(int))) + 1
    excused = np.zeros(x.size, dtype=bool)
    for start in starts:
        excused[start - 24 : start + 72] = True
    for step in steps:
        excused[step : step + horizon(288) + SUSTAINED_WINDOW] = True
    far = np.flatnonzero(~excused[window:]) + window
    assert sum(flagged(int(end)) for end in far[::8]) <= 2
