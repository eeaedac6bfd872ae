"""Period auto-detection from the autocorrelation function.

The series is detrended with coarse block medians, large outliers are clipped so a single
spike cannot drown the correlation, and the autocorrelation is computed with one FFT.
Candidate periods are the prominent ACF peaks that repeat at twice their lag, refined with
the positions of their echoes, and confirmed by a second test: after removing medians of
blocks one cycle long (which leaves a periodic signal intact), the series must still
correlate with itself one and two cycles on. That rejects the chance bumps a random walk
makes. Among the confirmed candidates whose correlation is close to the best one the
shortest wins, so a daily rhythm is preferred to the weekly one when both are present,
while a half-day echo of a daily rhythm (two peaks a day) loses to the day. A candidate
within 4 % of a common calendar period (points per day or week at the usual granularities)
is snapped to it when the data agree with it nearly as well.
"""

from __future__ import annotations

import logging

import numpy as np

from shared.engine.robust import block_trend, fill_missing

logger = logging.getLogger(__name__)

__all__ = ["COMMON_PERIODS", "MIN_CYCLES", "detect_period"]

#: Points per day and per week at 1/5/10/15/30/60-minute granularity, and a week of days.
COMMON_PERIODS = (7, 24, 48, 96, 144, 168, 288, 336, 672, 1008, 1440, 2016, 4032)
#: Whole cycles a series must hold for its period to be detected.
MIN_CYCLES = 3
_MIN_PERIOD = 4
_MIN_ACF = 0.2
_PROMINENCE = 0.1
_SLACK = 0.12
_MIN_VALIDATED = 0.3
_MAX_VALIDATIONS = 4
_ECHO_RATIO = 0.75


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    n = x.size
    spectrum = np.fft.rfft(x, 1 << int(np.ceil(np.log2(2 * n))))
    raw = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    if raw[0] <= 0:
        return np.zeros(max_lag + 1)
    # Unbiased normalisation: lag k has n - k products.
    return np.asarray(raw / raw[0] * n / (n - np.arange(max_lag + 1)))


def detect_period(values: np.ndarray) -> int:
    """Detect the dominant period of a series.

    Args:
        values: 1-D readings; NaN counts as missing.

    Returns:
        The period in points, or 0 when the series has no clear periodicity (or is too short
        to hold :data:`MIN_CYCLES` cycles of any period).
    """
    x, _ = fill_missing(np.asarray(values, dtype=np.float64))
    n = x.size
    max_lag = n // MIN_CYCLES
    if max_lag < _MIN_PERIOD + 2:
        return 0
    y = x - block_trend(x, max(n // MIN_CYCLES, 1))
    y = y - np.median(y)
    mad = float(np.median(np.abs(y)))
    if mad > 0:
        y = np.clip(y, -6.0 * mad, 6.0 * mad)
    if not np.any(y):
        return 0
    y = y - y.mean()
    acf = _acf(y, min(2 * max_lag + 2, n - 1))
    peaks = _peaks(acf, max_lag)
    candidates: list[tuple[int, float]] = []
    for peak in peaks:
        if peak < _MIN_PERIOD:
            continue
        lag = _refine(acf, int(peak), max_lag)
        # A true period echoes at twice its lag; a chance bump does not.
        twice = 2 * lag
        if twice + 2 < acf.size:
            tol = max(1, twice // 50)
            echo = float(acf[max(0, twice - tol) : twice + tol + 1].max())
            if echo < 0.5 * acf[lag]:
                continue
        candidates.append((lag, float(acf[lag])))
    if not candidates:
        return 0
    # Shortest first among those nearly as strong as the strongest; then the rest, strongest
    # first. Only a few are worth the (costlier) validation.
    best = max(score for _, score in candidates)
    near = sorted(c for c in candidates if c[1] >= best - _SLACK)
    rest = sorted((c for c in candidates if c[1] < best - _SLACK), key=lambda c: -c[1])
    for lag, score in (near + rest)[:_MAX_VALIDATIONS]:
        if _survives_detrending(x, lag):
            period = _snap(acf, lag, max_lag)
            logger.debug("detected period %s (acf %.2f of best %.2f)", period, score, best)
            return period
    return 0


def _peaks(acf: np.ndarray, max_lag: int) -> list[int]:
    """Lags in ``[1, max_lag]`` where the ACF has a high, prominent local maximum."""
    from scipy import signal  # imported on first use: it is slow to import

    # Two lags beyond the last admissible one, so that a peak right at max_lag is a peak.
    peaks, _ = signal.find_peaks(acf[: max_lag + 3], prominence=_PROMINENCE, height=_MIN_ACF)
    return [int(p) for p in peaks if p <= max_lag + 1]


def _score(acf: np.ndarray, lag: int) -> float:
    """Correlation at ``lag`` and at its first echo, when the echo was computed."""
    total = float(acf[lag])
    if 2 * lag < acf.size:
        total += float(acf[2 * lag])
    return total


def _refine(acf: np.ndarray, lag: int, max_lag: int) -> int:
    """Estimate the period from the positions of the ACF peak and its echoes.

    A single noisy ACF peak can sit a few lags off; the k-th echo sits near ``k * period`` with
    the same error, so a least-squares slope through the echo positions is k times sharper.
    """
    positions: list[tuple[int, int]] = []
    k = 1
    estimate = float(lag)
    while True:
        centre = int(round(k * estimate))
        half = max(2, int(0.05 * estimate))
        lo, hi = centre - half, centre + half
        if hi >= acf.size or k > 16:
            break
        pos = lo + int(np.argmax(acf[lo : hi + 1]))
        positions.append((k, pos))
        ks = np.array([kk for kk, _ in positions], dtype=np.float64)
        ps = np.array([pp for _, pp in positions], dtype=np.float64)
        estimate = float(np.dot(ks, ps) / np.dot(ks, ks))
        k += 1
    refined = int(round(estimate))
    return min(max(refined, _MIN_PERIOD), max_lag)


def _snap(acf: np.ndarray, lag: int, max_lag: int) -> int:
    """Snap to a nearby calendar period when the data agree with it nearly as well."""
    for common in COMMON_PERIODS:
        if common != lag and common <= max_lag and abs(lag - common) <= max(1, 0.04 * common):
            if _score(acf, common) >= _score(acf, lag) - 0.05:
                return common
    return lag


def _lag_correlation(y: np.ndarray, lag: int) -> float:
    a, b = y[:-lag], y[lag:]
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / denom if denom > 0 else 0.0


def _survives_detrending(x: np.ndarray, lag: int) -> bool:
    """Whether the correlation at ``lag`` survives removing medians of blocks one cycle long.

    The median of exactly one cycle is the same in every cycle of a periodic signal, so its
    seasonality survives, and it repeats as strongly one cycle further on. The slow wander of
    a random walk, which can fake an ACF peak, fades after such detrending and does not repeat.
    """
    y = x - block_trend(x, lag)
    mad = float(np.median(np.abs(y - np.median(y))))
    if mad > 0:
        y = np.clip(y, -6.0 * mad, 6.0 * mad)
    first = _lag_correlation(y, lag)
    if first < _MIN_VALIDATED:
        return False
    if 2 * lag >= y.size - 2:
        return True
    return _lag_correlation(y, 2 * lag) >= _ECHO_RATIO * first
