"""Batch preparation: grouping, de-duplication, deterministic names, dead letters."""

from __future__ import annotations

import json

from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import prepare_batch
from shared.telemetry.rawbatch import readings_of_batch


def ev(seq: int, body: object, partition: str = "3") -> RawEvent:
    return RawEvent(json.dumps(body).encode(), partition, seq)


def test_groups_per_device_and_metric_with_deterministic_names() -> None:
    events = [
        ev(10, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "power": 1, "voltage": 230}),
        ev(11, {"deviceId": "m2", "timestamp": "2026-11-01T10:00:00Z", "power": 2}),
        ev(12, {"deviceId": "m1", "timestamp": "2026-11-01T10:01:00Z", "power": 3, "voltage": 231}),
    ]
    prepared = prepare_batch(events)
    names = sorted(blob.name for blob in prepared.blobs)
    assert names == [
        "m1/power/2026-11-01/p3-00000000000000000010-00000000000000000012.json",
        "m1/voltage/2026-11-01/p3-00000000000000000010-00000000000000000012.json",
        "m2/power/2026-11-01/p3-00000000000000000010-00000000000000000012.json",
    ]
    assert prepared.readings == 5
    m1_power = next(b for b in prepared.blobs if b.name.startswith("m1/power"))
    document = json.loads(m1_power.data)
    assert document["readings"] == [["2026-11-01T10:00:00Z", 1.0], ["2026-11-01T10:01:00Z", 3.0]]
    assert [r.value for r in readings_of_batch(document)] == [1.0, 3.0]


def test_same_batch_twice_gives_identical_bytes() -> None:
    events = [
        ev(i, {"deviceId": f"m{i % 3}", "timestamp": f"2026-11-01T10:{i:02d}:00Z", "power": i / 7})
        for i in range(30)
    ]
    first, second = prepare_batch(events), prepare_batch(list(events))
    assert [(b.name, b.data) for b in first.blobs] == [(b.name, b.data) for b in second.blobs]


def test_duplicate_reading_in_a_batch_keeps_the_latest() -> None:
    events = [
        ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1}),
        ev(2, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 5}),
    ]
    document = json.loads(prepare_batch(events).blobs[0].data)
    assert document["readings"] == [["2026-11-01T10:00:00Z", 5.0]]


def test_bad_event_is_dead_lettered_and_the_rest_goes_on() -> None:
    events = [
        ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1}),
        RawEvent(b"{broken", "3", 2, properties={"source": "test"}),
        ev(3, {"deviceId": "m1", "timestamp": "2026-11-01T10:01:00Z", "value": 2}),
    ]
    prepared = prepare_batch(events)
    assert prepared.readings == 2
    assert [d.name for d in prepared.dead_letters] == ["ingest/p3/00000000000000000002.json"]
    letter = json.loads(prepared.dead_letters[0].data)
    assert letter["code"] == "InvalidJson"
    assert letter["payload"] == "{broken"
    assert letter["metadata"]["sequenceNumber"] == 2
    assert letter["metadata"]["properties"] == {"source": "test"}


def test_binary_payload_is_kept_as_base64() -> None:
    prepared = prepare_batch([RawEvent(b"\xff\x00\x01", "0", 5)])
    letter = json.loads(prepared.dead_letters[0].data)
    assert letter["payload"] == {"base64": "/wAB"}


def test_empty_batch() -> None:
    assert prepare_batch([]).blobs == []


def test_late_readings_are_sorted_and_repeats_collapse() -> None:
    events = [
        ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:02:00Z", "value": 3}),
        ev(2, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1}),
        ev(3, {"deviceId": "m1", "timestamp": "2026-11-01T10:02:00Z", "value": 4}),
        ev(4, {"deviceId": "m1", "timestamp": "2026-11-01T10:01:00Z", "value": 2}),
    ]
    (blob,) = prepare_batch(events).blobs
    assert json.loads(blob.data)["readings"] == [
        ["2026-11-01T10:00:00Z", 1.0],
        ["2026-11-01T10:01:00Z", 2.0],
        ["2026-11-01T10:02:00Z", 4.0],
    ]
    assert blob.name.startswith("m1/value/2026-11-01/")
