"""Univariate anomaly detection: a whole series at once (*entire*) or its last point (*last*).

The model is a robust decomposition, built from medians so that anomalies do not bend it,
and cheap enough (vectorised NumPy, SciPy's running median) that 8,640 points take a few
milliseconds:

1. **Period** - given, or found by :func:`~shared.engine.periodicity.detect_period`.
2. **Seasonality** - cycle-long block medians give a rough level; each point's seasonal value
   is the median of the same phase in the (up to four) neighbouring cycles, its own cycle left
   out. A seasonal shape whose amplitude or phase drifts is followed; an anomaly confined to
   one cycle is not learned, and a point's own noise does not shrink its residual.
3. **Trend** - a running median of the deseasonalised series (at most a cycle long, edges
   extended point-symmetric so drift continues to the ends). A running median keeps steps
   sharp: after a level shift the expectation adapts at once instead of smearing the step.
4. **Scale** - how far readings normally stray, per point and per side. For seasonal series a
   per-phase noise level (cross-cycle median of absolute residuals, and how inconsistent the
   seasonal shape is at that phase, averaged over neighbouring phases): quiet nights and busy
   evenings differ. Then, in blocks, the spread of the residual standardised by that level,
   separately above and below (75 %/90 % quantiles): skewed noise widens the side that needs
   it. Blocks where the band is left again and again (a heater cycling) are *busy*; when a
   series has several, busyness is normal and those blocks get a band from their 97 %
   quantiles. Floors: a quarter of the series-wide spread, half the quantisation step, and
   for series that sit on one value and burst now and then (sub-meters, error counts) the size
   of their normal bursts.
5. **Margins** - ``k(sensitivity) * scale``, where ``k`` is widened per side until the series'
   own tail (peaks over threshold, exponential beyond the 97 % quantile) would be exceeded
   with the false-alarm rate of the sensitivity: heavy-tailed noise gets wider bands, Gaussian
   noise keeps ``k``. Higher sensitivity gives narrower margins (v1.1 semantics).
6. **Judgement** - a point outside ``expected +- margin`` is anomalous. On top of that the
   first point of a level shift (the median of the next points and the point itself both
   leave the band of the level before, by a jump unusual for this series, where busy
   stretches make larger jumps usual), flat-lines (a run of identical readings far longer
   than the series shows, its resting value excepted) and dropouts (a positive series
   reading below half its 0.5 % quantile, like a meter reporting 0) are flagged. At most
   ``max_anomaly_ratio`` of the points are kept, the most severe first.

Severity is ``1 - margin / |value - expected|`` for points outside the band (0 at the edge of the
band, approaching 1 far outside), and grows with the length of a flat-line.

Missing values (NaN) are interpolated for fitting, never flagged, and still receive an
expected value and margins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from shared.engine.periodicity import detect_period
from shared.engine.robust import (
    block_trend,
    cycle_median,
    cycle_median_and_spread,
    fill_missing,
    median_smooth,
    odd,
    resolution,
    running_mean,
    running_median,
    sided_spread,
    spread,
)

logger = logging.getLogger(__name__)

__all__ = [
    "EntireResult",
    "LastResult",
    "UnivariateConfig",
    "detect_entire",
    "detect_last",
    "detect_period",
    "margin_factor",
]

#: Shortest series the engine judges (the v1.1 contract's minimum).
MIN_POINTS = 12
_MAD_TO_SIGMA = 1.4826
#: Cycles on each side that the seasonal median looks at.
_SEASON_HALF_WIDTH = 2
#: Fraction of the series-wide spread below which no local scale may fall.
_GLOBAL_FLOOR = 0.25
#: For bursty series the margin at the default sensitivity is ~1.6 x the typical large burst.
_BURST_Z = 2.6
#: The short window of the level-shift test (points on each side).
_SHORT_STEP = 7
#: How much more unusual than a point a jump between levels must be (there are many jumps).
_JUMP_FACTOR = 1.25
#: Excursions beyond this many spreads count towards a busy block (see ``sided_spread``).
_BUSY_FACTOR = 3.0
#: Each side of the band is at least this fraction of the other (discrete data have atoms).
_MAX_SKEW = 0.5


@dataclass(frozen=True)
class UnivariateConfig:
    """Parameters of univariate detection (v1.1 semantics).

    Attributes:
        sensitivity: 0-99; higher means narrower margins and so more anomalies.
        max_anomaly_ratio: In ``(0, 0.5]``: at most this share of points is flagged.
        period: Points per cycle; ``None`` detects it, ``0`` means no seasonality.
    """

    sensitivity: int = 95
    max_anomaly_ratio: float = 0.25
    period: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.sensitivity <= 99:
            raise ValueError(f"sensitivity must be between 0 and 99, got {self.sensitivity}")
        if not 0 < self.max_anomaly_ratio <= 0.5:
            raise ValueError(f"max_anomaly_ratio must be in (0, 0.5], got {self.max_anomaly_ratio}")
        if self.period is not None and self.period < 0:
            raise ValueError(f"period must be >= 0 (0 = no seasonality), got {self.period}")


@dataclass(frozen=True)
class EntireResult:
    """Per-point results of :func:`detect_entire` (all arrays as long as the input)."""

    period: int
    expected_values: np.ndarray
    upper_margins: np.ndarray
    lower_margins: np.ndarray
    is_anomaly: np.ndarray
    is_positive_anomaly: np.ndarray
    is_negative_anomaly: np.ndarray
    severity: np.ndarray


@dataclass(frozen=True)
class LastResult:
    """The judgement of the last point by :func:`detect_last`."""

    period: int
    suggested_window: int
    expected_value: float
    upper_margin: float
    lower_margin: float
    is_anomaly: bool
    is_positive_anomaly: bool
    is_negative_anomaly: bool
    severity: float


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


def _pot_level(a: np.ndarray, alpha: float) -> float | None:
    """The level that non-negative values ``a`` exceed with probability ``alpha``.

    Peaks over threshold: above the 97 % quantile the excess is modelled as exponential, its
    mean taken from the median excess so that a few anomalies do not inflate it. ``None``
    when the tail is too thin to fit (fewer than 30 exceedances).
    """
    if a.size < 100:
        return None
    u = float(np.quantile(a, 0.97))
    excess = a[a > u] - u
    if excess.size < 30:
        return None
    beta = float(np.median(excess)) / float(np.log(2.0))
    return float(u + beta * float(np.log(excess.size / (a.size * alpha))))


def _tail_factor(z: np.ndarray, k: float, alpha: float) -> float:
    """Margin factor that keeps the false-alarm rate at ``alpha`` for this tail.

    The peaks-over-threshold level of the standardised deviations ``z``, never below ``k``
    (the Gaussian width) nor above ``_MAX_TAIL * k``, so a series full of anomalies cannot
    blind the detector.
    """
    level = _pot_level(z, alpha)
    if level is None:
        return k
    return float(min(max(level, k), _MAX_TAIL * k))


_MAX_TAIL = 3.0


@dataclass(frozen=True)
class _Fit:
    """The robust decomposition of a series."""

    period: int
    filled: np.ndarray
    missing: np.ndarray
    seasonal: np.ndarray
    trend: np.ndarray
    residual: np.ndarray
    scale_up: np.ndarray
    scale_down: np.ndarray
    busy_up: np.ndarray
    busy_down: np.ndarray
    step_window: int
    bursty: bool


def _usable_period(requested: int | None, x: np.ndarray) -> int:
    n = x.size
    if requested is None:
        return detect_period(x)
    if requested <= 1:
        return 0
    if n < 2 * requested:
        logger.debug("period %s ignored: %s points hold fewer than 2 cycles", requested, n)
        return 0
    return requested


def _trend_window(n: int, period: int) -> int:
    """Running-median window of the trend: long enough to ignore short anomalies, short
    enough to follow wandering series; never longer than a cycle."""
    window = odd(min(max(n // 40, 15), 201))
    return min(window, odd(max(period, 7))) if period else window


def _burst_scale(abs_res: np.ndarray) -> float:
    """Scale for series that sit on one value and burst now and then (0 when they do not).

    When most residuals are exactly zero, the median-based spread is zero too; if the
    non-zero residuals are many and spread over many separate bursts, bursts are this
    series' normal behaviour and the typical large burst sets the scale.
    """
    nonzero = abs_res > 0
    count = int(np.count_nonzero(nonzero))
    if count == 0:
        return 0.0
    runs = int(np.count_nonzero(nonzero[1:] & ~nonzero[:-1]) + int(nonzero[0]))
    if count < max(10, 0.01 * abs_res.size) or runs < 5:
        return 0.0
    return float(np.quantile(abs_res[nonzero], 0.9) / _BURST_Z)


def _fit(values: np.ndarray, period: int | None) -> _Fit:
    x, missing = fill_missing(values)
    n = x.size
    p = _usable_period(period, x)
    if p:
        # A rough level from cycle-long block medians: flat over a cycle of pure seasonality.
        rough = block_trend(x, p)
        seasonal, season_spread = cycle_median_and_spread(x - rough, p, _SEASON_HALF_WIDTH)
        smooth = odd(min(p // 48, 7))
        if smooth > 1:
            seasonal = running_median(seasonal, smooth)
    else:
        seasonal = np.zeros(n)
        season_spread = np.zeros(n)
    deseasonalised = x - seasonal
    trend = median_smooth(deseasonalised, _trend_window(n, p))
    residual = deseasonalised - trend

    abs_res = np.abs(residual)
    known = ~missing
    global_scale = spread(abs_res[known])
    burst = _burst_scale(abs_res[known]) if global_scale == 0.0 else 0.0
    floor = max(_GLOBAL_FLOOR * global_scale, burst, 0.5 * resolution(x), _tiny(x))
    if p:
        # Noise level by phase: quiet nights and busy days differ in every cycle. A few
        # cycles give few values per phase, so the estimate is averaged over neighbouring
        # phases (at least 11 points, about 40 values).
        phase = cycle_median(abs_res, p, _SEASON_HALF_WIDTH, leave_out=True) * _MAD_TO_SIGMA
        # An inconsistent seasonal shape (a peak whose timing moves) is uncertainty too.
        phase = np.maximum(phase, season_spread)
        base = np.maximum(running_mean(phase, odd(max(p // 12, 11))), floor)
    else:
        base = np.full(n, max(global_scale, floor))
    # Local spread of the phase-normalised residual, per side, in blocks: a busy evening, a
    # noisy week, skewed or heavy-tailed noise widen the band where and on the side they occur.
    block = min(max(p // 8 if p else n // 40, 96), 360)
    up, down, busy_up, busy_down = sided_spread(
        residual / base, block, busy_factor=_BUSY_FACTOR, weight=base
    )
    up, down = np.maximum(up, _MAX_SKEW * down), np.maximum(down, _MAX_SKEW * up)
    scale_up = np.maximum(base * up, floor)
    scale_down = np.maximum(base * down, floor)
    step = odd(min(max(n // 100, 9), 61))
    return _Fit(
        period=p,
        filled=x,
        missing=missing,
        seasonal=seasonal,
        trend=trend,
        residual=residual,
        scale_up=scale_up,
        scale_down=scale_down,
        busy_up=busy_up,
        busy_down=busy_down,
        step_window=step,
        bursty=burst > 0,
    )


def _tiny(x: np.ndarray) -> float:
    """A scale floor for (nearly) constant series: relative to the magnitude of the data."""
    magnitude = float(np.max(np.abs(x))) if x.size else 0.0
    return max(magnitude * 1e-6, 1e-9)


def _level_shift_onsets(
    fit: _Fit, upper: np.ndarray, lower: np.ndarray, k: float, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Find the first points of level shifts.

    At each point ``t`` the median of the ``h`` points after it is compared with the median of
    the ``h`` points before it. This *jump* is corrected for drift (the running median of the
    jumps over ``8h`` points: a steady trend jumps by the same amount everywhere) and judged
    against how much jumps normally vary in this series, so the wander of a random walk is
    not mistaken for a shift. A shift starts where the corrected jump is unusual, exceeds the
    band, and the point itself has left the band of the level before; it is reported once, at
    its first point. Two window lengths are tried: a short one (a sudden jump in a wandering
    series) and a long one (a modest shift in heavy noise).

    Returns:
        The onset indices and the expected value there from before the shift.
    """
    y = fit.filled - fit.seasonal
    n = y.size
    scale = float(np.median(np.minimum(fit.scale_up, fit.scale_down)))
    # Where the series is busy (a heater cycling) its own jumps are larger: the cap on how
    # unusual a jump must be follows the local band there, not only the quiet typical one.
    local = np.minimum(
        np.maximum(fit.scale_up, fit.busy_up), np.maximum(fit.scale_down, fit.busy_down)
    )
    big = np.zeros(n, dtype=bool)
    anchor = np.zeros(n)
    for h in sorted({_SHORT_STEP, fit.step_window}, reverse=True):
        if n < 4 * h:
            continue
        centred = running_median(y, h)
        half = h // 2
        idx = np.arange(h, n - half)
        before = centred[idx - half - 1]  # median of y[t-h : t]
        after = centred[idx + half]  # median of y[t : t+h]
        raw = after - before
        drift = block_trend(raw, 8 * h)
        jump = raw - drift
        threshold = _jump_threshold(jump, k, alpha, np.maximum(scale, local[idx]))
        level = before + drift * (half + 1) / h
        own = y[idx] - level
        up = upper[idx]
        down = lower[idx]
        unusual = np.abs(jump) > threshold
        hit = unusual & np.where(jump > 0, (jump > up) & (own > up), (-jump > down) & (-own > down))
        fresh = hit & ~big[idx]
        anchor[idx[fresh]] = level[fresh]
        big[idx] |= hit
    big &= ~fit.missing
    # A level shift onset is the first point of each run where the condition holds.
    first = big & ~np.concatenate([[False], big[:-1]])
    starts = np.flatnonzero(first)
    return starts, anchor[starts] + fit.seasonal[starts]


