"""Ingest against real storage (Azurite): raw batches, dead letters, idempotent redelivery."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import AzureError

from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch


def events() -> list[RawEvent]:
    good = [
        RawEvent(
            json.dumps(
                {
                    "deviceId": "m1",
                    "timestamp": f"2026-11-01T10:{i:02d}:00Z",
                    "power": i,
                    "voltage": 230,
                }
            ).encode(),
            "1",
            100 + i,
        )
        for i in range(5)
    ]
    bad = [
        RawEvent(b"{not json", "1", 200, properties={"k": "v"}),
        RawEvent(b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","value":"NaN"}', "1", 201),
        RawEvent(b'{"deviceId":"m1","timestamp":"31/31/2026","value":1}', "1", 202),
        RawEvent(b'{"timestamp":"2026-11-01T10:00:00Z","value":1}', "1", 203),
    ]
    return good[:2] + bad + good[2:]


def snapshot(store: BlobStore, settings: Settings) -> dict[str, bytes]:
    blobs = {}
    for container in (settings.raw_container, settings.deadletter_container):
        for name in store.list_names(container):
            blobs[f"{container}/{name}"] = store.get_bytes(BlobRef(container, name))
    return blobs


def test_batch_is_persisted_and_bad_events_dead_lettered(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    report = ingest_batch(events(), store, settings)
    assert report.readings == 10
    raw = sorted(store.list_names(settings.raw_container))
    assert raw == [
        "m1/power/2026-11-01/p1-00000000000000000100-00000000000000000203.json",
        "m1/voltage/2026-11-01/p1-00000000000000000100-00000000000000000203.json",
    ]
    power = store.get_json(BlobRef(settings.raw_container, raw[0]))
    assert [value for _, value in power["readings"]] == [0, 1, 2, 3, 4]
    letters = {
        name: store.get_json(BlobRef(settings.deadletter_container, name))
        for name in store.list_names(settings.deadletter_container)
    }
    assert {letter["code"] for letter in letters.values()} == {
        "InvalidJson",
        "InvalidValue",
        "InvalidTimestamp",
        "MissingField",
    }
    # Nothing lost: every bad event's original payload is kept.
    assert {letter["payload"] for letter in letters.values()} == {
        e.body.decode() for e in events() if e.sequence_number >= 200
    }


def test_redelivered_batch_gives_identical_blobs(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    store = BlobStore.from_settings(settings)
    ingest_batch(events(), store, settings)
    first = snapshot(store, settings)
    ingest_batch(events(), store, settings)
    assert snapshot(store, settings) == first


def test_storage_failure_raises_so_the_runtime_retries() -> None:
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
            "KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        }
    )
    store = BlobStore.from_settings(settings)
    store.service._config.retry_policy.total_retries = 0  # type: ignore[union-attr]  # fail fast
    with pytest.raises(AzureError):
        ingest_batch(events(), store, settings)
