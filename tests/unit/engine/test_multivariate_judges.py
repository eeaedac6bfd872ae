"""The multivariate engine's two judges, its own input type and its model file, on synthetic rigs.

The rig imitates a pump's sensors at one reading a second: a slow shared load drives flow,
pressure, current and temperature together; vibration is noise around a level. Sustained faults
move several sensors by a little for a long time, which no single reading shows.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from shared.engine.multivariate import (
    FORMAT_VERSION,
    Frame,
    MultivariateConfig,
    MultivariateModel,
)
from shared.errors import DatasetError, ModelError

SENSORS = ("vibration", "current", "pressure", "temperature", "flow")
START = np.datetime64("2024-03-01T00:00:00", "s")
SECOND = np.timedelta64(1, "s")


def rig(rows: int, seed: int) -> np.ndarray:
    """Five sensors of one pump: AR(1) load shared by four of them, plus their own noise."""
    rng = np.random.default_rng(seed)
    load = np.empty(rows)
    level = 0.0
    for i, step in enumerate(rng.normal(0.0, 0.1, rows)):
        level = 0.95 * level + step
        load[i] = level
    noise = rng.normal(0.0, 1.0, (rows, len(SENSORS)))
    return np.column_stack(
        [
            0.5 + 0.05 * noise[:, 0],
            2.0 + 0.4 * load + 0.03 * noise[:, 1],
            1.0 + 0.2 * load + 0.02 * noise[:, 2],
            70.0 + 1.0 * load + 0.1 * noise[:, 3],
            30.0 + 3.0 * load + 0.2 * noise[:, 4],
        ]
    )


def frame(values: np.ndarray, offset: int = 0) -> Frame:
    stamps = START + (np.arange(values.shape[0]) + offset) * SECOND
    return Frame(SENSORS, stamps, np.ascontiguousarray(values), granularity_seconds=1)


@pytest.fixture(scope="module")
def model() -> MultivariateModel:
    return MultivariateModel(MultivariateConfig(sliding_window=120)).fit(frame(rig(1_500, 1)))


def flagged(model: MultivariateModel, values: np.ndarray) -> np.ndarray:
    return model.score(frame(values, offset=10_000)).is_anomaly


#: A fault from row 400 to 600: vibration up by 2.4 of its noise, flow down by 1.5 of its own
#: (single readings that far out are common: about 1 in 60 and 1 in 7).
FAULT = slice(400, 600)


def with_fault(values: np.ndarray) -> np.ndarray:
    faulty = values.copy()
    faulty[FAULT, 0] += 2.4 * 0.05
    faulty[FAULT, 4] -= 1.5 * 0.2
    return faulty


def test_training_like_noise_raises_few_alarms(model: MultivariateModel) -> None:
    # alarm_rate is 0.5 % of training rows; fresh rows of the same rig stay near it.
    for seed in (2, 3, 4):
        assert flagged(model, rig(1_000, seed)).mean() < 0.02


def test_a_sustained_small_deviation_of_several_sensors_is_found(
    model: MultivariateModel,
) -> None:
    values = with_fault(rig(1_000, 5))
    flags = flagged(model, values)
    # Almost the whole fault, once its evidence has built up, and little outside it.
    assert flags[FAULT][20:].mean() > 0.8
    assert flags[:400].mean() < 0.02
    assert flags[650:].mean() < 0.02


def test_the_point_judge_alone_misses_what_the_sustained_judge_finds() -> None:
    # Without persistence and smoothing (the point judge on single rows only) the same fault
    # is mostly missed: the sustained evidence is what finds it.
    point_only = MultivariateConfig(sliding_window=120, persistence=1, smoothing=1)
    model = MultivariateModel(point_only).fit(frame(rig(1_500, 1)))
    flags = flagged(model, with_fault(rig(1_000, 5)))
    assert flags[FAULT].mean() < 0.5


def test_a_single_jump_is_still_judged_at_its_row(model: MultivariateModel) -> None:
    values = rig(1_000, 6)
    values[500, 1] += 0.6  # current jumps by 20 of its noise for one reading
    points = model.detect(frame(values, offset=10_000))
    assert points[500].is_anomaly
    assert points[500].interpretation[0].variable == "current"


def test_root_cause_of_a_sustained_fault_is_the_sensor_that_broke(
    model: MultivariateModel,
) -> None:
    # Pressure drifts away from the load that drives it (a leak); the others stay right.
    values = rig(1_000, 7)
    values[FAULT, 2] -= np.linspace(0.0, 0.15, FAULT.stop - FAULT.start)
    points = model.detect(frame(values, offset=10_000))[FAULT]
    anomalies = [p for p in points if p.is_anomaly]
    assert len(anomalies) > 0.5 * len(points)
    tops = [p.interpretation[0].variable for p in anomalies]
    assert tops.count("pressure") > 0.9 * len(tops)
    totals = np.zeros(len(SENSORS))
    for point in anomalies:
        for contributor in point.interpretation:
            totals[SENSORS.index(contributor.variable)] += contributor.contribution_score
    assert SENSORS[int(np.argmax(totals))] == "pressure"


def test_detect_last_equals_detect_inside_a_sustained_fault(model: MultivariateModel) -> None:
    values = with_fault(rig(1_000, 8))
    for end in (420, 500, 610):
        data = frame(values[:end], offset=10_000)
        last = model.detect_last(data)
        full = model.detect(data)[-1]
        assert last.is_anomaly == full.is_anomaly
        assert last.score == pytest.approx(full.score, rel=1e-9, abs=1e-12)


def test_save_and_load_give_the_same_model(model: MultivariateModel) -> None:
    data = frame(with_fault(rig(1_000, 9)), offset=10_000)
    blob = model.to_bytes()
    loaded = MultivariateModel.from_bytes(blob)
    assert loaded.to_bytes() == blob
    assert loaded.config == model.config
    assert loaded.threshold == model.threshold
    before, after = model.score(data), loaded.score(data)
    np.testing.assert_array_equal(before.score, after.score)
    np.testing.assert_array_equal(before.is_anomaly, after.is_anomaly)
    np.testing.assert_array_equal(before.contributions, after.contributions)


def rewrite_config(blob: bytes, change: dict[str, object]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename == "config.json":
                document = json.loads(payload)
                document.update(change)
                payload = json.dumps(document).encode()
            target.writestr(info, payload)
    return out.getvalue()


@pytest.mark.parametrize(
    "change",
    [
        {"sustainedThreshold": 0.0},
        {"sustainedThreshold": "high"},
        {"formatVersion": FORMAT_VERSION + 1},
        {"formatVersion": True},
        # A version 1 header on version 2 arrays: the shapes give it away.
        {"formatVersion": 1},
    ],
)
def test_a_model_file_with_a_bad_threshold_or_version_is_refused(
    model: MultivariateModel, change: dict[str, object]
) -> None:
    with pytest.raises(ModelError) as caught:
        MultivariateModel.from_bytes(rewrite_config(model.to_bytes(), change))
    assert caught.value.code == "InvalidModel"


@pytest.mark.parametrize(
    "settings",
    [
        {"persistence": 0},
        {"smoothing": 0},
        {"smoothing": 500},
        {"sustained_alarm_rate": 0.0},
        {"slow_windows": 0},
    ],
)
def test_judge_settings_are_checked(settings: dict[str, object]) -> None:
    with pytest.raises(DatasetError) as caught:
        MultivariateConfig(**settings)  # type: ignore[arg-type]
    assert caught.value.code == "InvalidParameter"


def test_history_rows_cover_both_judges() -> None:
    config = MultivariateConfig(
        sliding_window=100, lags=2, persistence=4, smoothing=7, slow_windows=5
    )
    assert MultivariateModel(config).history_rows == 5 * 100 + 2 + 4 + 7


def test_a_frame_with_the_wrong_shape_is_refused() -> None:
    with pytest.raises(DatasetError) as caught:
        Frame(SENSORS, START + np.arange(3) * SECOND, np.zeros((3, 2)), granularity_seconds=1)
    assert caught.value.code == "InvalidDataset"


@pytest.mark.parametrize(
    "start",
    [
        START + 900 * SECOND,
        "2024-03-01T00:15:00",
        "2024-03-01T00:15:00Z",
        datetime(2024, 3, 1, 0, 15),
        datetime(2024, 3, 1, 1, 15, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_start_is_read_in_any_usual_form(
    model: MultivariateModel, start: datetime | np.datetime64 | str
) -> None:
    points = model.detect(frame(rig(1_000, 10)), start=start)
    assert len(points) == 100
    assert points[0].timestamp == START + 900 * SECOND


def test_a_start_that_is_no_timestamp_is_refused(model: MultivariateModel) -> None:
    with pytest.raises(DatasetError) as caught:
        model.detect(frame(rig(400, 11)), start="the morning")
    assert caught.value.code == "InvalidTimestamp"


def test_slow_windows_trade_drift_for_long_faults() -> None:
    # Vibration's normal level drifts by 10 of its noise over 6,000 rows (a rig warming up).
    # A short slow scale follows the drift; the default judges it against training, as it
    # judges a long fault, and so flags it.
    drifting = rig(6_000, 12)
    drifting[:, 0] += np.linspace(0.0, 10 * 0.05, 6_000)
    shares = {}
    for windows in (1, 20):
        config = MultivariateConfig(sliding_window=120, slow_windows=windows)
        model = MultivariateModel(config).fit(frame(rig(1_500, 1)))
        shares[windows] = (
            flagged(model, drifting)[3_000:].mean(),
            flagged(model, with_fault(rig(1_000, 5)))[FAULT][20:].mean(),
        )
    assert shares[1][0] < 0.3 < 0.9 < shares[20][0]
    assert shares[1][1] < 0.6 < 0.8 < shares[20][1]


DATA = Path(__file__).parent / "data"


def test_a_version_1_model_file_judges_as_it_did_when_written() -> None:
    # Written by the engine before the sustained judge (format 1), with what it scored then.
    blob = (DATA / "multivariate_model_v1.zip").read_bytes()
    expected = json.loads((DATA / "multivariate_model_v1_expected.json").read_text())
    model = MultivariateModel.from_bytes(blob)
    values = np.asarray(expected["values"])
    stamps = START + (np.arange(values.shape[0]) + expected["offset_minutes"]) * 60 * SECOND
    scores = model.score(Frame(("a", "b", "c"), stamps, values, granularity_seconds=60))
    np.testing.assert_allclose(scores.score, expected["score"], rtol=1e-9, atol=1e-12)
    assert scores.is_anomaly.tolist() == expected["is_anomaly"]
    assert ["abc"[j] for j in np.argmax(scores.contributions, axis=1)] == expected["top"]
    # Written back, it stays a version 1 file and loads to the same judgement.
    again = model.to_bytes()
    with zipfile.ZipFile(io.BytesIO(again)) as archive:
        assert json.loads(archive.read("config.json"))["formatVersion"] == 1
    reloaded = MultivariateModel.from_bytes(again).score(
        Frame(("a", "b", "c"), stamps, values, granularity_seconds=60)
    )
    np.testing.assert_array_equal(reloaded.score, scores.score)
