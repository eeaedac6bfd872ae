"""The v1.1 univariate contract: validation codes, response shapes, grids and windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shared.engine.univariate import UnivariateConfig, detect_entire
from shared.errors import DetectionRequestError
from shared.univariate.contract import (
    detect_changepoint_v11,
    detect_entire_v11,
    detect_entire_windows,
    detect_last_v11,
    parse_request,
)

START = datetime(2026, 11, 2, tzinfo=UTC)


def body(
    values: list[float] | np.ndarray, step: timedelta = timedelta(minutes=1), **extra: Any
) -> dict[str, Any]:
    return {
        "series": [
            {"timestamp": (START + i * step).strftime("%Y-%m-%dT%H:%M:%SZ"), "value": float(v)}
            for i, v in enumerate(values)
        ],
        "granularity": "minutely",
        **extra,
    }


def spiky(n: int = 300, at: int = 250) -> np.ndarray:
    rng = np.random.default_rng(1)
    values = 10 + np.sin(np.arange(n) * 2 * np.pi / 60) + 0.1 * rng.standard_normal(n)
    values[at] += 8
    return values


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b.update(series=b["series"][:11]), "InvalidSeries"),
        (lambda b: b.update(series=b["series"] * 400), "InvalidSeries"),
        (lambda b: b.pop("series"), "RequiredSeries"),
        (lambda b: b.pop("granularity"), "RequiredGranularity"),
        (lambda b: b.update(granularity="fortnightly"), "InvalidGranularity"),
        (lambda b: b["series"].reverse(), "InvalidSeries"),
        (lambda b: b["series"].__setitem__(1, dict(b["series"][0])), "InvalidSeries"),
        (lambda b: b["series"][3].update(value="one"), "InvalidSeries"),
        (lambda b: b["series"][3].update(timestamp="not a time"), "InvalidSeries"),
        (lambda b: b.update(sensitivity=100), "InvalidSensitivity"),
        (lambda b: b.update(maxAnomalyRatio=0.9), "InvalidMaxAnomalyRatio"),
        (lambda b: b.update(period=-1), "InvalidPeriod"),
        (lambda b: b.update(customInterval=0), "InvalidCustomInterval"),
        (lambda b: b.update(imputeMode="guess"), "InvalidImputeMode"),
        (lambda b: b.update(imputeMode="fixed"), "InvalidImputeValue"),
        (lambda b: b.update(threshold=1.5), "InvalidThreshold"),
    ],
)
def test_invalid_requests_raise_the_service_codes(mutate: Any, code: str) -> None:
    request = body(np.arange(20.0))
    mutate(request)
    with pytest.raises(DetectionRequestError) as info:
        parse_request(request)
    assert info.value.code == code
    assert len(info.value.message) > 10


def test_not_an_object() -> None:
    with pytest.raises(DetectionRequestError) as info:
        parse_request([1, 2, 3])
    assert info.value.code == "InvalidJsonFormat"


def test_entire_response_shape_and_spike() -> None:
    response = detect_entire_v11(body(spiky(), period=60))
    assert set(response) == {
        "period", "expectedValues", "upperMargins", "lowerMargins", "isAnomaly",
        "isNegativeAnomaly", "isPositiveAnomaly", "severity",
    }  # fmt: skip
    assert {len(v) for k, v in response.items() if k != "period" and isinstance(v, list)} == {300}
    assert response["isAnomaly"][250] and response["isPositiveAnomaly"][250]
    assert 0 < response["severity"][250] <= 1


def test_gaps_are_filled_but_results_follow_the_request_points() -> None:
    request = body(spiky(), period=60)
    del request["series"][100:110]  # ten missing minutes
    response = detect_entire_v11(request)
    assert len(response["isAnomaly"]) == 290
    assert response["isAnomaly"][240]  # the spike, shifted by the gap


def test_last_response_shape() -> None:
    values = spiky(300, at=299)
    response = detect_last_v11(body(values, period=60))
    assert response["isAnomaly"] is True
    assert response["suggestedWindow"] > 0
    assert {"expectedValue", "upperMargin", "lowerMargin", "severity", "period"} <= set(response)


def test_changepoint_response_finds_a_level_shift() -> None:
    rng = np.random.default_rng(2)
    values = np.r_[np.zeros(150), np.full(150, 5.0)] + 0.2 * rng.standard_normal(300)
    response = detect_changepoint_v11(body(values))
    flagged = np.flatnonzero(response["isChangePoint"])
    assert flagged.size >= 1 and np.min(np.abs(flagged - 150)) <= 3
    assert len(response["confidenceScores"]) == 300


def test_granularity_none_uses_positions() -> None:
    request = {
        "series": [{"value": float(v)} for v in spiky()],
        "granularity": "none",
        "period": 60,
    }
    assert detect_entire_v11(request)["isAnomaly"][250]


def test_windows_cover_any_length_and_agree_with_one_window() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    values = np.sin(np.arange(n) * 2 * np.pi / 144) + 0.1 * rng.standard_normal(n)
    for at in (500, 9_000, 17_000):
        values[at] += 6
    config = UnivariateConfig(sensitivity=95, max_anomaly_ratio=0.25, period=144)
    result = detect_entire_windows(values, config)
    assert result.is_anomaly.size == n
    for at in (500, 9_000, 17_000):
        assert result.is_anomaly[at]
    single = detect_entire(values[:8640], config)
    np.testing.assert_array_equal(result.is_anomaly[:8640], single.is_anomaly)
