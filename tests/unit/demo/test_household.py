"""The labelled generators: deterministic, consistent labels, the promised shapes."""

from __future__ import annotations

import numpy as np
import pytest

from bench.corpus import quality_corpus
from shared.demo.household import ANOMALY_KINDS, LabelledSeries, household
from shared.errors import InputError
from shared.evaluation import AnomalyEvent


def _check_consistent(series: LabelledSeries) -> None:
    n = series.values.size
    assert series.values.dtype == np.float64
    assert np.isfinite(series.values).all()
    assert series.timestamps.dtype == np.dtype("datetime64[s]")
    assert series.timestamps.size == n
    steps = np.diff(series.timestamps).astype(np.int64)
    assert (steps == series.step_seconds).all()
    assert series.labels.dtype == bool and series.labels.size == n
    expected = np.zeros(n, dtype=bool)
    previous_end = -1
    for event in series.events:
        assert event.kind in ANOMALY_KINDS
        assert previous_end < event.start <= event.end < n
        previous_end = event.end
        expected[event.start : event.end + 1] = True
    assert np.array_equal(series.labels, expected)


def test_household_is_deterministic_per_seed() -> None:
    first, again, other = household(seed=3), household(seed=3), household(seed=4)
    for name in first:
        assert np.array_equal(first[name].values, again[name].values)
        assert first[name].events == again[name].events
    assert not np.array_equal(first["power"].values, other["power"].values)


def test_household_series_look_like_a_smart_meter() -> None:
    home = household(days=3, seed=1, start="2026-11-02T00:00:00")
    assert set(home) == {"power", "voltage", "kitchen", "laundry"}
    for series in home.values():
        assert series.values.size == 3 * 1440
        assert series.step_seconds == 60
        assert series.timestamps[0] == np.datetime64("2026-11-02T00:00:00")
        assert series.events
        _check_consistent(series)
    voltage = home["voltage"]
    normal = voltage.values[~voltage.labels]
    assert 225 < normal.min() and normal.max() < 255
    kitchen = home["kitchen"]
    assert np.mean(kitchen.values == 0) > 0.85
    assert np.array_equal(kitchen.values, np.round(kitchen.values))
    power = home["power"].values
    assert power.min() >= 0
    assert np.allclose(power / 0.002, np.round(power / 0.002))
    kinds = {e.kind for s in home.values() for e in s.events}
    assert {"spike", "dip", "level_shift", "dropout"} <= kinds
    dropouts = [e for e in home["power"].events if e.kind == "dropout"]
    for event in dropouts:
        assert (home["power"].values[event.start : event.end + 1] == 0).all()


def test_household_needs_two_days() -> None:
    with pytest.raises(InputError, match="2 days"):
        household(days=1)


def test_quality_corpus_is_varied_and_deterministic() -> None:
    corpus = quality_corpus(seed=0)
    again = quality_corpus(seed=0)
    assert [s.name for s in corpus] == [s.name for s in again]
    assert all(np.array_equal(a.values, b.values) for a, b in zip(corpus, again, strict=True))
    assert len({s.name for s in corpus}) == len(corpus) >= 20
    assert all(1000 <= s.values.size <= 8640 for s in corpus)
    assert {60, 300, 3600} <= {s.step_seconds for s in corpus}
    kinds = {e.kind for s in corpus for e in s.events}
    assert {"spike", "dip", "level_shift", "flatline", "variance_change"} <= kinds
    assert any(not s.events for s in corpus), "the corpus must have anomaly-free series"
    for series in corpus:
        _check_consistent(series)
    different = quality_corpus(seed=1)
    assert not np.array_equal(corpus[0].values, different[0].values)


def test_anomaly_event_rejects_reversed_range() -> None:
    with pytest.raises(InputError, match="start"):
        AnomalyEvent(5, 4, "spike")
