"""The band around the expected value: margin factors, margins, local widening, plausibility.

Step 5 of :mod:`shared.engine.univariate`: from the scales of a fit
(:mod:`shared.engine.decomposition`) and the tails of its residuals
(:mod:`shared.engine.tails`) to upper and lower margins, widened only where recurring
excursions are the series' normal life, and kept inside what the series can plausibly read.
"""

from __future__ import annotations

import numpy as np

from shared.engine.decomposition import _block_length, _Fit
from shared.engine.robust import BUSY_BLOCKS, BUSY_RUNS
from shared.engine.tails import (
    _RECUR_MARGIN,
    _recurring_level,
    _tail_factor,
    false_alarm_rate,
    margin_factor,
)


def plausible_band(
    expected: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    known: np.ndarray,
    typical: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the expected value and the band inside what the series can plausibly read.

    The rules (documented in the README):

    * The expected value never leaves the range of the known readings ``known``.
    * A bound never reaches further beyond the series' range (its lowest and highest known
      readings) than the typical (median) margin on that side: a band many times wider than
      anything the meter ever read says nothing. Bounds are only ever narrowed, so this never
      flags a reading on its own: a reading within the range stays judged by its band.
    * A series that has never been negative gets no negative lower bound (``expected -
      lower >= 0``): power, energy, flow and counts cannot go below zero.

    Args:
        expected: Expected values.
        upper: Upper margins (distances above ``expected``).
        lower: Lower margins.
        known: The series' known (not missing) readings.
        typical: The typical upper and lower margins (default: the medians of ``upper`` and
            ``lower``), for judging a few points of a longer series.

    Returns:
        ``(expected, upper, lower)``, new arrays.
    """
    if known.size == 0:
        return expected.copy(), upper.copy(), lower.copy()
    lowest, highest = float(known.min()), float(known.max())
    expected = np.clip(expected, lowest, highest)
    if typical is None:
        typical = float(np.median(upper)), float(np.median(lower))
    typical_up, typical_down = typical
    upper = np.minimum(upper, highest + typical_up - expected)
    lower = np.minimum(lower, expected - (lowest - typical_down))
    if lowest >= 0.0:
        lower = np.minimum(lower, expected)
    return expected, upper, lower


def _margins(
    fit: _Fit,
    sensitivity: int,
    k_up: float | np.ndarray,
    k_down: float | np.ndarray,
    *,
    widen: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower margins: the tail-calibrated band, or the busy band where wider.

    Busy spreads already describe the size of normal excursions (they come from the 97 %
    quantiles), so they take the plain factor of the sensitivity, not the tail-calibrated one.
    In a robust fit the band is then widened locally for recurring excursions
    (:func:`_widened`) unless ``widen`` is false.
    """
    k = margin_factor(sensitivity)
    upper = np.maximum(k_up * fit.scale_up, k * fit.busy_up)
    lower = np.maximum(k_down * fit.scale_down, k * fit.busy_down)
    if widen:
        return _widened(fit, sensitivity, upper, lower)
    return upper, lower


def _widened(
    fit: _Fit, sensitivity: int, upper: np.ndarray, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The band widened where recurring excursions are this series' normal life.

    Only in robust fits. Excursions that recur at least :data:`_RECUR_COUNT` times
    (:func:`_recurring_level`) are normal for the series, and the band may reach
    :data:`_RECUR_MARGIN` times their size: in blocks that leave the band at least
    ``BUSY_RUNS`` separate times (a heater cycling; when at least ``BUSY_BLOCKS`` blocks do),
    and where a block's own spread is wider
    than the robust one (a cluster of washing-machine runs), up to the plain factor times that
    spread. A one-off excursion, however long, does not widen the band that should find it.
    """
    upper, lower = upper.copy(), lower.copy()
    if fit.local_up is None or fit.local_down is None:
        return upper, lower
    k = margin_factor(sensitivity)
    r = np.where(fit.missing, 0.0, fit.residual)
    block = _block_length(r.size, fit.period)
    which = np.minimum(np.arange(r.size) // block, max(r.size // block, 1) - 1)
    for band, local, side in ((upper, fit.local_up, r), (lower, fit.local_down, -r)):
        excess = np.maximum(side, 0.0)
        level = _recurring_level(excess, band)
        if level > 0:
            reach = _RECUR_MARGIN * level
            out = excess > band
            starts = out & ~np.concatenate([[False], out[:-1]])
            busy = np.bincount(which[starts], minlength=int(which[-1]) + 1) >= BUSY_RUNS
            if np.count_nonzero(busy) < BUSY_BLOCKS:
                # Busyness is normal only when several blocks are busy (as in sided_spread).
                busy[:] = False
            widened = np.where(busy[which], reach, np.minimum(k * local, reach))
            np.maximum(band, widened, out=band)
    return upper, lower


def _factors(fit: _Fit, sensitivity: int, *, decluster: bool = False) -> tuple[float, float]:
    """Margin factors above and below, calibrated to the tails of this series' residuals.

    With ``decluster`` a run of exceedances counts once (entire and last use it).
    """
    k = margin_factor(sensitivity)
    if fit.bursty:
        # The burst scale already says how large normal bursts are.
        return k, k
    alpha = false_alarm_rate(sensitivity)
    known = ~fit.missing
    r = fit.residual[known]
    z_up = np.maximum(r, 0.0) / np.maximum(fit.scale_up, fit.busy_up)[known]
    z_down = np.maximum(-r, 0.0) / np.maximum(fit.scale_down, fit.busy_down)[known]
    return (
        _tail_factor(z_up, k, alpha, decluster=decluster),
        _tail_factor(z_down, k, alpha, decluster=decluster),
    )


def _local_factors(fit: _Fit, sensitivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-point margin factors above and below, the tail calibrated where the noise is loud
    and where it is quiet apart (entire and last).

    Where bursts make a phase or a stretch loud, its scale already holds them, and the heavy
    tail that quiet stretches show (a burst where nothing usually happens) would widen its
    band a second time: a kettle's evening would get a band many kilowatts above anything the
    meter ever read. So points whose scale is above :data:`_LOUD` times the typical one get
    a tail factor from their own standardised residuals, the others from theirs; runs of
    exceedances count once (declustered, :func:`_pot_level`). A group too small to fit falls
    back to the factor of the whole series.
    """
    k = margin_factor(sensitivity)
    n = fit.residual.size
    if fit.bursty:
        return np.full(n, k), np.full(n, k)
    alpha = false_alarm_rate(sensitivity)
    known = ~fit.missing
    r = fit.residual
    out = []
    for side, scale, busy in ((r, fit.scale_up, fit.busy_up), (-r, fit.scale_down, fit.busy_down)):
        width = np.maximum(scale, busy)
        z = np.maximum(side, 0.0) / width
        whole = _tail_factor(z[known], k, alpha, decluster=True)
        factor = np.full(n, whole)
        loud = width > _LOUD * float(np.median(width[known])) if known.any() else known
        for group in (loud, ~loud):
            member = group & known
            if np.count_nonzero(member) >= _MIN_GROUP and np.count_nonzero(~member & known):
                # Out-of-group points are zeroed, so clusters never join across groups.
                factor[group] = _tail_factor(np.where(member, z, 0.0), k, alpha, decluster=True)
        out.append(factor)
    return out[0], out[1]


#: A point whose scale exceeds this many times the typical one is loud (its own tail).
_LOUD = 2.0
#: Fewest points a loud or quiet group needs for a tail of its own.
_MIN_GROUP = 500
