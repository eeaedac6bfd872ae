"""Entire-series and change-point detection over history: on a schedule and on demand.

Scheduled (:func:`run_scheduled_detection`, a timer, hourly by default): the series that got
readings since the last run are read from the active journal (written by the compaction, see
:mod:`shared.history.compaction`); each is read back over ``SCHEDULED_DETECTION_LOOKBACK_HOURS``
of history ending at its newest reading, put on its grid (:mod:`shared.univariate.series`, the
one implementation), and judged by v1.1 ``entire/detect`` and ``changepoint/detect`` (the
embedded engine or the remote endpoint, :func:`shared.univariate.contract.backend_for`). The
request and both responses are stored under
``scheduled/{device}/{metric}/{YYYY-MM-DDTHH}/`` in the results container (the run's hour: a
retried run rewrites the same blobs).

Alerts go to what the live judge missed: a measured point *among the new readings* flagged by
``entire`` (or, where ``entire`` did not flag it, a change point) whose point has no alert in the
anomaly log yet from another detector (``stream`` above all). Alert ids are deterministic
(:func:`shared.alerts.alert_id`), so a run retried before it saved its cursor computes, logs and
publishes the same ids again (at-least-once publication, consumers and
:func:`shared.alerts.read_anomalies` keep one); once the cursor is saved the readings are no
longer new and are never alerted again. Order per run: results, anomaly log, cursor; the caller
publishes the returned alerts (the ``anomalies`` Event Hub output binding).

On demand (:func:`history_request`, :func:`detect_history`): the same reading and formatting for
any device, metric and range of the archive, for the CLI (``meterwatch history``) and the API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from shared.alerts import Alert, append_anomalies, read_anomalies
from shared.errors import DetectionRequestError, InputError, MeterwatchError
from shared.history.compaction import ActiveSeries, read_cursor, save_cursor
from shared.history.journal import JournalEntry, read_journal
from shared.history.reader import Moment, SeriesHistory, epoch_of, read_history
from shared.jsontypes import JSONObject
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import ACTIVE_JOURNAL_PREFIX, scheduled_result_prefix
from shared.timefmt import format_timestamp, hour_label, iso_epoch
from shared.univariate.contract import (
    ChangePointResponse,
    EntireResponse,
    UnivariateBackend,
    backend_for,
)
from shared.univariate.detect import DetectionOptions, detect_series
from shared.univariate.series import MAX_POINTS, MIN_POINTS, FormattedSeries, request_body

logger = logging.getLogger(__name__)

#: The scheduled detection's cursor name (``cursors/detection.json``) and anomaly-log writer.
DETECTION_JOB = "detection"
LOG_WRITER = "scheduled"
#: The detectors whose alerts this job raises.
SCHEDULED_DETECTORS = ("entire", "changepoint")
#: On-demand modes: the three detections, and the v1.1 request itself.
ON_DEMAND_MODES = ("entire", "changepoint", "stream", "request")
#: v1.1 names of the per-point result fields (``SeriesDetection.fields`` are singular).
_PLURAL = {
    "expectedValue": "expectedValues",
    "upperMargin": "upperMargins",
    "lowerMargin": "lowerMargins",
    "isAnomaly": "isAnomaly",
    "isPositiveAnomaly": "isPositiveAnomaly",
    "isNegativeAnomaly": "isNegativeAnomaly",
    "severity": "severity",
    "isChangePoint": "isChangePoint",
    "confidenceScore": "confidenceScores",
}


@dataclass(frozen=True)
class HistoryJudgement:
    """One series judged over its history: the v1.1 request, both responses, the alerts."""

    device_id: str
    metric: str
    request: JSONObject
    entire: EntireResponse
    changepoint: ChangePointResponse
    observed: np.ndarray  # per request point: a reading fell there (not imputed)


@dataclass
class ScheduledReport:
    """What one scheduled run did."""

    run: str
    series: int = 0  # active series found
    judged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # "device/metric" -> why
    written: int = 0  # result blobs
    alerts: list[Alert] = field(default_factory=list)  # to publish (not yet alerted by others)


def _formatted(
    history: SeriesHistory, options: DetectionOptions, device_id: str, metric: str
) -> FormattedSeries:
    if history.size < 2:
        raise DetectionRequestError(
            f"{device_id}/{metric} has {history.size} readings in the range: detection needs at "
            f"least {MIN_POINTS}.",
            "InvalidSeries",
        )
    series = options.format(history.epochs, history.values, MAX_POINTS)
    present = int(np.count_nonzero(~np.isnan(series.values)))
    if present < MIN_POINTS:
        raise DetectionRequestError(
            f"{device_id}/{metric} has {present} points on its grid in the range: detection "
            f"needs at least {MIN_POINTS}.",
            "InvalidSeries",
        )
    return series


def judge_history(
    history: SeriesHistory,
    device_id: str,
    metric: str,
    options: DetectionOptions,
    backend: UnivariateBackend,
) -> HistoryJudgement:
    """Run v1.1 entire and change-point detection on a series' history (last 8,640 points).

    Raises:
        DetectionRequestError: Too few points, or parameters the contract refuses.
    """
    series = _formatted(history, options, device_id, metric)
    request = request_body(series, **options.request_parameters())
    entire = backend.entire(request)
    changepoint = backend.changepoint(
        {
            **request,
            "stableTrendWindow": options.stable_trend_window,
            "threshold": options.threshold,
        }
    )
    observed = series.observed[~np.isnan(series.values)]
    return HistoryJudgement(device_id, metric, request, entire, changepoint, observed)


def missed_alerts(
    judgement: HistoryJudgement,
    first: float,
    last: float,
    logged: set[tuple[str, str, str]],
    source: str,
    stable_trend_window: int,
) -> list[Alert]:
    """The alerts of a judgement among the readings ``first..last`` that nobody raised yet.

    Args:
        judgement: The series' judgement.
        first: Epoch of the earliest new reading.
        last: Epoch of the latest new reading.
        logged: ``(deviceId, metric, timestamp)`` of points already in the anomaly log.
        source: The ``source`` of the alerts (the stored response).
        stable_trend_window: Points each side of a change point that set its levels.
    """
    points = _request_points(judgement.request)
    entire, changepoint = judgement.entire, judgement.changepoint
    values = np.array([value for _, value in points], dtype=np.float64)
    found: list[Alert] = []
    for i, (stamp, value) in enumerate(points):
        moment = iso_epoch(stamp)
        if not first <= moment <= last or not judgement.observed[i]:
            continue
        if (judgement.device_id, judgement.metric, stamp) in logged:
            continue  # the live judge (or another detector) has it already
        if entire["isAnomaly"][i]:
            found.append(
                Alert.create(
                    device_id=judgement.device_id,
                    metric=judgement.metric,
                    timestamp=stamp,
                    value=value,
                    expected_value=float(entire["expectedValues"][i]),
                    lower_margin=max(0.0, float(entire["lowerMargins"][i])),
                    upper_margin=max(0.0, float(entire["upperMargins"][i])),
                    severity=min(1.0, max(0.0, float(entire["severity"][i]))),
                    direction="up" if entire["isPositiveAnomaly"][i] else "down",
                    detector="entire",
                    source=f"{source}entire.json",
                )
            )
        elif changepoint["isChangePoint"][i]:
            before = values[max(0, i - stable_trend_window) : i]
            after = values[i : i + stable_trend_window]
            level = float(before.mean()) if before.size else float(values[i])
            found.append(
                Alert.create(
                    device_id=judgement.device_id,
                    metric=judgement.metric,
                    timestamp=stamp,
                    value=value,
                    expected_value=level,
                    lower_margin=0.0,
                    upper_margin=0.0,
                    severity=min(1.0, max(0.0, float(changepoint["confidenceScores"][i]))),
                    direction="up" if float(after.mean()) >= level else "down",
                    detector="changepoint",
                    source=f"{source}changepoint.json",
                )
            )
    return found


def run_scheduled_detection(
    store: BlobStore,
    settings: Settings,
    now: datetime | None = None,
    *,
    backend: UnivariateBackend | None = None,
) -> ScheduledReport:
    """Judge every series that got readings since the last run; see the module docstring.

    Returns:
        The report; ``alerts`` are the ones to publish.

    Raises:
        azure.core.exceptions.AzureError: Storage failed (the next run repeats the work).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    run = hour_label(moment)
    report = ScheduledReport(run)
    cursor, etag = read_cursor(store, settings, DETECTION_JOB, moment)
    journal = read_journal(store, settings.history_container, ACTIVE_JOURNAL_PREFIX, cursor, moment)
    active = _active(journal.entries)
    report.series = len(active)
    if active:
        options = DetectionOptions.from_settings(settings)
        judge = backend or backend_for(settings)
        since = min(a.first for a in active)
        until = max(a.last for a in active) + 1
        # Points other judges alerted on. This job's own alerts do not count: a run retried
        # before it saved its cursor must publish them again (same ids).
        logged = {
            (a.device_id, a.metric, a.timestamp)
            for a in read_anomalies(store, since, until, settings=settings)
            if a.detector not in SCHEDULED_DETECTORS
        }
        lookback = settings.scheduled_detection_lookback_hours * 3600.0
        out = settings.results_container
        for series in active:
            key = f"{series.device_id}/{series.metric}"
            history = read_history(
                store,
                settings,
                series.device_id,
                series.metric,
                series.last - lookback,
                series.last,
                tail=False,
            )
            try:
                judgement = judge_history(history, series.device_id, series.metric, options, judge)
            except DetectionRequestError as exc:
                report.skipped[key] = f"{exc.code}: {exc.message}"
                continue
            prefix = scheduled_result_prefix(series.device_id, series.metric, run)
            for blob, document in (
                ("request.json", judgement.request),
                ("entire.json", judgement.entire),
                ("changepoint.json", judgement.changepoint),
            ):
                store.put_json(BlobRef(out, prefix + blob), document)
                report.written += 1
            report.judged += 1
            report.alerts.extend(
                missed_alerts(
                    judgement,
                    series.first,
                    series.last,
                    logged,
                    prefix,
                    options.stable_trend_window,
                )
            )
        if report.alerts:
            append_anomalies(store, report.alerts, LOG_WRITER, settings=settings)
    if save_cursor(store, settings, DETECTION_JOB, journal.cursor(), etag) is None:
        logger.warning("Scheduled detection cursor changed meanwhile (another run?)")
    logger.info(
        "Scheduled detection %s: %s series, %s judged, %s skipped, %s alerts",
        run,
        report.series,
        report.judged,
        len(report.skipped),
        len(report.alerts),
    )
    return report


