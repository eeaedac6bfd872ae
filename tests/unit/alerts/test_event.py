"""The alert event: deterministic id, schema-ordered JSON, validation with coded errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.alerts import ALERT_SCHEMA, Alert, alert_id
from shared.errors import AlertError, InputError


def make(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "device_id": "meter-7",
        "metric": "power",
        "timestamp": "2026-12-01T10:00:00Z",
        "value": 7.5,
        "expected_value": 2.0,
        "lower_margin": 0.5,
        "upper_margin": 0.75,
        "severity": 0.8,
        "direction": "up",
        "detector": "stream",
        "source": "batches/2026/12/01/10/p0-00000000000000000001-00000000000000000009.jsonl.gz",
    }
    fields.update(overrides)
    return Alert.create(**fields)


def test_id_depends_on_identity_only() -> None:
    a = make()
    assert a.id == make(value=9.0, severity=0.1, source="other").id
    assert len(a.id) == 32 and int(a.id, 16) >= 0
    assert a.id != make(detector="entire").id
    assert a.id != make(device_id="meter-8").id
    assert a.id != make(metric="voltage").id
    assert a.id != make(timestamp="2026-12-01T10:01:00Z").id
    assert a.id == alert_id("meter-7", "power", "2026-12-01T10:00:00Z", "stream")


def test_timestamp_is_canonical_so_equal_moments_share_an_id() -> None:
    assert make(timestamp="2026-12-01T11:00:00+01:00").id == make().id
    assert make(timestamp=1_796_119_200.0).timestamp == "2026-12-01T10:00:00Z"


def test_json_has_the_documented_keys_in_order_and_round_trips() -> None:
    a = make()
    document = json.loads(a.to_json())
    assert list(document) == [
        "schema",
        "id",
        "deviceId",
        "metric",
        "timestamp",
        "value",
        "expectedValue",
        "lowerMargin",
        "upperMargin",
        "severity",
        "direction",
        "detector",
        "source",
    ]
    assert document["schema"] == ALERT_SCHEMA
    assert Alert.from_json(a.to_json()) == a
    assert make().to_json() == a.to_json()  # no clock: same judgement, same bytes
    assert (a.day, a.hour) == ("2026-12-01", "10")


@pytest.mark.parametrize(
    "overrides",
    [
        {"value": float("inf")},
        {"expected_value": float("nan")},
        {"severity": 1.5},
        {"lower_margin": -1.0},
        {"direction": "sideways"},
        {"detector": "guess"},
        {"device_id": ""},
        {"timestamp": "yesterday-ish"},
        {"value": True},
    ],
)
def test_bad_fields_raise_a_coded_error(overrides: dict[str, Any]) -> None:
    with pytest.raises(AlertError) as caught:
        make(**overrides)
    assert isinstance(caught.value, InputError)
    assert caught.value.code == "InvalidAlert"


def test_from_dict_refuses_other_schemas_missing_fields_and_forged_ids() -> None:
    document = make().to_dict()
    with pytest.raises(AlertError, match="schema"):
        Alert.from_dict({**document, "schema": "meterwatch.alert/0"})
    with pytest.raises(AlertError, match="lacks"):
        Alert.from_dict({k: v for k, v in document.items() if k != "severity"})
    with pytest.raises(AlertError, match="does not match"):
        Alert.from_dict({**document, "id": "0" * 32})
    with pytest.raises(AlertError, match="not JSON"):
        Alert.from_json("{not json")
    with pytest.raises(AlertError, match="JSON object"):
        Alert.from_dict([document])
