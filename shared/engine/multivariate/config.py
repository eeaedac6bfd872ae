"""Settings, results and the learned state of the multivariate engine (no numerics here).

The engine's input is anything shaped like :class:`AlignedData` (the app's
``shared.multivariate.datasets.Dataset`` is one; :class:`Frame` is the engine's own): names,
timestamps and a value matrix on one grid. The engine imports nothing from the rest of the app.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from shared.errors import DatasetError
from shared.jsontypes import JSONObject

#: v1.1 range of ``slidingWindow``.
SLIDING_WINDOW_RANGE = (28, 2880)


class AlignedData(Protocol):
    """What the engine reads from a dataset: variables aligned on one sampling grid.

    Attributes:
        variables: Variable names, in column order.
        timestamps: ``datetime64[s]`` (UTC), strictly increasing; a missing grid slot is a gap.
        values: ``float64`` array ``(len(timestamps), len(variables))``, all finite.
        granularity_seconds: The grid step.
        filled_na_ratio: Per variable, the share of values filled rather than read (reported
            in the training diagnostics).
    """

    @property
    def variables(self) -> tuple[str, ...]: ...

    @property
    def timestamps(self) -> np.ndarray: ...

    @property
    def values(self) -> np.ndarray: ...

    @property
    def granularity_seconds(self) -> int: ...

    @property
    def filled_na_ratio(self) -> Mapping[str, float]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Frame:
    """The engine's own :class:`AlignedData`: arrays and names, nothing else.

    Raises:
        DatasetError: ``InvalidDataset`` when ``values`` is not ``(timestamps, variables)``.
    """

    variables: tuple[str, ...]
    timestamps: np.ndarray
    values: np.ndarray
    granularity_seconds: int = 60
    filled_na_ratio: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (self.timestamps.shape[0], len(self.variables))
        if self.values.ndim != 2 or self.values.shape != shape:
            raise DatasetError(
                f"values must have shape (timestamps, variables) = {shape}, "
                f"got {self.values.shape}.",
                "InvalidDataset",
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @classmethod
    def tail_of(cls, data: AlignedData, rows: int) -> AlignedData:
        """The last ``rows`` rows of ``data`` (``data`` itself when it is no longer)."""
        if len(data) <= rows:
            return data
        return cls(
            variables=tuple(data.variables),
            timestamps=data.timestamps[-rows:],
            values=data.values[-rows:],
            granularity_seconds=data.granularity_seconds,
            filled_na_ratio=data.filled_na_ratio,
        )


@dataclass(frozen=True)
class MultivariateConfig:
    """Training and detection settings (the v1.1 names in brackets).

    Attributes:
        sliding_window: Points of context (``slidingWindow``, 28–2,880): the minimum training
            length, the window of the recent residual scale and of correlation changes, and so
            the history a detection window should bring (:attr:`MultivariateModel.history_rows`).
        top_contributor_count: Contributors listed per anomaly (``topContributorCount``).
        alarm_rate: Share of training points scored above the threshold, in (0, 0.2]. Lower is
            less sensitive.
        lags: Past points the temporal model looks at (1–10).
        ridge: Ridge penalty, relative to the number of training rows.
        folds: Contiguous folds for out-of-sample residuals, their tails and the threshold
            (2–20).
        trim_fraction: Share of the highest-scoring training rows left out of the second fit.
        correlation_change: Change of correlation that marks a changed variable, in (0, 2].
        persistence: Rows over which each variable's temporal residual, on its slow scale, is
            averaged for the sustained evidence (1–60): a deviation that lasts is judged by its
            mean, whose noise shrinks with the rows it spans, so it stands out where single
            points do not.
        smoothing: Rows over which the sustained judge averages the points' evidence
            (1–120): a deviation that lasts accumulates, an isolated flicker is diluted.
        sustained_alarm_rate: Share of training rows whose averaged evidence the sustained
            judge lets pass its threshold, in (0, 0.2]. Lower than ``alarm_rate``: a sustained
            false alarm lasts about ``smoothing`` rows, so it must be rarer to cost as much.
        slow_windows: Sliding windows over which the sustained evidence's scale follows its
            recent residuals (1–100; shrunk towards the training scale like the recent scale).
            Long: a fault of a few windows is judged on the training scale, which a recent
            scale would absorb. Short: a rig whose normal level drifts beyond the training
            window's range within that time is followed, at the cost of missing long faults.
    """

    sliding_window: int = 300
    top_contributor_count: int = 10
    alarm_rate: float = 0.005
    lags: int = 3
    ridge: float = 1e-3
    folds: int = 5
    trim_fraction: float = 0.02
    correlation_change: float = 0.5
    persistence: int = 3
    smoothing: int = 10
    sustained_alarm_rate: float = 1e-5
    slow_windows: int = 20

    def __post_init__(self) -> None:
        low, high = SLIDING_WINDOW_RANGE
        if (
            isinstance(self.sliding_window, bool)
            or not isinstance(self.sliding_window, int)
            or not low <= self.sliding_window <= high
        ):
            raise DatasetError(
                f"slidingWindow {self.sliding_window!r} is out of range: use a whole number "
                f"from {low} to {high}.",
                "InvalidSlidingWindow",
            )
        _check_int(self.top_contributor_count, "topContributorCount", 1, 300)
        _check_int(self.lags, "lags", 1, 10)
        _check_int(self.folds, "folds", 2, 20)
        _check_int(self.persistence, "persistence", 1, 60)
        _check_int(self.smoothing, "smoothing", 1, 120)
        _check_int(self.slow_windows, "slowWindows", 1, 100)
        _check_float(self.alarm_rate, "alarmRate", 0.0, 0.2, low_open=True)
        _check_float(self.sustained_alarm_rate, "sustainedAlarmRate", 0.0, 0.2, low_open=True)
        _check_float(self.ridge, "ridge", 0.0, 10.0, low_open=True)
        _check_float(self.trim_fraction, "trimFraction", 0.0, 0.2)
        _check_float(self.correlation_change, "correlationChange", 0.0, 2.0, low_open=True)

    def to_dict(self) -> JSONObject:
        """Return the settings as a JSON-ready dict (field names as in this class)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, object]) -> MultivariateConfig:
        """Build settings from :meth:`to_dict` output; unknown keys are refused.

        Raises:
            DatasetError: An unknown key or a value out of range.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - names)
        if unknown:
            raise DatasetError(
                f"Unknown multivariate setting(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(names))}.",
                "InvalidParameter",
            )
        # Every field is checked by __post_init__ (_check_int, _check_float), whatever its type.
        settings: dict[str, Any] = dict(obj)
        return cls(**settings)


@dataclass(frozen=True, slots=True)
class Contributor:
    """One variable's share of an anomaly.

    Attributes:
        variable: Variable name.
        contribution_score: Share of the point's anomaly energy (over all variables they sum
            to 1).
        changed_variables: Variables whose correlation with this one changed (v1.1
            ``correlationChanges.changedVariables`` of this contributor).
    """

    variable: str
    contribution_score: float
    changed_variables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MultivariatePoint:
    """The verdict on one timestamp.

    Attributes:
        timestamp: ``datetime64[s]``, UTC.
        is_anomaly: Above the model's threshold.
        severity: 0 for normal points, in (0, 1] for anomalies.
        score: The row's evidence (calibrated surprise summed over variables and kinds), or
            the sustained judge's average of it mapped onto the same scale, whichever is
            larger (higher is stranger; an anomaly above the model's threshold).
        interpretation: Top contributors, highest first (empty for normal points unless asked).
        changed_variables: Union of the contributors' changed variables, in variable order.
    """

    timestamp: np.datetime64
    is_anomaly: bool
    severity: float
    score: float
    interpretation: tuple[Contributor, ...] = ()
    changed_variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingDiagnostics:
    """What training saw, as v1.1 ``diagnosticsInfo`` reports it.

    Attributes:
        losses: Per fold, the out-of-sample mean squared residual (standardised units) of the
            final (trimmed) fit: the engine's counterpart of validation losses.
        filled_na_ratio: Per variable, the share of training values that alignment filled.
        effective_count: Training rows used.
        first_timestamp: First training timestamp, ISO 8601 ``Z``.
        last_timestamp: Last training timestamp, ISO 8601 ``Z``.
        threshold: The score above which a point is an anomaly.
        trimmed_rows: Rows left out of the second fit.
    """

    losses: list[float]
    filled_na_ratio: dict[str, float]
    effective_count: int
    first_timestamp: str
    last_timestamp: str
    threshold: float = 0.0
    trimmed_rows: int = 0


@dataclass(frozen=True)
class MultivariateScores:
    """Detection as arrays (what :meth:`MultivariateModel.detect` turns into points).

    Attributes:
        timestamps: ``datetime64[s]`` per row.
        is_anomaly: bool per row.
        severity: float per row.
        score: float per row (see :attr:`MultivariatePoint.score`).
        contributions: ``(rows, variables)``, each row summing to 1.
    """

    timestamps: np.ndarray
    is_anomaly: np.ndarray
    severity: np.ndarray
    score: np.ndarray
    contributions: np.ndarray


@dataclass
class _State:
    """Learned arrays (see :data:`_ARRAYS`) and the threshold."""

    center: np.ndarray
    scale: np.ndarray
    quantum: np.ndarray
    temporal_coef: np.ndarray  # (1 + variables * lags, variables); row 0 is the intercept
    cross_mean: np.ndarray
    precision: np.ndarray
    tail_knots: np.ndarray  # (2, variables, knots): |residual| at each tail level
    tail_levels: np.ndarray  # (knots,): surprise -log(p) at each knot
    tail_beta: np.ndarray  # (2, variables): exponential tail scale beyond the last knot
    prior_rms: np.ndarray  # (2, variables): training RMS of each residual
    residual_floor: np.ndarray  # (variables,): smallest residual scale
    train_corr: np.ndarray
    threshold: float = 0.0
    surprise_cap: float = 10.0
    sustained_threshold: float = 0.0  # math.inf for a version 1 model (no sustained judge)


def _check_int(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(
            f"{name} {value!r} is out of range: use a whole number from {low} to {high}.",
            "InvalidParameter",
        )


def _check_float(
    value: object, name: str, low: float, high: float, *, low_open: bool = False
) -> None:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    in_range = (number > low if low_open else number >= low) and number <= high
    if not (math.isfinite(number) and in_range):
        bracket = "(" if low_open else "["
        raise DatasetError(
            f"{name} {value!r} is out of range: use a number in {bracket}{low}, {high}].",
            "InvalidParameter",
        )
