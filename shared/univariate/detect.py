"""Univariate use cases shared by the blob trigger, the CLI and the demo.

* :func:`detect_series` runs one detection mode on a series of readings (any length, irregular
  timestamps welcome) and returns one result per grid point; the CLI calls it directly.
* :func:`detect_raw_batch` is what the raw-container blob trigger does for a new raw batch:
  assemble the series window of that device and metric from the recent raw blobs, build the v1.1
  request, run entire, last, change-point and streaming detection, and store the request, the
  v1.1 results and a short anomaly summary beside each other under names derived from the batch,
  so a re-triggered batch rewrites the same blobs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from shared.engine.changepoint import ChangePointConfig, detect_change_points
from shared.engine.streaming import StreamConfig, StreamDetector
from shared.engine.univariate import UnivariateConfig
from shared.errors import DetectionRequestError, InputError
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import raw_day_prefix, stream_state_name
from shared.telemetry.rawbatch import RawBatchName, batch_rows, readings_of_batch
from shared.timefmt import format_timestamp, iso_epoch
from shared.univariate.contract import (
    backend_for,
    detect_changepoint_v11,
    detect_entire_v11,
    detect_entire_windows,
    detect_last_v11,
    entire_response,
)
from shared.univariate.parameters import DEFAULT_MAX_ANOMALY_RATIO, DEFAULT_SENSITIVITY
from shared.univariate.series import (
    MAX_POINTS,
    MIN_POINTS,
    FormattedSeries,
    format_series,
    request_body,
)

logger = logging.getLogger(__name__)

MODES = ("entire", "last", "changepoint", "stream")
#: How far back detection looks for raw batches at most, in days.
MAX_LOOKBACK_DAYS = 62
STREAM_STATE_VERSION = 1


@dataclass(frozen=True)
class DetectionOptions:
    """Detection parameters (v1.1 names in requests), from settings or the CLI."""

    granularity: str = "auto"
    custom_interval: int | None = None
    period: int | None = None
    sensitivity: int = DEFAULT_SENSITIVITY
    max_anomaly_ratio: float = DEFAULT_MAX_ANOMALY_RATIO
    impute_mode: str = "auto"
    impute_fixed_value: float | None = None
    stable_trend_window: int = 10
    threshold: float = 0.99

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionOptions:
        """Take the ``DETECT_*`` settings."""
        return cls(
            granularity=settings.detect_granularity,
            custom_interval=settings.detect_custom_interval,
            period=settings.detect_period,
            sensitivity=settings.detect_sensitivity,
            max_anomaly_ratio=settings.detect_max_anomaly_ratio,
            impute_mode=settings.detect_impute_mode,
            impute_fixed_value=settings.detect_impute_fixed_value,
        )

    def format(
        self, timestamps: np.ndarray, values: np.ndarray, max_points: int | None = None
    ) -> FormattedSeries:
        """Put readings on the grid these options describe (see :func:`format_series`)."""
        return format_series(
            timestamps,
            values,
            granularity=self.granularity,
            custom_interval=self.custom_interval,
            impute_mode=self.impute_mode,
            impute_fixed_value=self.impute_fixed_value,
            max_points=max_points,
        )

    def request_parameters(self) -> dict[str, Any]:
        """The v1.1 request fields these options set."""
        params: dict[str, Any] = {
            "sensitivity": self.sensitivity,
            "maxAnomalyRatio": self.max_anomaly_ratio,
            "period": self.period,
        }
        if self.impute_mode != "auto":
            params["imputeMode"] = self.impute_mode
        if self.impute_mode == "fixed":
            params["imputeFixedValue"] = self.impute_fixed_value
        return params


@dataclass(frozen=True)
class SeriesDetection:
    """One mode's results on a formatted series: one value per grid point, per field."""

    mode: str
    series: FormattedSeries
    period: int
    fields: dict[str, np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)

    def per_input(self, name: str) -> np.ndarray:
        """Field ``name`` for each input reading (NaN/False where a reading was dropped)."""
        column = self.fields[name]
        slots = self.series.input_slots
        picked = column[np.clip(slots, 0, None)]
        if column.dtype == bool:
            return np.where(slots >= 0, picked, False)
        return np.where(slots >= 0, picked, np.nan)


