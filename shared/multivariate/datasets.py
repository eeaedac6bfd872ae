"""Multivariate datasets: their limits, the align policy, and alignment on one time grid.

The uploads themselves (MultiTable zip, OneTable CSV) are read by
:mod:`shared.multivariate.uploads` within :class:`DatasetLimits`.

:func:`align` then puts the variables on one sampling grid per the v1.1 ``alignPolicy``: the
grid step is the median step between readings of the most finely sampled variable (snapped to a
usual meter interval when within 10 %), timestamps are rounded to it, readings that land on one
slot are averaged, the variables are joined (``Inner``: slots where every variable has a
reading; ``Outer``: slots where any has one) and the holes are filled (``Previous``,
``Subsequent``, ``Linear``, ``Zero`` or ``Fixed``). Slots where no variable reported are not
invented: the gap stays visible in :attr:`Dataset.timestamps` and the engine treats it as a
break in the series.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from shared.errors import DatasetError
from shared.jsontypes import JSONObject
from shared.timefmt import bound_datetime64, iso_or_open

logger = logging.getLogger(__name__)

MIB = 1024 * 1024

#: The five v1.1 ``fillNAMethod`` values and the two ``alignMode`` values (canonical spelling).
FILL_NA_METHODS = ("Previous", "Subsequent", "Linear", "Zero", "Fixed")
ALIGN_MODES = ("Inner", "Outer")

#: A member smaller than this is never refused for its compression ratio alone: a small CSV of


#: Sampling steps meters use; an inferred step within 10 % of one of them snaps to it.
USUAL_STEPS_SECONDS = (
    1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800
)  # fmt: skip


def _canonical(value: object, allowed: tuple[str, ...], field_name: str) -> str:
    if isinstance(value, str):
        for option in allowed:
            if value.strip().lower() == option.lower():
                return option
    raise DatasetError(
        f"{field_name} {value!r} is not valid; use one of {', '.join(allowed)}.",
        "InvalidAlignPolicy",
    )


def _finite_float(value: object, field_name: str) -> float:
    number = math.nan
    if isinstance(value, str | int | float):
        try:
            number = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not math.isfinite(number):
        raise DatasetError(f"{field_name} {value!r} must be a finite number.", "InvalidAlignPolicy")
    return number


@dataclass(frozen=True)
class DatasetLimits:
    """Limits on an uploaded dataset; anything beyond them is refused before it costs memory.

    Attributes:
        max_zip_bytes: Largest accepted zip (compressed) or one-table CSV.
        max_uncompressed_bytes: Largest total of all members once decompressed.
        max_members: Most entries in a zip (folders and ignored files included).
        max_ratio: Largest decompressed/compressed ratio of a member of 1 MiB or more.
        max_variables: Most variables in a dataset (v1.1: 300).
        min_variables: Fewest variables in a dataset (a multivariate model needs two).
    """

    max_zip_bytes: int = 200 * MIB
    max_uncompressed_bytes: int = 1024 * MIB
    max_members: int = 301
    max_ratio: float = 200.0
    max_variables: int = 300
    min_variables: int = 2


#: The default limits (the engine's).
DEFAULT_LIMITS = DatasetLimits()


def check_variable_count(variables: list[str], limits: DatasetLimits, source: str) -> None:
    """Refuse fewer than two or more than ``limits.max_variables`` variables (coded)."""
    if len(variables) < limits.min_variables:
        found = ", ".join(variables) or "none"
        raise DatasetError(
            f"{source} has {len(variables)} variable(s) ({found}); a multivariate model needs "
            f"at least {limits.min_variables}. Use univariate detection for a single meter.",
            "TooFewVariables",
        )
    if len(variables) > limits.max_variables:
        raise DatasetError(
            f"{source} has {len(variables)} variables; the limit is {limits.max_variables}.",
            "TooManyVariables",
        )


@dataclass(frozen=True)
class AlignPolicy:
    """The v1.1 ``alignPolicy``: how variables are joined on one grid and holes filled.

    Attributes:
        align_mode: ``Inner`` (slots where every variable has a reading) or ``Outer`` (slots
            where any variable has one).
        fill_na_method: ``Previous``, ``Subsequent``, ``Linear``, ``Zero`` or ``Fixed``.
        padding_value: The value ``Fixed`` fills with.
    """

    align_mode: str = "Outer"
    fill_na_method: str = "Linear"
    padding_value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "align_mode", _canonical(self.align_mode, ALIGN_MODES, "alignMode")
        )
        object.__setattr__(
            self,
            "fill_na_method",
            _canonical(self.fill_na_method, FILL_NA_METHODS, "fillNAMethod"),
        )
        padding = _finite_float(self.padding_value, "paddingValue")
        object.__setattr__(self, "padding_value", padding)

    @classmethod
    def from_v11(cls, obj: object) -> AlignPolicy:
        """Build a policy from the v1.1 JSON object (missing fields take the defaults).

        Args:
            obj: ``{"alignMode": ..., "fillNAMethod": ..., "paddingValue": ...}`` or ``None``;
                values are case-insensitive.

        Returns:
            The policy.

        Raises:
            DatasetError: ``InvalidAlignPolicy`` for an unknown field or a value out of range.
        """
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise DatasetError(
                f"alignPolicy must be a JSON object, not {type(obj).__name__}.",
                "InvalidAlignPolicy",
            )
        known = {"alignmode": "alignMode", "fillnamethod": "fillNAMethod", "paddingvalue": ""}
        unknown = [str(key) for key in obj if str(key).lower() not in known]
        if unknown:
            raise DatasetError(
                f"alignPolicy has unknown field(s) {', '.join(sorted(unknown))}: "
                "use alignMode, fillNAMethod and paddingValue.",
                "InvalidAlignPolicy",
            )
        lowered = {str(key).lower(): value for key, value in obj.items()}
        defaults = cls()
        padding = lowered.get("paddingvalue", defaults.padding_value)
        if padding is None:
            padding = defaults.padding_value
        return cls(
            align_mode=lowered.get("alignmode") or defaults.align_mode,
            fill_na_method=lowered.get("fillnamethod") or defaults.fill_na_method,
            padding_value=padding,
        )

    def to_v11(self) -> JSONObject:
        """Return the policy as the v1.1 JSON object."""
        return {
            "alignMode": self.align_mode,
            "fillNAMethod": self.fill_na_method,
            "paddingValue": self.padding_value,
        }


@dataclass(frozen=True)
class Dataset:
    """Variables aligned on one grid, ready for the multivariate engine.

    Attributes:
        variables: Variable names, in column order.
        timestamps: ``datetime64[s]`` (UTC), strictly increasing, on the sampling grid; slots
            where no variable reported are absent (a gap), not invented.
        values: ``float64`` array of shape ``(len(timestamps), len(variables))``, no NaN.
        filled_na_ratio: Per variable, the share of its values that were filled, not read.
        granularity_seconds: The grid step.
    """

    variables: tuple[str, ...]
    timestamps: np.ndarray
    values: np.ndarray
    filled_na_ratio: dict[str, float] = field(default_factory=dict)
    granularity_seconds: int = 60

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape != (
            self.timestamps.shape[0],
            len(self.variables),
        ):
            raise DatasetError(
                f"values must have shape (timestamps, variables) = "
                f"({self.timestamps.shape[0]}, {len(self.variables)}), got {self.values.shape}.",
                "InvalidDataset",
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """Return the values as a DataFrame indexed by timestamp, one column per variable."""
        index = pd.DatetimeIndex(self.timestamps.astype("datetime64[ns]"), name="timestamp")
        return pd.DataFrame(self.values, index=index, columns=list(self.variables))

    def slice(self, start: object = None, end: object = None) -> Dataset:
        """Return the rows with ``start <= timestamp <= end`` (either bound may be ``None``)."""
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.timestamps >= bound_datetime64(start, "start")
        if end is not None:
            keep &= self.timestamps <= bound_datetime64(end, "end")
        return Dataset(
            variables=self.variables,
            timestamps=self.timestamps[keep],
            values=self.values[keep],
            filled_na_ratio=dict(self.filled_na_ratio),
            granularity_seconds=self.granularity_seconds,
        )


# --------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------


def align(
    series: Mapping[str, pd.Series],
    policy: AlignPolicy = AlignPolicy(),
    start: datetime | None = None,
    end: datetime | None = None,
    limits: DatasetLimits = DatasetLimits(),
    granularity_seconds: int | None = None,
) -> Dataset:
    """Put the variables on one sampling grid, join and fill them, and keep ``[start, end]``.

    The grid step is the smallest of the variables' median steps; its phase is the circular mean
    of the readings' phases, so minute data stays on whole minutes. Readings that round to the
    same slot are averaged. Filling uses the data on both sides of the window before slicing;
    leading or trailing holes that a method cannot fill take the nearest value.

    Args:
        series: Variable name → values indexed by timestamp (as the readers return them).
        policy: Join and fill rules.
        start: First timestamp kept (inclusive); naive means UTC.
        end: Last timestamp kept (inclusive).
        limits: Variable count limits.
        granularity_seconds: Use this grid step instead of inferring it (detection data is
            aligned on its model's grid this way).

    Returns:
        The aligned dataset (variables in the order given).

    Raises:
        DatasetError: ``TooFewVariables``/``TooManyVariables``, ``NotEnoughData`` (a variable
            without readings, no timestamps in the window, or too few to infer a grid),
            ``InvalidTimestamp`` for an unusable window.
    """
    names = [str(name) for name in series]
    check_variable_count(names, limits, "the dataset")
    observed: dict[str, pd.Series] = {}
    for name, values in series.items():
        clean = pd.Series(
            np.asarray(values, dtype=np.float64), index=pd.DatetimeIndex(values.index)
        ).dropna()
        if clean.empty:
            raise DatasetError(f"The variable {name!r} has no values.", "NotEnoughData")
        observed[str(name)] = clean
    if granularity_seconds is None:
        step_ns = _infer_step_ns(observed)
    elif isinstance(granularity_seconds, int) and granularity_seconds >= 1:
        step_ns = granularity_seconds * 1_000_000_000
    else:
        raise DatasetError(
            f"granularity_seconds {granularity_seconds!r} must be a whole number of seconds >= 1.",
            "InvalidParameter",
        )
    phase_ns = _infer_phase_ns(observed, step_ns)
    gridded = {name: _to_slots(values, step_ns, phase_ns) for name, values in observed.items()}
    slots = [frame.index for frame in gridded.values()]
    if policy.align_mode == "Inner":
        joined = slots[0]
        for index in slots[1:]:
            joined = joined.intersection(index)
    else:
        joined = slots[0]
        for index in slots[1:]:
            joined = joined.union(index)
    joined = joined.sort_values()
    if joined.empty:
        raise DatasetError(
            "The variables share no timestamp (alignMode Inner); use Outer or check that the "
            "files cover the same period.",
            "NotEnoughData",
        )
    matrix = np.column_stack([gridded[name].reindex(joined).to_numpy() for name in names])
    missing = np.isnan(matrix)
    filled = _fill(matrix, joined.to_numpy(dtype=np.int64), policy)
    stamps = (joined.to_numpy(dtype=np.int64) * step_ns + phase_ns).astype("datetime64[ns]")
    keep = np.ones(stamps.shape[0], dtype=bool)
    if start is not None:
        keep &= stamps >= bound_datetime64(start, "start").astype("datetime64[ns]")
    if end is not None:
        keep &= stamps <= bound_datetime64(end, "end").astype("datetime64[ns]")
    if not keep.any():
        raise DatasetError(
            f"No timestamps between {iso_or_open(start)} and {iso_or_open(end)}; the data covers "
            f"{iso_or_open(stamps[0])} to {iso_or_open(stamps[-1])}.",
            "NotEnoughData",
        )
    kept_missing = missing[keep]
    ratios = {name: float(kept_missing[:, j].mean()) for j, name in enumerate(names)}
    return Dataset(
        variables=tuple(names),
        timestamps=stamps[keep].astype("datetime64[s]"),
        values=np.ascontiguousarray(filled[keep]),
        filled_na_ratio=ratios,
        granularity_seconds=int(step_ns // 1_000_000_000),
    )


def dataset_from_frame(frame: pd.DataFrame, policy: AlignPolicy = AlignPolicy()) -> Dataset:
    """Align a DataFrame indexed by timestamp with one column per variable.

    Args:
        frame: Values; the index must be timestamps (naive = UTC).
        policy: Join and fill rules.

    Returns:
        The aligned dataset.

    Raises:
        DatasetError: As :func:`align`.
    """
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_convert(None)
    return align(
        {str(column): pd.Series(frame[column].to_numpy(), index=index) for column in frame.columns},
        policy,
    )


def _infer_step_ns(observed: Mapping[str, pd.Series]) -> int:
    steps: list[float] = []
    for values in observed.values():
        distinct = np.unique(values.index.to_numpy(dtype=np.int64))
        if distinct.size >= 2:
            steps.append(float(np.median(np.diff(distinct))))
    if not steps:
        raise DatasetError(
            "Cannot infer the sampling step: every variable has a single timestamp.",
            "NotEnoughData",
        )
    # The finest variable sets the grid; coarser ones are filled per fillNAMethod. Jittered
    # clocks are snapped to the usual meter interval within 10 %.
    seconds = min(steps) / 1e9
    for usual in USUAL_STEPS_SECONDS:
        if abs(seconds - usual) <= 0.1 * usual:
            return usual * 1_000_000_000
    return max(1, round(seconds)) * 1_000_000_000


def _infer_phase_ns(observed: Mapping[str, pd.Series], step_ns: int) -> int:
    """Grid phase within one step: the circular mean of the readings' phases, in whole seconds.

    When the phases spread over the whole step (data finer than the grid) there is no common
    phase and the grid starts at whole steps since the epoch.
    """
    stamps = np.concatenate([values.index.to_numpy(dtype=np.int64) for values in observed.values()])
    angles = (stamps % step_ns).astype(np.float64) / step_ns * 2.0 * math.pi
    sine, cosine = float(np.sin(angles).mean()), float(np.cos(angles).mean())
    if math.hypot(sine, cosine) < 0.5:
        return 0  # readings spread over the step (finer than the grid): whole steps since 1970
    mean_angle = math.atan2(sine, cosine)
    phase = (mean_angle / (2.0 * math.pi)) % 1.0 * step_ns
    phase_s = round(phase / 1e9) % max(1, step_ns // 1_000_000_000)
    return int(phase_s) * 1_000_000_000


def _to_slots(values: pd.Series, step_ns: int, phase_ns: int) -> pd.Series:
    """Round to grid slots (integers) and average the readings that share a slot."""
    stamps = values.index.to_numpy(dtype=np.int64)
    slots = (stamps - phase_ns + step_ns // 2) // step_ns
    merged = pd.Series(values.to_numpy(), index=slots).groupby(level=0).mean()
    merged.index = pd.Index(merged.index.to_numpy(dtype=np.int64))
    return merged


def _fill(matrix: np.ndarray, slots: np.ndarray, policy: AlignPolicy) -> np.ndarray:
    """Fill NaN per the policy, column by column; edges a method cannot fill take the nearest."""
    missing = np.isnan(matrix)
    if not missing.any():
        return matrix
    method = policy.fill_na_method
    if method == "Zero":
        return np.where(missing, 0.0, matrix)
    if method == "Fixed":
        return np.where(missing, policy.padding_value, matrix)
    frame = pd.DataFrame(matrix, index=pd.Index(slots.astype(np.float64)))
    if method == "Previous":
        frame = frame.ffill().bfill()
    elif method == "Subsequent":
        frame = frame.bfill().ffill()
    else:  # Linear in time (slot numbers), nearest value beyond the ends
        frame = frame.interpolate(method="index", limit_area="inside").ffill().bfill()
    return frame.to_numpy(dtype=np.float64)
