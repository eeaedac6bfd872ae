"""Univariate anomaly detection: a whole series at once (*entire*) or its last point (*last*).

The model is a robust decomposition, built from medians so that anomalies do not bend it,
and cheap enough (vectorised NumPy, SciPy's running median) that 8,640 points take a few
milliseconds:

1. **Period** - given, or found by :func:`~shared.engine.periodicity.detect_period`.
2. **Seasonality** - cycle-long block medians give a rough level; each point's seasonal value
   is the median of the same phase in the (up to four) neighbouring cycles, its own cycle left
   out, smoothed over about an hour of phases (a running median: the bursts of other cycles
   do not make the expected line jagged). An anomaly confined to one cycle is not learned.
3. **Trend** - a running median of the deseasonalised series (at most a cycle long, edges
   extended point-symmetric so drift continues to the ends). A running median keeps steps
   sharp: after a level shift the expectation adapts at once instead of smearing the step.
4. **Scale** - how far readings normally stray, per point and per side
   (:mod:`shared.engine.decomposition`). For seasonal series a per-phase noise level
   (cross-cycle median of absolute residuals, and how inconsistent the seasonal shape is at
   that phase, averaged over neighbouring phases): quiet nights and busy evenings differ. Then,
   in blocks, the spread of the residual standardised by that level, separately above and
   below (75 %/90 % quantiles), each block's value the median of its own and two neighbours on
   each side, so that **an excursion of a few hours cannot widen its own band**. Blocks where
   the band is left again and again (a heater cycling) are *busy*; when a series has several,
   busyness is normal and those blocks get a band from their 97 % quantiles. Floors: a
   quarter of the series-wide spread, half the quantisation step, and for series that sit on
   one value and burst (sub-meters, error counts) the size of their normal bursts.
5. **Margins** (:mod:`shared.engine.bands`, :mod:`shared.engine.tails`) -
   ``k(sensitivity) * scale``, where ``k`` is widened per side until the series' own tail
   (peaks over threshold beyond the 97 % quantile, declustered: a run of exceedances counts
   once) would be exceeded with the false-alarm rate of the sensitivity; loud and quiet points
   get their own tail, so bursts already in a loud phase's scale do not widen it twice. The
   band widens locally only for excursions that recur at least five times (to 1.25x their
   size). Then :func:`~shared.engine.bands.plausible_band`: the expected value stays within
   the series' range, bounds within the range plus a typical margin, and **a series that has
   never been negative gets no negative lower bound**. Higher sensitivity gives narrower
   margins (v1.1 semantics).
6. **Judgement** - a point outside ``expected +- margin`` is anomalous. On top of that
   **sustained deviations** (a 7-point window median beyond what window medians of this series
   reach, for at least two windows: a two-hour shift whose points each stay near the band),
   the first point of a level shift (the median of the next points and the point itself both
   leave the band of the level before, by a jump unusual for this series, moving away from the
   expected level), flat-lines and dropouts (:mod:`shared.engine.rules`) are flagged. At most
   ``max_anomaly_ratio`` of the points are kept, the most severe first.

Severity is ``1 - margin / |value - expected|`` for points outside the band (0 at the edge of the
band, approaching 1 far outside), ``1 - threshold / |window median|`` for sustained deviations,
and grows with the length of a flat-line.

*Last* fits the same model to the points before the last one and judges that point with the
band, and with :mod:`shared.engine.recent`'s past-only rule for sustained deviations: while a
level shift lasts (up to a horizon, then it is the new normal) each successive last-point call
keeps flagging its points against the level before it. The level-shift onset test, which
needs the points after, is not used.

Missing values (NaN) are interpolated for fitting, never flagged, and still receive an
expected value and margins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

# Moved by subject; re-exported here, where streaming and older callers import them from.
from shared.engine.bands import (
    _factors as _factors,
)
from shared.engine.bands import (
    _local_factors,
    _margins,
    _widened,
    plausible_band,
)
from shared.engine.decomposition import (
    _MAD_TO_SIGMA,
)
from shared.engine.decomposition import (
    _Fit as _Fit,
)
from shared.engine.decomposition import (
    _fit as _fit,
)
from shared.engine.decomposition import (
    _trend_window as _trend_window,
)
from shared.engine.periodicity import detect_period
from shared.engine.recent import recent_sustained_severity
from shared.engine.robust import block_trend, fill_missing, running_median
from shared.engine.rules import (
    FlatlineRule,
    _flatline_mask,
    dropout_floor,
    dropout_severity,
    flatline_rule,
)
from shared.engine.tails import (
    _MAX_TAIL,
    _RECUR_MARGIN,
    _pot_level,
    _recurring_level,
    false_alarm_rate,
    margin_factor,
)
from shared.engine.tails import (
    _tail_factor as _tail_factor,
)
from shared.errors import EngineError

logger = logging.getLogger(__name__)

__all__ = [
    "EntireResult",
    "FlatlineRule",
    "LastResult",
    "UnivariateConfig",
    "detect_entire",
    "detect_last",
    "detect_period",
    "dropout_floor",
    "dropout_severity",
    "false_alarm_rate",
    "flatline_rule",
    "margin_factor",
    "plausible_band",
]


#: Shortest series the engine judges (the v1.1 contract's minimum).
MIN_POINTS = 12
#: The short window of the level-shift test (points on each side).
_SHORT_STEP = 7
#: How much more unusual than a point a jump between levels must be (there are many jumps).
_JUMP_FACTOR = 1.25


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
            raise EngineError(f"sensitivity must be between 0 and 99, got {self.sensitivity}")
        if not 0 < self.max_anomaly_ratio <= 0.5:
            raise EngineError(
                f"max_anomaly_ratio must be in (0, 0.5], got {self.max_anomaly_ratio}"
            )
        if self.period is not None and self.period < 0:
            raise EngineError(f"period must be >= 0 (0 = no seasonality), got {self.period}")


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


def _sustained(
    fit: _Fit,
    alpha: float,
    bands: tuple[np.ndarray, np.ndarray],
    widened: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Severity of sustained deviations from the band before its local widening.

    Where the band was widened for recurring excursions (``widened`` wider than ``bands``),
    or a block is busy, excursions are this series' normal life there and excused (see
    :func:`_sustained_severity`).
    """
    (upper, lower), (wide_up, wide_down) = bands, widened
    floor = _at_floor(fit)
    resting = floor if floor is not None else np.zeros(fit.filled.size, dtype=bool)
    return _sustained_severity(
        fit.residual,
        upper,
        lower,
        fit.missing,
        alpha,
        (wide_up > upper) | (fit.busy_up > 0),
        (wide_down > lower) | (fit.busy_down > 0) | resting,
    )