def detect_series(
    timestamps: np.ndarray,
    values: np.ndarray,
    mode: str,
    options: DetectionOptions,
    stream_state: dict[str, Any] | None = None,
) -> SeriesDetection:
    """Run one detection mode on readings of any length.

    ``entire`` on more than 8,640 grid points works in overlapping windows; ``last`` judges the
    final point from (at most) the 8,640 before it, reported on that point only (other points
    are not anomalies); ``changepoint`` and ``stream`` run on the whole series (``stream``
    judges each point only from those before it, starting from ``stream_state`` if given).

    Raises:
        DetectionRequestError: Fewer than 12 points, bad parameters.
    """
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}: use one of {MODES}.", "InvalidMode")
    series = options.format(timestamps, values)
    n = series.values.size
    if n < MIN_POINTS:
        raise DetectionRequestError(
            f"The series has {n} points on its {series.grid.granularity} grid: detection needs "
            f"at least {MIN_POINTS}.",
            "InvalidSeries",
        )
    if mode == "entire":
        if n <= MAX_POINTS:
            response = detect_entire_v11(request_body(series, **options.request_parameters()))
            return _from_entire_response(series, response)
        result = detect_entire_windows(
            series.values,
            UnivariateConfig(options.sensitivity, options.max_anomaly_ratio, options.period),
        )
        return _from_entire_response(series, entire_response(result))
    if mode == "last":
        tail = _tail(series, MAX_POINTS)
        last = detect_last_v11(request_body(tail, **options.request_parameters()))
        fields = _empty_fields(n)
        for name, key in _LAST_FIELDS.items():
            fields[name][-1] = last[key]
        return SeriesDetection("last", series, int(last["period"]), fields, {"last": last})
    if mode == "changepoint":
        if n <= MAX_POINTS:
            body = request_body(
                series,
                period=options.period,
                stableTrendWindow=options.stable_trend_window,
                threshold=options.threshold,
            )
            response = detect_changepoint_v11(body)
            present = ~np.isnan(series.values)
            fields = {
                "isChangePoint": _scatter(present, response["isChangePoint"], False),
                "confidenceScore": _scatter(present, response["confidenceScores"], 0.0),
            }
            return SeriesDetection("changepoint", series, int(response["period"]), fields)
        cp = detect_change_points(
            series.values,
            ChangePointConfig(options.period, options.stable_trend_window, options.threshold),
        )
        fields = {"isChangePoint": cp.is_change_point, "confidenceScore": cp.confidence_scores}
        return SeriesDetection("changepoint", series, int(cp.period), fields)
    detector = (
        StreamDetector.from_state(stream_state)
        if stream_state
        else StreamDetector(StreamConfig(sensitivity=options.sensitivity, period=options.period))
    )
    batch = detector.update_many(series.values)
    fields = {
        "expectedValue": batch.expected_values,
        "upperMargin": batch.upper_margins,
        "lowerMargin": batch.lower_margins,
        "isAnomaly": batch.is_anomaly,
        "isPositiveAnomaly": batch.is_positive_anomaly,
        "isNegativeAnomaly": batch.is_negative_anomaly,
        "severity": batch.severity,
    }
    return SeriesDetection("stream", series, 0, fields, {"state": detector.to_state()})


_LAST_FIELDS = {
    "expectedValue": "expectedValue",
    "upperMargin": "upperMargin",
    "lowerMargin": "lowerMargin",
    "isAnomaly": "isAnomaly",
    "isPositiveAnomaly": "isPositiveAnomaly",
    "isNegativeAnomaly": "isNegativeAnomaly",
    "severity": "severity",
}


def _empty_fields(n: int) -> dict[str, np.ndarray]:
    return {
        "expectedValue": np.full(n, np.nan),
        "upperMargin": np.full(n, np.nan),
        "lowerMargin": np.full(n, np.nan),
        "isAnomaly": np.zeros(n, dtype=bool),
        "isPositiveAnomaly": np.zeros(n, dtype=bool),
        "isNegativeAnomaly": np.zeros(n, dtype=bool),
        "severity": np.zeros(n),
    }


def _scatter(present: np.ndarray, values: list[Any], fill: Any) -> np.ndarray:
    array = np.asarray(values)
    out = np.full(present.size, fill, dtype=array.dtype if array.size else type(fill))
    out[present] = array
    return out


def _tail(series: FormattedSeries, points: int) -> FormattedSeries:
    if series.values.size <= points:
        return series
    return FormattedSeries(
        series.grid,
        series.timestamps[-points:],
        series.values[-points:],
        series.input_slots - (series.values.size - points),
        series.duplicates,
        series.observed[-points:],
    )


def _from_entire_response(series: FormattedSeries, response: dict[str, Any]) -> SeriesDetection:
    present = ~np.isnan(series.values)
    fields = {
        "expectedValue": _scatter(present, response["expectedValues"], np.nan),
        "upperMargin": _scatter(present, response["upperMargins"], np.nan),
        "lowerMargin": _scatter(present, response["lowerMargins"], np.nan),
        "isAnomaly": _scatter(present, response["isAnomaly"], False),
        "isPositiveAnomaly": _scatter(present, response["isPositiveAnomaly"], False),
        "isNegativeAnomaly": _scatter(present, response["isNegativeAnomaly"], False),
        "severity": _scatter(present, response["severity"], 0.0),
    }
    return SeriesDetection("entire", series, int(response["period"]), fields)


