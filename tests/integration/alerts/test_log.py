"""The anomaly log over Azurite: appends per day and hour, reads by range, one alert per id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.alerts import Alert, append_anomalies, read_anomalies
from shared.errors import InputError
from shared.settings import Settings
from shared.storage.client import BlobStore
from shared.storage.names import ANOMALY_LOG_PREFIX


def alert(device: str, stamp: str, detector: str = "stream", value: float = 9.0) -> Alert:
    return Alert.create(
        device_id=device,
        metric="power",
        timestamp=stamp,
        value=value,
        expected_value=2.0,
        lower_margin=0.5,
        upper_margin=0.5,
        severity=0.9,
        direction="up",
        detector=detector,
        source="batch-1",
    )


def test_appended_alerts_read_back_once_each_in_time_order(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    day1 = [alert("m2", "2026-11-30T23:59:00Z"), alert("m1", "2026-11-30T08:00:00Z")]
    day2 = [alert("m1", "2026-12-01T00:00:00Z"), alert("m1", "2026-12-01T00:00:00Z", "entire")]
    # One append per (day, hour) touched: 08h and 23h of day 1, 00h of day 2.
    assert append_anomalies(store, day1 + day2, "live-p0", settings=settings) == 3
    # A retried invocation appends the same lines again; another writer logs one of them too.
    append_anomalies(store, day1 + day2, "live-p0", settings=settings)
    append_anomalies(store, day2[:1], "entire", settings=settings)
    everything = read_anomalies(store, "2026-11-01T00:00:00Z", settings=settings)
    assert [(a.device_id, a.timestamp, a.detector) for a in everything] == [
        ("m1", "2026-11-30T08:00:00Z", "stream"),
        ("m2", "2026-11-30T23:59:00Z", "stream"),
        ("m1", "2026-12-01T00:00:00Z", "entire"),
        ("m1", "2026-12-01T00:00:00Z", "stream"),
    ]
    names = list(store.list_names(settings.results_container, ANOMALY_LOG_PREFIX))
    assert names == [
        "anomalies/2026-11-30/08/live-p0.jsonl",
        "anomalies/2026-11-30/23/live-p0.jsonl",
        "anomalies/2026-12-01/00/entire.jsonl",
        "anomalies/2026-12-01/00/live-p0.jsonl",
    ]


def test_range_bounds_are_inclusive_then_exclusive(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    stamps = ["2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z", "2026-12-02T10:00:00Z"]
    append_anomalies(store, [alert("m1", s) for s in stamps], "live-p1", settings=settings)
    window = read_anomalies(
        store,
        datetime(2026, 12, 1, 10, tzinfo=UTC),
        "2026-12-02T10:00:00Z",
        settings=settings,
    )
    assert [a.timestamp for a in window] == stamps[:2]
    assert [a.timestamp for a in read_anomalies(store, 1_796_205_600.0, settings=settings)] == [
        stamps[2]
    ]
    assert read_anomalies(store, "2027-01-01T00:00:00Z", settings=settings) == []


def test_bad_writer_and_backward_range_are_coded_errors(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    with pytest.raises(InputError) as caught:
        append_anomalies(store, [alert("m1", "2026-12-01T10:00:00Z")], "../x", settings=settings)
    assert caught.value.code == "InvalidWriter"
    with pytest.raises(InputError) as caught:
        read_anomalies(store, "2026-12-02T00:00:00Z", "2026-12-01T00:00:00Z", settings=settings)
    assert caught.value.code == "InvalidRange"
