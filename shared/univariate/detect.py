"""Univariate use cases shared by the blob trigger, the CLI and the demo.

* :func:`detect_series` runs one detection mode on a series of readings (any length, irregular
  timestamps welcome) and returns one result per grid point; the CLI calls it directly.
* Live judgement per raw batch (what the blob trigger does) is :mod:`shared.univariate.live`:
  it no longer re-reads a window of history per reading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.engine.changepoint import ChangePointConfig, detect_change_points
from shared.engine.streaming import StreamConfig, StreamDetector
from shared.engine.univariate import UnivariateConfig
from shared.errors import DetectionRequestError, InputError
from shared.jsontypes import JSONObject
from shared.settings import Settings
from shared.univariate.contract import (
    EntireResponse,
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

    def request_parameters(self) -> JSONObject:
        """The v1.1 request fields these options set."""
        params: JSONObject = {
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
    extra: dict[str, object] = field(default_factory=dict)  # "last" or "state": JSON

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
    stream_state: Mapping[str, object] | None = None,
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
        judged: Mapping[str, object] = last  # read by name below
        for name, key in _LAST_FIELDS.items():
            fields[name][-1] = judged[key]
        return SeriesDetection("last", series, int(last["period"]), fields, {"last": last})
    if mode == "changepoint":
        if n <= MAX_POINTS:
            body = request_body(
                series,
                period=options.period,
                stableTrendWindow=options.stable_trend_window,
                threshold=options.threshold,
            )
            changes = detect_changepoint_v11(body)
            present = ~np.isnan(series.values)
            fields = {
                "isChangePoint": _scatter(present, changes["isChangePoint"], False),
                "confidenceScore": _scatter(present, changes["confidenceScores"], 0.0),
            }
            return SeriesDetection("changepoint", series, int(changes["period"]), fields)
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
    # Imputed points are judged as missing: the detector never learns from values it was not
    # sent (nor flags them).
    batch = detector.update_many(np.where(series.observed, series.values, np.nan))
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


def _scatter(
    present: np.ndarray, values: Sequence[float] | Sequence[bool], fill: float | bool
) -> np.ndarray:
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


def _from_entire_response(series: FormattedSeries, response: EntireResponse) -> SeriesDetection:
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
