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
from tests.jsonview import json_blob

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
    document = json_blob(store, BlobRef(settings.deadletter_container, letter))
    assert document["payload"] == "garbage"
    assert document["metadata"]["partitionId"] == "2"
    assert document["metadata"]["sequenceNumber"] == 530