def _at_floor(fit: _Fit) -> np.ndarray | None:
    """Points of a never-negative series at its lowest known reading (``None`` otherwise)."""
    known = fit.filled[~fit.missing]
    if known.size == 0 or known.min() < 0:
        return None
    return np.asarray(fit.filled <= known.min())


def _sustained_severity(
    deviation: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    missing: np.ndarray,
    alpha: float,
    excused_up: np.ndarray,
    excused_down: np.ndarray,
) -> np.ndarray:
    """Severity of sustained deviations: runs of points away from the expected value that
    each stay inside the band, but together are too far to be noise.

    Each deviation is measured in its own band (``deviation / upper`` above, ``/ lower``
    below). The median of :data:`_SUSTAINED_WINDOW` points around a point is a much calmer
    statistic than one point: for Gaussian noise its spread is ``1.25 / sqrt(h)`` that of a
    point, so a window median beyond ``1.25 / sqrt(h)`` bands is as unusual as one point
    beyond the band. The threshold is at least that, and at least the level the series' own
    window medians reach with the false-alarm rate ``alpha`` (declustered peaks over
    threshold), so a wandering or autocorrelated series, whose window medians vary more,
    is judged by its own standard; it never exceeds one band. A point is flagged when its
    window median stays beyond the threshold on one side for at least two windows in a row
    and the point itself lies beyond it on that side; its
    severity is ``1 - threshold / |window median|``. Points ``excused_up`` (``_down``) are
    never high (low) deviations: where the band was widened for recurring excursions those
    are normal there, and a never-negative series at its lowest reading (a sub-meter off)
    rests in a state, it does not deviate (dropouts have their own rule).

    Returns:
        Per-point severities (0 where there is no sustained deviation).
    """
    h = _SUSTAINED_WINDOW
    n = deviation.size
    sev = np.zeros(n)
    if n < 4 * h:
        return sev
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(deviation >= 0, deviation / upper, deviation / lower)
    frac = np.where(missing | ~np.isfinite(frac), 0.0, frac)
    window = running_median(frac, h)
    floor = 1.2533 / float(np.sqrt(h))
    calm = np.abs(window)
    level = _pot_level(calm, alpha, decluster=True)
    # Sustained excursions that recur (a washing machine's runs) are normal for the series.
    recurring = _recurring_level(calm, np.full(n, floor))
    threshold = min(
        max(floor, level if level is not None else floor, _RECUR_MARGIN * recurring), 1.0
    )
    # Sustained means the window median stays beyond the threshold, on one side, for at
    # least two windows: a heater's on-spells of a few minutes are no sustained deviation.
    side = np.where(window > threshold, 1, np.where(window < -threshold, -1, 0))
    change = np.flatnonzero(np.diff(side)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [n]]))
    lasting = np.repeat((lengths >= 2 * h) & (side[starts] != 0), lengths)
    hit = lasting & (np.abs(frac) > threshold) & (window * frac > 0)
    hit &= ~missing
    hit &= ~np.where(frac > 0, excused_up, excused_down)
    sev[hit] = 1.0 - threshold / np.abs(window[hit])
    return sev


