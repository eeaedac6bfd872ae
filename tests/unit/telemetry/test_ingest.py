"""Batch preparation: one raw batch v2 per delivered batch, de-duplication, dead letters.

The ``test_defect_*`` tests each check a way the first ingest lost or corrupted readings (it
raised on one bad event and lost the batch, let ``m1\\n`` through, or kept the reading
delivered last instead of the one with the highest sequence number).
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.telemetry.events import RawEvent, parse_event
from shared.telemetry.ingest import PreparedBatch, prepare_batch
from shared.telemetry.rawbatch import read_raw_batch

ENQUEUED = datetime(2026, 11, 1, 10, 0, 3, 120000, tzinfo=UTC)


def ev(seq: int, body: object, partition: str = "3", **kwargs: object) -> RawEvent:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    enqueued = ENQUEUED + timedelta(seconds=seq)
    return RawEvent(data, partition, seq, enqueued_time=enqueued, **kwargs)  # type: ignore[arg-type]


def reading(seq: int, device: str, stamp: str, **values: object) -> RawEvent:
    return ev(seq, {"deviceId": device, "timestamp": stamp, **values})


def content(prepared: PreparedBatch) -> dict[tuple[str, str], dict[str, float]]:
    (blob,) = prepared.blobs
    batch = read_raw_batch(blob.name, blob.data)
    return {
        (s.device_id, s.metric): dict(zip(s.timestamps, s.values.tolist(), strict=True))
        for s in batch.series
    }


def test_one_raw_blob_per_delivered_batch_named_by_partition_range_and_enqueued_hour() -> None:
    events = [
        reading(12, "m1", "2026-11-01T10:01:00Z", power=3, voltage=231),
        reading(10, "m1", "2026-11-01T10:00:00Z", power=1, voltage=230),
        reading(11, "m2", "2026-11-01T10:00:00Z", power=2),
        RawEvent(b"{broken", "3", 13, enqueued_time=ENQUEUED),
    ]
    prepared = prepare_batch(events)
    assert [b.name for b in prepared.blobs] == [
        "batches/2026/11/01/10/p3-00000000000000000010-00000000000000000013.jsonl.gz"
    ]
    assert prepared.readings == 5 and prepared.events == 4
    assert content(prepared) == {
        ("m1", "power"): {"2026-11-01T10:00:00Z": 1.0, "2026-11-01T10:01:00Z": 3.0},
        ("m1", "voltage"): {"2026-11-01T10:00:00Z": 230.0, "2026-11-01T10:01:00Z": 231.0},
        ("m2", "power"): {"2026-11-01T10:00:00Z": 2.0},
    }
    batch = read_raw_batch(prepared.blobs[0].name, prepared.blobs[0].data)
    # The lowest-sequence event's enqueued time, not the first delivered one's.
    assert batch.enqueued_time == "2026-11-01T10:00:13.120000Z"
    assert (batch.first_sequence, batch.last_sequence) == (10, 13)


def test_a_stray_old_reading_does_not_move_the_batch() -> None:
    """A batch is named by its enqueued hour, not by the day of its oldest reading."""
    events = [
        reading(1, "m1", "2026-07-23T10:00:00Z", power=1),  # 100 days old
        reading(2, "m1", "2026-11-01T10:00:00Z", power=9),
    ]
    (blob,) = prepare_batch(events).blobs
    assert blob.name.startswith("batches/2026/11/01/10/")


def test_events_without_enqueued_time_fall_back_to_the_newest_reading() -> None:
    events = [
        RawEvent(b'{"deviceId":"m1","timestamp":"2026-11-02T08:00:00Z","value":1}', "0", 1),
        RawEvent(b'{"deviceId":"m1","timestamp":"2026-11-02T09:30:00Z","value":2}', "0", 2),
    ]
    (blob,) = prepare_batch(events).blobs
    assert blob.name.startswith("batches/2026/11/02/09/p0-")


def test_defect_8_duplicate_timestamp_keeps_highest_sequence_whatever_the_order() -> None:
    high = reading(2, "m1", "2026-11-01T10:00:00Z", value=5)
    low = reading(1, "m1", "2026-11-01T10:00:00Z", value=1)
    for events in ([low, high], [high, low]):
        assert content(prepare_batch(events)) == {("m1", "value"): {"2026-11-01T10:00:00Z": 5.0}}


def test_duplicate_timestamp_inside_one_event_keeps_the_last_position() -> None:
    body = [
        {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "power": 1},
        {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00.000Z", "power": 2},
    ]
    assert content(prepare_batch([ev(1, body)])) == {("m1", "power"): {"2026-11-01T10:00:00Z": 2.0}}


def test_redelivery_in_another_order_and_resplit_gives_identical_bytes() -> None:
    rng = random.Random(5)
    events = [
        reading(100 + i, f"m{i % 7}", f"2026-11-01T10:{i % 40:02d}:00Z", power=rng.random())
        for i in range(120)
    ] + [ev(300, b"not json")]
    first = prepare_batch(events)
    shuffled = events[:]
    rng.shuffle(shuffled)
    again = prepare_batch(shuffled)
    assert [(b.name, b.data) for b in again.blobs] == [(b.name, b.data) for b in first.blobs]
    assert [(b.name, b.data) for b in again.dead_letters] == sorted(
        (b.name, b.data) for b in first.dead_letters
    )
    # Split differently: each part is deterministic too, and together they hold the same readings.
    halves = [prepare_batch(shuffled[:60]), prepare_batch(shuffled[60:])]
    for half, part in zip(halves, (shuffled[:60], shuffled[60:]), strict=True):
        assert prepare_batch(list(reversed(part))).blobs == half.blobs
    merged: dict[tuple[str, str, str], tuple[int, float]] = {}
    for half in halves:
        (blob,) = half.blobs
        batch = read_raw_batch(blob.name, blob.data)
        for s in batch.series:
            for stamp, value in zip(s.timestamps, s.values.tolist(), strict=True):
                key = (s.device_id, s.metric, stamp)
                if key not in merged or merged[key][0] < batch.last_sequence:
                    merged[key] = (batch.last_sequence, value)
    whole = {(d, m, t): v for (d, m), rows in content(first).items() for t, v in rows.items()}
    assert {k: v for k, (_, v) in merged.items()} == whole


HOSTILE_BODIES: list[tuple[bytes, str]] = [
    (b"[" * 50_000 + b"]" * 50_000, "InvalidJson"),  # RecursionError before
    (b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","value":' + b"9" * 309 + b"}",
     "ValueOutOfRange"),  # OverflowError before
    (b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","power":' + b"9" * 400 + b"}",
     "ValueOutOfRange"),
    (b'{"deviceId":"m1","timestamp":' + b"9" * 309 + b',"value":1}', "InvalidTimestamp"),
    (b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","metric":["x"],"value":1}',
     "InvalidName"),  # TypeError before
    (b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","metric":{"a":1},"value":1}',
     "InvalidName"),
    (b'{"deviceId":["m1"],"timestamp":"2026-11-01T10:00:00Z","value":1}', "InvalidName"),
]  # fmt: skip


def test_defect_1_one_bad_event_no_longer_loses_the_batch() -> None:
    """A batch of 103 with 7 hostile events: 96 readings stored, 7 coded dead letters."""
    good = [reading(i, f"m{i % 9}", f"2026-11-01T10:{i // 9:02d}:00Z", value=i) for i in range(96)]
    bad = [ev(200 + i, body) for i, (body, _) in enumerate(HOSTILE_BODIES)]
    prepared = prepare_batch(good[:50] + bad + good[50:])
    assert prepared.readings == 96
    stored = content(prepared)
    assert sum(len(rows) for rows in stored.values()) == 96
    codes = [json.loads(letter.data)["code"] for letter in prepared.dead_letters]
    assert codes == [code for _, code in HOSTILE_BODIES]


@pytest.mark.parametrize(
    "event",
    [
        ev(1, {"deviceId": "m1\n", "timestamp": "2026-11-01T10:00:00Z", "value": 1}),
        ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1,
               "metric": "power\n"}),
        ev(1, {"timestamp": "2026-11-01T10:00:00Z", "value": 1},
           system_properties={"iothub-connection-device-id": "m1\n"}),
    ],
)  # fmt: skip
def test_defect_3_trailing_newline_fails_the_id_check(event: RawEvent) -> None:
    prepared = prepare_batch([event])
    assert prepared.blobs == []
    assert json.loads(prepared.dead_letters[0].data)["code"] == "InvalidName"


@pytest.mark.parametrize(
    ("value", "code"),
    [(1e308, "ValueOutOfRange"), (-1e308, "ValueOutOfRange"), ("1e16", "ValueOutOfRange"),
     ("NaN", "InvalidValue"), ("-Infinity", "InvalidValue"), (True, "InvalidValue")],
)  # fmt: skip
def test_values_outside_the_documented_range_are_dead_lettered(value: object, code: str) -> None:
    prepared = prepare_batch(
        [ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": value})]
    )
    assert json.loads(prepared.dead_letters[0].data)["code"] == code
    edge = prepare_batch(
        [ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": -1e15})]
    )
    assert content(edge) == {("m1", "value"): {"2026-11-01T10:00:00Z": -1e15}}


def test_dead_letter_keeps_payload_code_reason_and_metadata_under_a_deterministic_name() -> None:
    events = [
        reading(1, "m1", "2026-11-01T10:00:00Z", value=1),
        ev(2, b"{broken", properties={"source": "test"}),
        ev(3, b"\xff\x00\x01"),
    ]
    prepared = prepare_batch(events)
    assert prepared.readings == 1
    assert [d.name for d in prepared.dead_letters] == [
        "ingest/p3/00000000000000000002.json",
        "ingest/p3/00000000000000000003.json",
    ]
    letter = json.loads(prepared.dead_letters[0].data)
    assert set(letter) == {"source", "code", "reason", "payload", "metadata"}
    assert (letter["code"], letter["payload"]) == ("InvalidJson", "{broken")
    assert "not UTF-8 JSON" in letter["reason"]
    assert letter["metadata"]["sequenceNumber"] == 2
    assert letter["metadata"]["properties"] == {"source": "test"}
    assert letter["metadata"]["enqueuedTime"] == "2026-11-01T10:00:05.120000+00:00"
    assert json.loads(prepared.dead_letters[1].data)["payload"] == {"base64": "/wAB"}


def test_an_unexpected_error_in_one_event_is_dead_lettered_not_raised() -> None:
    broken = RawEvent(None, "3", 9)  # type: ignore[arg-type]  # a caller's bug, not input
    prepared = prepare_batch([broken, reading(10, "m1", "2026-11-01T10:00:00Z", value=1)])
    assert prepared.readings == 1
    letter = json.loads(prepared.dead_letters[0].data)
    assert letter["code"] == "UnreadableEvent" and "AttributeError" in letter["reason"]


def test_a_batch_of_only_bad_events_writes_no_raw_blob() -> None:
    prepared = prepare_batch([ev(1, b"{"), ev(2, b"[]")])
    assert prepared.blobs == [] and len(prepared.dead_letters) == 2


def test_empty_batch() -> None:
    assert prepare_batch([]) == PreparedBatch()


def test_raw_blob_is_gzip_json_lines() -> None:
    (blob,) = prepare_batch([reading(1, "m1", "2026-11-01T10:00:00Z", value=1)]).blobs
    lines = gzip.decompress(blob.data).decode().splitlines()
    assert json.loads(lines[0])["format"] == "meterwatch.rawbatch"
    assert json.loads(lines[1]) == {
        "deviceId": "m1",
        "metric": "value",
        "timestamps": ["2026-11-01T10:00:00Z"],
        "values": [1.0],
    }


# ------------------------------------------------------------------------ property tests

HOSTILE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)
    | st.floats()
    | st.sampled_from([1e308, -1e308, 1e15, 1e16, "1e400", "NaN", "0x10", "1_000"])
    | st.text(max_size=20)
    | st.sampled_from(["m1\n", "m 1", "", "a" * 129, "2026-11-01T10:00:00Z", "12/16/2006 17:24"])
)
HOSTILE_JSON = st.recursive(
    HOSTILE_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(["deviceId", "timestamp", "value", "metric", "power", "voltage", "x"])
HOSTILE_BODY = (
    st.dictionaries(KEYS, HOSTILE_JSON, max_size=5).map(lambda d: json.dumps(d).encode())
    | st.lists(st.dictionaries(KEYS, HOSTILE_SCALARS, max_size=4), max_size=3).map(
        lambda d: json.dumps(d).encode()
    )
    | st.binary(max_size=64)
    | st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
)
HOSTILE_PROPERTIES = st.dictionaries(
    st.sampled_from(["metric", "deviceId", "x"]), HOSTILE_JSON, max_size=2
)
HOSTILE_SYSTEM = st.dictionaries(
    st.sampled_from(["iothub-connection-device-id", "x-opt-enqueued-time"]),
    HOSTILE_JSON,
    max_size=2,
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(HOSTILE_BODY, HOSTILE_PROPERTIES, HOSTILE_SYSTEM), max_size=8), st.randoms()
)
def test_any_event_is_a_stored_reading_or_a_coded_dead_letter(
    hostile: list[tuple[bytes, dict[str, object], dict[str, object]]], rnd: random.Random
) -> None:
    good = [reading(i, f"good-{i}", f"2026-11-01T10:{i:02d}:00Z", power=i / 3) for i in range(5)]
    bad = [
        ev(1000 + i, body, properties=props, system_properties=system)
        for i, (body, props, system) in enumerate(hostile)
    ]
    events = good + bad
    rnd.shuffle(events)
    prepared = prepare_batch(events)  # never raises
    stored = content(prepared) if prepared.blobs else {}
    for event in good:  # every good event is kept
        assert stored[(f"good-{event.sequence_number}", "power")] == {
            f"2026-11-01T10:{event.sequence_number:02d}:00Z": event.sequence_number / 3
        }
    letters = {json.loads(d.data)["metadata"]["sequenceNumber"]: d for d in prepared.dead_letters}
    for event in bad:  # every other event is either stored readings or a coded dead letter
        if event.sequence_number in letters:
            letter = json.loads(letters[event.sequence_number].data)
            assert letter["code"] and letter["reason"]
            assert letter["code"] != "UnreadableEvent", letter["reason"]  # validation covers it
        else:
            for one in parse_event(event):
                assert (one.device_id, one.metric) in stored
    assert len(letters) + sum(1 for e in bad if e.sequence_number not in letters) == len(bad)
