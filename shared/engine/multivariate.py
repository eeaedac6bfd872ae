"""The embedded multivariate anomaly engine: joint normal behaviour of 2 to 300 meters.

Pure numpy (no torch, no storage, no clock): a :class:`~shared.datasets.Dataset` in, one
:class:`MultivariatePoint` per timestamp out, with the v1.1 fields (``isAnomaly``, ``severity``,
``score``, ``interpretation`` with ``contributionScore`` and ``correlationChanges``).

How it works
------------
Each variable is scaled robustly (median and IQR, or the standard deviation for meters that read
one value most of the time, such as a kitchen sub-meter at 0 Wh). Two linear models of normal
behaviour are learned in closed form from Gram matrices, so training is one pass over the data
plus small solves (no epochs):

* **temporal** (a ridge vector autoregression): every variable at ``t`` predicted from all
  variables at ``t-1 .. t-lags``. Its residual says *which meter moved unexpectedly*: a kitchen
  that jumps from 1 to 34 Wh while nothing announced it.
* **cross-sectional** (a shrunk Gaussian graphical model): every variable predicted from the
  *current* values of all the others, read off one precision matrix. Its residual says *which
  meter no longer agrees with the others*, and stays high for as long as a relationship is
  broken (a voltage sag without any load, a sub-meter that stops following the total).

Residuals are measured out of sample (contiguous k-fold cross-fitting: no row is judged by a
model fitted to it) and training is robust to anomalies in its window: the highest-scoring rows
(``trim_fraction``) are left out of a second fit. Each residual is divided by its recent scale
(the RMS over the previous ``sliding_window`` rows, shrunk towards the training RMS with three
windows' weight), so that a meter in a busy spell is judged against that spell and a jump after
a long quiet stands out, and floored at half the meter's quantisation step (integer meters
flickering between 0 and 1 Wh are not anomalies).

Every standardised residual is then turned into a *surprise*, ``-log p`` of a residual at least
that large, read off that variable's own training distribution (quantile knots down to 1 %,
an exponential tail beyond, fitted on the median excess so that anomalies in training do not
flatten it). Calibrating each meter on itself puts a bursty sub-meter and a smooth voltage on
one scale: a burst is only as surprising as bursts were in training. The point's ``score`` is
the surprise beyond the 5 % level summed over variables and both models (a soft-thresholded
Fisher combination); the threshold is the score that ``alarm_rate`` of the training rows
exceed, read at the 95th percentile of the training scores and extrapolated along their
exponential tail (so anomalies at the very top of the training window do not lift it over
themselves). ``severity`` is 0 below the threshold and ``1 - threshold / score`` above it.

``contributionScore`` apportions the score among the variables (the shares sum to 1): the
temporal part by each variable's surprise, the cross-sectional part by each variable's squared
standardised residual, which under the Gaussian model is how much of the broken relationship
goes away when that one variable is left out, so the odd one out gets it (a broken pair has
equal calibrated surprise on both sides). Surprise beyond a residual seen once in training
counts only logarithmically here: the extrapolated tail is not trusted to rank variables.
``changed_variables`` lists, for an anomaly's top contributors, the variables whose correlation
with them over the last ``sliding_window`` points departs from training by at least
``correlation_change``.

Warm-up and gaps
----------------
Every row of the dataset given to :meth:`MultivariateModel.detect` is judged, using only that
row and the rows before it (so ``detect_last`` on a stream gives what ``detect`` gave). The
temporal model needs the ``lags`` rows before a point; at the first row of a dataset, and after
a gap in the timestamps (a missing grid slot), the missing lags are taken as the first
available row, so the temporal part cannot see a jump there. The recent scale and the
correlation window use the up to ``sliding_window`` rows before the point that are there
(with fewer, the training scale weighs more). To judge a window fully, pass at least
``sliding_window + lags`` rows of history before it and give ``start``: rows before ``start``
are context, not results.

Models persist as a zip of ``config.json`` and ``.npy`` arrays (never pickle), byte-for-byte
identical for the same model.
"""

from __future__ import annotations

import io
import json
import logging
import math
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import DatasetError, ModelError, ModelNotReadyError
from shared.multivariate.datasets import Dataset

logger = logging.getLogger(__name__)