# --------------------------------------------------------------------------- blob trigger


@dataclass(frozen=True)
class DetectionReport:
    """What :func:`detect_raw_batch` wrote and found."""

    batch: str
    skipped: str | None
    points: int
    anomalies: list[dict[str, Any]]
    written: list[str]


def detect_raw_batch(blob_name: str, store: BlobStore, settings: Settings) -> DetectionReport:
    """Format and detect for a new raw batch; write request, results and summary beside it.

    Args:
        blob_name: The raw batch's name in ``settings.raw_container``.
        store: Blob storage.
        settings: App settings (containers, detection parameters).

    Returns:
        The report; ``skipped`` says why nothing was detected (too little history).

    Raises:
        azure.core.exceptions.AzureError: Storage failed (the runtime retries).
    """
    name = RawBatchName.parse(blob_name)
    batch_doc = store.get_json(BlobRef(settings.raw_container, blob_name))
    batch = readings_of_batch(batch_doc)
    if not batch:
        return DetectionReport(blob_name, "empty batch", 0, [], [])
    options = DetectionOptions.from_settings(settings)
    batch_start = min(r.timestamp for r in batch)
    batch_end = max(r.timestamp for r in batch)
    stamps, values = _assemble_window(store, settings, name, batch_end)
    window = stamps <= batch_end
    stamps, values = stamps[window], values[window]
    prefix = name.result_prefix()
    out = settings.results_container
    written: list[str] = []
    try:
        series = options.format(stamps, values, settings.detect_window_points)
    except DetectionRequestError as exc:
        return _skip(store, settings, name, blob_name, f"{exc.code}: {exc.message}")
    present = int(np.count_nonzero(~np.isnan(series.values)))
    if present < MIN_POINTS:
        return _skip(
            store,
            settings,
            name,
            blob_name,
            f"only {present} points of history so far; detection starts at {MIN_POINTS}",
        )
    request = request_body(series, **options.request_parameters())
    observed_at = dict(zip(series.timestamps.tolist(), series.observed.tolist(), strict=True))
    store.put_json(BlobRef(out, prefix + "request.json"), request)
    written.append(prefix + "request.json")
    backend = backend_for(settings)
    entire = backend.entire(request)
    last = backend.last(request)
    changepoint = backend.changepoint(
        {
            **request,
            "stableTrendWindow": options.stable_trend_window,
            "threshold": options.threshold,
        }
    )
    for mode, document in (("entire", entire), ("last", last), ("changepoint", changepoint)):
        store.put_json(BlobRef(out, f"{prefix}{mode}.json"), document)
        written.append(f"{prefix}{mode}.json")
    stream_flags = _run_stream(store, settings, name, series, options)
    stream_ref = BlobRef(out, prefix + "stream.json")
    if stream_flags is None:  # nothing new for the stream: this batch was judged before
        stream_flags = (store.get_json_or_none(stream_ref) or {}).get("anomalies", [])
    else:
        store.put_json(stream_ref, {"anomalies": stream_flags})
        written.append(prefix + "stream.json")
    # Only measured points are reported: an imputed slot is the pipeline's guess, and a long gap
    # filled with the previous value would otherwise look like a stuck meter.
    anomalies = [
        a
        for a in _anomalies_in(request, entire, batch_start, batch_end)
        if observed_at.get(iso_epoch(a["timestamp"]), False)
    ]
    summary = {
        "deviceId": name.device_id,
        "metric": name.metric,
        "batch": blob_name,
        "granularity": request["granularity"],
        "customInterval": request.get("customInterval", 1),
        "window": {
            "start": request["series"][0]["timestamp"],
            "end": request["series"][-1]["timestamp"],
            "points": len(request["series"]),
        },
        "batchRange": {"start": format_timestamp(batch_start), "end": format_timestamp(batch_end)},
        "period": entire["period"],
        "imputedPoints": int(np.count_nonzero(~series.observed)),
        "anomalyCount": len(anomalies),
        "anomalies": anomalies,
        "lastPoint": {
            "timestamp": request["series"][-1]["timestamp"],
            "value": request["series"][-1]["value"],
            **last,
        },
        "changePoints": [
            request["series"][i]["timestamp"]
            for i, flag in enumerate(changepoint["isChangePoint"])
            if flag and batch_start <= iso_epoch(request["series"][i]["timestamp"]) <= batch_end
        ],
        "streamAnomalies": stream_flags,
    }
    store.put_json(BlobRef(out, prefix + "summary.json"), summary)
    written.append(prefix + "summary.json")
    if anomalies:
        logger.info(
            "%s/%s: %s anomalies in batch %s",
            name.device_id,
            name.metric,
            len(anomalies),
            name.stem,
        )
    return DetectionReport(blob_name, None, len(request["series"]), anomalies, written)