def _margins(
    fit: _Fit, sensitivity: int, k_up: float, k_down: float
) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower margins: the tail-calibrated band, or the busy band where wider.

    Busy spreads already describe the size of normal excursions (they come from the 97 %
    quantiles), so they take the plain factor of the sensitivity, not the tail-calibrated one.
    """
    k = margin_factor(sensitivity)
    upper = np.maximum(k_up * fit.scale_up, k * fit.busy_up)
    lower = np.maximum(k_down * fit.scale_down, k * fit.busy_down)
    return upper, lower


def _factors(fit: _Fit, sensitivity: int) -> tuple[float, float]:
    """Margin factors above and below, calibrated to the tails of this series' residuals."""
    k = margin_factor(sensitivity)
    if fit.bursty:
        # The burst scale already says how large normal bursts are.
        return k, k
    alpha = false_alarm_rate(sensitivity)
    known = ~fit.missing
    r = fit.residual[known]
    z_up = np.maximum(r, 0.0) / np.maximum(fit.scale_up, fit.busy_up)[known]
    z_down = np.maximum(-r, 0.0) / np.maximum(fit.scale_down, fit.busy_down)[known]
    return _tail_factor(z_up, k, alpha), _tail_factor(z_down, k, alpha)


def _jump_threshold(jump: np.ndarray, k: float, alpha: float, scale: np.ndarray) -> np.ndarray:
    """How large a drift-corrected jump between levels must be to be unusual here, per point.

    At least ``_JUMP_FACTOR * k`` robust deviations of the jumps, and above the level that
    the series' own jumps reach with probability ``alpha``: a washing machine that starts
    every day makes the same jump every day, and that jump is normal for it. That level is
    capped at ``_MAX_TAIL * k`` times the noise ``scale`` at the point, so a series full of
    shifts cannot hide them all.
    """
    a = np.abs(jump)
    typical = float(np.median(a)) * _MAD_TO_SIGMA
    floor = _JUMP_FACTOR * k * typical
    level = _pot_level(a, alpha)
    if level is None:
        return np.full(scale.shape, floor)
    cap = _MAX_TAIL * k * np.maximum(typical, scale)
    return np.asarray(np.maximum(floor, np.minimum(level, cap)))


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
    value - the most common value when it holds at least 30 % of the points, like the 0 of a
    sub-meter - never are.

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
        if counts.max() >= 0.3 * n:
            resting = float(uniq[np.argmax(counts)])
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


