"""Sustained deviations judged from the past only: the *last* mode's rule for level shifts.

A last-point call judges the final point of the window it is sent. A single point of a
two-hour shift of a few noise deviations often stays inside its band, and the fit of the
points before it (:mod:`shared.engine.decomposition`) follows the shift within half a trend
window, so the band alone finds at best the shift's first point. This rule judges the recent
points against the level **before** them instead:

* **Reference.** The expected value of each of the last ``horizon + h`` points is its seasonal
  value plus the trend at a point just before them (the trend there has seen none of them), so
  a shift that began inside that stretch cannot move its own reference.
* **Statistic.** Each deviation is measured in its own band (as :func:`shared.engine.
  univariate._sustained_severity` does) and the median of the last ``h`` = 7 of them (the
  judged point and the six before it) is the calm statistic. Its threshold is at least
  ``1.25 / sqrt(h)`` bands (as unusual as one point beyond the band for Gaussian noise), at
  least the level the series' own such medians reach with the false-alarm rate of the
  sensitivity (declustered peaks over threshold, measured against a reference as old as the
  oldest used here, so a wandering series is judged by its own wander), at least 1.25 times
  excursions that recur, and at most one band.
* **Flag.** The judged point is flagged when that median has been beyond the threshold on one
  side for the :data:`ONSET_RUN` points ending at it and the point itself lies beyond the
  threshold on that side: a shift is flagged from about its seventh point on, and most points
  after while it lasts.
* **New normal.** A deviation is judged against the level before it while the oldest ``h``
  points of the look-back (``horizon + h`` points back) were still at that level (their median
  within the threshold): a deviation that has lasted longer than about ``horizon`` points is
  the series' new level, judged (by the band) from that level.
  ``horizon = max(4 * h, period // 6)``: 4 hours of 5-minute readings with a daily rhythm,
  28 points without seasonality. Its cost: from the past only, a regime change (a weekend
  level a four-day window has not seen) is flagged for up to ``horizon`` points too. The
  test needs ``horizon + 5h`` points of history plus half a trend window; shorter windows
  are judged by the band alone.

Severity is ``1 - threshold / |median|``, as for the sustained deviations of *entire*. Series
that rest on one value and burst (sub-meters) are not judged by this rule, as in *entire*.
"""

from __future__ import annotations

import numpy as np

from shared.engine.decomposition import _Fit, _trend_window
from shared.engine.robust import running_median
from shared.engine.tails import _RECUR_MARGIN, _pot_level, _recurring_level

__all__ = ["ONSET_RUN", "SUSTAINED_WINDOW", "horizon", "recent_sustained_severity"]

#: Points of the trailing median (the same window as *entire*'s sustained deviations).
SUSTAINED_WINDOW = 7
#: Consecutive trailing medians beyond the threshold before a point is flagged.
ONSET_RUN = SUSTAINED_WINDOW // 2 + 1


def horizon(period: int) -> int:
    """How many points a deviation may last before it is the series' new level."""
    return max(4 * SUSTAINED_WINDOW, period // 6)


def recent_sustained_severity(
    value: float,
    seasonal: float,
    bands: tuple[float, float],
    fit: _Fit,
    profiles: tuple[np.ndarray, np.ndarray],
    alpha: float,
) -> float:
    """Severity of a sustained deviation ending at the judged point (0 where there is none).

    Args:
        value: The judged (last) reading.
        seasonal: Its seasonal value.
        bands: Its upper and lower margins.
        fit: The fit of the points before it.
        profiles: Upper and lower margins of those points.
        alpha: The per-point false-alarm rate of the sensitivity.

    Returns:
        ``1 - threshold / |median|`` when the rule flags the point, else 0.
    """
    h = SUSTAINED_WINDOW
    n = fit.filled.size
    span = horizon(fit.period) + h
    lag = span + _trend_window(n, fit.period) // 2 + 1
    if fit.bursty or not np.isfinite(value) or n < lag + 4 * h:
        return 0.0
    uppers, lowers = profiles
    deseasonal = fit.filled - fit.seasonal
    # The series' own standard: each point against the trend ``lag`` points before it.
    stale = _fraction(deseasonal[lag:] - fit.trend[:-lag], uppers[lag:], lowers[lag:])
    stale[fit.missing[lag:]] = 0.0
    calm = np.abs(running_median(stale, h))
    level = _pot_level(calm, alpha, decluster=True)
    floor = 1.2533 / float(np.sqrt(h))
    recurring = _recurring_level(calm, np.full(calm.size, floor))
    threshold = min(
        max(floor, level if level is not None else floor, _RECUR_MARGIN * recurring), 1.0
    )

    # The last ``span`` points of the history and the judged point, against the reference.
    reference = float(fit.trend[n - lag])
    recent = np.append(deseasonal[n - span :], value - seasonal) - reference
    frac = _fraction(
        recent, np.append(uppers[n - span :], bands[0]), np.append(lowers[n - span :], bands[1])
    )
    frac[:-1][fit.missing[n - span :]] = 0.0
    trailing = np.median(np.lib.stride_tricks.sliding_window_view(frac, h), axis=1)
    side = np.sign(trailing) * (np.abs(trailing) > threshold)
    last = side[-1]
    if last == 0 or frac[-1] * last <= threshold:
        return 0.0
    if last < 0 and _resting(value, fit):
        return 0.0  # a never-negative meter at its lowest reading rests, it does not deviate
    if last > 0 and fit.busy_up[-1] > 0 or last < 0 and fit.busy_down[-1] > 0:
        return 0.0  # excursions are this block's normal life
    if np.any(side[-ONSET_RUN:] != last):
        return 0.0
    # A deviation older than the horizon is the series' new level: the oldest h points of
    # the span must still have been at the level before.
    if float(trailing[0]) * last > threshold:
        return 0.0
    return float(1.0 - threshold / abs(float(trailing[-1])))


def _fraction(deviation: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Deviations in their own band: ``/ upper`` above, ``/ lower`` below (0 where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(deviation >= 0, deviation / upper, deviation / lower)
    return np.asarray(np.where(np.isfinite(frac), frac, 0.0))


def _resting(value: float, fit: _Fit) -> bool:
    """Whether ``value`` is at or below the lowest reading of a never-negative series."""
    known = fit.filled[~fit.missing]
    return bool(known.size and known.min() >= 0 and value <= known.min())
