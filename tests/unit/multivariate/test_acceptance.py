"""Acceptance on the tutorial's own case: the kitchen episode of 2006-12-19.

``energy-data.zip``, trained on 2006-12-16 17:24 → 2006-12-18 02:43, detecting on
2006-12-19 00:00 → 20:26. At 08:39 the kitchen sub-meter jumps from 1 to 34 Wh while the
laundry meter stays put; laundry follows at 08:42. The episode must be flagged within its first
three minutes, and wherever it is flagged from 08:39 to 08:41 the kitchen must be the top
contributor (the root cause the tutorial found).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from shared.engine.multivariate import MultivariateConfig, MultivariateModel, MultivariatePoint
from shared.multivariate.datasets import AlignPolicy, align
from shared.multivariate.uploads import load_dataset

TRAIN = (datetime(2006, 12, 16, 17, 24), datetime(2006, 12, 18, 2, 43))
DETECT = (datetime(2006, 12, 19, 0, 0), datetime(2006, 12, 19, 20, 26))
EPISODE = [np.datetime64(f"2006-12-19T08:{minute}:00", "s") for minute in (39, 40, 41)]


@pytest.fixture
def tutorial(energy_zip: Path) -> tuple[MultivariateModel, list[MultivariatePoint]]:
    """Train on the tutorial's window and detect on its test window (milliseconds each)."""
    series = load_dataset(energy_zip.read_bytes(), energy_zip.name)
    train = align(series, AlignPolicy(), *TRAIN)
    detect = align(series, AlignPolicy(), *DETECT)
    model = MultivariateModel(MultivariateConfig()).fit(train)
    return model, model.detect(detect)


def test_windows_are_the_tutorials(
    tutorial: tuple[MultivariateModel, list[MultivariatePoint]],
) -> None:
    model, points = tutorial
    assert model.diagnostics.effective_count + model.diagnostics.trimmed_rows == 2_000
    assert model.diagnostics.first_timestamp == "2006-12-16T17:24:00Z"
    assert model.diagnostics.last_timestamp == "2006-12-18T02:43:00Z"
    assert len(points) == 1_227
    assert str(points[0].timestamp) == "2006-12-19T00:00:00"


def test_kitchen_episode_is_flagged_within_three_minutes(
    tutorial: tuple[MultivariateModel, list[MultivariatePoint]],
) -> None:
    _, points = tutorial
    by_time = {point.timestamp: point for point in points}
    flagged = [by_time[stamp] for stamp in EPISODE if by_time[stamp].is_anomaly]
    assert flagged, "the kitchen episode was not flagged between 08:39 and 08:41"
    for point in flagged:
        assert point.interpretation[0].variable == "kitchen", (
            f"{point.timestamp}: top contributor {point.interpretation[0].variable}"
        )
        assert point.severity > 0.0


def test_quiet_night_is_not_flagged(
    tutorial: tuple[MultivariateModel, list[MultivariatePoint]],
) -> None:
    # Not every burst of a mostly-zero meter is an anomaly: the window is mostly normal.
    _, points = tutorial
    flagged = sum(point.is_anomaly for point in points)
    assert flagged <= 0.05 * len(points)


def test_missing_reading_zeros_are_flagged(energy_zip: Path) -> None:
    # 2006-12-21 11:23 and 11:24 hold 0 V and 0 kW in the files (readings missing upstream).
    series = load_dataset(energy_zip.read_bytes(), energy_zip.name)
    model = MultivariateModel(MultivariateConfig()).fit(align(series, AlignPolicy(), *TRAIN))
    data = align(series, AlignPolicy(), datetime(2006, 12, 21, 6, 0), datetime(2006, 12, 21, 12))
    points = model.detect(data, start=datetime(2006, 12, 21, 11, 0))
    by_time = {str(point.timestamp): point for point in points}
    for stamp in ("2006-12-21T11:23:00", "2006-12-21T11:24:00"):
        point = by_time[stamp]
        assert point.is_anomaly
        assert point.interpretation[0].variable in {"voltage", "power"}
