"""The anomaly log: every alert, appended per UTC day (and hour) of the anomaly.

Layout (results container, :func:`shared.storage.names.anomaly_log_name`)::

    anomalies/{YYYY-MM-DD}/{HH}/{writer}.jsonl     append blob, one alert JSON per line

Appends are at-least-once: an invocation retried after its append appends the same lines
again. Alerts carry deterministic ids and no wall-clock field, so the repeats are byte-identical
and :func:`read_anomalies` keeps one of each. Reading a range costs one listing per day folder
touched and one read per (hour, writer) blob of those days, never a scan of other days.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from shared.alerts.event import Alert
from shared.errors import AlertError, InputError
from shared.settings import Settings, get_settings
from shared.storage.client import BlobRef, BlobStore, line_blocks
from shared.storage.names import ANOMALY_LOG_PREFIX, anomaly_log_day_prefix, anomaly_log_name
from shared.timefmt import format_timestamp, parse_timestamp

logger = logging.getLogger(__name__)

_WRITER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

TimeBound = datetime | str | float


def append_anomalies(
    store: BlobStore, alerts: Iterable[Alert], writer: str, *, settings: Settings | None = None
) -> int:
    """Append alerts to the log: one append request per (day, hour) of anomalies touched.

    Args:
        store: Blob storage.
        alerts: The alerts of one judgement (a batch, a scheduled run).
        writer: Who appends (``live-p0``, ``entire``, ...): each writer has blobs of its own.
        settings: App settings (the results container); the process's settings by default.

    Returns:
        The number of append requests made.

    Raises:
        InputError: ``writer`` is not a short name of letters, digits, ``.``, ``_`` or ``-``.
        azure.core.exceptions.AzureError: Storage failed (the caller's invocation is retried).
    """
    if not _WRITER.fullmatch(writer):
        raise InputError(
            f"Anomaly log writer {writer!r}: use 1-64 letters, digits, '.', '_' or '-'.",
            "InvalidWriter",
        )
    container = (settings or get_settings()).results_container
    blocks: dict[str, list[str]] = {}
    for alert in alerts:
        name = anomaly_log_name(alert.day, alert.hour, writer)
        blocks.setdefault(name, []).append(alert.to_json())
    requests = 0
    for name in sorted(blocks):
        for chunk in line_blocks(blocks[name]):
            store.append(BlobRef(container, name), chunk)
            requests += 1
    return requests


def read_anomalies(
    store: BlobStore,
    since: TimeBound,
    until: TimeBound | None = None,
    *,
    settings: Settings | None = None,
) -> list[Alert]:
    """The logged alerts with ``since <= timestamp < until``, one per id, in time order.

    Args:
        store: Blob storage.
        since: Start (inclusive): a ``datetime`` (naive = UTC), timestamp text or epoch seconds.
        until: End (exclusive), same forms; ``None`` for everything logged from ``since``.
        settings: App settings (the results container); the process's settings by default.

    Returns:
        Alerts sorted by (timestamp, deviceId, metric, detector).

    Raises:
        InputError: A bound is not a time, or ``until`` is before ``since``.
        AlertError: A logged line is not a valid alert (names the blob and line).
    """
    container = (settings or get_settings()).results_container
    start = _epoch(since, "since")
    end = None if until is None else _epoch(until, "until")
    if end is not None and end < start:
        raise InputError("until is before since: give a range that runs forward.", "InvalidRange")
    first_day = format_timestamp(start)[:10]
    if end is None:
        days = [
            prefix[len(ANOMALY_LOG_PREFIX) : -1]
            for prefix in store.list_prefixes(container, ANOMALY_LOG_PREFIX)
        ]
        days = [day for day in days if day >= first_day]
    else:
        days = list(_days(start, end))
    found: dict[str, Alert] = {}
    for day in days:
        for name in store.list_names(container, anomaly_log_day_prefix(day)):
            text = store.get_bytes(BlobRef(container, name)).decode("utf-8")
            for number, line in enumerate(text.splitlines(), start=1):
                if not line:
                    continue
                try:
                    alert = Alert.from_json(line)
                except AlertError as exc:
                    raise AlertError(f"{container}/{name} line {number}: {exc.message}") from exc
                moment = parse_timestamp(alert.timestamp)
                if moment < start or (end is not None and moment >= end):
                    continue
                found.setdefault(alert.id, alert)
    return sorted(
        found.values(),
        key=lambda a: (parse_timestamp(a.timestamp), a.device_id, a.metric, a.detector),
    )


def _epoch(bound: TimeBound, name: str) -> float:
    try:
        if isinstance(bound, datetime):
            moment = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
            return moment.timestamp()
        return parse_timestamp(bound)
    except InputError as exc:
        raise InputError(f"{name}: {exc.message}", "InvalidRange") from exc


def _days(start: float, end: float) -> Iterable[str]:
    day = datetime.fromtimestamp(start, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last = datetime.fromtimestamp(end, tz=UTC)
    while day <= last:
        yield f"{day:%Y-%m-%d}"
        day += timedelta(days=1)
