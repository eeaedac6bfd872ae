"""Every mode finds the same obvious anomaly: entire, last, change point (for a level change)
and stream judge differently (the whole series, the last point from the past, level changes,
each point from the past only), but none of them may miss what anyone would point at."""

from __future__ import annotations

import numpy as np
import pytest

from shared.engine.changepoint import ChangePointConfig, detect_change_points
from shared.engine.streaming import StreamConfig, StreamDetector
from shared.engine.univariate import UnivariateConfig, detect_entire, detect_last

PERIOD = 48


def _meter(n: int = 30 * PERIOD, seed: int = 12) -> np.ndarray:
    """Half-hourly readings of a never-negative meter with a daily rhythm and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 2.0 + 0.8 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 0.1, n)


def _window(flags: np.ndarray, start: int, width: int = 3) -> bool:
    return bool(flags[start : start + width].any())


def test_a_spike_is_found_by_entire_last_and_stream() -> None:
    x = _meter()
    at = 20 * PERIOD + 17
    x[at] += 3.0  # 30 sigma
    entire = detect_entire(x, UnivariateConfig(period=PERIOD))
    assert np.flatnonzero(entire.is_anomaly).tolist() == [at]
    assert detect_last(x[: at + 1], UnivariateConfig(period=PERIOD)).is_anomaly
    assert not detect_last(x[:at], UnivariateConfig(period=PERIOD)).is_anomaly
    stream = StreamDetector(StreamConfig(period=PERIOD)).update_many(x)
    assert stream.is_anomaly[at]
    # A spike is no change of level.
    changes = detect_change_points(x, ChangePointConfig(period=PERIOD))
    assert not changes.is_change_point.any()


@pytest.mark.parametrize("shift", [1.5, -1.2])
def test_a_level_change_is_found_by_every_mode_at_its_start(shift: float) -> None:
    x = _meter()
    at = 18 * PERIOD + 5
    x[at:] += shift  # 12-15 sigma, and it holds
    entire = detect_entire(x, UnivariateConfig(period=PERIOD))
    assert _window(entire.is_anomaly, at)
    last = detect_last(x[: at + 1], UnivariateConfig(period=PERIOD))
    assert last.is_anomaly and (last.is_positive_anomaly == (shift > 0))
    changes = detect_change_points(x, ChangePointConfig(period=PERIOD))
    assert np.flatnonzero(changes.is_change_point).tolist() == [at]
    stream = StreamDetector(StreamConfig(period=PERIOD)).update_many(x)
    assert _window(stream.is_anomaly, at)
    # Entire sees the whole series: after the start, the new level is expected.
    assert not entire.is_anomaly[at + PERIOD :].any()