#: Points of the window median that judges sustained deviations.
_SUSTAINED_WINDOW = 7


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
        # A shift moves away from the expected level; a return towards it (the end of a
        # burst or of an earlier shift) is no new shift. The trend ``h`` points back has not
        # seen the jump yet.
        ref = fit.trend[idx - h]
        away = np.abs(after - ref) > np.abs(before - ref)
        hit = (
            unusual
            & away
            & np.where(jump > 0, (jump > up) & (own > up), (-jump > down) & (-own > down))
        )
        fresh = hit & ~big[idx]
        anchor[idx[fresh]] = level[fresh]
        big[idx] |= hit
    big &= ~fit.missing
    # A level shift onset is the first point of each run where the condition holds.
    first = big & ~np.concatenate([[False], big[:-1]])
    starts = np.flatnonzero(first)
    return starts, anchor[starts] + fit.seasonal[starts]


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


def detect_entire(values: np.ndarray, config: UnivariateConfig) -> EntireResult:
    """Detect anomalies in a whole series.

    Args:
        values: 1-D float readings (NaN = missing; at least 12 points).
        config: Sensitivity, anomaly ratio cap and period.

    Returns:
        Per-point expected values, margins, anomaly flags and severities.

    Raises:
        EngineError: If ``values`` is not 1-D or has fewer than 12 points.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < MIN_POINTS:
        raise EngineError(f"need a 1-D series of at least {MIN_POINTS} points, got {x.shape}")
    fit = _fit(x, config.period, robust=True)
    k_up, k_down = _local_factors(fit, config.sensitivity)
    band = _margins(fit, config.sensitivity, k_up, k_down, widen=False)
    raw_upper, raw_lower = _widened(fit, config.sensitivity, *band)
    expected, upper, lower = plausible_band(
        fit.seasonal + fit.trend, raw_upper, raw_lower, fit.filled[~fit.missing]
    )
    r = fit.filled - expected
    over = np.maximum(r - upper, 0.0)
    under = np.maximum(-r - lower, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        severity = np.where(over > 0, 1.0 - upper / np.abs(r), 0.0)
        severity = np.where(under > 0, 1.0 - lower / np.abs(r), severity)

    alpha = false_alarm_rate(config.sensitivity)
    onsets, old_level = _level_shift_onsets(
        fit, raw_upper, raw_lower, float(min(np.median(k_up), np.median(k_down))), alpha
    )
    if not fit.bursty:
        # A series that rests on one value and bursts has its bursts as its normal life.
        severity = np.maximum(severity, _sustained(fit, alpha, band, (raw_upper, raw_lower)))
    if onsets.size:
        known = fit.filled[~fit.missing]
        old_level = np.clip(old_level, known.min(), known.max())
        expected[onsets] = old_level
        deviation = np.abs(fit.filled[onsets] - old_level)
        band = np.where(fit.filled[onsets] > old_level, raw_upper[onsets], raw_lower[onsets])
        severity[onsets] = np.maximum(severity[onsets], 1.0 - band / deviation)
        if known.min() >= 0:
            lower[onsets] = np.minimum(lower[onsets], old_level)

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
        EngineError: If ``values`` is not 1-D or has fewer than 12 points.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < MIN_POINTS:
        raise EngineError(f"need a 1-D series of at least {MIN_POINTS} points, got {x.shape}")
    history = x[:-1]
    fit = _fit(history, config.period, robust=True)
    p = fit.period
    n = history.size
    # Same phase one cycle back, and the trend's own (drift-following) estimate at the end.
    seasonal = float(fit.seasonal[n - p]) if p else 0.0
    expected = float(fit.trend[-1]) + seasonal
    k_up, k_down = _local_factors(fit, config.sensitivity)
    same_phase = n - p if p else n - 1
    uppers, lowers = _margins(fit, config.sensitivity, k_up, k_down)
    bounded = plausible_band(
        np.array([expected]),
        np.array([max(uppers[-1], uppers[same_phase])]),
        np.array([max(lowers[-1], lowers[same_phase])]),
        fit.filled[~fit.missing],
        (float(np.median(uppers)), float(np.median(lowers))),
    )
    expected, upper, lower = (float(b[0]) for b in bounded)
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
    alpha = false_alarm_rate(config.sensitivity)
    severity = max(
        severity,
        recent_sustained_severity(value, seasonal, (upper, lower), fit, (uppers, lowers), alpha),
    )
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
