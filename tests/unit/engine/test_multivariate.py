"""The multivariate engine on small synthetic data with known anomalies, and its contract."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from shared.engine.multivariate import (
    Contributor,
    MultivariateConfig,
    MultivariateModel,
    MultivariatePoint,
)
from shared.errors import DatasetError, ModelError, ModelNotReadyError
from shared.multivariate.datasets import Dataset

VARIABLES = ("a", "b", "c")
START = np.datetime64("2024-01-01T00:00:00", "s")
MINUTE = np.timedelta64(60, "s")
#: Injected in the detection data: b breaks away from a for one row; c shifts for 30 rows.
SPIKE_ROW, SHIFT_ROW = 300, 600


def make_values(rows: int, seed: int, phase: float = 0.0) -> np.ndarray:
    """``a``: a noisy cycle; ``b`` follows ``2 a``; ``c``: independent AR(1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows) + phase
    a = np.sin(2 * np.pi * t / 120.0) + rng.normal(0.0, 0.1, rows)
    b = 2.0 * a + rng.normal(0.0, 0.1, rows)
    noise = rng.normal(0.0, 0.2, rows)
    c = np.empty(rows)
    level = 0.0
    for i in range(rows):
        level = 0.8 * level + noise[i]
        c[i] = level
    return np.column_stack([a, b, c])


def make_dataset(
    values: np.ndarray, variables: tuple[str, ...] = VARIABLES, offset_minutes: int = 0
) -> Dataset:
    stamps = START + (np.arange(values.shape[0]) + offset_minutes) * MINUTE
    return Dataset(
        variables=variables,
        timestamps=stamps,
        values=np.ascontiguousarray(values),
        filled_na_ratio=dict.fromkeys(variables, 0.0),
        granularity_seconds=60,
    )


def training() -> Dataset:
    return make_dataset(make_values(2_000, seed=1))


def detection_values() -> np.ndarray:
    values = make_values(1_000, seed=2)
    values[SPIKE_ROW, 1] += 3.0
    values[SHIFT_ROW : SHIFT_ROW + 30, 2] += 2.5
    return values


@pytest.fixture(scope="module")
def model() -> MultivariateModel:
    return MultivariateModel(MultivariateConfig(sliding_window=100)).fit(training())


def top(point: MultivariatePoint) -> str:
    return point.interpretation[0].variable


def test_flags_injected_events_with_their_cause(model: MultivariateModel) -> None:
    points = model.detect(make_dataset(detection_values()))
    assert len(points) == 1_000
    assert points[SPIKE_ROW].is_anomaly and top(points[SPIKE_ROW]) == "b"
    assert points[SHIFT_ROW].is_anomaly and top(points[SHIFT_ROW]) == "c"
    # Far from the events the data behaves like training: about alarm_rate of it is flagged.
    quiet = points[:250] + points[700:]
    assert sum(p.is_anomaly for p in quiet) <= 3 * model.config.alarm_rate * len(quiet)


def test_clean_data_is_rarely_flagged(model: MultivariateModel) -> None:
    points = model.detect(make_dataset(make_values(3_000, seed=3)))
    flagged = sum(p.is_anomaly for p in points)
    assert flagged <= 0.01 * len(points)


def test_scores_contributions_and_severity(model: MultivariateModel) -> None:
    points = model.detect(make_dataset(detection_values()), interpret_all=True)
    for point in points:
        shares = [c.contribution_score for c in point.interpretation]
        assert len(shares) == 3
        assert sum(shares) == pytest.approx(1.0)
        assert shares == sorted(shares, reverse=True)
        assert 0.0 <= point.severity <= 1.0
        assert (point.severity > 0.0) == point.is_anomaly
        assert point.score >= 0.0
        assert (point.score > model.threshold) == point.is_anomaly
    strongest = max(points, key=lambda p: p.score)
    assert strongest.severity == max(p.severity for p in points)


def test_interpretation_only_for_anomalies_by_default(model: MultivariateModel) -> None:
    points = model.detect(make_dataset(detection_values()))
    for point in points:
        assert bool(point.interpretation) == point.is_anomaly
        if not point.is_anomaly:
            assert point.changed_variables == ()


