"""Scheduled and on-demand detection over history, on Azurite.

The scheduled run judges the series that got readings, stores the v1.1 request and responses
under deterministic names, alerts each anomaly the live judge missed once, and a run retried
before it saved its cursor publishes the same ids again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.alerts import Alert, alert_id, append_anomalies, read_anomalies
from shared.errors import DetectionRequestError, InputError
from shared.history import detection
from shared.history.compaction import compact, record_raw_batches
from shared.history.detection import detect_history, history_request, run_scheduled_detection
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import format_timestamp
from shared.univariate.detect import DetectionOptions
from tests.history_doubles import put_raw_batch
from tests.history_fleet import STEP, compacted_archive
from tests.jsonview import json_blob, obj, seq

END = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
LAST = END.timestamp() // STEP * STEP
SPIKE = LAST - 6 * 3600  # m0: only entire (hindsight) sees it in this test
LIVE_SPIKE = LAST - 3 * 3600  # m1: the live judge alerted on it already


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env(app_env)


@pytest.fixture
def store(settings: Settings) -> BlobStore:
    return BlobStore.from_settings(settings)


def stream_alert(device: str, epoch: float, value: float) -> Alert:
    return Alert.create(
        device_id=device,
        metric="power",
        timestamp=format_timestamp(epoch),
        value=value,
        expected_value=3.0,
        lower_margin=0.5,
        upper_margin=0.5,
        severity=0.9,
        direction="up",
        detector="stream",
        source="live/batches/x.jsonl.gz",
    )


def test_scheduled_run_alerts_each_missed_anomaly_once(
    store: BlobStore, settings: Settings
) -> None:
    compacted_archive(store, settings, END, spikes={("m0", SPIKE): 30.0, ("m1", LIVE_SPIKE): 31.0})
    append_anomalies(store, [stream_alert("m1", LIVE_SPIKE, 31.0)], "live-p0", settings=settings)
    now = END + timedelta(minutes=5)
    report = run_scheduled_detection(store, settings, now)
    assert (report.series, report.judged, report.skipped) == (3, 3, {})
    assert report.run == "2026-11-03T12"
    spike_id = alert_id("m0", "power", format_timestamp(SPIKE), "entire")
    flagged = {(a.device_id, a.timestamp): a for a in report.alerts}
    assert flagged[("m0", format_timestamp(SPIKE))].id == spike_id
    assert flagged[("m0", format_timestamp(SPIKE))].direction == "up"
    assert ("m1", format_timestamp(LIVE_SPIKE)) not in flagged  # the live judge had it
    assert len(report.alerts) == len({a.id for a in report.alerts})
    # Results stored under the run's deterministic names.
    prefix = "scheduled/m0/power/2026-11-03T12/"
    names = sorted(store.list_names(settings.results_container, "scheduled/m0/"))
    assert names == [prefix + "changepoint.json", prefix + "entire.json", prefix + "request.json"]
    request = json_blob(store, BlobRef(settings.results_container, prefix + "request.json"))
    assert request["granularity"] == "minutely" and request["customInterval"] == 5
    assert len(request["series"]) == 24 * 12 + 1  # lookback 24 h, both ends included
    entire = json_blob(store, BlobRef(settings.results_container, prefix + "entire.json"))
    assert len(entire["isAnomaly"]) == len(request["series"])
    # Logged once; the next run has nothing new and alerts nothing.
    logged = read_anomalies(store, SPIKE, SPIKE + 1, settings=settings)
    assert [a.id for a in logged if a.device_id == "m0"] == [spike_id]
    again = run_scheduled_detection(store, settings, now + timedelta(hours=1))
    assert (again.series, again.alerts) == (0, [])


def test_a_run_retried_before_its_cursor_publishes_the_same_ids(
    store: BlobStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    compacted_archive(store, settings, END, devices=1, spikes={("m0", SPIKE): 30.0})
    now = END + timedelta(minutes=5)

    def storage_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("storage went away before the cursor was saved")

    monkeypatch.setattr(detection, "save_cursor", storage_down)
    with pytest.raises(ConnectionError):
        run_scheduled_detection(store, settings, now)
    monkeypatch.undo()
    retried = run_scheduled_detection(store, settings, now + timedelta(minutes=2))
    assert alert_id("m0", "power", format_timestamp(SPIKE), "entire") in {
        a.id for a in retried.alerts
    }
    logged = [a.id for a in read_anomalies(store, LAST - 86_400, LAST + 1, settings=settings)]
    assert sorted(logged) == sorted({a.id for a in retried.alerts})  # once each in the log
    assert run_scheduled_detection(store, settings, now + timedelta(hours=1)).alerts == []


def test_only_series_with_new_readings_are_judged(store: BlobStore, settings: Settings) -> None:
    compacted_archive(store, settings, END, devices=3)
    assert run_scheduled_detection(store, settings, END + timedelta(minutes=5)).judged == 3
    # An hour later m0 reported, and a new meter m9 with three readings (too few to judge).
    later = END + timedelta(hours=1)
    fresh = [(later.timestamp() - 600 + 300 * i, 1.0) for i in range(3)]
    name = put_raw_batch(
        store,
        settings,
        "0",
        90_000,
        90_009,
        f"{later:%Y-%m-%dT%H:%M:%SZ}",
        {("m0", "power"): [(LAST + 3600, 2.5)], ("m9", "power"): fresh},
    )
    record_raw_batches(store, settings, [name], later)
    compact(store, settings, later + timedelta(minutes=1))
    report = run_scheduled_detection(store, settings, later + timedelta(minutes=5))
    assert (report.series, report.judged) == (2, 1)
    assert list(report.skipped) == ["m9/power"]
    assert "needs at least 12" in report.skipped["m9/power"]
    assert store.exists(
        BlobRef(settings.results_container, "scheduled/m0/power/2026-11-03T13/entire.json")
    )


def test_on_demand_request_and_detections(store: BlobStore, settings: Settings) -> None:
    compacted_archive(store, settings, END, devices=1, spikes={("m0", SPIKE): 30.0})
    options = DetectionOptions.from_settings(settings)
    start, end = SPIKE - 3600, SPIKE + 3600
    request = history_request(store, settings, "m0", "power", start, end, options)
    assert request["granularity"] == "minutely" and request["customInterval"] == 5
    stamps = [obj(p)["timestamp"] for p in seq(request["series"])]
    assert stamps[0] == format_timestamp(start) and stamps[-1] == format_timestamp(end)
    assert len(stamps) == 25 == len(set(stamps))
    assert request["sensitivity"] == settings.detect_sensitivity
    entire = detect_history(store, settings, "m0", "power", LAST - 86_400, LAST, "entire", options)
    stamps_of = seq(entire["timestamps"])
    flagged = [t for t, hit in zip(stamps_of, seq(entire["isAnomaly"]), strict=True) if hit]
    assert format_timestamp(SPIKE) in flagged
    assert len(seq(entire["expectedValues"])) == len(stamps_of) == 24 * 12 + 1
    stream = detect_history(store, settings, "m0", "power", start, end, "stream", options)
    assert len(seq(stream["severity"])) == 25
    changepoint = detect_history(store, settings, "m0", "power", start, end, "changepoint", options)
    assert len(seq(changepoint["confidenceScores"])) == 25
    with pytest.raises(InputError, match="Unknown mode"):
        detect_history(store, settings, "m0", "power", start, end, "last", options)
    with pytest.raises(DetectionRequestError, match="needs at least 12"):
        history_request(store, settings, "m0", "power", SPIKE, SPIKE + 600, options)