#: Version of the persisted format; :meth:`MultivariateModel.from_bytes` refuses others.
FORMAT_VERSION = 2
#: Kinds of evidence: temporal residual, cross-sectional residual, sustained temporal residual.
_KINDS = 3
#: v1.1 range of ``slidingWindow``.
SLIDING_WINDOW_RANGE = (28, 2880)
#: Residual scales never fall below this share of a variable's spread (standardised units):
#: a variable the others determine exactly would otherwise turn rounding noise into alarms.
MIN_RESIDUAL_SCALE = 1e-2
#: Rows per block when building Gram matrices, to bound memory on wide datasets.
_BLOCK_ROWS = 8192
_ARRAYS = (
    "center",
    "scale",
    "quantum",
    "temporal_coef",
    "cross_mean",
    "precision",
    "tail_knots",
    "tail_levels",
    "tail_beta",
    "prior_rms",
    "residual_floor",
    "train_corr",
)
_MODEL_MAX_BYTES = 512 * 1024 * 1024
#: Tail probabilities at which the residual distribution is read (with p = 1 at 0); the rarer
#: ones only when the training window holds ``TAIL_MIN_POINTS`` residuals beyond them.
TAIL_PROBABILITIES = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
TAIL_MIN_POINTS = 20
#: Training scores are read at this upper quantile and extrapolated to ``alarm_rate``.
THRESHOLD_BASE = 0.05
#: Surprise (-log p) below which a residual is ordinary: p = 0.05.
EXCESS_LEVEL = -math.log(0.05)
#: Weight of the training residual scale in the recent scale, as a share of the window.
LOCAL_PRIOR_SHARE = 3.0
#: Smallest rise between tail knots and smallest tail scale (standardised residual units).
KNOT_STEP = 1e-3


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
        persistence: Rows over which each variable's temporal residual is averaged for the
            sustained evidence (1–60): a deviation that lasts is judged by its mean, whose
            noise shrinks with the rows it spans, so it stands out where single points do not.
        smoothing: Rows over which the sustained judge averages the points' evidence
            (1–120): a deviation that lasts accumulates, an isolated flicker is diluted.
        sustained_alarm_rate: Share of training rows whose averaged evidence the sustained
            judge lets pass its threshold, in (0, 0.2]. Lower than ``alarm_rate``: a sustained
            false alarm lasts about ``smoothing`` rows, so it must be rarer to cost as much.
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
        _check_float(self.alarm_rate, "alarmRate", 0.0, 0.2, low_open=True)
        _check_float(self.sustained_alarm_rate, "sustainedAlarmRate", 0.0, 0.2, low_open=True)
        _check_float(self.ridge, "ridge", 0.0, 10.0, low_open=True)
        _check_float(self.trim_fraction, "trimFraction", 0.0, 0.2)
        _check_float(self.correlation_change, "correlationChange", 0.0, 2.0, low_open=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (field names as in this class)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> MultivariateConfig:
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
        return cls(**dict(obj))


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
        score: Mean standardised residual energy over the variables (higher is stranger).
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
        score: float per row.
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
    sustained_threshold: float = 0.0


class MultivariateModel:
    """A model of the joint normal behaviour of several variables (see the module docstring).

    Args:
        config: Training and detection settings.
    """

    def __init__(self, config: MultivariateConfig | None = None) -> None:
        self.config = config or MultivariateConfig()
        self.variables: tuple[str, ...] = ()
        self.granularity_seconds = 0
        self._state: _State | None = None
        self._diagnostics: TrainingDiagnostics | None = None

    # ---------------------------------------------------------------------------------------
    # Training
    # ---------------------------------------------------------------------------------------

    @property
    def diagnostics(self) -> TrainingDiagnostics:
        """Training diagnostics.

        Raises:
            ModelNotReadyError: The model has not been trained.
        """
        if self._diagnostics is None:
            raise ModelNotReadyError("The model has not been trained; call fit() first.")
        return self._diagnostics

    @property
    def history_rows(self) -> int:
        """Rows of history a point needs to be judged as in a long stream: the recent-scale and
        correlation window (``sliding_window``), the temporal model's ``lags``, the sustained
        evidence's ``persistence`` and the score's ``smoothing``."""
        cfg = self.config
        return cfg.sliding_window + cfg.lags + cfg.persistence + cfg.smoothing

    @property
    def threshold(self) -> float:
        """The score above which a point is an anomaly."""
        return self._require_state().threshold

    def fit(
        self, dataset: Dataset, progress: Callable[[float], None] | None = None
    ) -> MultivariateModel:
        """Learn the joint normal behaviour of the dataset's variables.

        Args:
            dataset: The aligned training window.
            progress: Called with the share of work done, from 0 to 1 (for a progress bar).

        Returns:
            ``self``, trained.

        Raises:
            DatasetError: ``TooFewVariables``, ``NotEnoughData`` (fewer rows than
                ``sliding_window``) or ``InvalidValue`` (a non-finite value).
        """
        report = progress or (lambda _share: None)
        report(0.0)
        values = _checked_values(dataset)
        rows, width = values.shape
        cfg = self.config
        if width < 2:
            raise DatasetError(
                f"The dataset has {width} variable; a multivariate model needs at least 2.",
                "TooFewVariables",
            )
        needed = max(cfg.sliding_window, 2 * cfg.folds, cfg.lags + 2)
        if rows < needed:
            raise DatasetError(
                f"The training window has {rows} timestamps; at least {needed} are needed "
                f"(slidingWindow {cfg.sliding_window}). Widen the window or lower slidingWindow.",
                "NotEnoughData",
            )
        center, scale, quantum = _robust_scaling(values)
        for name, spread in zip(dataset.variables, scale, strict=True):
            if spread == 1.0 and np.ptp(values[:, dataset.variables.index(name)]) == 0.0:
                logger.warning("Variable %s is constant in the training window", name)
        z = (values - center) / scale
        sources = _lag_sources(dataset.timestamps, dataset.granularity_seconds, cfg.lags)
        fold_of = np.minimum((np.arange(rows) * cfg.folds) // rows, cfg.folds - 1)
        floor = np.maximum(0.5 * quantum / scale, MIN_RESIDUAL_SCALE)
        levels = _tail_levels(rows)

        keep = np.ones(rows, dtype=bool)
        all_grams = _fold_grams(z, sources, fold_of, keep, cfg.folds)
        first = _cross_fit(z, sources, fold_of, keep, cfg, floor, levels, all_grams)
        report(0.4)
        trimmed = np.zeros(rows, dtype=bool)
        if cfg.trim_fraction > 0.0:
            judged = _judged(first.scores, cfg)
            cut = float(np.quantile(judged, 1.0 - cfg.trim_fraction))
            outliers = judged > cut
            trimmed = outliers.copy()
            for lag in range(cfg.lags):  # rows whose lags hold an outlier learn from it too
                trimmed |= outliers[sources[lag]]
            keep = ~trimmed
        # The trimmed rows are few: remove their statistics rather than recompute the rest.
        kept_grams = _minus(all_grams, _fold_grams(z, sources, fold_of, trimmed, cfg.folds))
        second = _cross_fit(z, sources, fold_of, keep, cfg, floor, levels, kept_grams)
        report(0.8)
        temporal_coef, cross_mean, precision = _fit_all(second.grams, cfg, width)
        threshold = _threshold(second.scores, cfg.alarm_rate)
        sustained_threshold = _threshold(
            _causal_mean(second.scores, cfg.smoothing), cfg.sustained_alarm_rate
        )
        corr = _correlation(z[keep])
        self._state = _State(
            center=center,
            scale=scale,
            quantum=quantum,
            temporal_coef=temporal_coef,
            cross_mean=cross_mean,
            precision=precision,
            tail_knots=second.tail_knots,
            tail_levels=levels,
            tail_beta=second.tail_beta,
            prior_rms=second.prior_rms,
            residual_floor=floor,
            train_corr=corr,
            threshold=threshold,
            surprise_cap=_cap(rows),
            sustained_threshold=sustained_threshold,
        )
        self.variables = tuple(dataset.variables)
        self.granularity_seconds = int(dataset.granularity_seconds)
        self._diagnostics = TrainingDiagnostics(
            losses=[round(float(loss), 6) for loss in second.losses],
            filled_na_ratio={k: float(v) for k, v in dataset.filled_na_ratio.items()},
            effective_count=int(keep.sum()),
            first_timestamp=_iso(dataset.timestamps[0]),
            last_timestamp=_iso(dataset.timestamps[-1]),
            threshold=threshold,
            trimmed_rows=int(trimmed.sum()),
        )
        logger.info(
            "Trained a multivariate model on %s rows x %s variables (threshold %.4g, %s rows "
            "trimmed)",
            rows,
            width,
            threshold,
            int(trimmed.sum()),
        )
        report(1.0)
        return self

    # ---------------------------------------------------------------------------------------
    # Detection
    # ---------------------------------------------------------------------------------------

    def score(self, dataset: Dataset) -> MultivariateScores:
        """Score every row of the dataset (arrays; see :meth:`detect` for points).

        Raises:
            DatasetError: ``VariableMismatch`` or ``InvalidValue``.
            ModelError: ``ModelNotReady`` when the model has not been trained.
        """
        state = self._require_state()
        values = self._ordered_values(dataset)
        energy, shares = self._energy(state, values, dataset)
        point = energy.sum(axis=1)
        # The sustained judge: the evidence averaged over ``smoothing`` rows, on the point
        # judge's scale (its threshold maps onto the point threshold).
        window = self.config.smoothing
        sustained = _causal_mean(point, window) * (state.threshold / state.sustained_threshold)
        score = np.maximum(point, sustained)
        held = sustained > point
        shares = np.where(held[:, None], _causal_mean(shares, window), shares)
        total = shares.sum(axis=1)
        is_anomaly = score > state.threshold
        with np.errstate(divide="ignore", invalid="ignore"):
            severity = np.where(is_anomaly, 1.0 - state.threshold / np.maximum(score, 1e-300), 0.0)
            contributions = np.where(
                total[:, None] > 0.0, shares / total[:, None], 1.0 / energy.shape[1]
            )
        return MultivariateScores(
            timestamps=dataset.timestamps.astype("datetime64[s]"),
            is_anomaly=is_anomaly,
            severity=np.clip(severity, 0.0, 1.0),
            score=score,
            contributions=contributions,
        )

    def detect(
        self,
        dataset: Dataset,
        start: Any = None,
        *,
        interpret_all: bool = False,
    ) -> list[MultivariatePoint]:
        """Judge every timestamp of the dataset (or those from ``start`` on).

        Args:
            dataset: Aligned data holding the training variables (any column order).
            start: First timestamp to return; earlier rows serve as history (warm-up) only.
            interpret_all: Give contributors for normal points too (v1.1 gives them for
                anomalies only).

        Returns:
            One point per returned timestamp, in time order.

        Raises:
            DatasetError: ``VariableMismatch`` naming missing and unexpected variables, or
                ``InvalidValue``.
            ModelError: ``ModelNotReady`` when the model has not been trained.
        """
        state = self._require_state()
        scores = self.score(dataset)
        first = 0
        if start is not None:
            bound = _to_seconds(start)
            first = int(np.searchsorted(scores.timestamps, bound, side="left"))
        return self._points(state, dataset, scores, first, interpret_all)

    def detect_last(self, dataset: Dataset, *, interpret_all: bool = False) -> MultivariatePoint:
        """Judge the last timestamp of the dataset, using the rows before it as history.

        Equals ``detect(dataset, interpret_all=...)[-1]`` but only scores the tail it needs
        (the last :attr:`history_rows` + 1 rows).

        Raises:
            DatasetError: An empty dataset (``NotEnoughData``), ``VariableMismatch``.
        """
        if len(dataset) == 0:
            raise DatasetError("The dataset has no timestamps.", "NotEnoughData")
        tail = self.history_rows + 1
        if len(dataset) > tail:
            dataset = Dataset(
                variables=dataset.variables,
                timestamps=dataset.timestamps[-tail:],
                values=dataset.values[-tail:],
                filled_na_ratio=dataset.filled_na_ratio,
                granularity_seconds=dataset.granularity_seconds,
            )
        state = self._require_state()
        scores = self.score(dataset)
        return self._points(state, dataset, scores, len(dataset) - 1, interpret_all)[-1]

    def _points(
        self,
        state: _State,
        dataset: Dataset,
        scores: MultivariateScores,
        first: int,
        interpret_all: bool,
    ) -> list[MultivariatePoint]:
        names = self.variables
        top = min(self.config.top_contributor_count, len(names))
        stamps = scores.timestamps
        flags = scores.is_anomaly.tolist()
        severity = scores.severity.tolist()
        score = scores.score.tolist()
        explained = np.flatnonzero(scores.is_anomaly[first:]) + first
        if interpret_all:
            explained = np.arange(first, len(flags))
        interpretation: dict[int, tuple[tuple[Contributor, ...], tuple[str, ...]]] = {}
        if explained.size:
            # Descending share; ties keep the variables' order (stable sort on the negation).
            order = np.argsort(-scores.contributions[explained], axis=1, kind="stable")[:, :top]
            z = (self._ordered_values(dataset) - state.center) / state.scale
            for row, ranked in zip(explained.tolist(), order, strict=True):
                # Correlation changes explain anomalies (as in v1.1); normal points get none.
                changed = self._changed(state, z, row, ranked) if flags[row] else {}
                contributors = tuple(
                    Contributor(
                        names[j],
                        float(scores.contributions[row, j]),
                        tuple(names[k] for k in changed.get(int(j), ())),
                    )
                    for j in ranked.tolist()
                )
                involved: set[int] = set()
                for j, partners in changed.items():
                    involved.add(j)
                    involved.update(partners)
                interpretation[row] = (contributors, tuple(names[k] for k in sorted(involved)))
        points: list[MultivariatePoint] = []
        empty: tuple[tuple[Contributor, ...], tuple[str, ...]] = ((), ())
        for row in range(first, len(flags)):
            contributors, changed_names = interpretation.get(row, empty)
            points.append(
                MultivariatePoint(
                    stamps[row], flags[row], severity[row], score[row], contributors, changed_names
                )
            )
        return points

    def _changed(
        self, state: _State, z: np.ndarray, row: int, ranked: np.ndarray
    ) -> dict[int, tuple[int, ...]]:
        """For the ranked contributors, the variables whose correlation with them changed."""
        window = z[max(0, row - self.config.sliding_window + 1) : row + 1]
        if window.shape[0] < 3:
            return {}
        centred = window - window.mean(axis=0)
        norms = np.sqrt((centred * centred).sum(axis=0))
        varying = norms > 1e-9 * math.sqrt(window.shape[0])
        picked = ranked[varying[ranked]]
        if picked.size == 0:
            return {}
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = (centred[:, picked].T @ centred) / (norms[picked, None] * norms[None, :])
        delta = np.abs(corr - state.train_corr[picked])
        changed = (delta >= self.config.correlation_change) & varying[None, :]
        changed[np.arange(picked.size), picked] = False
        result: dict[int, tuple[int, ...]] = {}
        for position, j in enumerate(picked.tolist()):
            partners = np.flatnonzero(changed[position])
            if partners.size:
                result[int(j)] = tuple(int(k) for k in partners)
        return result

    def _energy(
        self, state: _State, values: np.ndarray, dataset: Dataset
    ) -> tuple[np.ndarray, np.ndarray]:
        z = (values - state.center) / state.scale
        if dataset.granularity_seconds != self.granularity_seconds:
            logger.warning(
                "Detection data has a %ss grid, the model a %ss one: rows %ss apart are treated "
                "as gaps (align detection data with granularity_seconds=%s)",
                dataset.granularity_seconds,
                self.granularity_seconds,
                self.granularity_seconds,
                self.granularity_seconds,
            )
        # Lags follow the model's grid: rows not one training step apart are a gap.
        sources = _lag_sources(dataset.timestamps, self.granularity_seconds, self.config.lags)
        temporal = _temporal_residual(z, sources, state.temporal_coef)
        cross = _cross_residual(z, state.cross_mean, state.precision)
        standard = _standardise(
            (temporal, cross), state.prior_rms, state.residual_floor, self.config.sliding_window
        )
        held = _causal_mean(temporal / state.prior_rms[0], self.config.persistence)
        standard = (*standard, held / state.prior_rms[2])
        return _energy(
            standard, state.tail_knots, state.tail_levels, state.tail_beta, state.surprise_cap
        )

    def _ordered_values(self, dataset: Dataset) -> np.ndarray:
        """The dataset's values in training variable order, or a clear mismatch error."""
        if tuple(dataset.variables) == self.variables:
            return _checked_values(dataset)
        missing = [name for name in self.variables if name not in dataset.variables]
        extra = [name for name in dataset.variables if name not in self.variables]
        if missing or extra or len(set(dataset.variables)) != len(dataset.variables):
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"not in training {', '.join(extra)}")
            detail = "; ".join(parts) or "duplicated variable names"
            raise DatasetError(
                f"The detection data's variables differ from the model's ({detail}). The model "
                f"was trained on {', '.join(self.variables)}; send exactly these.",
                "VariableMismatch",
            )
        position = [dataset.variables.index(name) for name in self.variables]
        return _checked_values(dataset)[:, position]

    def _require_state(self) -> _State:
        if self._state is None:
            raise ModelNotReadyError("The model has not been trained; call fit() first.")
        return self._state

    # ---------------------------------------------------------------------------------------
    # Persistence
    # ---------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise the model: a zip of ``config.json`` and one ``.npy`` per array.

        The bytes are identical for identical models (fixed member order and dates).

        Raises:
            ModelError: ``ModelNotReady`` when the model has not been trained.
        """
        state = self._require_state()
        diagnostics = self.diagnostics
        document = {
            "format": "meterwatch-multivariate",
            "formatVersion": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "variables": list(self.variables),
            "granularitySeconds": self.granularity_seconds,
            "threshold": state.threshold,
            "surpriseCap": state.surprise_cap,
            "sustainedThreshold": state.sustained_threshold,
            "diagnostics": asdict(diagnostics),
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _write_member(
                archive, "config.json", json.dumps(document, sort_keys=True, indent=2).encode()
            )
            for name in _ARRAYS:
                array_buffer = io.BytesIO()
                np.save(
                    array_buffer, np.ascontiguousarray(getattr(state, name)), allow_pickle=False
                )
                _write_member(archive, f"{name}.npy", array_buffer.getvalue())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MultivariateModel:
        """Load a model written by :meth:`to_bytes` (never unpickles anything).

        Raises:
            ModelError: ``InvalidModel`` when the bytes are not a model of this format, are
                corrupt or inconsistent.
        """
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                total = sum(info.file_size for info in archive.infolist())
                if total > _MODEL_MAX_BYTES:
                    raise ModelError(
                        f"The model file declares {total:,} bytes; not a meterwatch model.",
                        "InvalidModel",
                    )
                document = json.loads(archive.read("config.json").decode("utf-8"))
                arrays = {
                    name: np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
                    for name in _ARRAYS
                }
        except ModelError:
            raise
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise ModelError(
                f"Not a readable meterwatch multivariate model ({exc}); export it again with "
                "'meterwatch train'.",
                "InvalidModel",
            ) from exc
        if not isinstance(document, dict) or document.get("format") != "meterwatch-multivariate":
            raise ModelError("The file is not a meterwatch multivariate model.", "InvalidModel")
        if document.get("formatVersion") != FORMAT_VERSION:
            raise ModelError(
                f"Model format version {document.get('formatVersion')!r} is not supported "
                f"(this meterwatch reads version {FORMAT_VERSION}).",
                "InvalidModel",
            )
        try:
            config = MultivariateConfig.from_dict(document["config"])
            variables = tuple(str(name) for name in document["variables"])
            diagnostics = TrainingDiagnostics(**document["diagnostics"])
            threshold = float(document["threshold"])
            cap = float(document["surpriseCap"])
            sustained_threshold = float(document["sustainedThreshold"])
            granularity = int(document["granularitySeconds"])
        except (KeyError, TypeError, ValueError, DatasetError) as exc:
            raise ModelError(
                f"The model's config.json is invalid ({exc}).", "InvalidModel"
            ) from exc
        _check_shapes(arrays, len(variables), config.lags)
        model = cls(config)
        model.variables = variables
        model.granularity_seconds = granularity
        if not (math.isfinite(sustained_threshold) and sustained_threshold > 0.0):
            raise ModelError("The model's sustained threshold is invalid.", "InvalidModel")
        model._state = _State(
            threshold=threshold,
            surprise_cap=cap,
            sustained_threshold=sustained_threshold,
            **arrays,
        )
        model._diagnostics = diagnostics
        return model


# -------------------------------------------------------------------------------------------
# Numerics
# -------------------------------------------------------------------------------------------


@dataclass
class _Grams:
    """Sufficient statistics per fold: temporal Gram/cross products and moment sums."""

    design: np.ndarray  # (folds, d, d)
    target: np.ndarray  # (folds, d, n)
    sums: np.ndarray  # (folds, n)
    squares: np.ndarray  # (folds, n, n)
    counts: np.ndarray  # (folds,)


@dataclass
class _CrossFit:
    grams: _Grams
    scores: np.ndarray
    tail_knots: np.ndarray
    tail_beta: np.ndarray
    prior_rms: np.ndarray
    losses: list[float]


def _cross_fit(
    z: np.ndarray,
    sources: np.ndarray,
    fold_of: np.ndarray,
    keep: np.ndarray,
    cfg: MultivariateConfig,
    floor: np.ndarray,
    levels: np.ndarray,
    grams: _Grams,
) -> _CrossFit:
    """Fit on all folds but one, residuals on that one; scales from kept rows; scores for all.

    ``grams`` are the per-fold statistics of the kept rows.
    """
    rows, width = z.shape
    temporal = np.empty_like(z)
    cross = np.empty_like(z)
    for fold in range(cfg.folds):
        rest = _Grams(
            design=grams.design.sum(axis=0) - grams.design[fold],
            target=grams.target.sum(axis=0) - grams.target[fold],
            sums=grams.sums.sum(axis=0) - grams.sums[fold],
            squares=grams.squares.sum(axis=0) - grams.squares[fold],
            counts=np.asarray(grams.counts.sum() - grams.counts[fold]),
        )
        coef, mean, precision = _solve(rest, cfg, width)
        mask = fold_of == fold
        temporal[mask] = _temporal_residual(z, sources, coef, mask)
        cross[mask] = _cross_residual(z[mask], mean, precision)
    prior2 = np.stack([np.maximum(_rms(r[keep]), floor) for r in (temporal, cross)])
    held = _causal_mean(temporal / prior2[0], cfg.persistence)
    prior = np.vstack([prior2, np.maximum(_rms(held[keep]), MIN_RESIDUAL_SCALE)[None, :]])
    standard = (*_standardise((temporal, cross), prior, floor, cfg.sliding_window), held / prior[2])
    tails = [_fit_tail(np.abs(residual), levels) for residual in standard]
    knots = np.stack([knot for knot, _ in tails])
    beta = np.stack([scale for _, scale in tails])
    scores = _energy(standard, knots, levels, beta, _cap(rows))[0].sum(axis=1)
    losses = [
        float(((temporal[fold_of == k] ** 2 + cross[fold_of == k] ** 2) / 2.0).mean())
        for k in range(cfg.folds)
    ]
    return _CrossFit(grams, scores, knots, beta, prior, losses)


def _fold_grams(
    z: np.ndarray, sources: np.ndarray, fold_of: np.ndarray, rows_used: np.ndarray, folds: int
) -> _Grams:
    """Per fold, the Gram matrix of ``[1, z(t-1) .. z(t-lags), z(t)]`` over the used rows."""
    width = z.shape[1]
    dim = 1 + width * sources.shape[0]
    full = np.zeros((folds, dim + width, dim + width))
    counts = np.zeros(folds)
    for fold in range(folds):
        fold_rows = np.flatnonzero((fold_of == fold) & rows_used)
        for begin in range(0, fold_rows.size, _BLOCK_ROWS):
            block = fold_rows[begin : begin + _BLOCK_ROWS]
            stacked = np.hstack([_features(z, sources, block), z[block]])
            full[fold] += stacked.T @ stacked  # one symmetric product (BLAS syrk)
        counts[fold] = fold_rows.size
    return _Grams(
        design=full[:, :dim, :dim].copy(),
        target=full[:, :dim, dim:].copy(),
        sums=full[:, 0, dim:].copy(),
        squares=full[:, dim:, dim:].copy(),
        counts=counts,
    )


def _minus(grams: _Grams, removed: _Grams) -> _Grams:
    """Statistics of the rows in ``grams`` but not in ``removed`` (sums are additive)."""
    return _Grams(
        design=grams.design - removed.design,
        target=grams.target - removed.target,
        sums=grams.sums - removed.sums,
        squares=grams.squares - removed.squares,
        counts=grams.counts - removed.counts,
    )


def _fit_all(grams: _Grams, cfg: MultivariateConfig, width: int) -> tuple[np.ndarray, ...]:
    total = _Grams(
        design=grams.design.sum(axis=0),
        target=grams.target.sum(axis=0),
        sums=grams.sums.sum(axis=0),
        squares=grams.squares.sum(axis=0),
        counts=np.asarray(grams.counts.sum()),
    )
    return _solve(total, cfg, width)


def _solve(
    grams: _Grams, cfg: MultivariateConfig, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge VAR coefficients, and the mean and shrunk precision of the current values."""
    count = max(float(grams.counts), 1.0)
    design = grams.design.copy()
    penalty = cfg.ridge * count
    index = np.arange(1, design.shape[0])
    design[index, index] += penalty
    design[0, 0] += 1e-9 * count  # keeps an empty fold solvable
    coef = np.linalg.solve(design, grams.target)
    mean = grams.sums / count
    covariance = grams.squares / count - np.outer(mean, mean)
    covariance = (covariance + covariance.T) / 2.0
    diagonal = np.diag(covariance).clip(min=0.0) + MIN_RESIDUAL_SCALE**2
    shrink = cfg.ridge * 10.0 + 0.01
    shrunk = (1.0 - shrink) * covariance
    shrunk[np.diag_indices(width)] = diagonal
    precision = np.linalg.inv(shrunk)
    precision = (precision + precision.T) / 2.0
    return coef, mean, precision


def _features(z: np.ndarray, sources: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Design rows ``[1, z(t-1), ..., z(t-lags)]`` for the given row numbers."""
    lags = sources.shape[0]
    width = z.shape[1]
    features = np.empty((rows.size, 1 + width * lags))
    features[:, 0] = 1.0
    for lag in range(lags):
        features[:, 1 + lag * width : 1 + (lag + 1) * width] = z[sources[lag, rows]]
    return features


def _temporal_residual(
    z: np.ndarray, sources: np.ndarray, coef: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    rows = np.flatnonzero(mask) if mask is not None else np.arange(z.shape[0])
    out = np.empty((rows.size, z.shape[1]))
    for begin in range(0, rows.size, _BLOCK_ROWS):
        block = rows[begin : begin + _BLOCK_ROWS]
        out[begin : begin + block.size] = z[block] - _features(z, sources, block) @ coef
    return out


def _cross_residual(z: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Residual of each variable given all the others now: ``(P (z - mean))_j / P_jj``."""
    residual: np.ndarray = ((z - mean) @ precision) / np.diag(precision)
    return residual


def _lag_sources(timestamps: np.ndarray, granularity_seconds: int, lags: int) -> np.ndarray:
    """Row of each lag for each row: ``t - lag`` inside a run of contiguous timestamps.

    Where the lag would cross a gap (or the start), the run's first row stands in.
    """
    rows = timestamps.shape[0]
    index = np.arange(rows)
    if rows == 0:
        return np.zeros((lags, 0), dtype=np.int64)
    stamps = timestamps.astype("datetime64[s]").astype(np.int64)
    step = max(int(granularity_seconds), 1)
    breaks = np.ones(rows, dtype=bool)
    breaks[1:] = np.diff(stamps) != step
    run_start = np.maximum.accumulate(np.where(breaks, index, 0))
    return np.stack([np.maximum(index - lag, run_start) for lag in range(1, lags + 1)])


def _robust_scaling(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, robust spread (IQR, else standard deviation, else 1) and quantisation step."""
    center = np.median(values, axis=0)
    q75, q25 = np.percentile(values, [75, 25], axis=0)
    spread = (q75 - q25) / 1.349
    std = values.std(axis=0)
    # A meter that reads one value most of the time (IQR 0) is scaled by its deviation.
    spread = np.where(spread > 0.1 * std, spread, std)
    spread = np.where(spread > 0.0, spread, 1.0)
    quantum = np.array([_quantum(values[:, j]) for j in range(values.shape[1])])
    return center, spread, quantum


def _quantum(column: np.ndarray) -> float:
    """Smallest step between distinct values (a meter's resolution); 0 when continuous."""
    distinct = np.unique(column)
    if distinct.size < 2:
        return 0.0
    steps = np.diff(distinct)
    tolerance = 1e-9 * max(1.0, float(np.abs(distinct).max()))
    steps = steps[steps > tolerance]
    return float(steps.min()) if steps.size else 0.0


def _threshold(scores: np.ndarray, alarm_rate: float) -> float:
    """Score exceeded by ``alarm_rate`` of normal training points.

    Read at the ``THRESHOLD_BASE`` quantile and extrapolated with an exponential tail fitted
    to the median excess above it, so that anomalies in the training window (which fill the
    very top of the scores) do not lift the threshold over themselves. Never below the plain
    empirical quantile's share of positive scores would allow: at least a small positive value.
    """
    base_probability = max(THRESHOLD_BASE, alarm_rate)
    base = float(np.quantile(scores, 1.0 - base_probability))
    excess = scores[scores > base] - base
    if excess.size == 0:
        return max(base, 1e-6)
    beta = float(np.median(excess)) / math.log(2.0)
    return max(base + beta * math.log(base_probability / alarm_rate), 1e-6)


def _judged(scores: np.ndarray, cfg: MultivariateConfig) -> np.ndarray:
    """Training scores judged by both judges, each over its own threshold (1 = at threshold)."""
    point = _threshold(scores, cfg.alarm_rate)
    averaged = _causal_mean(scores, cfg.smoothing)
    sustained = _threshold(averaged, cfg.sustained_alarm_rate)
    judged: np.ndarray = np.maximum(scores / point, averaged / sustained)
    return judged


def _cap(rows: int) -> float:
    """Surprise of a residual seen once in ``rows`` training rows."""
    return math.log(max(rows, 2))


def _tail_levels(rows: int) -> np.ndarray:
    """Surprise levels ``-log(p)`` of the tail knots; the rarest needs enough rows beyond it."""
    kept = [p for p in TAIL_PROBABILITIES if p * rows >= TAIL_MIN_POINTS]
    levels: np.ndarray = -np.log(np.array([1.0, *kept]))
    return levels


def _causal_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of each row and the ``window - 1`` rows before it, over ``window`` (per column).

    Rows before the first are taken as 0 (no evidence): a deviation at the start of the data
    is not judged as sustained before it has lasted.
    """
    if window <= 1 or values.shape[0] == 0:
        return values
    sums = np.zeros((values.shape[0] + 1, *values.shape[1:]))
    np.cumsum(values, axis=0, out=sums[1:])
    index = np.arange(values.shape[0])
    low = np.maximum(index - window + 1, 0)
    mean: np.ndarray = (sums[index + 1] - sums[low]) / window
    return mean


def _rms(residual: np.ndarray) -> np.ndarray:
    if residual.shape[0] == 0:
        return np.ones(residual.shape[1])
    root: np.ndarray = np.sqrt((residual * residual).mean(axis=0))
    return root


def _standardise(
    residuals: tuple[np.ndarray, ...], prior: np.ndarray, floor: np.ndarray, window: int
) -> tuple[np.ndarray, ...]:
    """Divide residuals by their recent scale: RMS of the previous ``window`` rows, shrunk
    towards the training RMS with the weight of ``LOCAL_PRIOR_SHARE * window`` rows."""
    weight = LOCAL_PRIOR_SHARE * window
    out = []
    for kind, residual in enumerate(residuals):
        rows = residual.shape[0]
        squares = np.zeros((rows + 1, residual.shape[1]))
        np.cumsum(residual * residual, axis=0, out=squares[1:])
        index = np.arange(rows)
        low = np.maximum(index - window, 0)
        past = squares[index] - squares[low]
        count = (index - low)[:, None]
        local = np.sqrt((weight * prior[kind] ** 2 + np.maximum(past, 0.0)) / (weight + count))
        out.append(residual / np.maximum(local, floor))
    return tuple(out)


def _fit_tail(magnitude: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per variable: ``|residual|`` quantiles at the levels, and the exponential tail beyond.

    Knots rise by at least ``floor / knots`` each, so the last knot is at least ``floor`` (a
    meter's half quantisation step, or 1 % of its spread) and the tail scale is at least
    ``floor``.
    """
    probabilities = np.exp(-levels)
    knots = np.quantile(magnitude, 1.0 - probabilities, axis=0).T  # (variables, knots)
    knots[:, 0] = 0.0
    for k in range(1, levels.size):
        knots[:, k] = np.maximum(knots[:, k], knots[:, k - 1] + KNOT_STEP)
    last = knots[:, -1]
    excess = magnitude - last
    beyond = excess > 0.0
    # Exponential tail scale from the median excess (robust to a few anomalies in training).
    masked = np.where(beyond, excess, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with nothing beyond
        median_excess = np.nanmedian(masked, axis=0) / math.log(2.0)
    beta = np.maximum(np.where(np.isfinite(median_excess), median_excess, KNOT_STEP), KNOT_STEP)
    return knots, beta


def _surprise(
    magnitude: np.ndarray, knots: np.ndarray, levels: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """``-log P(|residual| >= magnitude)`` per variable: interpolated, exponential beyond."""
    out = np.empty_like(magnitude)
    for j in range(magnitude.shape[1]):
        column = magnitude[:, j]
        inside = np.interp(column, knots[j], levels)
        tail = levels[-1] + (column - knots[j, -1]) / beta[j]
        out[:, j] = np.where(column > knots[j, -1], tail, inside)
    return out


def _energy(
    residuals: tuple[np.ndarray, ...],
    knots: np.ndarray,
    levels: np.ndarray,
    beta: np.ndarray,
    cap: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row and variable: surprise beyond the ``EXCESS_LEVEL``, summed over both models.

    Returns the energy that scores the row and the one that apportions it. For the second,
    surprise beyond ``cap`` (a residual seen once in training) grows only logarithmically:
    far beyond the training range the extrapolated tail is not trusted to rank variables (a
    broken pair of variables has equal residuals on both sides, and noise in ``beta`` would
    pick the culprit), so the root cause goes to the variable with the most kinds of evidence.
    """
    energy = np.zeros_like(residuals[0])
    shares = np.zeros_like(residuals[0])
    for kind, residual in enumerate(residuals):
        surprise = _surprise(np.abs(residual), knots[kind], levels, beta[kind])
        energy += np.maximum(surprise - EXCESS_LEVEL, 0.0)
        over = surprise > cap
        surprise[over] = cap + np.log1p(surprise[over] - cap)
        part = np.maximum(surprise - EXCESS_LEVEL, 0.0)
        if kind == 1:
            squared = residual * residual
            total = squared.sum(axis=1, keepdims=True)
            part = part.sum(axis=1, keepdims=True) * squared / np.maximum(total, 1e-300)
        shares += part
    return energy, shares


def _correlation(z: np.ndarray) -> np.ndarray:
    centred = z - z.mean(axis=0)
    norms = np.sqrt((centred * centred).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (centred.T @ centred) / np.outer(norms, norms)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def _checked_values(dataset: Dataset) -> np.ndarray:
    values = np.asarray(dataset.values, dtype=np.float64)
    if not np.isfinite(values).all():
        row, column = np.argwhere(~np.isfinite(values))[0]
        raise DatasetError(
            f"Variable {dataset.variables[int(column)]!r} at {_iso(dataset.timestamps[int(row)])} "
            "is not a finite number; align the data (fillNAMethod) before training or detection.",
            "InvalidValue",
        )
    return values


def _check_shapes(arrays: Mapping[str, np.ndarray], width: int, lags: int) -> None:
    expected = {
        "center": (width,),
        "scale": (width,),
        "quantum": (width,),
        "temporal_coef": (1 + width * lags, width),
        "cross_mean": (width,),
        "precision": (width, width),
        "tail_knots": (_KINDS, width, arrays["tail_levels"].shape[0]),
        "tail_levels": (arrays["tail_levels"].shape[0],),
        "tail_beta": (_KINDS, width),
        "prior_rms": (_KINDS, width),
        "residual_floor": (width,),
        "train_corr": (width, width),
    }
    for name, shape in expected.items():
        array = arrays[name]
        if array.shape != shape or array.dtype != np.float64 or not np.isfinite(array).all():
            raise ModelError(
                f"The model's {name}.npy has shape {array.shape} and dtype {array.dtype}; "
                f"expected {shape} float64 with finite values. The file is corrupt.",
                "InvalidModel",
            )


def _write_member(archive: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, payload)


def _check_int(value: Any, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(
            f"{name} {value!r} is out of range: use a whole number from {low} to {high}.",
            "InvalidParameter",
        )


def _check_float(value: Any, name: str, low: float, high: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise DatasetError(
            f"{name} {value!r} is out of range: use a number in {bracket}{low}, {high}].",
            "InvalidParameter",
        )


def _to_seconds(value: Any) -> np.datetime64:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    seconds: np.datetime64 = np.datetime64(stamp.to_datetime64()).astype("datetime64[s]")
    return seconds


def _iso(stamp: Any) -> str:
    """``datetime64`` → ISO 8601 with ``Z`` (whole seconds)."""
    seconds: Any = np.asarray(stamp).astype("datetime64[s]")
    return str(np.datetime_as_string(seconds, unit="s")) + "Z"