def _active(entries: Sequence[JournalEntry]) -> list[ActiveSeries]:
    """The journal's series, one each, with the union of their new ranges."""
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for entry in entries:
        try:
            series = ActiveSeries.parse(entry.line)
        except ValueError:
            logger.warning("Active journal %s: unreadable line %r skipped", entry.blob, entry.line)
            continue
        key = (series.device_id, series.metric)
        old = spans.get(key)
        spans[key] = (
            (min(old[0], series.first), max(old[1], series.last))
            if old
            else (series.first, series.last)
        )
    return [ActiveSeries(d, m, lo, hi) for (d, m), (lo, hi) in sorted(spans.items())]


# --------------------------------------------------------------------------- on demand


def _request_points(request: JSONObject) -> list[tuple[str, float]]:
    """``(timestamp, value)`` of each point of a request that :func:`request_body` built."""
    points = request["series"]
    out: list[tuple[str, float]] = []
    for point in points if isinstance(points, Sequence) else [None]:
        stamp = point.get("timestamp") if isinstance(point, Mapping) else None
        value = point.get("value") if isinstance(point, Mapping) else None
        if not isinstance(stamp, str) or not isinstance(value, int | float):
            # request_body always writes them so: reached only by a hand-built judgement
            raise MeterwatchError(
                "A history request's series is not a list of {timestamp, value}.",
                "InvalidSeries",
            )
        out.append((stamp, float(value)))
    return out


