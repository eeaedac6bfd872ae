"""The raw-container blob trigger in-process: real binding objects, Azurite, published alerts."""

from __future__ import annotations

import json
from typing import Any

from azure.functions.decorators.core import BindingDirection

from shared.alerts import ALERT_SCHEMA, Alert, read_anomalies
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import live_dead_letter_name, live_result_name
from shared.univariate.live import PROCESS_STATE
from tests.functions.test_triggers import delivered
from tests.jsonview import json_blob
from tests.live_fleet import START, Fleet, minute_batches, trigger
from tests.unit.telemetry.routing_blobs import routed_json_blob, routed_json_line


def test_blob_trigger_binding_metadata(app_functions: dict[str, Any]) -> None:
    function = app_functions["raw_blob_trigger"]
    bindings = {b["name"]: b for b in function.get_bindings_dict()["bindings"]}
    assert bindings["blob"]["type"] == "blobTrigger"
    assert bindings["blob"]["path"] == "%RAW_CONTAINER%/{name}"
    assert bindings["anomalies"] == {
        "direction": BindingDirection.OUT,
        "type": "eventHub",
        "name": "anomalies",
        "connection": "AnomaliesConnection",
        "eventHubName": "%ANOMALIES_EVENTHUB_NAME%",
    }


def test_each_anomaly_is_published_once_with_the_documented_schema(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    PROCESS_STATE.clear()
    detect = app_functions["raw_blob_trigger"].get_user_function()
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(4, spikes={(3, "voltage", 100), (0, "power", 110)})
    blobs = minute_batches(fleet, range(120))
    published: list[str] = []
    for name, data in blobs:
        published += trigger(detect, settings.raw_container, name, data)
    alerts = [Alert.from_json(text) for text in published]
    assert [(a.device_id, a.metric, a.detector, a.direction) for a in alerts] == [
        (Fleet.device(3), "voltage", "stream", "down"),
        (Fleet.device(0), "power", "stream", "up"),
    ]
    document = json.loads(published[0])
    assert document["schema"] == ALERT_SCHEMA
    assert document["source"] == blobs[100][0]
    assert document["value"] < document["expectedValue"] - document["lowerMargin"]
    # The blob trigger fires again for a batch (Event Grid redelivers): same alert, same id.
    again = trigger(detect, settings.raw_container, *blobs[110])
    assert again == published[1:]
    assert [a.id for a in read_anomalies(store, START, settings=settings)] == [a.id for a in alerts]


def test_unreadable_raw_blob_is_dead_lettered_and_the_trigger_returns(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    detect = app_functions["raw_blob_trigger"].get_user_function()
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    name = "batches/2026/12/01/00/p0-00000000000000000001-00000000000000000002.jsonl.gz"
    assert trigger(detect, settings.raw_container, name, b"\x1f\x8b\x08\x00truncated") == []
    letter = json_blob(store, BlobRef(settings.deadletter_container, live_dead_letter_name(name)))
    assert letter["whole"] is True
    assert letter["code"] == "InvalidGzip"


def test_iot_hub_routing_blob_is_judged(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    """The Learn module's IoT Hub -> storage route feeds live detection with no Event Hub."""
    detect = app_functions["raw_blob_trigger"].get_user_function()
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    lines = []
    for minute in range(100):
        value = 9.0 if minute == 90 else 1.0 + 0.02 * ((minute * 7) % 5)
        stamp = f"2026-11-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z"
        lines.append(routed_json_line("hub-meter", stamp, {"timestamp": stamp, "power": value}))
    name = "meterhub/1/2026/11/01/10/05"
    published = trigger(detect, settings.raw_container, name, routed_json_blob(lines))
    (alert,) = [Alert.from_json(text) for text in published]
    assert (alert.device_id, alert.metric, alert.timestamp) == (
        "hub-meter",
        "power",
        "2026-11-01T11:30:00Z",
    )
    result = json_blob(store, BlobRef(settings.results_container, live_result_name(name)))
    assert result["source"] == "iothub" and result["points"] == 100


def test_event_hub_to_alerts_through_both_triggers(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    ingest = app_functions["eventhub_ingest"].get_user_function()
    detect = app_functions["raw_blob_trigger"].get_user_function()
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(3, spikes={(1, "power", 95)})
    published: list[str] = []
    for minute in range(110):
        ingest(delivered(fleet.messages(minute), 3 * minute, partition="0"))
    for name in sorted(store.list_names(settings.raw_container)):
        data = store.get_bytes(BlobRef(settings.raw_container, name))
        published += trigger(detect, settings.raw_container, name, data)
    assert [(a.device_id, a.timestamp) for a in map(Alert.from_json, published)] == [
        (Fleet.device(1), "2026-12-01T01:35:00Z")
    ]
