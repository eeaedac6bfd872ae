"""The Anomaly Detector v1.1 univariate contract on the embedded engine.

Request and response bodies keep the retired service's field names, so code written against
``azure-ai-anomalydetector`` keeps working. This module validates a request the way the service
did (12 to 8,640 points, sorted unique timestamps, numeric values, parameter ranges), raising
:class:`~shared.errors.DetectionRequestError` with the service's error code and a message that
says what to fix; puts the series on its grid (filling gaps per ``imputeMode``); calls the engine;
and shapes the response. Results always have one entry per point of the request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict

import numpy as np

from shared.engine.changepoint import ChangePointConfig, detect_change_points
from shared.engine.univariate import (
    EntireResult,
    UnivariateConfig,
    detect_entire,
    detect_last,
)
from shared.errors import ConfigurationError, DetectionRequestError, TelemetryError
from shared.numbers import lenient_number
from shared.timefmt import parse_timestamp
from shared.univariate.parameters import (
    DEFAULT_MAX_ANOMALY_RATIO,
    DEFAULT_SENSITIVITY,
    IMPUTE_MODES,
)
from shared.univariate.series import (
    GRANULARITY_SECONDS,
    MAX_POINTS,
    MIN_POINTS,
    Grid,
    impute,
    to_grid,
)

if TYPE_CHECKING:
    from shared.settings import Settings


@dataclass(frozen=True)
class ParsedRequest:
    """A validated v1.1 univariate request, ready for the engine."""

    timestamps: np.ndarray | None  # epoch seconds; None with granularity "none"
    values: np.ndarray  # the request's values, one per point
    grid: Grid | None
    sensitivity: int
    max_anomaly_ratio: float
    period: int | None
    impute_mode: str
    impute_fixed_value: float | None
    stable_trend_window: int
    threshold: float


def parse_request(body: object, *, max_points: int = MAX_POINTS) -> ParsedRequest:
    """Validate a v1.1 univariate request body.

    Args:
        body: The decoded JSON request.
        max_points: Upper limit of points (8,640 for the service).

    Raises:
        DetectionRequestError: The request breaks the contract; ``code`` is the service's.
    """
    if not isinstance(body, Mapping):
        raise DetectionRequestError("The request body must be a JSON object.", "InvalidJsonFormat")
    series = body.get("series")
    if series is None:
        raise DetectionRequestError("The request needs a 'series' field.", "RequiredSeries")
    if not isinstance(series, list):
        raise DetectionRequestError("'series' must be an array of points.", "InvalidSeries")
    if len(series) < MIN_POINTS:
        raise DetectionRequestError(
            f"The series has {len(series)} points: send at least {MIN_POINTS}.", "InvalidSeries"
        )
    if len(series) > max_points:
        raise DetectionRequestError(
            f"The series has {len(series)} points: send at most {max_points} (split longer "
            "series into windows).",
            "InvalidSeries",
        )
    granularity = body.get("granularity", "none" if _no_timestamps(series) else None)
    if granularity is None:
        raise DetectionRequestError(
            "The request needs 'granularity' (yearly, monthly, weekly, daily, hourly, minutely, "
            "secondly, or none when points have no timestamps).",
            "RequiredGranularity",
        )
    if not isinstance(granularity, str) or (
        granularity != "none" and granularity not in GRANULARITY_SECONDS
    ):
        raise DetectionRequestError(
            f"Unknown granularity {granularity!r}: use one of "
            f"{sorted(GRANULARITY_SECONDS) + ['none']}.",
            "InvalidGranularity",
        )
    # An int32 in the service's specification (a larger one spans no calendar we can grid).
    custom_interval = _integer(
        body, "customInterval", 1, low=1, high=2**31 - 1, code="InvalidCustomInterval"
    )
    values = np.empty(len(series), dtype=np.float64)
    stamps = None if granularity == "none" else np.empty(len(series), dtype=np.float64)
    for i, point in enumerate(series):
        if not isinstance(point, Mapping):
            raise DetectionRequestError(
                f"series[{i}] must be an object with 'timestamp' and 'value'.", "InvalidSeries"
            )
        values[i] = point_value(point.get("value"), f"series[{i}].value")
        if stamps is not None:
            stamps[i] = _timestamp(point, i)
    if stamps is not None:
        steps = np.diff(stamps)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            problem = "duplicates" if steps[bad[0]] == 0 else "is earlier than"
            raise DetectionRequestError(
                f"Timestamps must be in ascending order without duplicates: series[{i}] "
                f"({series[i].get('timestamp')}) {problem} series[{i - 1}].",
                "InvalidSeries",
            )
    impute_mode = body.get("imputeMode", "auto")
    if not isinstance(impute_mode, str) or impute_mode not in IMPUTE_MODES:
        raise DetectionRequestError(
            f"Unknown imputeMode {impute_mode!r}: use one of {IMPUTE_MODES}.", "InvalidImputeMode"
        )
    fixed = body.get("imputeFixedValue")
    if (impute_mode == "fixed" or fixed is not None) and (
        isinstance(fixed, bool) or not isinstance(fixed, int | float) or not math.isfinite(fixed)
    ):
        raise DetectionRequestError(
            "imputeFixedValue must be a finite number (and is required with imputeMode 'fixed').",
            "InvalidImputeValue",
        )
    period = body.get("period")
    if period is not None:
        period = _integer(body, "period", 0, low=0, code="InvalidPeriod")
        if period > len(series) // 2:
            raise DetectionRequestError(
                f"period {period} is longer than half the series ({len(series)} points).",
                "InvalidPeriod",
            )
    ratio = body.get("maxAnomalyRatio", DEFAULT_MAX_ANOMALY_RATIO)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 0.5:
        raise DetectionRequestError(
            f"maxAnomalyRatio must be a number in (0, 0.5], got {ratio!r}.",
            "InvalidMaxAnomalyRatio",
        )
    threshold = body.get("threshold", 0.99)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0 < threshold < 1)
    ):
        raise DetectionRequestError(
            f"threshold must be a number in (0, 1), got {threshold!r}.", "InvalidThreshold"
        )
    return ParsedRequest(
        timestamps=stamps,
        values=values,
        grid=None if granularity == "none" else Grid(granularity, custom_interval),
        sensitivity=_integer(
            body, "sensitivity", DEFAULT_SENSITIVITY, low=0, high=99, code="InvalidSensitivity"
        ),
        max_anomaly_ratio=float(ratio),
        period=period,
        impute_mode=impute_mode,
        impute_fixed_value=float(fixed) if fixed is not None else None,
        stable_trend_window=_integer(
            body, "stableTrendWindow", 10, low=3, high=len(series), code="InvalidStableTrendWindow"
        ),
        threshold=float(threshold),
    )


def point_value(raw: object, where: str) -> float:
    """A series or variable value: a JSON number, or a numeric string as the service allowed.

    The retired service read values with a lenient JSON reader that turned ``"0.418"`` into the
    double 0.418 (the Learn univariate unit sends such strings); meterwatch does the same and
    no more: booleans, ``null``, non-numeric text and non-finite values stay errors.

    Args:
        raw: The decoded JSON value.
        where: The field's place in the request (``series[3].value``), for the message.

    Raises:
        DetectionRequestError: ``InvalidSeries`` when the value is not a finite number.
    """
    number = lenient_number(raw)
    if number is not None:
        return number
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raise DetectionRequestError(f"{where} is not a finite number.", "InvalidSeries")
    shown = repr(raw) if not isinstance(raw, str) else repr(raw[:40])
    raise DetectionRequestError(
        f'{where} must be a number (or numeric text such as "0.418"), got {shown}.',
        "InvalidSeries",
    )


def _no_timestamps(series: list[object]) -> bool:
    return bool(series) and all(
        isinstance(p, Mapping) and p.get("timestamp") is None for p in series
    )


def _timestamp(point: Mapping[str, object], i: int) -> float:
    raw = point.get("timestamp")
    if raw is None:
        raise DetectionRequestError(f"series[{i}] has no timestamp.", "InvalidSeries")
    try:
        return parse_timestamp(raw)
    except TelemetryError as exc:
        raise DetectionRequestError(
            f"series[{i}].timestamp: {exc.message}", "InvalidSeries"
        ) from exc


def _integer(
    body: Mapping[str, object],
    key: str,
    default: int,
    *,
    low: int,
    high: int | None = None,
    code: str,
) -> int:
    raw = body.get(key, default)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != int(raw):
        raise DetectionRequestError(f"{key} must be an integer, got {raw!r}.", code)
    value = int(raw)
    if value < low or (high is not None and value > high):
        limit = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise DetectionRequestError(f"{key} must be {limit}, got {value}.", code)
    return value


@dataclass(frozen=True)
class _Prepared:
    values: np.ndarray  # the engine's input (gridded and imputed)
    positions: np.ndarray  # where each request point sits in ``values``


def _prepare(request: ParsedRequest) -> _Prepared:
    """Put the request on its grid and fill gaps; map request points into the grid."""
    if request.grid is None or request.timestamps is None:
        return _Prepared(request.values, np.arange(request.values.size))
    gridded = to_grid(request.timestamps, request.values, request.grid)
    slots = np.rint(
        (request.timestamps - gridded.timestamps[0]) / request.grid.step_seconds
    ).astype(np.int64)
    if gridded.duplicates:
        raise DetectionRequestError(
            f"{gridded.duplicates} timestamps fall on the same {request.grid.granularity} slot "
            f"(customInterval {request.grid.custom_interval}): check the granularity.",
            "InvalidSeries",
        )
    if gridded.values.size > MAX_POINTS * 2:
        raise DetectionRequestError(
            f"The timestamps span {gridded.values.size} {request.grid.granularity} points: "
            "check the granularity or customInterval.",
            "InvalidSeries",
        )
    filled = impute(gridded.values, request.impute_mode, request.impute_fixed_value)
    return _Prepared(filled, slots)


def _config(request: ParsedRequest) -> UnivariateConfig:
    return UnivariateConfig(
        sensitivity=request.sensitivity,
        max_anomaly_ratio=request.max_anomaly_ratio,
        period=request.period,
    )


class EntireResponse(TypedDict):
    """The v1.1 ``timeseries/entire/detect`` response: one entry per request point."""

    period: int
    expectedValues: list[float]
    upperMargins: list[float]
    lowerMargins: list[float]
    isAnomaly: list[bool]
    isNegativeAnomaly: list[bool]
    isPositiveAnomaly: list[bool]
    severity: list[float]


class LastResponse(TypedDict):
    """The v1.1 ``timeseries/last/detect`` response: the judgement of the last point."""

    period: int
    suggestedWindow: int
    expectedValue: float
    upperMargin: float
    lowerMargin: float
    isAnomaly: bool
    isNegativeAnomaly: bool
    isPositiveAnomaly: bool
    severity: float


class ChangePointResponse(TypedDict):
    """The v1.1 ``timeseries/changepoint/detect`` response: one entry per request point."""

    period: int
    isChangePoint: list[bool]
    confidenceScores: list[float]


def detect_entire_v11(body: object) -> EntireResponse:
    """Run ``timeseries/entire/detect`` on a v1.1 request body; return the v1.1 response."""
    request = parse_request(body)
    prepared = _prepare(request)
    result = detect_entire(prepared.values, _config(request))
    return entire_response(result, prepared.positions)


def entire_response(result: EntireResult, positions: np.ndarray | None = None) -> EntireResponse:
    """Shape an engine result as the v1.1 entire response, keeping only ``positions``."""
    pick = slice(None) if positions is None else positions
    return {
        "period": int(result.period),
        "expectedValues": result.expected_values[pick].tolist(),
        "upperMargins": result.upper_margins[pick].tolist(),
        "lowerMargins": result.lower_margins[pick].tolist(),
        "isAnomaly": result.is_anomaly[pick].tolist(),
        "isNegativeAnomaly": result.is_negative_anomaly[pick].tolist(),
        "isPositiveAnomaly": result.is_positive_anomaly[pick].tolist(),
        "severity": result.severity[pick].tolist(),
    }


def detect_last_v11(body: object) -> LastResponse:
    """Run ``timeseries/last/detect`` on a v1.1 request body; return the v1.1 response."""
    request = parse_request(body)
    prepared = _prepare(request)
    result = detect_last(prepared.values, _config(request))
    return {
        "period": int(result.period),
        "suggestedWindow": int(result.suggested_window),
        "expectedValue": float(result.expected_value),
        "upperMargin": float(result.upper_margin),
        "lowerMargin": float(result.lower_margin),
        "isAnomaly": bool(result.is_anomaly),
        "isNegativeAnomaly": bool(result.is_negative_anomaly),
        "isPositiveAnomaly": bool(result.is_positive_anomaly),
        "severity": float(result.severity),
    }


def detect_changepoint_v11(body: object) -> ChangePointResponse:
    """Run ``timeseries/changepoint/detect`` on a v1.1 request; return the v1.1 response."""
    request = parse_request(body)
    prepared = _prepare(request)
    result = detect_change_points(
        prepared.values,
        ChangePointConfig(
            period=request.period,
            stable_trend_window=request.stable_trend_window,
            threshold=request.threshold,
        ),
    )
    pick = prepared.positions
    return {
        "period": int(result.period),
        "isChangePoint": result.is_change_point[pick].tolist(),
        "confidenceScores": result.confidence_scores[pick].tolist(),
    }


def detect_entire_windows(
    values: np.ndarray, config: UnivariateConfig, *, window: int = MAX_POINTS, overlap: int = 1440
) -> EntireResult:
    """Entire detection on a series of any length, in overlapping windows of ``window`` points.

    Each window after the first starts ``overlap`` points early, so every point is judged with
    history around it; the overlap's results are taken from the earlier window. The period is
    detected once on the first window and reused, so that windows agree.
    """
    n = values.size
    if n <= window:
        return detect_entire(values, config)
    overlap = min(overlap, window // 2)
    first = detect_entire(values[:window], config)
    fixed = UnivariateConfig(config.sensitivity, config.max_anomaly_ratio, first.period)
    parts = [(first, 0, window, 0)]
    covered = window
    while covered < n:
        hi = min(n, covered - overlap + window)
        lo = max(0, hi - window)
        parts.append((detect_entire(values[lo:hi], fixed), lo, hi, covered - lo))
        covered = hi
    out = {name: np.empty(n, dtype=getattr(first, name).dtype) for name in _ARRAY_FIELDS}
    for part, lo, hi, keep_from in parts:
        for name in _ARRAY_FIELDS:
            out[name][lo + keep_from : hi] = getattr(part, name)[keep_from:]
    return EntireResult(period=first.period, **out)


_ARRAY_FIELDS = (
    "expected_values",
    "upper_margins",
    "lower_margins",
    "is_anomaly",
    "is_positive_anomaly",
    "is_negative_anomaly",
    "severity",
)


class UnivariateBackend(Protocol):
    """Who answers v1.1 univariate requests: the embedded engine, or a remote endpoint."""

    def entire(self, body: Mapping[str, object]) -> EntireResponse:
        """``timeseries/entire/detect``."""
        ...

    def last(self, body: Mapping[str, object]) -> LastResponse:
        """``timeseries/last/detect``."""
        ...

    def changepoint(self, body: Mapping[str, object]) -> ChangePointResponse:
        """``timeseries/changepoint/detect``."""
        ...


class EmbeddedBackend:
    """The default backend: meterwatch's own engine, in-process."""

    def entire(self, body: Mapping[str, object]) -> EntireResponse:
        """``timeseries/entire/detect`` on the embedded engine."""
        return detect_entire_v11(body)

    def last(self, body: Mapping[str, object]) -> LastResponse:
        """``timeseries/last/detect`` on the embedded engine."""
        return detect_last_v11(body)

    def changepoint(self, body: Mapping[str, object]) -> ChangePointResponse:
        """``timeseries/changepoint/detect`` on the embedded engine."""
        return detect_changepoint_v11(body)


def backend_for(settings: Settings) -> UnivariateBackend:
    """The embedded engine, or the remote endpoint when ``ANOMALY_DETECTOR_ENDPOINT`` is set."""
    if settings.remote_endpoint:
        from shared.univariate.remote import RemoteBackend  # the SDK is only imported when used

        if not settings.remote_key:  # Settings refuses this; a hand-built one may not
            raise ConfigurationError(
                "ANOMALY_DETECTOR_ENDPOINT is set without ANOMALY_DETECTOR_KEY: set the key of "
                "that resource, or unset the endpoint to use the embedded engine."
            )
        return RemoteBackend(settings.remote_endpoint, settings.remote_key)
    return EmbeddedBackend()
