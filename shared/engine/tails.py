"""Margin widths and tails: how wide a band must be at a sensitivity for this series.

* :func:`margin_factor` and :func:`false_alarm_rate` - the Gaussian width and the per-point
  false-alarm rate a sensitivity stands for.
* :func:`_pot_level` and :func:`_tail_factor` - peaks over threshold: the level the series'
  own (standardised) deviations exceed with that rate, optionally declustered so that a run
  of exceedances counts once.
* :func:`_recurring_level` - the size of excursions that recur often enough to be normal.
"""

from __future__ import annotations

import numpy as np


def margin_factor(sensitivity: float) -> float:
    """The narrowest margin, in robust standard deviations, at a sensitivity.

    Decreasing in ``sensitivity``: 99 gives 3.8, the default 95 gives 4.2, 80 gives 5.7 and 0
    gives 30, so low sensitivities flag only gross outliers. This is the margin for
    Gaussian-like noise; where the residuals have heavier tails the margin is widened to keep
    the false-alarm rate of :func:`false_alarm_rate` (see :func:`_tail_factor`).

    Args:
        sensitivity: 0-99.

    Returns:
        The margin factor ``k``.
    """
    s = min(max(float(sensitivity), 0.0), 99.0)
    if s >= 80.0:
        return _K99 + 0.1 * (99.0 - s)
    k80 = _K99 + 1.9
    return float(k80 * (_K0 / k80) ** ((80.0 - s) / 80.0))


_K99 = 3.8
_K0 = 30.0


def false_alarm_rate(sensitivity: float) -> float:
    """Per-point false-alarm probability targeted at a sensitivity (2e-4 at 99, 1e-4 at 95)."""
    s = min(max(float(sensitivity), 0.0), 99.0)
    return float(10.0 ** (-3.7 - 0.075 * (99.0 - s)))


def _pot_level(a: np.ndarray, alpha: float, *, decluster: bool = False) -> float | None:
    """The level that non-negative values ``a`` exceed with probability ``alpha``.

    Peaks over threshold: above the 97 % quantile the excess is modelled as exponential, its
    mean taken from the median excess so that a few anomalies do not inflate it. ``None``
    when the tail is too thin to fit (fewer than 30 exceedances).

    With ``decluster`` (``a`` in time order), exceedances closer than
    :data:`_CLUSTER_GAP` points are one cluster and only its peak counts, as extreme-value
    practice does for dependent data: a two-hour level shift is one excursion, not 24 samples
    of the tail, so it cannot widen the band that should find it.
    """
    if a.size < 100:
        return None
    u = float(np.quantile(a, 0.97))
    if decluster:
        excess = _cluster_peaks(a, u) - u
    else:
        excess = a[a > u] - u
    if excess.size < 30:
        return None
    beta = float(np.median(excess)) / float(np.log(2.0))
    return float(u + beta * float(np.log(excess.size / (a.size * alpha))))


#: Exceedances this close (points) belong to one cluster when a tail is declustered.
_CLUSTER_GAP = 3


def _cluster_peaks(a: np.ndarray, u: float) -> np.ndarray:
    """The peak of each cluster of values above ``u`` (gaps under ``_CLUSTER_GAP`` joined)."""
    where = np.flatnonzero(a > u)
    if where.size == 0:
        return where.astype(np.float64)
    new = np.concatenate([[True], np.diff(where) > _CLUSTER_GAP])
    return np.asarray(np.maximum.reduceat(a[where], np.flatnonzero(new)))


def _tail_factor(z: np.ndarray, k: float, alpha: float, *, decluster: bool = False) -> float:
    """Margin factor that keeps the false-alarm rate at ``alpha`` for this tail.

    The peaks-over-threshold level of the standardised deviations ``z`` (declustered with
    ``decluster``, see :func:`_pot_level`), never below ``k`` (the Gaussian width) nor above
    ``_MAX_TAIL * k``, so a series full of anomalies cannot blind the detector.
    """
    level = _pot_level(z, alpha, decluster=decluster)
    if level is None:
        return k
    return float(min(max(level, k), _MAX_TAIL * k))


_MAX_TAIL = 3.0


#: Excursions that recur this many times (declustered) are normal for the series.
_RECUR_COUNT = 5
#: A locally widened band reaches this many times the recurring excursions' size.
_RECUR_MARGIN = 1.25


def _recurring_level(excess: np.ndarray, band: np.ndarray) -> float:
    """The size that at least ``_RECUR_COUNT`` separate excursions beyond ``band`` reach.

    Excursions are clusters of points outside the band (:func:`_cluster_peaks`), measured
    at their peaks in the residual's units; 0 when fewer than ``_RECUR_COUNT`` occur.
    """
    outside = np.where(excess > band, excess, 0.0)
    peaks = _cluster_peaks(outside, 0.0)
    if peaks.size < _RECUR_COUNT:
        return 0.0
    return float(np.sort(peaks)[-_RECUR_COUNT])
