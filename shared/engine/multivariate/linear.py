"""The two linear models of normal behaviour, fitted in closed form, and their cross-fitting.

* temporal: a ridge vector autoregression (every variable from all variables' last ``lags``
  values), from per-fold Gram matrices;
* cross-sectional: a shrunk Gaussian graphical model (every variable from the others' current
  values), read off one precision matrix.

Residuals for calibration are out of sample: contiguous folds, each judged by the model fitted
to the others (sums are additive, so each fold's fit is the total minus the fold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.engine.multivariate.config import MultivariateConfig
from shared.engine.multivariate.scoring import (
    _cap,
    _energy,
    _fit_tail,
    _held,
    _rms,
    _standardise,
)

#: Residual scales never fall below this share of a variable's spread (standardised units):
#: a variable the others determine exactly would otherwise turn rounding noise into alarms.
MIN_RESIDUAL_SCALE = 1e-2

#: Rows per block when building Gram matrices, to bound memory on wide datasets.
_BLOCK_ROWS = 8192


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
    held = _held(temporal, prior2[0], floor, cfg)
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


def _correlation(z: np.ndarray) -> np.ndarray:
    centred = z - z.mean(axis=0)
    norms = np.sqrt((centred * centred).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (centred.T @ centred) / np.outer(norms, norms)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return corr
