"""Telemetry events: decode and validate what meters send into typed readings.

Accepted message shapes (UTF-8 JSON):

* the tutorial's single reading ``{"timestamp": "2006-12-16T17:24:00Z", "value": "0.418"}``
  (value may be a numeric string); the metric name comes from a ``metric`` field or
  application property, else it is ``value``;
* multi-metric readings ``{"deviceId": "m1", "timestamp": ..., "power": 1.2, "voltage": 236}``:
  every numeric field (or numeric string) other than the reserved keys is a metric; text fields
  such as ``firmware`` are metadata and ignored;
* a JSON array of either shape (devices that batch several readings into one message).

The device id is the body's ``deviceId``, else the IoT Hub system property
``iothub-connection-device-id``, else an application property ``deviceId``. Every field is checked
by :mod:`shared.telemetry.validation` (names matched whole, values finite within ±10^15,
timestamps 1970-2200). Anything else raises
:class:`~shared.errors.TelemetryError` with a code and a reason, and the event is dead-lettered
whole (its original payload is kept, so nothing is lost).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shared.errors import TelemetryError
from shared.jsontypes import JSONObject, JSONValue
from shared.telemetry.validation import (
    KNOWN_NAMES,
    READING_LIMIT,
    checked_name,
    checked_timestamp,
    checked_value,
    looks_numeric,
)
from shared.timefmt import parse_timestamp

#: Body keys that are never metrics.
RESERVED_KEYS = frozenset(
    {"deviceId", "device_id", "timestamp", "metric", "unit", "messageId", "message_id", "value"}
)
IOTHUB_DEVICE_PROPERTY = "iothub-connection-device-id"
_DEVICE_PROPERTY_NAMES = (IOTHUB_DEVICE_PROPERTY, b"iothub-connection-device-id")


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated measurement of one metric of one device."""

    device_id: str
    metric: str
    timestamp: float  # seconds since the Unix epoch, UTC
    value: float


@dataclass(frozen=True)
class RawEvent:
    """An event as delivered by Event Hubs, independent of the Functions binding types."""

    body: bytes
    partition_id: str
    sequence_number: int
    offset: str | None = None
    enqueued_time: datetime | None = None
    properties: Mapping[str, object] = field(default_factory=dict)
    # Keys are text, or bytes where the AMQP transport hands them over undecoded.
    system_properties: Mapping[str | bytes, object] = field(default_factory=dict)

    def metadata(self) -> JSONObject:
        """Return JSON-safe event metadata for dead letters and logs."""
        return {
            "partitionId": self.partition_id,
            "sequenceNumber": self.sequence_number,
            "offset": self.offset,
            "enqueuedTime": self.enqueued_time.isoformat() if self.enqueued_time else None,
            "properties": _json_safe(self.properties),
            "systemProperties": _json_safe(self.system_properties),
        }


def parse_event(event: RawEvent) -> list[Reading]:
    """Decode one event into readings.

    Args:
        event: The delivered event.

    Returns:
        The readings it carries (one per metric and timestamp).

    Raises:
        TelemetryError: The event is not JSON, lacks a device id, timestamp or value, or holds a
            non-numeric, NaN or infinite value, or an unparseable timestamp.
    """
    return [
        Reading(device, metric, parse_timestamp(stamp), value)
        for (device, metric), stamp, value in parse_event_rows(event, {})
    ]


_JSON = json.JSONDecoder()
_ORJSON_LOADS: Callable[[bytes], JSONValue] = orjson.loads
_ORJSON_ERROR = orjson.JSONDecodeError
#: The decoder's C scanner (undocumented in typeshed, present in every CPython since 2.6).
_SCAN: Callable[[str, int], tuple[JSONValue, int]] = _JSON.scan_once  # type: ignore[attr-defined]

#: ``((device_id, metric), canonical timestamp text, value)``: the series key comes ready-made,
#: since ingest groups by it.
ReadingRow = tuple[tuple[str, str], str, float]


def parse_event_rows(event: RawEvent, stamp_cache: dict[object, str]) -> list[ReadingRow]:
    """Decode one event into ``((device_id, metric), timestamp, value)`` rows (the fast path).

    Timestamps come back as canonical text (:func:`canonical_timestamp`), which sorts in time
    order and is what raw batches store. Rows are in the order of the event (its position), so
    a caller that lets later rows win keeps the highest position for a repeated timestamp.
    Every field goes through :mod:`shared.telemetry.validation` (the hot path keeps one-lookup
    shortcuts for names already accepted and for plain numbers within range).

    Args:
        event: The delivered event.
        stamp_cache: Timestamps already seen in this batch (shared across its events, since a
            batch repeats the same few minutes many times), raw value to canonical text.

    Raises:
        TelemetryError: As :func:`parse_event`; never another exception for bad input (deep
            nesting, huge integers and wrong types are coded errors too).
    """
    payload: JSONValue
    if type(event.body) is bytes:
        try:
            # The hot path: orjson parses the bytes (UTF-8 checked, RFC 8259). What it refuses
            # (a byte-order mark, NaN literals, integers beyond 64 bits, deep nesting, bad
            # UTF-8) goes down the standard library's path, which accepts or codes it as before.
            payload = _ORJSON_LOADS(event.body)
        except _ORJSON_ERROR:
            payload = _standard_json(event)
    else:
        payload = _standard_json(event)
    rows: list[ReadingRow] = []
    if type(payload) is dict:
        _rows_of(payload, event, stamp_cache, rows)
    elif type(payload) is list and payload and all(type(i) is dict for i in payload):
        for item in payload:
            _rows_of(item, event, stamp_cache, rows)
    else:
        raise TelemetryError(
            "Body must be a JSON object (or a non-empty array of objects) with timestamp and "
            f"values, got {type(payload).__name__}.",
            code="InvalidJson",
        )
    return rows


