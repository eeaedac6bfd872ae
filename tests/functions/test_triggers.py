"""Triggers called in-process with real azure.functions objects, over Azurite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import numpy as np
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.meta import Datum

from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore

START = datetime(2026, 11, 2, tzinfo=UTC)


def delivered(
    bodies: list[bytes], first_sequence: int, partition: str = "2"
) -> list[func.EventHubEvent]:
    """Decode a batch exactly as the Python worker does for cardinality=many."""
    system = [
        {
            "SequenceNumber": first_sequence + i,
            "Offset": str(1000 + i),
            "EnqueuedTimeUtc": "2026-11-02T00:00:00Z",
            "iothub-connection-device-id": "iot-meter",
        }
        for i in range(len(bodies))
    ]
    metadata = {
        "PartitionContext": Datum(json.dumps({"PartitionId": partition}), "json"),
        "SystemPropertiesArray": Datum(json.dumps(system), "json"),
        "PropertiesArray": Datum(json.dumps([{"metric": "power"}] * len(bodies)), "json"),
    }
    data = Datum(SimpleNamespace(bytes=bodies), "collection_bytes")
    events = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    assert isinstance(events, list)
    return events


def tutorial_bodies(values: np.ndarray, start: datetime = START) -> list[bytes]:
    return [
        json.dumps(
            {
                "timestamp": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "value": f"{v:.3f}",
            }
        ).encode()
        for i, v in enumerate(values)
    ]


def test_event_hub_trigger_persists_iot_hub_telemetry(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    ingest = app_functions["eventhub_ingest"].get_user_function()
    ingest(delivered(tutorial_bodies(np.linspace(0.1, 0.5, 30)) + [b"garbage"], 500))
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    assert list(store.list_names(settings.raw_container)) == [
        "batches/2026/11/02/00/p2-00000000000000000500-00000000000000000530.jsonl.gz"
    ]
    (letter,) = list(store.list_names(settings.deadletter_container))
    document = store.get_json(BlobRef(settings.deadletter_container, letter))
    assert document["payload"] == "garbage"
    assert document["metadata"]["partitionId"] == "2"
    assert document["metadata"]["sequenceNumber"] == 530


def test_blob_trigger_writes_request_results_and_summary(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    rng = np.random.default_rng(3)
    values = 1.0 + 0.05 * rng.standard_normal(240)
    values[200] = 4.0  # a spike in the second batch
    ingest = app_functions["eventhub_ingest"].get_user_function()
    detect = app_functions["raw_blob_trigger"].get_user_function()
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    bodies = tutorial_bodies(values)
    for first in (0, 120):
        ingest(delivered(bodies[first : first + 120], first))
    names = sorted(store.list_names(settings.raw_container))
    assert len(names) == 2
    for name in names:
        content = store.get_bytes(BlobRef(settings.raw_container, name))
        detect(func.blob.InputStream(data=content, name=f"{settings.raw_container}/{name}"))
    results = sorted(store.list_names(settings.results_container))
    stem = names[1].rsplit("/", 1)[1][: -len(".json")]
    prefix = f"iot-meter/power/2026-11-02/{stem}/"
    for part in ("request.json", "entire.json", "last.json", "changepoint.json", "summary.json"):
        assert prefix + part in results
    request = store.get_json(BlobRef(settings.results_container, prefix + "request.json"))
    assert request["granularity"] == "minutely"
    assert len(request["series"]) == 240
    summary = store.get_json(BlobRef(settings.results_container, prefix + "summary.json"))
    assert [a["timestamp"] for a in summary["anomalies"]] == ["2026-11-02T03:20:00Z"]
    assert summary["anomalies"][0]["direction"] == "up"
    # The first batch had its own request, never overwritten by the second.
    first_stem = names[0].rsplit("/", 1)[1][: -len(".json")]
    first_request = store.get_json(
        BlobRef(settings.results_container, f"iot-meter/power/2026-11-02/{first_stem}/request.json")
    )
    assert len(first_request["series"]) == 120


def test_blob_trigger_ignores_a_foreign_blob(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    detect = app_functions["raw_blob_trigger"].get_user_function()
    detect(func.blob.InputStream(data=b"hello", name="raw/notes.txt"))
    settings = Settings.from_env(function_env)
    assert list(BlobStore.from_settings(settings).list_names(settings.results_container)) == []
