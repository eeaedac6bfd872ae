"""The univariate pipeline end to end over Azurite: telemetry in, stored anomalies out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared.cli.csvio import read_series_csv
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch
from shared.timefmt import format_timestamp
from shared.univariate.detect import detect_raw_batch


def bodies_for(timestamps: np.ndarray, values: np.ndarray, device: str = "meter-1") -> list[bytes]:
    return [
        json.dumps(
            {"deviceId": device, "timestamp": format_timestamp(float(t)), "power": f"{v:.3f}"}
        ).encode()
        for t, v in zip(timestamps, values, strict=True)
    ]


def replay(
    bodies: list[bytes], store: BlobStore, settings: Settings, batch: int = 500
) -> list[str]:
    """Deliver in batches and run detection for each raw blob, as the two triggers do."""
    written = []
    for start in range(0, len(bodies), batch):
        events = [RawEvent(b, "0", start + i) for i, b in enumerate(bodies[start : start + batch])]
        report = ingest_batch(events, store, settings)
        for blob in report.raw_blobs:
            detect_raw_batch(blob, store, settings)
            written.append(blob)
    return written


def test_power_csv_through_the_whole_pipeline(power_csv: Path, app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    series = read_series_csv(power_csv)
    raw = replay(bodies_for(series.timestamps, series.values), store, settings)
    assert len(raw) == 20
    results = set(store.list_names(settings.results_container))
    summaries = sorted(n for n in results if n.endswith("summary.json"))
    assert len(summaries) == 20
    last = store.get_json(BlobRef(settings.results_container, summaries[-1]))
    assert last["window"]["points"] == settings.detect_window_points
    assert last["window"]["end"] == "2006-12-23T16:02:00Z"
    assert last["granularity"] == "minutely"
    flagged = sum(
        store.get_json(BlobRef(settings.results_container, s))["anomalyCount"] for s in summaries
    )
    assert 0 < flagged < 0.25 * series.values.size
    # Every stored request is a valid v1.1 request: ordered, unique, gap-free.
    request = store.get_json(
        BlobRef(settings.results_container, summaries[-1][: -len("summary.json")] + "request.json")
    )
    stamps = [p["timestamp"] for p in request["series"]]
    assert stamps == sorted(set(stamps))
    state = store.get_json(BlobRef(settings.results_container, "meter-1/power/stream-state.json"))
    assert format_timestamp(state["lastTimestamp"]) == "2006-12-23T16:02:00Z"


def test_spike_with_gaps_and_duplicates_is_found(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    rng = np.random.default_rng(4)
    n = 900
    stamps = 1_762_041_600.0 + 60.0 * np.arange(n)
    values = 2 + np.sin(np.arange(n) * 2 * np.pi / 180) + 0.05 * rng.standard_normal(n)
    values[850] = 6.0
    keep = rng.random(n) > 0.02
    keep[850] = True
    bodies = bodies_for(stamps[keep], values[keep])
    bodies += bodies[-40:]  # redelivered tail
    replay(bodies, store, settings, batch=300)
    anomalies = []
    for name in store.list_names(settings.results_container):
        if name.endswith("summary.json"):
            anomalies += store.get_json(BlobRef(settings.results_container, name)).get(
                "anomalies", []
            )
    assert format_timestamp(stamps[850]) in {a["timestamp"] for a in anomalies}


def test_redetecting_a_batch_is_idempotent(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    stamps = 1_762_041_600.0 + 60.0 * np.arange(200)
    values = np.sin(np.arange(200) / 5.0)
    raw = replay(bodies_for(stamps, values), store, settings, batch=100)

    def snapshot() -> dict[str, bytes]:
        return {
            n: store.get_bytes(BlobRef(settings.results_container, n))
            for n in store.list_names(settings.results_container)
        }

    before = snapshot()
    detect_raw_batch(raw[-1], store, settings)  # the blob trigger fires again
    assert snapshot() == before


def test_too_little_history_is_skipped_with_a_reason(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    stamps = 1_762_041_600.0 + 60.0 * np.arange(5)
    (raw,) = replay(bodies_for(stamps, np.ones(5)), store, settings)
    report = detect_raw_batch(raw, store, settings)
    assert report.skipped and "12" in report.skipped


def test_imputed_points_are_never_reported(app_env: dict[str, str]) -> None:
    settings = Settings.from_env({**app_env, "DETECT_IMPUTE_MODE": "previous"})
    store = BlobStore.from_settings(settings)
    rng = np.random.default_rng(8)
    n = 600
    stamps = 1_762_041_600.0 + 60.0 * np.arange(n)
    values = 3 + np.sin(np.arange(n) * 2 * np.pi / 120) + 0.05 * rng.standard_normal(n)
    keep = np.ones(n, dtype=bool)
    keep[500:560] = False  # an hour of silence: filled with the last value (a flat line)
    replay(bodies_for(stamps[keep], values[keep]), store, settings, batch=1000)
    (summary_name,) = [n for n in store.list_names(settings.results_container) if "summary" in n]
    summary = store.get_json(BlobRef(settings.results_container, summary_name))
    assert summary["imputedPoints"] == 60
    gap = {format_timestamp(float(t)) for t in stamps[500:560]}
    assert not gap & {a["timestamp"] for a in summary["anomalies"]}
