"""Streaming detection: causal, exact on simple series, and restorable through JSON."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from shared.engine.streaming import STATE_VERSION, StreamBatch, StreamConfig, StreamDetector

pytestmark = pytest.mark.unit


def _level_series() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = 20 + rng.normal(0, 1, 1200)
    x[700] += 12
    x[900:] += 10
    return x


def _seasonal_series(n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 0.5, n)
    x[2000 % n] -= 8
    x[2500 % n] += 8
    return x


def _assert_same(a: StreamBatch, b: StreamBatch) -> None:
    for field in fields(StreamBatch):
        assert np.array_equal(getattr(a, field.name), getattr(b, field.name)), field.name


def test_spike_and_level_shift_onset_are_flagged_then_adapted_to() -> None:
    batch = StreamDetector(StreamConfig(period=0)).update_many(_level_series())
    # The spike, and the first points of the shift until the level has moved over.
    assert np.flatnonzero(batch.is_anomaly).tolist() == [700, 900, 901, 902]
    assert batch.is_positive_anomaly[[700, 900]].all()
    assert abs(batch.expected_values[950] - 30) < 1.5


def test_seasonal_anomalies_are_found_once_the_season_is_learned() -> None:
    x = _seasonal_series()
    detector = StreamDetector(StreamConfig())
    batch = detector.update_many(x)
    assert detector.period == 48
    late = np.flatnonzero(batch.is_anomaly[1000:]) + 1000
    assert late.tolist() == [2000, 2500]
    assert batch.is_negative_anomaly[2000] and batch.is_positive_anomaly[2500]


def test_warmup_points_are_never_flagged() -> None:
    x = _level_series()
    x[10] += 50
    batch = StreamDetector(StreamConfig(period=0, warmup=30)).update_many(x)
    assert not batch.is_anomaly[:30].any()
    assert (batch.upper_margins[:30] == 0).all()


def test_appending_future_points_never_changes_past_results() -> None:
    x = _seasonal_series(1500)
    full = StreamDetector(StreamConfig()).update_many(x)
    for k in (200, 777, 1100):
        part = StreamDetector(StreamConfig()).update_many(x[:k])
        for field in fields(StreamBatch):
            assert np.array_equal(getattr(part, field.name), getattr(full, field.name)[:k])


def test_update_many_equals_one_update_at_a_time() -> None:
    x = _level_series()[:400]
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    detector = StreamDetector(StreamConfig(period=0))
    points = [detector.update(v) for v in x]
    assert [p.is_anomaly for p in points] == batch.is_anomaly.tolist()
    assert [p.expected_value for p in points] == batch.expected_values.tolist()
    assert [p.severity for p in points] == batch.severity.tolist()


@pytest.mark.parametrize("stop", [10, 61, 700, 2049])
def test_state_round_trip_through_json_continues_identically(stop: int) -> None:
    x = _seasonal_series()
    x[[5, 1500, 2600]] = np.nan
    config = StreamConfig()
    uninterrupted = StreamDetector(config)
    uninterrupted.update_many(x[:stop])
    expected = uninterrupted.update_many(x[stop:])

    first = StreamDetector(config)
    first.update_many(x[:stop])
    state = json.loads(json.dumps(first.to_state(), allow_nan=False))
    assert state["version"] == STATE_VERSION
    assert state["config"]["sensitivity"] == config.sensitivity
    restored = StreamDetector.from_state(state)
    _assert_same(restored.update_many(x[stop:]), expected)


def test_missing_values_are_not_flagged_and_do_not_derail() -> None:
    x = _level_series()
    x[[100, 700, 701, 1000]] = np.nan
    batch = StreamDetector(StreamConfig(period=0)).update_many(x)
    assert np.flatnonzero(batch.is_anomaly).tolist() == [900, 901, 902]
    assert np.isfinite(batch.expected_values).all()
    assert np.isfinite(batch.upper_margins).all() and np.isfinite(batch.lower_margins).all()


def test_flatline_is_flagged() -> None:
    rng = np.random.default_rng(8)
    x = 20 + rng.normal(0, 1, 900)
    x[600:660] = x[599]
    flagged = np.flatnonzero(StreamDetector(StreamConfig(period=0)).update_many(x).is_anomaly)
    assert flagged.size > 0
    assert flagged.min() > 599 and flagged.max() < 660


def test_severity_and_margins_are_well_formed() -> None:
    batch = StreamDetector(StreamConfig()).update_many(_seasonal_series())
    assert ((batch.severity >= 0) & (batch.severity <= 1)).all()
    assert ((batch.severity > 0) == batch.is_anomaly).all()
    assert (batch.upper_margins >= 0).all() and (batch.lower_margins >= 0).all()
    assert not (batch.is_positive_anomaly & batch.is_negative_anomaly).any()


def test_unknown_or_malformed_state_is_refused() -> None:
    state = StreamDetector(StreamConfig()).to_state()
    with pytest.raises(ValueError, match="version"):
        StreamDetector.from_state({**state, "version": STATE_VERSION + 1})
    broken = dict(state)
    del broken["history"]
    with pytest.raises(ValueError, match="malformed"):
        StreamDetector.from_state(broken)


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="sensitivity"):
        StreamConfig(sensitivity=-1)
    with pytest.raises(ValueError, match="warmup"):
        StreamConfig(warmup=5)
    with pytest.raises(ValueError, match="history"):
        StreamConfig(warmup=100, history=50)