def history_request(
    store: BlobStore,
    settings: Settings,
    device_id: str,
    metric: str,
    start: Moment,
    end: Moment,
    options: DetectionOptions,
    *,
    tail: bool = True,
) -> JSONObject:
    """The v1.1 request (granularity, customInterval, ordered gap-free series) of a range.

    At most the last 8,640 grid points of the range (the v1.1 limit).

    Raises:
        DetectionRequestError: Too few readings in the range.
        HistoryError: A bad range.
    """
    history = read_history(store, settings, device_id, metric, start, end, tail=tail)
    series = _formatted(history, options, device_id, metric)
    return request_body(series, **options.request_parameters())


def detect_history(
    store: BlobStore,
    settings: Settings,
    device_id: str,
    metric: str,
    start: Moment,
    end: Moment,
    mode: str,
    options: DetectionOptions,
    *,
    tail: bool = True,
) -> JSONObject:
    """Run ``mode`` (``entire``, ``changepoint``, ``stream`` or ``request``) over a range.

    Returns:
        For ``request``, the v1.1 request. Otherwise ``{"deviceId", "metric", "mode", "start",
        "end", "granularity", "customInterval", "period", "timestamps", "values", "observed"}``
        plus the mode's v1.1 per-point fields (``expectedValues``, ``isAnomaly``, ... or
        ``isChangePoint``, ``confidenceScores``), one entry per grid point of the range (any
        length: ``entire`` over 8,640 points runs in overlapping windows).

    Raises:
        InputError: Unknown mode.
        DetectionRequestError: Too few readings in the range.
        HistoryError: A bad range.
    """
    if mode not in ON_DEMAND_MODES:
        raise InputError(f"Unknown mode {mode!r}: use one of {ON_DEMAND_MODES}.", "InvalidMode")
    if mode == "request":
        return history_request(store, settings, device_id, metric, start, end, options, tail=tail)
    history = read_history(store, settings, device_id, metric, start, end, tail=tail)
    if history.size < 2:
        _formatted(history, options, device_id, metric)  # raises the coded error
    result = detect_series(history.epochs, history.values, mode, options)
    present = ~np.isnan(result.series.values)
    document: JSONObject = {
        "deviceId": device_id,
        "metric": metric,
        "mode": mode,
        "start": format_timestamp(epoch_of(start)),
        "end": format_timestamp(epoch_of(end)),
        "granularity": result.series.grid.granularity,
        "customInterval": result.series.grid.custom_interval,
        "period": result.period,
        "timestamps": [format_timestamp(float(t)) for t in result.series.timestamps[present]],
        "values": result.series.values[present].tolist(),
        "observed": result.series.observed[present].tolist(),
    }
    for name, column in result.fields.items():
        document[_PLURAL.get(name, name)] = np.asarray(column)[present].tolist()
    return document


def anomalies_between(
    store: BlobStore,
    settings: Settings,
    since: Moment,
    until: Moment | None = None,
    device_id: str | None = None,
) -> list[Alert]:
    """The anomaly log's alerts with ``since <= timestamp < until``, optionally of one device.

    Raises:
        InputError: A bound is not a time, or ``until`` is before ``since``.
    """
    low = epoch_of(since, "since")
    high = None if until is None else epoch_of(until, "until")
    alerts = read_anomalies(store, low, high, settings=settings)
    return [a for a in alerts if device_id is None or a.device_id == device_id]
