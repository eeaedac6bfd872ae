"""Rules beside the band: dropouts of positive meters and flat-lines (stuck sensors).

Both are learned from the series itself and shared by entire, last and stream detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def dropout_floor(values: np.ndarray, missing: np.ndarray) -> float | None:
    """The level below which a reading of a positive series is a dropout (``None``: no floor).

    Meters of power, voltage or flow whose readings stay well above zero do not drop to
    near zero for a reason of the household: a reading below half of the series' 0.5 %
    quantile is a dropout (a meter reporting 0, a lost phase), however quiet or busy the
    series is around it. Series that reach zero, go negative, or whose low tail stretches
    towards zero (the 0.5 % quantile nearer 0 than to the 5 % one) have no such floor.

    Args:
        values: 1-D readings, missing points filled.
        missing: Mask of missing points.

    Returns:
        The floor, or ``None``.
    """
    known = values[~missing]
    if known.size < _DROPOUT_MIN_POINTS:
        return None
    low, lowish = np.quantile(known, [_DROPOUT_QUANTILE, 10 * _DROPOUT_QUANTILE])
    # Well above zero: the bottom of the series is further from 0 than its low tail is wide
    # (a continuous quantity that merely approaches 0 has no floor).
    if low <= 0 or low < lowish - low:
        return None
    return _DROPOUT_SHARE * float(low)


def dropout_severity(value: float, floor: float | None) -> float:
    """Severity of a reading under the dropout floor (0 above it, 1 at or below zero)."""
    if floor is None or not value < floor:
        return 0.0
    return min(1.0, 1.0 - value / floor) if value > 0 else 1.0


_DROPOUT_MIN_POINTS = 100
_DROPOUT_QUANTILE = 0.005
_DROPOUT_SHARE = 0.5


@dataclass(frozen=True)
class FlatlineRule:
    """When a run of identical readings becomes a flat-line anomaly.

    Attributes:
        threshold: Run length (points) from which a run is anomalous.
        resting: The series' resting value (``None`` if it has none); its runs are normal.
    """

    threshold: int
    resting: float | None

    def severity(self, value: float, run_length: int) -> float:
        """Severity of the ``run_length``-th identical reading ``value`` (0 when normal)."""
        if run_length < self.threshold or value == self.resting:
            return 0.0
        return 1.0 - (self.threshold - 1) / run_length


def _runs(x: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of runs of identical readings; missing points break runs."""
    n = x.size
    change = np.flatnonzero((np.diff(x) != 0) | missing[1:] | missing[:-1]) + 1
    return np.concatenate([[0], change]), np.concatenate([change, [n]])


def flatline_rule(values: np.ndarray, missing: np.ndarray, sensitivity: int) -> FlatlineRule:
    """Learn the flat-line rule of a series from its own runs of identical readings.

    A run is anomalous from ``(3 + (99 - sensitivity) / 20)`` times the 99th percentile of the
    series' run lengths, the longest run left out (at least 10 points). Runs of the resting
    value - the most common reading when it holds 30 % of them, or 10 % and is the lowest
    (like the 0 of a sub-meter or an idle queue) - never are.

    Args:
        values: 1-D readings, missing points filled.
        missing: Mask of missing points.
        sensitivity: 0-99.

    Returns:
        The rule.
    """
    n = values.size
    known = values[~missing]
    resting: float | None = None
    if known.size:
        uniq, counts = np.unique(known, return_counts=True)
        # A share of the readings, not of the points: a series with gaps rests as often. The
        # floor of the range rests at a smaller share (a meter switched off, an idle queue).
        top = int(np.argmax(counts))
        share = counts[top] / known.size
        if share >= 0.3 or (share >= 0.1 and top == 0):
            resting = float(uniq[top])
    typical = 1.0
    if n >= 2:
        starts, ends = _runs(values, missing)
        normal = ~missing[starts]
        if resting is not None:
            normal &= values[starts] != resting
        lengths = np.sort((ends - starts)[normal])
        if lengths.size:
            # Leave the longest run out: in a window with few runs, a stuck meter's own run
            # would otherwise set the 99th percentile and hide itself.
            typical = max(
                float(np.quantile(lengths[:-1] if lengths.size > 1 else lengths, 0.99)), 1.0
            )
    factor = 3.0 + (99 - sensitivity) / 20.0
    return FlatlineRule(max(10, int(np.ceil(factor * typical))), resting)


def _flatline_mask(x: np.ndarray, missing: np.ndarray, sensitivity: int) -> np.ndarray:
    """Severity of flat-line points: runs of identical readings far longer than usual."""
    n = x.size
    sev = np.zeros(n)
    if n < 10:
        return sev
    rule = flatline_rule(x, missing, sensitivity)
    starts, ends = _runs(x, missing)
    lengths = ends - starts
    candidates = np.flatnonzero((lengths >= rule.threshold) & ~missing[starts])
    for run in candidates:
        start, end = int(starts[run]), int(ends[run])
        if rule.resting is not None and x[start] == rule.resting:
            continue
        onset = start + rule.threshold - 1
        length_so_far = np.arange(onset, end) - start + 1
        sev[onset:end] = 1.0 - (rule.threshold - 1) / length_so_far
    sev[missing] = 0.0
    return sev
