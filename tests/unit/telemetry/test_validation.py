"""The one validation of untrusted fields: names, values, timestamps (and its fast paths)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import CsvFormatError, TelemetryError
from shared.telemetry.validation import (
    READING_LIMIT,
    checked_name,
    checked_timestamp,
    checked_value,
)
from shared.timefmt import canonical_timestamp


@pytest.mark.parametrize("name", ["m1\n", "m1\r\n", "", " m1", "-m1", "a" * 129, "m/1", "é"])
def test_names_are_matched_whole(name: str) -> None:
    with pytest.raises(TelemetryError) as caught:
        checked_name(name, "deviceId")
    assert caught.value.code == "InvalidName"


@pytest.mark.parametrize("name", [["x"], {"a": 1}, 7, None, 1.5])
def test_a_name_that_is_not_text_is_a_coded_error(name: object) -> None:
    with pytest.raises(TelemetryError) as caught:
        checked_name(name, "metric")
    assert caught.value.code == "InvalidName"


def test_names_accepted_and_bytes_decoded() -> None:
    assert checked_name("meter-0001.a:b@c_d", "deviceId") == "meter-0001.a:b@c_d"
    assert checked_name(b"meter-7", "deviceId") == "meter-7"
    assert checked_name("a" * 128, "deviceId") == "a" * 128


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (10**400, "ValueOutOfRange"),
        ("9" * 400, "ValueOutOfRange"),
        (1e308, "ValueOutOfRange"),
        (-1e16, "ValueOutOfRange"),
        (float("nan"), "InvalidValue"),
        ("inf", "InvalidValue"),
        ("n/a", "InvalidValue"),
        ([1], "InvalidValue"),
        (None, "InvalidValue"),
        (True, "InvalidValue"),
    ],
)
def test_values_outside_the_range_or_not_numbers_are_coded(raw: object, code: str) -> None:
    with pytest.raises(TelemetryError) as caught:
        checked_value(raw, "value")
    assert caught.value.code == code
    assert len(caught.value.message) < 200


def test_values_within_the_range_pass() -> None:
    assert checked_value("0.418", "value") == 0.418
    assert checked_value(-READING_LIMIT, "value") == -1e15
    assert checked_value(12, "value") == 12.0


def test_a_door_may_raise_its_own_error_class() -> None:
    with pytest.raises(CsvFormatError) as caught:
        checked_timestamp("yesterday", CsvFormatError)
    assert caught.value.code == "InvalidTimestamp"
    with pytest.raises(CsvFormatError):
        checked_value("x", "value", CsvFormatError)


@pytest.mark.parametrize("raw", [10**400, -(10**400), "9" * 5000, 1e300, [2026], {"t": 1}])
def test_timestamps_that_overflow_are_coded(raw: object) -> None:
    with pytest.raises(TelemetryError) as caught:
        checked_timestamp(raw)
    assert caught.value.code == "InvalidTimestamp"


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["2026-11-01T10:00:", "2006-12-16T17:24:", "2199-12-31T23:59:"]),
    st.text(alphabet="0123456789.Z:+-x٣ ", max_size=10),
)
def test_the_fast_path_agrees_with_canonical_timestamp(minute: str, rest: str) -> None:
    checked_timestamp(minute + "00Z")  # the minute is now known: the fast path applies
    raw = minute + rest
    try:
        expected = canonical_timestamp(raw)
    except (TelemetryError, ValueError, OverflowError):
        with pytest.raises(TelemetryError):
            checked_timestamp(raw)
    else:
        assert checked_timestamp(raw) == expected
