"""The streaming detector's refits: the robust batch model fitted to its recent history.

At the end of the warm-up and then every :func:`refit_interval` points,
:class:`~shared.engine.streaming.StreamDetector` hands its history to :func:`refit`, which
fits :mod:`shared.engine.univariate`'s model to it (ending at the last point), looks for the
period in auto mode, and sets what the detector judges the next points with: the seasonal
value and the noise scales (above and below) of each phase one cycle back, the drift, the
margin factors calibrated on the detector's own past errors, the flat-line and dropout rules.
The functions read and write the detector's private fields (as :mod:`shared.engine.
stream_state` does): they are its methods, kept in a room of their own.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from shared.engine.periodicity import detect_period
from shared.engine.robust import fill_missing
from shared.engine.stream_state import coarse, on_grid, season_step
from shared.engine.univariate import (
    _factors,
    _fit,
    _tail_factor,
    _trend_window,
    dropout_floor,
    false_alarm_rate,
    flatline_rule,
    margin_factor,
)

if TYPE_CHECKING:
    from shared.engine.streaming import StreamDetector

logger = logging.getLogger("shared.engine.streaming")

__all__ = ["YOUNG_POINTS", "YOUNG_WIDEN", "refit", "refit_interval"]

#: Window of recent readings whose median is the current level, and the widening of the
#: batch scale that the noise of that median adds (sqrt(1 + 1.4 / 5): a median of 5 has
#: about 1.4 / 5 of the variance of one reading).
_MAX_RECENT = 5
_LEVEL_NOISE = 1.13
#: Per-phase scales are kept above this share of their median and of the other side, and
#: above this share of how far the phase's seasonal value stands out.
_PHASE_FLOOR = 0.5
_FEATURE_SHARE = 0.1
#: Points over which the refit measures the trend's slope (at least a cycle).
_SLOPE_SPAN = 30
_SLOPE_HISTORY = 1024
#: History needed before the period is looked for (short stretches fake periods).
_MIN_DETECT = 300
#: Refits happen at most this often; a refit looks at this many cycles (at least _FIT_MIN).
_MIN_REFIT = 64
_FIT_CYCLES = 8
_FIT_MIN = 2048
#: Points between looks for the period (auto mode; half as many until one is adopted), and
#: the cycles in the history that make a single look enough.
_DETECT_EVERY = 512
_SURE_CYCLES = 6
#: The fewest own errors that give a tail (peaks over threshold needs ~1000), and the most
#: the calibration may widen the fit's factors.
_CAL_MIN = 1000
_CAL_MAX = 3.0
#: Fits on fewer points than this (or before two cycles of a known period) are young.
YOUNG_POINTS = 1000
YOUNG_WIDEN = 1.5


def _typical_busy(busy: np.ndarray) -> float:
    """The median busy spread where the fit found busy blocks (0 when it found none)."""
    found = busy[busy > 0]
    return float(np.median(found)) if found.size else 0.0


def refit_interval(d: StreamDetector) -> int:
    """Points between refits: an eighth of a cycle (64 to ``refit_every``), or 128."""
    if d._target:
        return min(max(d._target // 8, _MIN_REFIT), d._config.refit_every)
    return min(4 * _MIN_REFIT, d._config.refit_every)


def _detect(d: StreamDetector, values: np.ndarray) -> None:
    """Look for the period (auto mode); adopt it once two looks in a row agree, or at
    once when the history holds many cycles of it."""
    found = detect_period(values)
    previous = d._last_detected
    d._last_detected = found
    d._detected_at = d._count
    agree = previous is not None and abs(found - previous) <= max(1, 0.02 * max(found, 1))
    if agree or (found and values.size >= _SURE_CYCLES * found):
        d._target = found


def refit(d: StreamDetector, hurried: bool = False) -> None:
    """Fit the robust batch model to the recent history (it ends at the last point)."""
    values = np.array(d._history, dtype=np.float64)
    if d._config.period is None and values.size >= _MIN_DETECT:
        every = _DETECT_EVERY if d._target else _DETECT_EVERY // 2
        if d._count - d._detected_at >= every or d._last_detected is None:
            _detect(d, values)
    if d._target:
        values = values[-max(_FIT_CYCLES * d._target, _FIT_MIN) :]
    n = values.size
    fit = _fit(values, d._target)
    p = fit.period
    k = margin_factor(d._config.sensitivity)
    if p:
        # As the batch "last" judgement: the next point's seasonal value is the one a cycle
        # back (from the neighbouring cycles), its scale that of the same phase.
        last = np.arange(d._count - p, d._count) % p
        season = np.empty(p)
        up = np.empty(p)
        down = np.empty(p)
        season[last] = fit.seasonal[n - p :]
        up[last] = fit.scale_up[n - p :]
        down[last] = fit.scale_down[n - p :]
        busy_up = np.empty(p)
        busy_down = np.empty(p)
        busy_up[last] = fit.busy_up[n - p :]
        busy_down[last] = fit.busy_down[n - p :]
        # One cycle of per-phase scales is noisy: no phase below half the typical scale,
        # no side below half the other.
        # A cycle's large features vary in proportion to their size (a job's spike is
        # higher or lower, not just noisier): no phase's scale below that share of how far
        # its seasonal value stands out.
        feature = _FEATURE_SHARE * np.abs(season - float(np.median(season)))
        up = np.maximum(up, feature)
        down = np.maximum(down, feature)
        up = np.maximum(up, _PHASE_FLOOR * float(np.median(up)))
        down = np.maximum(down, _PHASE_FLOOR * float(np.median(down)))
        up, down = np.maximum(up, _PHASE_FLOOR * down), np.maximum(down, _PHASE_FLOOR * up)
        # Kept on coarse grids (scales ~2 % apart, the season at 1/64 of the noise or
        # finer): ample for a band, and a fraction of the state.
        d._scale_up = coarse(up * _LEVEL_NOISE)
        d._scale_down = coarse(down * _LEVEL_NOISE)
        d._busy_up = coarse(k * busy_up)
        d._busy_down = coarse(k * busy_down)
        step = season_step(float(np.median(d._scale_up)))
        d._season_step = step
        d._season = [on_grid(float(v), step) for v in season]
    else:
        d._season = [0.0]
        d._season_step = 0.0
        d._scale_up = [float(fit.scale_up[-1] * _LEVEL_NOISE)]
        d._scale_down = [float(fit.scale_down[-1] * _LEVEL_NOISE)]
        # Without a cycle, the next point may fall in a busy stretch as well as a quiet
        # one: where the history shows that busyness is normal (busy blocks, as the batch
        # judges them), its typical busy band applies even while the last block is calm.
        d._busy_up = [k * max(float(fit.busy_up[-1]), _typical_busy(fit.busy_up))]
        d._busy_down = [k * max(float(fit.busy_down[-1]), _typical_busy(fit.busy_down))]
    d._period = p
    known = ~fit.missing
    deseasonalised = (fit.filled - fit.seasonal)[known]
    window = min(_trend_window(n, p), _MAX_RECENT)
    if deseasonalised.size == 0:  # nothing but missing values so far
        deseasonalised = np.array([float(fit.trend[-1])])
    d._recent = deque((float(v) for v in deseasonalised[-window:]), maxlen=window)
    # Drift is carried on between refits, once there is enough history to tell drift from
    # an unrecognised cycle (whose rising half looks like a trend).
    d._slope = 0.0
    if p or n >= _SLOPE_HISTORY:
        span = min(max(p, n // 4, _SLOPE_SPAN), n - 1)
        d._slope = float(fit.trend[-1] - fit.trend[-1 - span]) / span
    d._k_up, d._k_down = _calibrated(d, *_factors(fit, d._config.sensitivity))
    # Until the fit has a tail to calibrate on and the season is in place, the band is
    # wider: the first cycles are judged from a model that is still guessing.
    if n < YOUNG_POINTS or (d._target and not p):
        d._k_up *= YOUNG_WIDEN
        d._k_down *= YOUNG_WIDEN
    filled, missing = fill_missing(values)
    d._flat = flatline_rule(filled, missing, d._config.sensitivity)
    d._floor = dropout_floor(filled, missing)
    d._since_refit = 0
    d._alarms = 0
    d._hurried = hurried
    d._ready = True
    logger.debug("stream refit at %s points: period %s", d._count, d._period)


def _calibrated(d: StreamDetector, k_up: float, k_down: float) -> tuple[float, float]:
    """Widen the fit's margin factors to the tails of the detector's own past errors."""
    if len(d._errors) < _CAL_MIN:
        return k_up, k_down
    z = np.array(d._errors, dtype=np.float64)
    alpha = false_alarm_rate(d._config.sensitivity)
    up = _tail_factor(np.maximum(z, 0.0), k_up, alpha)
    down = _tail_factor(np.maximum(-z, 0.0), k_down, alpha)
    return min(up, _CAL_MAX * k_up), min(down, _CAL_MAX * k_down)
