"""The alert event: one anomaly, its JSON (schema ``meterwatch.alert/1``) and its id.

The JSON document, keys in this order (compact, UTF-8)::

    {"schema": "meterwatch.alert/1", "id": "<32 hex>", "deviceId": "m1", "metric": "power",
     "timestamp": "2026-12-01T10:00:00Z", "value": 7.2, "expectedValue": 2.1,
     "lowerMargin": 0.4, "upperMargin": 0.5, "severity": 0.83, "direction": "up",
     "detector": "stream", "source": "batches/2026/12/01/10/p0-...jsonl.gz"}

``lowerMargin`` and ``upperMargin`` are v1.1 margins: distances below and above
``expectedValue`` (the band is ``[expectedValue - lowerMargin, expectedValue + upperMargin]``).
There is no wall-clock field, so judging the same batch twice gives the same bytes, and ``id``
is a hash of (deviceId, metric, timestamp, detector): a redelivered batch sends the same ids and
consumers (and :func:`shared.alerts.log.read_anomalies`) keep one of each.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from shared.errors import AlertError
from shared.jsontypes import JSONObject
from shared.timefmt import canonical_timestamp

#: Schema name and version carried by every alert document.
ALERT_SCHEMA = "meterwatch.alert/1"
#: Which judge raised the alert.
DETECTORS = ("stream", "entire", "changepoint", "multivariate")
#: Side of the band the value fell on.
DIRECTIONS = ("up", "down")

_FIELDS = (
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
)


def alert_id(device_id: str, metric: str, timestamp: str, detector: str) -> str:
    """The deterministic id of an alert: 32 hex digits of SHA-256 over its identity.

    Args:
        device_id: The meter.
        metric: The metric's name.
        timestamp: Canonical timestamp text (:func:`shared.timefmt.canonical_timestamp`).
        detector: One of :data:`DETECTORS`.
    """
    # Unit separators cannot occur in ids that passed validation, so the join is unambiguous.
    key = "\x1f".join((ALERT_SCHEMA, device_id, metric, timestamp, detector))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """One anomaly, as published and logged.

    Build it with :meth:`create` (which computes the id and canonicalises the timestamp) or
    :meth:`from_dict` (which checks a stored or received document).
    """

    id: str
    device_id: str
    metric: str
    timestamp: str
    value: float
    expected_value: float
    lower_margin: float
    upper_margin: float
    severity: float
    direction: str
    detector: str
    source: str

    @classmethod
    def create(
        cls,
        *,
        device_id: str,
        metric: str,
        timestamp: str | float,
        value: float,
        expected_value: float,
        lower_margin: float,
        upper_margin: float,
        severity: float,
        direction: str,
        detector: str,
        source: str,
    ) -> Alert:
        """A validated alert with its deterministic id.

        Raises:
            AlertError: A field is missing, not finite or not one of the allowed values.
        """
        try:
            stamp = canonical_timestamp(timestamp)
        except Exception as exc:  # TelemetryError: re-coded for the alert's caller
            raise AlertError(f"Alert timestamp {timestamp!r} is not a timestamp.") from exc
        alert = cls(
            id=alert_id(device_id, metric, stamp, detector),
            device_id=device_id,
            metric=metric,
            timestamp=stamp,
            value=_finite("value", value),
            expected_value=_finite("expectedValue", expected_value),
            lower_margin=_finite("lowerMargin", lower_margin),
            upper_margin=_finite("upperMargin", upper_margin),
            severity=_finite("severity", severity),
            direction=direction,
            detector=detector,
            source=source,
        )
        alert._check()
        return alert

    def _check(self) -> None:
        for name, text in (
            ("deviceId", self.device_id),
            ("metric", self.metric),
            ("source", self.source),
        ):
            if not isinstance(text, str) or not text:
                raise AlertError(f"Alert field {name!r} must be non-empty text, got {text!r}.")
        if self.direction not in DIRECTIONS:
            raise AlertError(f"Alert direction {self.direction!r}: expected one of {DIRECTIONS}.")
        if self.detector not in DETECTORS:
            raise AlertError(f"Alert detector {self.detector!r}: expected one of {DETECTORS}.")
        if not 0.0 <= self.severity <= 1.0:
            raise AlertError(f"Alert severity {self.severity!r} must be in [0, 1].")
        if self.lower_margin < 0 or self.upper_margin < 0:
            raise AlertError("Alert margins are distances from expectedValue: they must be >= 0.")

    @property
    def day(self) -> str:
        """The UTC day of the anomaly (``YYYY-MM-DD``): the anomaly log's partition."""
        return self.timestamp[:10]

    @property
    def hour(self) -> str:
        """The UTC hour of the anomaly (``HH``)."""
        return self.timestamp[11:13]

    def to_dict(self) -> JSONObject:
        """The alert's JSON document, keys in schema order."""
        return {
            "schema": ALERT_SCHEMA,
            "id": self.id,
            "deviceId": self.device_id,
            "metric": self.metric,
            "timestamp": self.timestamp,
            "value": self.value,
            "expectedValue": self.expected_value,
            "lowerMargin": self.lower_margin,
            "upperMargin": self.upper_margin,
            "severity": self.severity,
            "direction": self.direction,
            "detector": self.detector,
            "source": self.source,
        }

    def to_json(self) -> str:
        """The alert as compact JSON text (the Event Hub message body and a log line)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, document: object) -> Alert:
        """Read an alert document back, checking its schema, fields and id.

        Raises:
            AlertError: Not a ``meterwatch.alert/1`` document, a field is wrong, or the id does
                not match the alert's identity.
        """
        if not isinstance(document, dict):
            raise AlertError(f"An alert is a JSON object, got {type(document).__name__}.")
        if document.get("schema") != ALERT_SCHEMA:
            raise AlertError(f"Alert schema {document.get('schema')!r}: expected {ALERT_SCHEMA!r}.")
        missing = [name for name in _FIELDS if name not in document]
        if missing:
            raise AlertError(f"Alert document lacks {missing}.")
        alert = cls.create(
            device_id=_text(document, "deviceId"),
            metric=_text(document, "metric"),
            timestamp=_text(document, "timestamp"),
            value=_number(document, "value"),
            expected_value=_number(document, "expectedValue"),
            lower_margin=_number(document, "lowerMargin"),
            upper_margin=_number(document, "upperMargin"),
            severity=_number(document, "severity"),
            direction=_text(document, "direction"),
            detector=_text(document, "detector"),
            source=_text(document, "source"),
        )
        if document["id"] != alert.id:
            raise AlertError(
                f"Alert id {document['id']!r} does not match its deviceId, metric, timestamp "
                f"and detector (expected {alert.id!r})."
            )
        return alert

    @classmethod
    def from_json(cls, text: str | bytes) -> Alert:
        """Parse one alert from JSON text (see :meth:`from_dict`)."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise AlertError(f"Alert is not JSON: {exc}.") from exc
        return cls.from_dict(document)


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertError(f"Alert field {name!r} must be a number, got {value!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise AlertError(f"Alert field {name!r} must be finite, got {value!r}.")
    return number


def _text(document: JSONObject, name: str) -> str:
    value = document[name]
    if not isinstance(value, str):
        raise AlertError(f"Alert field {name!r} must be text, got {value!r}.")
    return value


def _number(document: JSONObject, name: str) -> float:
    return _finite(name, document[name])
