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
    BUSY_BLOCKS,
    BUSY_RUNS,
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
#: Blocks on each side whose spreads a block's own is the median with (robust fits).
_NEIGHBOUR_BLOCKS = 2
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
    #: Robust fits only: the noise level by phase and each block's own (not neighbour-median)
    #: scales above and below, which a cluster of bursts widens.
    base: np.ndarray | None = None
    local_up: np.ndarray | None = None
    local_down: np.ndarray | None = None


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


def _fit(values: np.ndarray, period: int | None, *, robust: bool = False) -> _Fit:
    """The robust decomposition of ``values`` (see the module docstring, steps 1-4).

    With ``robust``, block spreads are medians over neighbouring blocks
    (:func:`~shared.engine.robust.sided_spread`), so that an excursion of a few hours cannot
    widen its own band; entire and last use it.
    """
    x, missing = fill_missing(values)
    n = x.size
    p = _usable_period(period, x)
    if p:
        # A rough level from cycle-long block medians: flat over a cycle of pure seasonality.
        rough = block_trend(x, p)
        raw_seasonal, season_spread = cycle_median_and_spread(x - rough, p, _SEASON_HALF_WIDTH)
        # Smoothed over phases (an hour in a robust fit) so that the bursts of other cycles
        # do not make the expected line jagged.
        smooth = odd(min(p // 24, 31)) if robust else odd(min(p // 48, 7))
        seasonal = running_median(raw_seasonal, smooth) if smooth > 1 else raw_seasonal
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
    block = _block_length(n, p)
    up, down, busy_up, busy_down = sided_spread(
        residual / base,
        block,
        busy_factor=_BUSY_FACTOR,
        weight=base,
        neighbours=_NEIGHBOUR_BLOCKS if robust else 0,
    )
    up, down = np.maximum(up, _MAX_SKEW * down), np.maximum(down, _MAX_SKEW * up)
    scale_up = np.maximum(base * up, floor)
    scale_down = np.maximum(base * down, floor)
    local_up = local_down = None
    if robust:
        own_up, own_down, _, _ = sided_spread(residual / base, block)
        own_up, own_down = (
            np.maximum(own_up, _MAX_SKEW * own_down),
            np.maximum(own_down, _MAX_SKEW * own_up),
        )
        local_up = np.maximum(base * own_up, scale_up)
        local_down = np.maximum(base * own_down, scale_down)
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
        base=base if robust else None,
        local_up=local_up,
        local_down=local_down,
    )


def _block_length(n: int, period: int) -> int:
    """Points per block of the local spreads: an eighth of a cycle, 96 to 360 points."""
    return min(max(period // 8 if period else n // 40, 96), 360)


def _tiny(x: np.ndarray) -> float:
    """A scale floor for (nearly) constant series: relative to the magnitude of the data."""
    magnitude = float(np.max(np.abs(x))) if x.size else 0.0
    return max(magnitude * 1e-6, 1e-9)


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
        ValueError: If ``values`` is not 1-D or has fewer than 12 points.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < MIN_POINTS:
        raise ValueError(f"need a 1-D series of at least {MIN_POINTS} points, got {x.shape}")
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