def detect_entire(values: np.ndarray, config: UnivariateConfig) -> EntireResult:
    """Detect anomalies in a whole series.

    Args:
        values: 1-D float readings (NaN = missing; at least 12 points).
        config: Sensitivity, anomaly ratio cap and period.

    Returns:
        Per-point expected values, margins, anomaly flags and severities.

    Raises:
        ValueError: If ``values`` is not 1-D or has fewer than 12 points.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < MIN_POINTS:
        raise ValueError(f"need a 1-D series of at least {MIN_POINTS} points, got {x.shape}")
    fit = _fit(x, config.period)
    k_up, k_down = _factors(fit, config.sensitivity)
    expected = fit.seasonal + fit.trend
    upper, lower = _margins(fit, config.sensitivity, k_up, k_down)
    r = fit.residual
    over = np.maximum(r - upper, 0.0)
    under = np.maximum(-r - lower, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        severity = np.where(over > 0, 1.0 - upper / np.abs(r), 0.0)
        severity = np.where(under > 0, 1.0 - lower / np.abs(r), severity)

    onsets, old_level = _level_shift_onsets(
        fit, upper, lower, min(k_up, k_down), false_alarm_rate(config.sensitivity)
    )
    if onsets.size:
        expected = expected.copy()
        expected[onsets] = old_level
        deviation = np.abs(fit.filled[onsets] - old_level)
        band = np.where(fit.filled[onsets] > old_level, upper[onsets], lower[onsets])
        severity[onsets] = np.maximum(severity[onsets], 1.0 - band / deviation)

    flat = _flatline_mask(fit.filled, fit.missing, config.sensitivity)
    severity = np.maximum(severity, flat)
    floor = dropout_floor(fit.filled, fit.missing)
    if floor is not None:
        below = fit.filled < floor
        dropout = np.where(fit.filled > 0, 1.0 - fit.filled / floor, 1.0)
        severity = np.where(below, np.maximum(severity, dropout), severity)
    severity[fit.missing] = 0.0
    severity = np.clip(np.nan_to_num(severity), 0.0, 1.0)

    is_anomaly = severity > 0
    limit = int(np.floor(config.max_anomaly_ratio * x.size))
    if np.count_nonzero(is_anomaly) > limit:
        keep = np.argsort(-severity, kind="stable")[:limit]
        capped = np.zeros_like(is_anomaly)
        capped[keep] = True
        is_anomaly &= capped
        severity = np.where(is_anomaly, severity, 0.0)
    positive = is_anomaly & (fit.filled >= expected)
    return EntireResult(
        period=fit.period,
        expected_values=expected,
        upper_margins=upper,
        lower_margins=lower,
        is_anomaly=is_anomaly,
        is_positive_anomaly=positive,
        is_negative_anomaly=is_anomaly & ~positive,
        severity=severity,
    )


def suggested_window(period: int) -> int:
    """Points of history the *last* mode wants: four cycles, or 28 points without seasonality."""
    return int(min(max(4 * period + 1, 29), 8640)) if period else 29


def detect_last(values: np.ndarray, config: UnivariateConfig) -> LastResult:
    """Judge the last point of a series from the points before it.

    Args:
        values: 1-D float readings (NaN = missing; at least 12 points). The last one is judged.
        config: Sensitivity and period (``max_anomaly_ratio`` is not used).

    Returns:
        The expected value, margins and judgement of the last point.

    Raises:
        ValueError: If ``values`` is not 1-D or has fewer than 12 points.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < MIN_POINTS:
        raise ValueError(f"need a 1-D series of at least {MIN_POINTS} points, got {x.shape}")
    history = x[:-1]
    fit = _fit(history, config.period)
    p = fit.period
    n = history.size
    # Same phase one cycle back, and the trend's own (drift-following) estimate at the end.
    seasonal = float(fit.seasonal[n - p]) if p else 0.0
    expected = float(fit.trend[-1]) + seasonal
    k_up, k_down = _factors(fit, config.sensitivity)
    same_phase = n - p if p else n - 1
    uppers, lowers = _margins(fit, config.sensitivity, k_up, k_down)
    upper = float(max(uppers[-1], uppers[same_phase]))
    lower = float(max(lowers[-1], lowers[same_phase]))
    value = float(x[-1])
    window = suggested_window(p)
    if not np.isfinite(value):
        return LastResult(p, window, expected, upper, lower, False, False, False, 0.0)
    deviation = value - expected
    severity = 0.0
    if deviation > upper:
        severity = 1.0 - upper / deviation
    elif -deviation > lower:
        severity = 1.0 - lower / -deviation
    filled, missing = fill_missing(x)
    severity = max(severity, float(_flatline_mask(filled, missing, config.sensitivity)[-1]))
    severity = max(severity, dropout_severity(value, dropout_floor(fit.filled, fit.missing)))
    is_anomaly = severity > 0.0
    return LastResult(
        period=p,
        suggested_window=window,
        expected_value=expected,
        upper_margin=upper,
        lower_margin=lower,
        is_anomaly=is_anomaly,
        is_positive_anomaly=is_anomaly and deviation >= 0,
        is_negative_anomaly=is_anomaly and deviation < 0,
        severity=float(min(max(severity, 0.0), 1.0)),
    )