def test_top_contributor_count_limits_the_list() -> None:
    config = MultivariateConfig(sliding_window=100, top_contributor_count=1)
    model = MultivariateModel(config).fit(training())
    point = model.detect(make_dataset(detection_values()))[SPIKE_ROW]
    assert point.interpretation == (point.interpretation[0],)
    assert isinstance(point.interpretation[0], Contributor)


def test_correlation_change_names_the_partner() -> None:
    values = make_values(1_000, seed=4)
    values[500:600, 1] = -2.0 * values[500:600, 0]  # b turns against a for 100 rows
    model = MultivariateModel(MultivariateConfig(sliding_window=60)).fit(training())
    points = model.detect(make_dataset(values))
    late = [p for p in points[560:600] if p.is_anomaly]
    assert late, "a broken relationship that persists stays anomalous"
    for point in late:
        assert {"a", "b"} <= set(point.changed_variables)
        assert {c.variable for c in point.interpretation[:2]} == {"a", "b"}


def test_deterministic_training_and_bytes() -> None:
    first = MultivariateModel(MultivariateConfig(sliding_window=100)).fit(training())
    second = MultivariateModel(MultivariateConfig(sliding_window=100)).fit(training())
    assert first.to_bytes() == second.to_bytes()
    data = make_dataset(detection_values())
    assert first.detect(data) == second.detect(data)


def test_round_trip_gives_identical_results(model: MultivariateModel) -> None:
    data = make_dataset(detection_values())
    blob = model.to_bytes()
    loaded = MultivariateModel.from_bytes(blob)
    assert loaded.variables == model.variables
    assert loaded.config == model.config
    assert loaded.diagnostics == model.diagnostics
    assert loaded.detect(data, interpret_all=True) == model.detect(data, interpret_all=True)
    assert loaded.to_bytes() == blob


def test_model_file_is_json_and_npy_without_pickle(model: MultivariateModel) -> None:
    with zipfile.ZipFile(io.BytesIO(model.to_bytes())) as archive:
        names = archive.namelist()
        assert names[0] == "config.json"
        assert all(name.endswith(".npy") for name in names[1:])
        document = json.loads(archive.read("config.json"))
        assert document["variables"] == list(VARIABLES)
        assert document["config"]["sliding_window"] == 100
        for name in names[1:]:
            array = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            assert array.dtype == np.float64


