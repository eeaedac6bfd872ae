"""The robust decomposition of a series: period, seasonality, trend, residual and scales.

Steps 1-4 of :mod:`shared.engine.univariate` (read its docstring for the model); the margins
built on these scales live in :mod:`shared.engine.bands`.
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

_MAD_TO_SIGMA = 1.4826
#: Cycles on each side that the seasonal median looks at.
_SEASON_HALF_WIDTH = 2
#: Fraction of the series-wide spread below which no local scale may fall.
_GLOBAL_FLOOR = 0.25
#: For bursty series the margin at the default sensitivity is ~1.6 x the typical large burst.
_BURST_Z = 2.6
#: Excursions beyond this many spreads count towards a busy block (see ``sided_spread``).
_BUSY_FACTOR = 3.0
#: Blocks on each side whose spreads a block's own is the median with (robust fits).
_NEIGHBOUR_BLOCKS = 2
#: Each side of the band is at least this fraction of the other (discrete data have atoms).
_MAX_SKEW = 0.5


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
