"""Series formatting: irregular telemetry in, a v1.1 detection request out.

Real meters send late, duplicated and missing readings. Before detection a series is put on a
regular grid: the granularity is configured or inferred from the median step, timestamps are
rounded to the grid, duplicates on one grid slot are resolved (mean), and gaps are filled per the
v1.1 ``imputeMode``: ``auto`` (linear for short gaps, previous value otherwise), ``previous``,
``linear``, ``fixed``, ``zero`` or ``notFill`` (gaps stay missing and are never flagged).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.errors import DetectionRequestError
from shared.jsontypes import JSONObject, JSONValue
from shared.timefmt import format_timestamp

#: v1.1 granularities and their length in seconds (month and year are calendar-based and
#: approximated here only to infer them; gridding them uses calendar arithmetic in pandas).
GRANULARITY_SECONDS: dict[str, int] = {
    "secondly": 1,
    "minutely": 60,
    "hourly": 3600,
    "daily": 86_400,
    "weekly": 7 * 86_400,
    "monthly": 30 * 86_400,
    "yearly": 365 * 86_400,
}
#: Gaps up to this many points are interpolated linearly in ``auto`` mode.
AUTO_LINEAR_MAX_GAP = 5
#: v1.1 limits on a series.
MIN_POINTS, MAX_POINTS = 12, 8640


@dataclass(frozen=True)
class Grid:
    """A regular time grid: ``granularity`` x ``custom_interval`` seconds per step."""

    granularity: str
    custom_interval: int

    @property
    def step_seconds(self) -> int:
        """Seconds between two grid points."""
        return GRANULARITY_SECONDS[self.granularity] * self.custom_interval


@dataclass(frozen=True)
class GriddedSeries:
    """A series on a regular grid; ``values`` is NaN where nothing was measured or filled."""

    grid: Grid
    timestamps: np.ndarray  # float64 epoch seconds, strictly increasing by grid.step_seconds
    values: np.ndarray  # float64
    observed: np.ndarray  # bool: a reading fell in this slot
    duplicates: int  # readings merged into an occupied slot


def infer_grid(timestamps: np.ndarray) -> Grid:
    """Infer the grid from the median step between distinct timestamps.

    The step is expressed in the largest v1.1 granularity that divides it (a 15-minute meter is
    ``minutely`` with ``customInterval`` 15).

    Raises:
        DetectionRequestError: Fewer than two distinct timestamps.
    """
    distinct = np.unique(timestamps)
    if distinct.size < 2:
        raise DetectionRequestError(
            "Cannot infer the granularity from fewer than two distinct timestamps; "
            "set granularity explicitly.",
            code="InvalidSeries",
        )
    step = float(np.median(np.diff(distinct)))
    for name in ("weekly", "daily", "hourly", "minutely", "secondly"):
        unit = GRANULARITY_SECONDS[name]
        ratio = step / unit
        if ratio >= 1 and abs(ratio - round(ratio)) < 1e-6:
            return Grid(name, int(round(ratio)))
    # Not a whole number of seconds (sub-second or jittered): round to the nearest second.
    return Grid("secondly", max(1, int(round(step))))


def to_grid(
    timestamps: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    grid: Grid,
) -> GriddedSeries:
    """Round timestamps to ``grid``, merge duplicates by mean, and lay out every slot.

    Args:
        timestamps: Epoch seconds, in any order.
        values: Values aligned with ``timestamps``.
        grid: The target grid.

    Returns:
        Every grid slot from the first to the last reading; unobserved slots are NaN.
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    if stamps.size == 0:
        raise DetectionRequestError("The series is empty.", code="InvalidSeries")
    step = grid.step_seconds
    slots = np.rint(stamps / step).astype(np.int64)
    first = int(slots.min())
    index = slots - first
    length = int(index.max()) + 1
    if length > 50 * MAX_POINTS:
        raise DetectionRequestError(
            f"The series spans {length} grid points of {step}s: check the granularity or the "
            "timestamps (a reading far in the past or future?).",
            code="InvalidSeries",
        )
    sums = np.bincount(index, weights=vals, minlength=length)
    counts = np.bincount(index, minlength=length)
    observed = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        merged = np.where(observed, sums / np.maximum(counts, 1), np.nan)
    grid_stamps = (np.arange(length, dtype=np.float64) + first) * step
    duplicates = int(counts.sum() - observed.sum())
    return GriddedSeries(grid, grid_stamps, merged, observed, duplicates)


