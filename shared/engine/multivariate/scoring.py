"""Evidence and judgement: residuals on their scales, calibrated surprise, the two thresholds.

Three kinds of evidence per variable (:data:`KINDS`): the temporal and the cross-sectional
residual, each on its recent scale, and the *sustained* temporal residual (its mean over the
last ``persistence`` rows on its slow scale, so a deviation that lasts is judged by a
mean whose noise shrinks with the rows it spans). Each is turned into a surprise ``-log p``
against that variable's own cross-fitted training distribution; the excess over the 5 % level,
summed, is the point's evidence. The point judge reads it as is; the sustained judge reads its
mean over the last ``smoothing`` rows against its own threshold.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from shared.engine.multivariate.config import MultivariateConfig

#: Kinds of evidence: temporal residual, cross-sectional residual, sustained temporal residual.
KINDS = 3
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
    residuals: tuple[np.ndarray, ...],
    prior: np.ndarray,
    floor: np.ndarray,
    window: int,
    prior_share: float = LOCAL_PRIOR_SHARE,
) -> tuple[np.ndarray, ...]:
    """Divide residuals by their recent scale: RMS of the previous ``window`` rows, shrunk
    towards the training RMS with the weight of ``prior_share * window`` rows."""
    weight = prior_share * window
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


def _held(
    temporal: np.ndarray, prior: np.ndarray, floor: np.ndarray, cfg: MultivariateConfig
) -> np.ndarray:
    """The sustained evidence before calibration: each variable's temporal residual on its
    slow scale (the recent-scale rule over ``slow_windows`` sliding windows), averaged over
    the last ``persistence`` rows."""
    window = cfg.slow_windows * cfg.sliding_window
    (scaled,) = _standardise((temporal,), prior[None, :], floor, window)
    return _causal_mean(scaled, cfg.persistence)


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
