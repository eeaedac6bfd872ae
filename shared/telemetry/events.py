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
``iothub-connection-device-id``, else an application property ``deviceId``. Anything else raises
:class:`~shared.errors.TelemetryError` with a code and a reason, and the event is dead-lettered
whole (its original payload is kept, so nothing is lost).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dateutil import parser as date_parser

from shared.errors import TelemetryError

#: Body keys that are never metrics.
RESERVED_KEYS = frozenset(
    {"deviceId", "device_id", "timestamp", "metric", "unit", "messageId", "message_id", "value"}
)
IOTHUB_DEVICE_PROPERTY = "iothub-connection-device-id"
_DEVICE_PROPERTY_NAMES = (IOTHUB_DEVICE_PROPERTY, b"iothub-connection-device-id")
# Device ids and metric names become blob path segments: keep them to a safe alphabet.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
#: Readings more than this far from the Unix epoch range are rejected (year 1970..2200).
_MIN_EPOCH, _MAX_EPOCH = 0.0, 7_258_118_400.0


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
    properties: Mapping[str, Any] = field(default_factory=dict)
    system_properties: Mapping[Any, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
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

#: ``((device_id, metric), canonical timestamp text, value)``: the series key comes ready-made,
#: since ingest groups by it.
ReadingRow = tuple[tuple[str, str], str, float]


def parse_event_rows(event: RawEvent, stamp_cache: dict[Any, str]) -> list[ReadingRow]:
    """Decode one event into ``(device_id, metric, timestamp, value)`` rows (the fast path).

    Timestamps come back as canonical text (:func:`canonical_timestamp`), which sorts in time
    order and is what raw batches store.

    Args:
        event: The delivered event.
        stamp_cache: Timestamps already seen in this batch (shared across its events, since a
            batch repeats the same few minutes many times), raw value to canonical text.

    Raises:
        TelemetryError: As :func:`parse_event`.
    """
    try:
        # JSON between systems is UTF-8 (RFC 8259): decode it ourselves rather than let
        # json.loads sniff for UTF-16/32, and accept a byte-order mark.
        text = event.body.decode("utf-8")
        if text.startswith("\ufeff"):
            text = text[1:]
        payload = _JSON.decode(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TelemetryError(f"Body is not UTF-8 JSON: {exc}", code="InvalidJson") from exc
    rows: list[ReadingRow] = []
    if type(payload) is dict:
        _rows_of(payload, event, stamp_cache, rows)
    elif isinstance(payload, list) and payload and all(isinstance(i, dict) for i in payload):
        for item in payload:
            _rows_of(item, event, stamp_cache, rows)
    else:
        raise TelemetryError(
            "Body must be a JSON object (or a non-empty array of objects) with timestamp and "
            f"values, got {type(payload).__name__}.",
            code="InvalidJson",
        )
    return rows


def _rows_of(
    body: Mapping[str, Any], event: RawEvent, stamp_cache: dict[Any, str], out: list[ReadingRow]
) -> None:
    device_id = body.get("deviceId") or event.system_properties.get(IOTHUB_DEVICE_PROPERTY)
    if type(device_id) is not str or device_id not in _VALID_NAMES:  # fast path: known ids
        device_id = _device_id(body, event)
    raw_stamp = body.get("timestamp")
    if raw_stamp is None or raw_stamp == "":
        raise TelemetryError("Missing field 'timestamp'.", code="MissingField")
    timestamp: str | None = stamp_cache.get(raw_stamp) if type(raw_stamp) is str else None
    if timestamp is None:
        timestamp = canonical_timestamp(raw_stamp)
        if type(raw_stamp) is str:
            stamp_cache[raw_stamp] = timestamp
    if "value" in body:
        metric = body.get("metric") or event.properties.get("metric") or "value"
        if metric not in _VALID_NAMES:
            metric = _checked_name(metric, "metric")
        raw_value = body["value"]
        kind = type(raw_value)
        if kind is str or kind is float or kind is int:  # the common shapes, inline
            try:
                value = float(raw_value)
            except ValueError:
                value = _number("value", body)  # raises with the message
            if value - value != 0.0:  # NaN or infinite
                _finite("value", value)
        else:
            value = _number("value", body)
        out.append(((device_id, metric), timestamp, value))
        return
    found = False
    for key, raw in body.items():
        if key in RESERVED_KEYS or raw is None or raw is True or raw is False:
            continue
        kind = type(raw)
        if kind is float or kind is int:
            value = float(raw)
            if value - value != 0.0:  # NaN or infinite (json accepts NaN/Infinity literals)
                _finite(key, value)
        elif kind is str and _looks_numeric(raw):
            value = _number(key, body)
        else:
            continue  # text or nested metadata, not a metric
        found = True
        metric = key if key in _VALID_NAMES else _checked_name(key, "metric")
        out.append(((device_id, metric), timestamp, value))
    if not found:
        raise TelemetryError(
            "No metric found: expected 'value' or at least one numeric field such as 'power'.",
            code="MissingField",
        )


def _device_id(body: Mapping[str, Any], event: RawEvent) -> str:
    candidate = body.get("deviceId") or body.get("device_id")
    if not candidate:
        for name in _DEVICE_PROPERTY_NAMES:
            if name in event.system_properties:
                candidate = event.system_properties[name]
                break
    if not candidate:
        candidate = event.properties.get("deviceId")
    if isinstance(candidate, bytes):
        candidate = candidate.decode("utf-8", errors="replace")
    if not candidate:
        raise TelemetryError(
            "Missing device id: set 'deviceId' in the body, or send through IoT Hub "
            f"(system property {IOTHUB_DEVICE_PROPERTY}).",
            code="MissingField",
        )
    return _checked_name(candidate, "deviceId")


_VALID_NAMES: set[str] = set()


def _checked_name(name: Any, what: str) -> str:
    if type(name) is str and name in _VALID_NAMES:
        return name
    text = str(name)
    if not _NAME_RE.match(text):
        raise TelemetryError(
            f"Invalid {what} {text[:80]!r}: use 1-128 letters, digits and _.:@- "
            "(it becomes part of a blob name).",
            code="InvalidName",
        )
    if len(_VALID_NAMES) < 100_000:  # bounded: device ids are many but finite
        _VALID_NAMES.add(text)
    return text


def _number(key: str, body: Mapping[str, Any]) -> float:
    raw = body[key]
    if raw is None or isinstance(raw, bool):
        raise TelemetryError(f"Field {key!r} must be a number, got {raw!r}.", code="InvalidValue")
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise TelemetryError(
            f"Field {key!r} must be a number, got {str(raw)[:80]!r}.", code="InvalidValue"
        ) from exc
    return _finite(key, value)


def _finite(key: str, value: float) -> float:
    if not math.isfinite(value):
        raise TelemetryError(
            f"Field {key!r} is {value}: NaN and infinite readings are not accepted.",
            code="InvalidValue",
        )
    return value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_timestamp(raw: Any) -> float:
    """Parse a telemetry timestamp into epoch seconds (UTC).

    Accepts ISO 8601 (``2006-12-16T17:24:00Z``, offsets, fractions), the tutorial's
    ``12/16/2006 17:24`` (read as UTC), and epoch numbers (seconds, or milliseconds when larger
    than 10^11).

    Raises:
        TelemetryError: The value is not a timestamp, or lies outside 1970-2200.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw) / 1000.0 if abs(raw) > 1e11 else float(raw)
    elif isinstance(raw, str):
        seconds = _parse_text_timestamp(raw)
    else:
        raise TelemetryError(
            f"Field 'timestamp' must be ISO 8601 text or epoch seconds, got {raw!r}.",
            code="InvalidTimestamp",
        )
    if not (_MIN_EPOCH <= seconds <= _MAX_EPOCH) or not math.isfinite(seconds):
        raise TelemetryError(f"Timestamp {raw!r} is outside 1970-2200.", code="InvalidTimestamp")
    return seconds


def _parse_text_timestamp(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = date_parser.parse(text)
        except (ValueError, OverflowError) as exc:
            raise TelemetryError(
                f"Unparseable timestamp {text[:80]!r}: use ISO 8601 such as 2006-12-16T17:24:00Z.",
                code="InvalidTimestamp",
            ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_MINUTE_PREFIX: dict[int, str] = {}


def canonical_timestamp(raw: Any) -> str:
    """Validate a telemetry timestamp and return it as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC).

    Text already in that form is only validated (the ingest hot path); anything else is parsed
    by :func:`parse_timestamp` and formatted.

    Raises:
        TelemetryError: As :func:`parse_timestamp`.
    """
    if (
        type(raw) is str
        and 20 <= len(raw) <= 27
        and raw[-1] == "Z"
        and raw[10] == "T"
        and raw[4] == "-"
        and raw[7] == "-"
        and raw[13] == ":"
        and raw[16] == ":"
        and "1970" <= raw[:4] < "2200"
    ):
        try:
            datetime.fromisoformat(raw)
        except ValueError:
            pass  # not a real date (month 13...): the slow path explains why
        else:
            if len(raw) == 20:
                return str(raw)
            fraction = raw[20:-1]
            if raw[19] == "." and fraction.isdigit():  # ISO fractions: 1 to 6 digits
                fraction = fraction.ljust(6, "0")
                return raw[:19] + ("Z" if fraction == "000000" else f".{fraction}Z")
    return format_timestamp(parse_timestamp(raw))


def chronological(text: str) -> str:
    """Sort key for canonical timestamp text (whole seconds sort before their fractions)."""
    return text[:19] if len(text) == 20 else text[:19] + text[19:26]


def format_timestamp(seconds: float) -> str:
    """Format epoch seconds as the v1.1 timestamp text ``YYYY-MM-DDTHH:MM:SSZ``.

    Fractions of a second are kept (``...SS.ffffffZ``). The ``YYYY-MM-DDTHH:MM:`` prefix is cached
    per minute: ingest formats every reading, and meters share minutes.
    """
    whole = int(seconds // 60)
    prefix = _MINUTE_PREFIX.get(whole)
    if prefix is None:
        if len(_MINUTE_PREFIX) > 200_000:  # bounded: a few months of minutes
            _MINUTE_PREFIX.clear()
        prefix = _MINUTE_PREFIX[whole] = datetime.fromtimestamp(whole * 60, tz=UTC).strftime(
            "%Y-%m-%dT%H:%M:"
        )
    rest = seconds - whole * 60
    second = int(rest)
    micro = round((rest - second) * 1_000_000)
    if micro == 1_000_000:  # rounding carried into the next second
        return format_timestamp(float(whole * 60 + second + 1))
    if micro:
        return f"{prefix}{second:02d}.{micro:06d}Z"
    return f"{prefix}{second:02d}Z"


def _json_safe(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in mapping.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        safe[name] = value
    return safe
