"""Telemetry decoding: what real devices send is accepted, anything else is a coded error."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.errors import TelemetryError
from shared.telemetry.events import RawEvent, Reading, parse_event
from shared.timefmt import canonical_timestamp, chronological, format_timestamp, parse_timestamp


def event(body: object | bytes, **system: object) -> RawEvent:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    properties: dict[str | bytes, object] = {key: value for key, value in system.items()}
    return RawEvent(data, "0", 7, system_properties=properties)


def test_tutorial_message_with_string_value_and_iothub_device() -> None:
    readings = parse_event(
        event(
            {"timestamp": "2006-12-16T17:24:00Z", "value": "0.418"},
            **{"iothub-connection-device-id": "meter-7"},
        )
    )
    assert readings == [
        Reading("meter-7", "value", datetime(2006, 12, 16, 17, 24, tzinfo=UTC).timestamp(), 0.418)
    ]


def test_metric_name_from_application_property() -> None:
    raw = RawEvent(
        b'{"deviceId":"m1","timestamp":"2006-12-16T17:24:00Z","value":1}',
        "0",
        1,
        properties={"metric": "power"},
    )
    assert parse_event(raw)[0].metric == "power"


def test_multi_metric_message_ignores_text_fields() -> None:
    readings = parse_event(
        event(
            {
                "deviceId": "m1",
                "timestamp": "2026-11-01T10:00:00+01:00",
                "power": 1.5,
                "voltage": "236.2",
                "firmware": "1.2.3",
                "online": True,
            }
        )
    )
    assert {(r.metric, r.value) for r in readings} == {("power", 1.5), ("voltage", 236.2)}
    assert readings[0].timestamp == datetime(2026, 11, 1, 9, 0, tzinfo=UTC).timestamp()


def test_array_of_readings() -> None:
    readings = parse_event(
        event(
            [
                {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "power": 1},
                {"deviceId": "m1", "timestamp": "2026-11-01T10:01:00Z", "power": 2},
            ]
        )
    )
    assert [r.value for r in readings] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "InvalidJson"),
        (b"\xff\xfe\x00", "InvalidJson"),
        ([1, 2], "InvalidJson"),
        ({"deviceId": "m1", "value": 1}, "MissingField"),
        ({"timestamp": "2026-11-01T10:00:00Z", "value": 1}, "MissingField"),
        ({"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z"}, "MissingField"),
        ({"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": "abc"}, "InvalidValue"),
        ({"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": None}, "InvalidValue"),
        ({"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": "NaN"}, "InvalidValue"),
        ({"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": "inf"}, "InvalidValue"),
        (b'{"deviceId":"m1","timestamp":"2026-11-01T10:00:00Z","power":NaN}', "InvalidValue"),
        ({"deviceId": "m1", "timestamp": "yesterday-ish", "value": 1}, "InvalidTimestamp"),
        ({"deviceId": "m1", "timestamp": "1800-01-01T00:00:00Z", "value": 1}, "InvalidTimestamp"),
        ({"deviceId": "../etc", "timestamp": "2026-11-01T10:00:00Z", "value": 1}, "InvalidName"),
    ],
)
def test_bad_events_raise_coded_errors(body: object, code: str) -> None:
    raw = (
        event(body, **{"iothub-connection-device-id": "fallback"})
        if "deviceId" in str(body)
        else event(body)
    )
    with pytest.raises(TelemetryError) as info:
        parse_event(raw)
    assert info.value.code == code
    assert info.value.message


def test_timestamp_formats() -> None:
    expected = datetime(2006, 12, 16, 17, 24, tzinfo=UTC).timestamp()
    assert parse_timestamp("12/16/2006 17:24") == expected
    assert parse_timestamp("2006-12-16T17:24:00") == expected
    assert parse_timestamp("2006-12-16T18:24:00+01:00") == expected
    assert parse_timestamp(expected) == expected
    assert parse_timestamp(expected * 1000) == expected
    assert format_timestamp(expected) == "2006-12-16T17:24:00Z"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "1970-01-01T00:00:00Z"),
        (59.999999, "1970-01-01T00:00:59.999999Z"),
        (1165857840.5, "2006-12-11T17:24:00.500000Z"),
        (1165857899.9999996, "2006-12-11T17:25:00Z"),  # rounding carries into the next minute
    ],
)
def test_format_timestamp_fractions_and_carries(seconds: float, text: str) -> None:
    assert format_timestamp(seconds) == text
    assert format_timestamp(seconds) == format_timestamp(seconds)  # cached path agrees


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),
        ("2026-11-01T10:00:59.5Z", "2026-11-01T10:00:59.500000Z"),
        ("2026-11-01T10:00:00.000Z", "2026-11-01T10:00:00Z"),
        ("2026-11-01T11:00:00+01:00", "2026-11-01T10:00:00Z"),
        ("11/1/2026 10:00", "2026-11-01T10:00:00Z"),
    ],
)
def test_canonical_timestamps_agree_with_parse_and_format(raw: str, canonical: str) -> None:
    assert canonical_timestamp(raw) == canonical == format_timestamp(parse_timestamp(raw))


@pytest.mark.parametrize(
    "raw", ["2026-13-01T10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-01T10:00:6xZ"]
)
def test_canonical_looking_but_invalid_timestamps_are_rejected(raw: str) -> None:
    with pytest.raises(TelemetryError) as info:
        canonical_timestamp(raw)
    assert info.value.code == "InvalidTimestamp"


def test_chronological_order_of_canonical_text() -> None:
    stamps = ["2026-11-01T10:00:00.500000Z", "2026-11-01T10:00:01Z", "2026-11-01T10:00:00Z"]
    assert sorted(stamps, key=chronological) == [
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:00:00.500000Z",
        "2026-11-01T10:00:01Z",
    ]


def test_utf8_body_with_byte_order_mark_is_accepted() -> None:
    body = "\ufeff" + json.dumps(
        {"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1}
    )
    assert parse_event(RawEvent(body.encode(), "0", 1))[0].value == 1.0


def test_utf16_body_is_rejected_as_not_utf8_json() -> None:
    body = json.dumps({"deviceId": "m1", "timestamp": "2026-11-01T10:00:00Z", "value": 1})
    with pytest.raises(TelemetryError) as info:
        parse_event(RawEvent(body.encode("utf-16"), "0", 1))
    assert info.value.code == "InvalidJson"
