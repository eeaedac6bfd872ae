"""Alerts: the anomaly event meterwatch publishes, and the per-day anomaly log.

* :class:`~shared.alerts.event.Alert` is one anomaly, as published on the ``anomalies`` Event
  Hub and kept in the log (JSON schema ``meterwatch.alert/1``, deterministic id).
* :mod:`shared.alerts.log` appends alerts to the anomaly log (append blobs per UTC day and hour
  of the anomaly) and reads them back with :func:`~shared.alerts.log.read_anomalies`, which
  drops repeats by id.
"""

from __future__ import annotations

from shared.alerts.event import ALERT_SCHEMA, DETECTORS, DIRECTIONS, Alert, alert_id
from shared.alerts.log import append_anomalies, read_anomalies

__all__ = [
    "ALERT_SCHEMA",
    "DETECTORS",
    "DIRECTIONS",
    "Alert",
    "alert_id",
    "append_anomalies",
    "read_anomalies",
]