def rewrite(blob: bytes, replace: dict[str, bytes | None]) -> bytes:
    """Copy a model zip, replacing (or with ``None`` dropping) some members."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(blob)) as source,
        zipfile.ZipFile(out, "w") as target,
    ):
        for name in source.namelist():
            if name in replace:
                if replace[name] is not None:
                    target.writestr(name, replace[name])  # type: ignore[arg-type]
            else:
                target.writestr(name, source.read(name))
    return out.getvalue()


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def corrupt_models(blob: bytes) -> dict[str, bytes]:
    document = json.loads(zipfile.ZipFile(io.BytesIO(blob)).read("config.json"))
    newer = dict(document, formatVersion=99)
    bad_config = dict(document, config=dict(document["config"], sliding_window=5))
    return {
        "junk": b"not a model",
        "truncated": blob[: len(blob) // 2],
        "missing array": rewrite(blob, {"precision.npy": None}),
        "pickled array": rewrite(blob, {"center.npy": npy(np.array([object()]), True)}),
        "wrong shape": rewrite(blob, {"center.npy": npy(np.zeros(7))}),
        "non-finite": rewrite(blob, {"scale.npy": npy(np.array([1.0, np.nan, 1.0]))}),
        "other format": rewrite(blob, {"config.json": json.dumps({"format": "x"}).encode()}),
        "newer version": rewrite(blob, {"config.json": json.dumps(newer).encode()}),
        "bad config": rewrite(blob, {"config.json": json.dumps(bad_config).encode()}),
        "not json": rewrite(blob, {"config.json": b"{"}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "junk",
        "truncated",
        "missing array",
        "pickled array",
        "wrong shape",
        "non-finite",
        "other format",
        "newer version",
        "bad config",
        "not json",
    ],
)
def test_corrupt_model_files_are_refused(model: MultivariateModel, case: str) -> None:
    data = corrupt_models(model.to_bytes())[case]
    with pytest.raises(ModelError) as caught:
        MultivariateModel.from_bytes(data)
    assert caught.value.code == "InvalidModel"


def test_renamed_variable_is_a_mismatch(model: MultivariateModel) -> None:
    renamed = make_dataset(detection_values(), ("a", "b", "z"))
    with pytest.raises(DatasetError) as caught:
        model.detect(renamed)
    assert caught.value.code == "VariableMismatch"
    assert "missing c" in caught.value.message and "not in training z" in caught.value.message


def test_missing_variable_is_a_mismatch(model: MultivariateModel) -> None:
    with pytest.raises(DatasetError) as caught:
        model.detect_last(make_dataset(detection_values()[:, :2], ("a", "b")))
    assert caught.value.code == "VariableMismatch" and "missing c" in caught.value.message


def test_reordered_columns_are_mapped_by_name(model: MultivariateModel) -> None:
    values = detection_values()
    original = model.detect(make_dataset(values))
    reordered = model.detect(make_dataset(values[:, [2, 0, 1]], ("c", "a", "b")))
    assert reordered == original


def test_fewer_rows_than_sliding_window() -> None:
    with pytest.raises(DatasetError) as caught:
        MultivariateModel(MultivariateConfig(sliding_window=300)).fit(
            make_dataset(make_values(299, seed=1))
        )
    assert caught.value.code == "NotEnoughData"
    assert "299" in caught.value.message and "300" in caught.value.message


def test_one_variable_cannot_be_trained() -> None:
    with pytest.raises(DatasetError) as caught:
        MultivariateModel().fit(make_dataset(make_values(400, seed=1)[:, :1], ("a",)))
    assert caught.value.code == "TooFewVariables"


def test_non_finite_values_are_refused(model: MultivariateModel) -> None:
    values = detection_values()
    values[10, 2] = np.nan
    with pytest.raises(DatasetError) as caught:
        model.detect(make_dataset(values))
    assert caught.value.code == "InvalidValue" and "'c'" in caught.value.message


@pytest.mark.parametrize("window", [27, 2881, 300.5, True, "300"])
def test_sliding_window_range(window: object) -> None:
    with pytest.raises(DatasetError) as caught:
        MultivariateConfig(sliding_window=window)  # type: ignore[arg-type]
    assert caught.value.code == "InvalidSlidingWindow"


@pytest.mark.parametrize(
    "settings",
    [
        {"top_contributor_count": 0},
        {"alarm_rate": 0.0},
        {"alarm_rate": 0.5},
        {"lags": 0},
        {"folds": 1},
        {"ridge": -1.0},
        {"correlation_change": float("nan")},
    ],
)
def test_other_settings_are_checked(settings: dict[str, object]) -> None:
    with pytest.raises(DatasetError) as caught:
        MultivariateConfig(**settings)  # type: ignore[arg-type]
    assert caught.value.code == "InvalidParameter"


def test_config_round_trip() -> None:
    config = MultivariateConfig(sliding_window=28, alarm_rate=0.01)
    assert MultivariateConfig.from_dict(config.to_dict()) == config
    with pytest.raises(DatasetError):
        MultivariateConfig.from_dict({"slidingWindow": 28})


def test_untrained_model() -> None:
    untrained = MultivariateModel()
    with pytest.raises(ModelNotReadyError):
        untrained.detect(training())
    with pytest.raises(ModelNotReadyError):
        untrained.to_bytes()
    with pytest.raises(ModelNotReadyError):
        _ = untrained.diagnostics


def test_detect_last_equals_detect(model: MultivariateModel) -> None:
    values = detection_values()
    for end in (SPIKE_ROW + 1, SHIFT_ROW + 1, 1_000):
        data = make_dataset(values[:end])
        last = model.detect_last(data, interpret_all=True)
        full = model.detect(data, interpret_all=True)[-1]
        assert bool(model.detect_last(data).interpretation) == last.is_anomaly
        assert last.timestamp == full.timestamp
        assert last.is_anomaly == full.is_anomaly
        assert last.score == pytest.approx(full.score, rel=1e-9, abs=1e-12)
        assert [c.variable for c in last.interpretation] == [
            c.variable for c in full.interpretation
        ]


def test_history_before_start_is_context_only(model: MultivariateModel) -> None:
    values = detection_values()
    data = make_dataset(values)
    window_start = START + SPIKE_ROW * MINUTE
    with_history = model.detect(data, start=window_start)
    assert len(with_history) == 1_000 - SPIKE_ROW
    assert with_history[0].timestamp == window_start
    assert with_history[0].is_anomaly and top(with_history[0]) == "b"
    # The same rows without their history: the spike at the first row loses its context.
    alone = model.detect(make_dataset(values[SPIKE_ROW:], offset_minutes=SPIKE_ROW))
    assert alone[0].score < with_history[0].score


def test_a_gap_is_not_judged_as_a_jump(model: MultivariateModel) -> None:
    # Two stretches a quarter cycle apart: contiguous they would look like a jump in a and b.
    values = np.vstack([make_values(400, seed=5), make_values(400, seed=6, phase=430.0)])
    contiguous = model.detect(make_dataset(values))
    stamps = START + np.concatenate([np.arange(400), np.arange(430, 830)]) * MINUTE
    gapped = Dataset(VARIABLES, stamps, values, dict.fromkeys(VARIABLES, 0.0), 60)
    after_gap = model.detect(gapped)
    assert contiguous[400].is_anomaly
    assert not after_gap[400].is_anomaly
    assert str(after_gap[400].timestamp) == "2024-01-01T07:10:00"


def test_progress_reaches_one() -> None:
    seen: list[float] = []
    MultivariateModel(MultivariateConfig(sliding_window=100)).fit(training(), seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)


def test_diagnostics(model: MultivariateModel) -> None:
    diagnostics = model.diagnostics
    assert len(diagnostics.losses) == model.config.folds
    assert all(loss > 0.0 for loss in diagnostics.losses)
    assert diagnostics.first_timestamp == "2024-01-01T00:00:00Z"
    assert diagnostics.last_timestamp == "2024-01-02T09:19:00Z"
    assert 0 < diagnostics.effective_count <= 2_000
    assert diagnostics.effective_count + diagnostics.trimmed_rows == 2_000
    assert diagnostics.filled_na_ratio == dict.fromkeys(VARIABLES, 0.0)
    assert diagnostics.threshold == model.threshold > 0.0


def household(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A mostly-zero integer sub-meter (bursts of ~37 Wh), the total and the voltage.

    Returns the values and a mask of the rows where a burst starts.
    """
    rng = np.random.default_rng(seed)
    meter = np.zeros(rows)
    onsets = np.zeros(rows, dtype=bool)
    row = int(rng.integers(20, 80))
    while row < rows:
        length = int(rng.integers(6, 14))
        meter[row : row + length] = rng.integers(35, 39, size=min(length, rows - row))
        onsets[row] = True
        row += length + int(rng.integers(20, 100))
    flicker = rng.random(rows) < 0.05
    meter[flicker & (meter == 0)] = 1.0
    total = 1.2 + 0.3 * np.sin(2 * np.pi * np.arange(rows) / 1440) + meter * 0.06
    total += rng.normal(0.0, 0.05, rows)
    voltage = 240.0 - 2.0 * total + rng.normal(0.0, 0.3, rows)
    return np.column_stack([meter, np.round(total, 3), np.round(voltage, 2)]), onsets


def test_bursts_of_a_mostly_zero_meter_are_normal() -> None:
    names = ("kitchen", "total", "voltage")
    train, _ = household(3_000, seed=7)
    model = MultivariateModel(MultivariateConfig(sliding_window=120)).fit(
        make_dataset(train, names)
    )
    values, onsets = household(2_000, seed=8)
    points = model.detect(make_dataset(values, names))
    flags = np.array([p.is_anomaly for p in points])
    burst = values[:, 0] > 30
    assert onsets.sum() >= 10
    assert flags[onsets].mean() < 0.5
    assert flags[burst].mean() < 0.1
    assert flags.mean() < 0.02
    # The same meter bursting without the total noticing is an anomaly, blamed on the meter.
    assert not burst[995:1_015].any()
    values[1_000:1_010, 0] = 37.0
    broken = model.detect(make_dataset(values, names))[1_000:1_010]
    assert any(p.is_anomaly for p in broken)
    assert all(top(p) == "kitchen" for p in broken if p.is_anomaly)
