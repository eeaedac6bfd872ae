"""The Event Hub trigger with real ``func.EventHubEvent`` batches: hostile events, redelivery."""

from __future__ import annotations

import json
import random
from typing import Any

from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.telemetry.rawbatch import read_raw_batch
from tests.functions.test_triggers import delivered
from tests.jsonview import json_blob

HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"timestamp":"2026-11-02T00:00:00Z","value":' + b"1" * 320 + b"}",
    b'{"timestamp":' + b"7" * 330 + b',"value":1}',
    b'{"timestamp":"2026-11-02T00:00:00Z","value":1,"metric":["x"]}',
    b'{"timestamp":"2026-11-02T00:00:00Z","value":1,"metric":{"a":1}}',
    b'{"deviceId":"m1\\n","timestamp":"2026-11-02T00:00:00Z","value":1}',
    b'{"timestamp":"2026-11-02T00:00:00Z","value":1e308}',
]


def good_body(i: int) -> bytes:
    return json.dumps(
        {"deviceId": f"m{i % 12}", "timestamp": f"2026-11-02T00:{i // 12:02d}:00Z", "power": i}
    ).encode()


def stored(store: BlobStore, settings: Settings) -> dict[str, bytes]:
    return {
        f"{c}/{n}": store.get_bytes(BlobRef(c, n))
        for c in (settings.raw_container, settings.deadletter_container)
        for n in store.list_names(c)
    }


def test_hostile_events_are_dead_lettered_and_the_batch_persists(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    """One bad event never loses the batch: 103 events, 7 hostile, 96 readings kept."""
    ingest = app_functions["eventhub_ingest"].get_user_function()
    bodies = [good_body(i) for i in range(96)]
    for position, body in zip((0, 10, 40, 41, 70, 95, 96), HOSTILE, strict=True):
        bodies.insert(position, body)
    ingest(delivered(bodies, 7000))
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    (name,) = list(store.list_names(settings.raw_container))
    batch = read_raw_batch(name, store.get_bytes(BlobRef(settings.raw_container, name)))
    assert batch.readings == 96
    assert (batch.first_sequence, batch.last_sequence) == (7000, 7102)
    codes = sorted(
        json_blob(store, BlobRef(settings.deadletter_container, n))["code"]
        for n in store.list_names(settings.deadletter_container)
    )
    assert codes == sorted(
        ["InvalidJson", "ValueOutOfRange", "InvalidTimestamp", "InvalidName", "InvalidName",
         "InvalidName", "ValueOutOfRange"]
    )  # fmt: skip


def test_redelivered_reordered_batch_through_the_trigger_changes_nothing(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    ingest = app_functions["eventhub_ingest"].get_user_function()
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    bodies = [good_body(i) for i in range(60)] + [b"garbage"]
    ingest(delivered(bodies, 100))
    first = stored(store, settings)
    events = delivered(bodies, 100)
    random.Random(1).shuffle(events)
    ingest(events)
    assert stored(store, settings) == first