def impute(values: np.ndarray, mode: str, fixed_value: float | None = None) -> np.ndarray:
    """Fill NaN gaps per the v1.1 ``imputeMode``; returns a new array.

    Raises:
        DetectionRequestError: Unknown mode, or ``fixed`` without a value.
    """
    filled = np.array(values, dtype=np.float64, copy=True)
    missing = np.isnan(filled)
    if not missing.any() or mode == "notFill":
        return filled
    if mode == "zero":
        filled[missing] = 0.0
        return filled
    if mode == "fixed":
        if fixed_value is None or not math.isfinite(fixed_value):
            raise DetectionRequestError(
                "imputeMode 'fixed' needs a finite imputeFixedValue.", code="InvalidImputeValue"
            )
        filled[missing] = fixed_value
        return filled
    known = np.flatnonzero(~missing)
    if known.size == 0:
        raise DetectionRequestError("The series has no values.", code="InvalidSeries")
    positions = np.arange(filled.size)
    previous = _forward_fill(filled, missing)
    if mode == "previous":
        return previous
    linear = np.interp(positions, known, filled[known])
    if mode == "linear":
        return linear
    if mode == "auto":
        gap_len = _gap_lengths(missing)
        return np.where(missing & (gap_len <= AUTO_LINEAR_MAX_GAP), linear, previous)
    raise DetectionRequestError(
        f"Unknown imputeMode {mode!r}: use auto, previous, linear, fixed, zero or notFill.",
        code="InvalidImputeMode",
    )


def _forward_fill(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    index = np.where(~missing, np.arange(values.size), 0)
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    # Leading gap: back-fill from the first known value.
    first_known = int(np.flatnonzero(~missing)[0])
    filled[:first_known] = values[first_known]
    return filled


def _gap_lengths(missing: np.ndarray) -> np.ndarray:
    """For every missing point, the length of the run of missing points it belongs to."""
    lengths = np.zeros(missing.size, dtype=np.int64)
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    for start, end in zip(starts, ends, strict=True):
        lengths[start:end] = end - start
    return lengths


@dataclass(frozen=True)
class FormattedSeries:
    """A series ready for detection: on its grid, gaps filled, plus where each input landed."""

    grid: Grid
    timestamps: np.ndarray  # epoch seconds of every kept grid slot
    values: np.ndarray  # filled values (NaN only with notFill)
    input_slots: np.ndarray  # for each input reading, its index in ``timestamps`` (-1: dropped)
    duplicates: int
    observed: np.ndarray  # bool per kept slot: a reading fell there (False: imputed or missing)


def format_series(
    timestamps: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    granularity: str = "auto",
    custom_interval: int | None = None,
    impute_mode: str = "auto",
    impute_fixed_value: float | None = None,
    max_points: int | None = None,
) -> FormattedSeries:
    """Grid, de-duplicate and fill a series; keep at most ``max_points`` trailing slots.

    Args:
        timestamps: Epoch seconds of the readings (any order, duplicates allowed).
        values: The readings.
        granularity: A v1.1 granularity, or ``auto`` to infer it.
        custom_interval: Multiplier of the granularity (inferred with ``auto``).
        impute_mode: How to fill gaps (see module docstring).
        impute_fixed_value: Value for ``fixed``.
        max_points: Keep at most this many trailing grid points (``None``: all).

    Raises:
        DetectionRequestError: Unknown granularity or impute mode, or too few timestamps.
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    if granularity == "auto":
        grid = infer_grid(stamps)
        if custom_interval is not None:
            grid = Grid(grid.granularity, custom_interval)
    else:
        if granularity not in GRANULARITY_SECONDS:
            raise DetectionRequestError(
                f"Unknown granularity {granularity!r}: use one of {sorted(GRANULARITY_SECONDS)}.",
                code="InvalidGranularity",
            )
        grid = Grid(granularity, custom_interval or 1)
    gridded = to_grid(stamps, values, grid)
    filled = impute(gridded.values, impute_mode, impute_fixed_value)
    slot_of_input = np.rint((stamps - gridded.timestamps[0]) / grid.step_seconds).astype(np.int64)
    keep = ~np.isnan(filled) | (impute_mode == "notFill")
    if max_points is not None:
        tail = np.zeros(keep.size, dtype=bool)
        tail[-max_points:] = True
        keep &= tail
    # Map slot index -> position among kept slots.
    position = np.cumsum(keep) - 1
    input_slots = np.where(keep[slot_of_input], position[slot_of_input], -1)
    return FormattedSeries(
        grid=grid,
        timestamps=gridded.timestamps[keep],
        values=filled[keep],
        input_slots=input_slots,
        duplicates=gridded.duplicates,
        observed=gridded.observed[keep],
    )


def request_body(series: FormattedSeries, **parameters: JSONValue) -> JSONObject:
    """Shape a formatted series as a v1.1 request body (NaN points are left out).

    Args:
        series: The formatted series.
        **parameters: Further v1.1 fields (``sensitivity``, ``period``, ...); ``None`` skipped.
    """
    present = ~np.isnan(series.values)
    body: JSONObject = {
        "series": [
            {"timestamp": format_timestamp(float(t)), "value": float(v)}
            for t, v in zip(series.timestamps[present], series.values[present], strict=True)
        ],
        "granularity": series.grid.granularity,
    }
    if series.grid.custom_interval != 1:
        body["customInterval"] = series.grid.custom_interval
    body.update({key: value for key, value in parameters.items() if value is not None})
    return body
