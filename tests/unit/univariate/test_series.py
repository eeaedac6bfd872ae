"""Series formatting: grid inference, rounding, duplicates, and every impute mode."""

from __future__ import annotations

import numpy as np
import pytest

from shared.errors import DetectionRequestError
from shared.univariate.series import Grid, format_series, impute, infer_grid, request_body, to_grid
from tests.jsonview import obj, seq

T0 = 1_700_000_040.0  # a whole minute


def test_infer_grid_from_median_step() -> None:
    assert infer_grid(T0 + 60.0 * np.arange(10)) == Grid("minutely", 1)
    assert infer_grid(T0 + 900.0 * np.arange(10)) == Grid("minutely", 15)
    assert infer_grid(T0 + 3600.0 * np.array([0, 1, 2, 4, 5])) == Grid("hourly", 1)
    assert infer_grid(T0 + 86400.0 * np.arange(5)) == Grid("daily", 1)


def test_infer_grid_needs_two_timestamps() -> None:
    with pytest.raises(DetectionRequestError):
        infer_grid(np.array([T0, T0]))


def test_jittered_duplicated_unordered_readings_land_on_the_grid() -> None:
    stamps = np.array([T0 + 120 + 2, T0 - 1, T0 + 60, T0 + 61, T0 + 240])
    values = np.array([3.0, 1.0, 2.0, 4.0, 5.0])
    gridded = to_grid(stamps, values, Grid("minutely", 1))
    np.testing.assert_array_equal(gridded.timestamps, T0 + 60.0 * np.arange(5))
    np.testing.assert_array_equal(gridded.observed, [True, True, True, False, True])
    assert gridded.values[1] == 3.0  # 2.0 and 4.0 merged by mean
    assert np.isnan(gridded.values[3])
    assert gridded.duplicates == 1


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("previous", [1.0, 1.0, 1.0, 4.0]),
        ("linear", [1.0, 2.0, 3.0, 4.0]),
        ("zero", [1.0, 0.0, 0.0, 4.0]),
        ("auto", [1.0, 2.0, 3.0, 4.0]),
    ],
)
def test_impute_modes(mode: str, expected: list[float]) -> None:
    np.testing.assert_allclose(impute(np.array([1.0, np.nan, np.nan, 4.0]), mode), expected)


def test_impute_fixed_and_notfill() -> None:
    np.testing.assert_allclose(impute(np.array([1.0, np.nan]), "fixed", 7.5), [1.0, 7.5])
    assert np.isnan(impute(np.array([1.0, np.nan]), "notFill")[1])
    with pytest.raises(DetectionRequestError):
        impute(np.array([1.0, np.nan]), "fixed")
    with pytest.raises(DetectionRequestError):
        impute(np.array([1.0, np.nan]), "sideways")


def test_auto_uses_previous_value_for_long_gaps() -> None:
    values = np.array([1.0] + [np.nan] * 10 + [12.0])
    filled = impute(values, "auto")
    np.testing.assert_allclose(filled[1:11], 1.0)


def test_leading_gap_is_back_filled() -> None:
    np.testing.assert_allclose(impute(np.array([np.nan, 2.0, 3.0]), "previous"), [2, 2, 3])


def test_format_series_maps_inputs_and_keeps_the_tail() -> None:
    stamps = T0 + 60.0 * np.array([0, 1, 2, 2, 5, 6])
    values = np.arange(6, dtype=float)
    series = format_series(stamps, values, max_points=5)
    assert series.timestamps.size == 5
    assert series.timestamps[-1] == T0 + 360
    np.testing.assert_array_equal(series.input_slots, [-1, -1, 0, 0, 3, 4])
    body = request_body(series, sensitivity=80, period=None)
    assert body["granularity"] == "minutely"
    assert body["sensitivity"] == 80 and "period" not in body
    points = [obj(p) for p in seq(body["series"])]
    assert points[0] == {"timestamp": "2023-11-14T22:16:00Z", "value": 2.5}
    assert [str(p["timestamp"]) for p in points] == sorted(str(p["timestamp"]) for p in points)


def test_notfill_leaves_gaps_out_of_the_request() -> None:
    stamps = T0 + 60.0 * np.array([0, 1, 2, 3, 6])
    series = format_series(stamps, np.ones(5), impute_mode="notFill")
    assert series.timestamps.size == 7
    assert len(seq(request_body(series)["series"])) == 5


def test_custom_interval_overrides_inference() -> None:
    series = format_series(T0 + 300.0 * np.arange(4), np.ones(4), custom_interval=5)
    assert series.grid == Grid("minutely", 5)
    assert request_body(series)["customInterval"] == 5