def _standard_json(event: RawEvent) -> JSONValue:
    """The body parsed by the standard library, or the coded error (what orjson refused)."""
    try:
        # JSON between systems is UTF-8 (RFC 8259): decode it ourselves rather than let
        # json.loads sniff for UTF-16/32, and accept a byte-order mark.
        text = event.body.decode("utf-8")
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            # The scanner json.loads ends in, without its whitespace regexes.
            payload, end = _SCAN(text, 0)
        except StopIteration:
            payload, end = _JSON.decode(text), len(text)  # raises the proper error
        if end != len(text) and not text[end:].isspace():
            payload = _JSON.decode(text)  # trailing data: raises the proper error
    except (UnicodeDecodeError, ValueError) as exc:
        # ValueError includes integers of more than 4,300 digits (Python's int parsing limit).
        raise TelemetryError(f"Body is not UTF-8 JSON: {exc}", code="InvalidJson") from exc
    except RecursionError as exc:
        raise TelemetryError(
            "Body is JSON nested too deeply to be telemetry.", code="InvalidJson"
        ) from exc
    return payload


def _rows_of(
    # Any: the hot path narrows with ``kind = type(x); kind is float``, which mypy cannot follow.
    body: Mapping[str, Any],
    event: RawEvent,
    stamp_cache: dict[object, str],
    out: list[ReadingRow],
) -> None:
    device_id = body.get("deviceId") or event.system_properties.get(IOTHUB_DEVICE_PROPERTY)
    if type(device_id) is not str or device_id not in KNOWN_NAMES:  # fast path: known ids
        device_id = _device_id(body, event)
    raw_stamp = body.get("timestamp")
    if raw_stamp is None or raw_stamp == "":
        raise TelemetryError("Missing field 'timestamp'.", code="MissingField")
    timestamp: str | None = stamp_cache.get(raw_stamp) if type(raw_stamp) is str else None
    if timestamp is None:
        timestamp = checked_timestamp(raw_stamp)
        if type(raw_stamp) is str and len(stamp_cache) < _STAMP_CACHE_LIMIT:
            stamp_cache[raw_stamp] = timestamp
    if "value" in body:
        metric = body.get("metric") or event.properties.get("metric") or "value"
        if type(metric) is not str or metric not in KNOWN_NAMES:
            metric = checked_name(metric, "metric")
        raw_value = body["value"]
        kind = type(raw_value)
        value: float
        if kind is float:
            value = raw_value
        elif kind is str or kind is int:
            try:
                value = float(raw_value)
            except (ValueError, OverflowError):
                value = checked_value(raw_value, "value")  # raises with the message
        else:
            value = checked_value(raw_value, "value")
        if not -READING_LIMIT <= value <= READING_LIMIT:  # NaN, infinite or out of range
            checked_value(value, "value")
        out.append(((device_id, metric), timestamp, value))
        return
    found = False
    for key, raw in body.items():
        if key in RESERVED_KEYS or raw is None or raw is True or raw is False:
            continue
        kind = type(raw)
        if kind is float:
            value = raw
        elif kind is int:
            try:
                value = float(raw)
            except OverflowError:
                value = checked_value(raw, key)  # raises with the message
        elif kind is str and looks_numeric(raw):
            value = checked_value(raw, key)
        else:
            continue  # text or nested metadata, not a metric
        if not -READING_LIMIT <= value <= READING_LIMIT:
            checked_value(value, key)
        found = True
        metric = key if key in KNOWN_NAMES else checked_name(key, "metric")
        out.append(((device_id, metric), timestamp, value))
    if not found:
        raise TelemetryError(
            "No metric found: expected 'value' or at least one numeric field such as 'power'.",
            code="MissingField",
        )


#: A batch repeats a few minutes many times; an attacker's batch of unique stamps stays bounded.
_STAMP_CACHE_LIMIT = 10_000


def _device_id(body: Mapping[str, object], event: RawEvent) -> str:
    candidate = body.get("deviceId") or body.get("device_id")
    if not candidate:
        for name in _DEVICE_PROPERTY_NAMES:
            if name in event.system_properties:
                candidate = event.system_properties[name]
                break
    if not candidate:
        candidate = event.properties.get("deviceId")
    if not candidate:
        raise TelemetryError(
            "Missing device id: set 'deviceId' in the body, or send through IoT Hub "
            f"(system property {IOTHUB_DEVICE_PROPERTY}).",
            code="MissingField",
        )
    return checked_name(candidate, "deviceId")


def _json_safe(mapping: Mapping[str, object] | Mapping[str | bytes, object]) -> JSONObject:
    safe: JSONObject = {}
    for key, value in mapping.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if isinstance(value, bytes):
            safe[name] = value.decode("utf-8", "replace")
        elif isinstance(value, datetime):
            safe[name] = value.isoformat()
        elif isinstance(value, str | int | float | bool | type(None)):
            safe[name] = value
        else:
            safe[name] = str(value)
    return safe