def _skip(
    store: BlobStore, settings: Settings, name: RawBatchName, blob_name: str, reason: str
) -> DetectionReport:
    ref = BlobRef(settings.results_container, name.result_prefix() + "summary.json")
    store.put_json(
        ref,
        {"deviceId": name.device_id, "metric": name.metric, "batch": blob_name, "skipped": reason},
    )
    logger.info("Detection skipped for %s: %s", blob_name, reason)
    return DetectionReport(blob_name, reason, 0, [], [ref.name])


def _anomalies_in(
    request: dict[str, Any], entire: dict[str, Any], start: float, end: float
) -> list[dict[str, Any]]:
    found = []
    for i, point in enumerate(request["series"]):
        if not entire["isAnomaly"][i]:
            continue
        moment = iso_epoch(point["timestamp"])
        if not start <= moment <= end:
            continue
        found.append(
            {
                "timestamp": point["timestamp"],
                "value": point["value"],
                "expectedValue": entire["expectedValues"][i],
                "severity": entire["severity"][i],
                "direction": "up" if entire["isPositiveAnomaly"][i] else "down",
            }
        )
    return found


def _assemble_window(
    store: BlobStore, settings: Settings, name: RawBatchName, batch_end: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the recent raw batches of one device and metric, newest days first.

    Days are read backwards from the batch's day until the window holds
    ``detect_window_points`` distinct timestamps (or the lookback ends). A timestamp seen in
    several batches keeps the value of the batch delivered last (highest sequence numbers).
    """
    readings: dict[float, tuple[int, float]] = {}
    day = datetime.strptime(name.day, "%Y-%m-%d").replace(tzinfo=UTC)
    end_day = datetime.fromtimestamp(batch_end, tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    day = max(day, end_day)
    want = settings.detect_window_points
    for back in range(MAX_LOOKBACK_DAYS):
        prefix = raw_day_prefix(
            name.device_id, name.metric, f"{day - timedelta(days=back):%Y-%m-%d}"
        )
        for blob in store.list_names(settings.raw_container, prefix):
            order, rows = batch_rows(store.get_json(BlobRef(settings.raw_container, blob)))
            for text, value in rows:
                moment = iso_epoch(text)
                seen = readings.get(moment)
                if seen is None or seen[0] <= order:
                    readings[moment] = (order, value)
        if len(readings) >= want and back >= 1:
            break
    stamps = np.fromiter(readings.keys(), dtype=np.float64, count=len(readings))
    values = np.fromiter((v for _, v in readings.values()), dtype=np.float64, count=len(readings))
    order_idx = np.argsort(stamps, kind="stable")
    return stamps[order_idx], values[order_idx]


def _run_stream(
    store: BlobStore,
    settings: Settings,
    name: RawBatchName,
    series: FormattedSeries,
    options: DetectionOptions,
) -> list[dict[str, Any]] | None:
    """Advance the device's streaming detector over points newer than its saved state.

    Points at or before the state's last timestamp were already judged (a redelivered batch, or
    a late reading), so they are skipped: the state moves forward once per point, whatever the
    number of deliveries. The state blob is written with an ETag condition; on a conflict with a
    concurrent invocation the step is re-run on the fresh state.

    Returns:
        The stream anomalies among the new points, or ``None`` when there were no new points.
    """
    ref = BlobRef(settings.results_container, stream_state_name(name.device_id, name.metric))
    for _attempt in range(5):
        saved, etag = store.get_json_with_etag(ref)
        last_seen = float(saved["lastTimestamp"]) if saved else -math.inf
        new = (series.timestamps > last_seen) & ~np.isnan(series.values)
        if not new.any():
            return None
        detector = (
            StreamDetector.from_state(saved["detector"])
            if saved
            else StreamDetector(
                StreamConfig(sensitivity=options.sensitivity, period=options.period)
            )
        )
        batch = detector.update_many(series.values[new])
        stamps = series.timestamps[new]
        state = {
            "version": STREAM_STATE_VERSION,
            "lastTimestamp": float(stamps[-1]),
            "detector": detector.to_state(),
        }
        if store.put_json_if_unchanged(ref, state, etag):
            return [
                {
                    "timestamp": format_timestamp(float(stamps[i])),
                    "value": float(series.values[new][i]),
                    "expectedValue": float(batch.expected_values[i]),
                    "severity": float(batch.severity[i]),
                }
                for i in np.flatnonzero(batch.is_anomaly & series.observed[new])
            ]
        logger.info(
            "Stream state of %s/%s changed meanwhile; retrying", name.device_id, name.metric
        )
    raise RuntimeError(f"Could not update {ref} after 5 attempts (too much contention).")
