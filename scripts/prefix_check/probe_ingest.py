"""Issue 11 defects 1, 3 and 8 (duplicate timestamps) through ``prepare_batch``, in either tree.

For ``scripts/prefix_check/run.sh``: it runs on the revision before the fixes (where it fails)
and on this one (where it passes).

The same attacks as tests/unit/telemetry/test_ingest.py; only the reading of the stored raw
blobs differs (raw batch v2 after the fix, one JSON document per device and metric before).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import prepare_batch

ENQUEUED = datetime(2026, 11, 1, 10, 0, 3, tzinfo=UTC)


def ev(seq: int, body: object, **kwargs: object) -> RawEvent:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawEvent(data, "3", seq, enqueued_time=ENQUEUED + timedelta(seconds=seq), **kwargs)


def stored(prepared) -> dict[tuple[str, str, float], float]:
    out = {}
    try:
        from shared.telemetry.rawbatch import read_raw_batch
    except ImportError:  # pre-fix: one JSON document per device and metric
        from shared.telemetry.rawbatch import readings_of_batch

        for blob in prepared.blobs:
            for r in readings_of_batch(json.loads(blob.data)):
                out[(r.device_id, r.metric, r.timestamp)] = r.value
        return out
    for blob in prepared.blobs:
        batch = read_raw_batch(blob.name, blob.data)
        for s in batch.series:
            for t, v in zip(s.timestamps, s.values.tolist(), strict=True):
                moment = datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
                out[(s.device_id, s.metric, moment)] = v
    return out


HOSTILE = [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","value":' + b"9" * 309 + b"}",
    b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","power":' + b"9" * 400 + b"}",
    b'{"deviceId":"m1","timestamp":' + b"9" * 309 + b',"value":1}',
    b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","metric":["x"],"value":1}',
    b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","metric":{"a":1},"value":1}',
    b'{"deviceId":["m1"],"timestamp":"2026-11-01T10:00:00Z","value":1}',
]


def test_defect_1_one_bad_event_does_not_lose_the_batch() -> None:
    good = [
        ev(i, {"deviceId": f"m{i % 9}", "timestamp": f"2026-11-01T10:{i // 9:02d}:00Z", "value": i})
        for i in range(96)
    ]
    bad = [ev(200 + i, body) for i, body in enumerate(HOSTILE)]
    prepared = prepare_batch(good[:50] + bad + good[50:])
    assert len(stored(prepared)) == 96
    assert len(prepared.dead_letters) == 7
    assert all(json.loads(d.data)["code"] for d in prepared.dead_letters)


@pytest.mark.parametrize(
    "event",
    [
        ev(1, {"deviceId": "m1\n", "timestamp": "2026-11-01T10:00:00Z", "value": 1}),
        ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1,
               "metric": "power\n"}),
        ev(1, {"timestamp": "2026-11-01T10:00:00Z", "value": 1},
           system_properties={"iothub-connection-device-id": "m1\n"}),
    ],
    ids=["body device id", "metric", "IoT Hub device id"],
)  # fmt: skip
def test_defect_3_a_trailing_newline_fails_the_id_check(event: RawEvent) -> None:
    prepared = prepare_batch([event])
    assert not any("\n" in blob.name for blob in prepared.blobs)
    assert stored(prepared) == {}
    assert json.loads(prepared.dead_letters[0].data)["code"] == "InvalidName"


def test_defect_8_a_duplicate_timestamp_resolves_by_sequence_not_delivery_order() -> None:
    high = ev(2, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 5})
    low = ev(1, {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1})
    moment = datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp()
    for events in ([low, high], [high, low]):
        assert stored(prepare_batch(events)) == {("m1", "value", moment): 5.0}
