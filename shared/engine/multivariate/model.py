"""The multivariate model: training, detection, interpretation and persistence entry points.

See :mod:`shared.engine.multivariate` for how it works.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from shared.engine.multivariate.config import (
    AlignedData,
    Contributor,
    Frame,
    MultivariateConfig,
    MultivariatePoint,
    MultivariateScores,
    TrainingDiagnostics,
    _State,
)
from shared.engine.multivariate.linear import (
    MIN_RESIDUAL_SCALE,
    _correlation,
    _cross_fit,
    _cross_residual,
    _fit_all,
    _fold_grams,
    _lag_sources,
    _minus,
    _robust_scaling,
    _temporal_residual,
)
from shared.engine.multivariate.scoring import (
    _cap,
    _causal_mean,
    _energy,
    _held,
    _judged,
    _standardise,
    _tail_levels,
    _threshold,
)
from shared.engine.multivariate.serialisation import Stored, decode, encode
from shared.errors import DatasetError, ModelNotReadyError

logger = logging.getLogger(__name__)


class MultivariateModel:
    """A model of the joint normal behaviour of several variables.

    See :mod:`shared.engine.multivariate` for how it works.

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
        """Rows of history a point needs to be judged as in a long stream: the sustained
        evidence's slow-scale window (``slow_windows * sliding_window``, which covers the
        recent-scale and correlation window), the temporal model's ``lags``, the sustained
        evidence's ``persistence`` and the sustained judge's ``smoothing``. With less, the
        scales lean on their training values."""
        cfg = self.config
        return cfg.slow_windows * cfg.sliding_window + cfg.lags + cfg.persistence + cfg.smoothing

    @property
    def threshold(self) -> float:
        """The score above which a point is an anomaly."""
        return self._require_state().threshold

    def fit(
        self, dataset: AlignedData, progress: Callable[[float], None] | None = None
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

    def score(self, dataset: AlignedData) -> MultivariateScores:
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
        dataset: AlignedData,
        start: datetime | np.datetime64 | str | None = None,
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

    def detect_last(
        self, dataset: AlignedData, *, interpret_all: bool = False
    ) -> MultivariatePoint:
        """Judge the last timestamp of the dataset, using the rows before it as history.

        Equals ``detect(dataset, interpret_all=...)[-1]`` but only scores the tail it needs
        (the last :attr:`history_rows` + 1 rows).

        Raises:
            DatasetError: An empty dataset (``NotEnoughData``), ``VariableMismatch``.
        """
        if len(dataset) == 0:
            raise DatasetError("The dataset has no timestamps.", "NotEnoughData")
        dataset = Frame.tail_of(dataset, self.history_rows + 1)
        state = self._require_state()
        scores = self.score(dataset)
        return self._points(state, dataset, scores, len(dataset) - 1, interpret_all)[-1]

    def _points(
        self,
        state: _State,
        dataset: AlignedData,
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
        self, state: _State, values: np.ndarray, dataset: AlignedData
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
        if state.tail_knots.shape[0] > len(standard):  # a version 1 model has no held kind
            held = _held(temporal, state.prior_rms[0], state.residual_floor, self.config)
            standard = (*standard, held / state.prior_rms[2])
        return _energy(
            standard, state.tail_knots, state.tail_levels, state.tail_beta, state.surprise_cap
        )

    def _ordered_values(self, dataset: AlignedData) -> np.ndarray:
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
    # Persistence (:mod:`shared.engine.multivariate.serialisation`)
    # ---------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise the model: a zip of ``config.json`` and one ``.npy`` per array.

        The bytes are identical for identical models (fixed member order and dates).

        Raises:
            ModelError: ``ModelNotReady`` when the model has not been trained.
        """
        state = self._require_state()
        return encode(
            Stored(self.config, self.variables, self.granularity_seconds, state, self.diagnostics)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> MultivariateModel:
        """Load a model written by :meth:`to_bytes` (never unpickles anything).

        Raises:
            ModelError: ``InvalidModel`` when the bytes are not a model of this format, are
                corrupt or inconsistent.
        """
        stored = decode(data)
        model = cls(stored.config)
        model.variables = stored.variables
        model.granularity_seconds = stored.granularity_seconds
        model._state = stored.state
        model._diagnostics = stored.diagnostics
        return model


def _checked_values(dataset: AlignedData) -> np.ndarray:
    values = np.asarray(dataset.values, dtype=np.float64)
    if not np.isfinite(values).all():
        row, column = np.argwhere(~np.isfinite(values))[0]
        raise DatasetError(
            f"Variable {dataset.variables[int(column)]!r} at {_iso(dataset.timestamps[int(row)])} "
            "is not a finite number; align the data (fillNAMethod) before training or detection.",
            "InvalidValue",
        )
    return values


def _to_seconds(value: object) -> np.datetime64:
    """A ``start`` bound as ``datetime64[s]`` UTC: a datetime (naive = UTC), a ``datetime64``
    or an ISO 8601 string.

    Raises:
        DatasetError: ``InvalidTimestamp`` for anything else.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise DatasetError(
                f"start {value!r} is not an ISO 8601 timestamp.", "InvalidTimestamp"
            ) from exc
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(value.replace(microsecond=0), "s")
    if isinstance(value, np.datetime64):
        seconds: np.datetime64 = value.astype("datetime64[s]")
        return seconds
    raise DatasetError(
        f"start {value!r} is not a timestamp; give a datetime, a datetime64 or an ISO 8601 string.",
        "InvalidTimestamp",
    )


def _iso(stamp: np.datetime64) -> str:
    """``datetime64`` → ISO 8601 with ``Z`` (whole seconds)."""
    seconds = np.asarray(stamp).astype("datetime64[s]")
    return str(np.datetime_as_string(seconds, unit="s")) + "Z"
