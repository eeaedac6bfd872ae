"""Change-point detection: where the level of a series moves to a new, stable value.

For every point ``t`` the median of the ``W`` points from ``t`` on is compared with the median
of the ``W`` points before it (``W`` = ``stable_trend_window``, and again with ``4W`` and
``16W``, since a modest shift that holds for long is a change too), after removing
seasonality (given or detected period) and a steady drift (a slope moves every window by the
same amount, so it is no change). Medians ignore spikes shorter than half a window.

**What the confidence means.** The difference is standardised by how much such differences
vary in this series (a robust spread over all points, so autocorrelated or wandering series
are judged by their own standard, not by white noise's) and turned into a two-sided p-value:
how often a jump this large happens at one point of this series where nothing changes.
Differences of medians have heavier tails than the Gaussian p-value assumes, so ``p`` is the
larger of the Gaussian one and the one read off the series' own upper tail (an exponential
fitted beyond its 90 % quantile). One point is one of many tests, so the confidence is
corrected for the (about ``2L / W``) independent tests a change-free stretch of
``L = STRETCH_WINDOWS * W`` points makes (100 stable windows: 1,000 points at the default
``W = 10``, about 17 hours of minute readings)::

    confidence = (1 - p) ** (2 * min(n, L) / W)

that is, the probability that a stretch of 100 stable windows without any change would show
no jump this large. At the default threshold 0.99 a change-free series gets about one false
change per 100 such stretches, whatever its length (the correction no longer grows with the
series, so the same change keeps the same confidence in a day or in a week of data).

A change point is reported at the best split (a CUSUM over the window around the peak) of
every stretch where the confidence reaches ``threshold``, at most one per ``W`` points; its
confidence score is the peak of that stretch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from shared.engine.periodicity import detect_period
from shared.engine.robust import block_trend, cycle_median, fill_missing, median_filter
from shared.errors import EngineError

logger = logging.getLogger(__name__)

__all__ = ["ChangePointConfig", "ChangePointResult", "detect_change_points"]

_MAD_TO_SIGMA = 1.482602218505602
#: Jumps beyond this many robust deviations (and a window around them) are left out when
#: learning how jumps normally vary; at least _MIN_CALM jumps must remain.
_WILD = 6.0
_MIN_CALM = 50
#: The confidence is corrected for the tests of a stretch of this many stable windows.
STRETCH_WINDOWS = 100


@dataclass(frozen=True)
class ChangePointConfig:
    """Parameters of change-point detection (v1.1 names in snake case).

    Attributes:
        period: Points per cycle; ``None`` detects it, ``0`` means no seasonality.
        stable_trend_window: Points the level must hold before and after a change (>= 3).
        threshold: Confidence (0-1, exclusive) a point needs to be reported.
    """

    period: int | None = None
    stable_trend_window: int = 10
    threshold: float = 0.99

    def __post_init__(self) -> None:
        if self.stable_trend_window < 3:
            raise EngineError(f"stable_trend_window must be >= 3, got {self.stable_trend_window}")
        if not 0.0 < self.threshold < 1.0:
            raise EngineError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.period is not None and self.period < 0:
            raise EngineError(f"period must be >= 0 (0 = no seasonality), got {self.period}")


@dataclass(frozen=True)
class ChangePointResult:
    """Per-point change-point flags and confidence scores (in ``[0, 1]``)."""

    period: int
    is_change_point: np.ndarray
    confidence_scores: np.ndarray


def _deseasonalise(x: np.ndarray, period: int | None) -> tuple[np.ndarray, int]:
    n = x.size
    p = detect_period(x) if period is None else period
    if p <= 1 or n < 2 * p:
        return x, 0
    seasonal = cycle_median(x - block_trend(x, p), p, 2, leave_out=True)
    return x - seasonal, p


def _window_medians(y: np.ndarray, w: int) -> np.ndarray:
    """``out[a]`` = median of ``y[a : a + w]`` for ``a`` in ``0 .. n - w``."""
    # ndimage's window of size w around i is y[i - w//2 : i - w//2 + w] for odd and even w.
    filtered = median_filter(y, w, "nearest")
    return np.asarray(filtered[w // 2 : w // 2 + y.size - w + 1])


def _window_means(y: np.ndarray, w: int) -> np.ndarray:
    """``out[a]`` = mean of ``y[a : a + w]`` for ``a`` in ``0 .. n - w``."""
    sums = np.cumsum(np.concatenate([[0.0], y]))
    return np.asarray((sums[w:] - sums[:-w]) / w)


def _clipped(y: np.ndarray) -> np.ndarray:
    """``y`` with values beyond three interquartile ranges of its quartiles clipped (spikes)."""
    q1, q3 = np.quantile(y, [0.25, 0.75])
    reach = 3.0 * max(float(q3 - q1), 1e-12)
    return np.asarray(np.clip(y, q1 - reach, q3 + reach))


def _scale_confidence(y: np.ndarray, w: int, stretch: int, *, means: bool = False) -> np.ndarray:
    """Per-point confidence that the level changes at that point, judged with windows of ``w``
    and corrected for the tests a change-free ``stretch`` of points makes."""
    n = y.size
    out = np.zeros(n)
    if n < 2 * w + 1:
        return out
    # medians[a] = median(y[a : a + w]); or the mean of the spike-clipped series, which a
    # meter switching between two levels (a fridge on and off) does not flip like a median.
    medians = _window_means(_clipped(y), w) if means else _window_medians(y, w)
    t = np.arange(w, n - w + 1)
    raw = medians[t] - medians[t - w]
    # A steady slope moves every window alike: remove it (coarse, so a step survives).
    drift = block_trend(raw, 8 * w)
    jump = raw - drift
    # How jumps vary where nothing happens: leave out the surroundings of wild jumps (a large
    # change fills a window-wide stretch of jumps, which would otherwise set the standard).
    centre = float(np.median(jump))
    wild = np.abs(jump - centre) > _WILD * float(np.median(np.abs(jump - centre))) * _MAD_TO_SIGMA
    near_wild = _dilate(wild, w)
    calm = jump[~near_wild] if np.count_nonzero(~near_wild) >= _MIN_CALM else jump
    spread = float(np.median(np.abs(calm - np.median(calm)))) * _MAD_TO_SIGMA
    if spread <= 0:
        # Piecewise-constant data: any real move is a change; scale by the value range.
        spread = max(float(np.ptp(y)) * 1e-6, 1e-12)
    z = np.abs(jump) / spread
    from scipy import special  # imported on first use: it is slow to import

    tail = _tail_probability(z, np.abs(calm) / spread)
    p_value = np.maximum(special.erfc(z / np.sqrt(2.0)), tail)
    tests = 2.0 * min(n, stretch) / w
    out[t] = np.exp(tests * np.log1p(-np.minimum(p_value, 1.0 - 1e-16)))
    return out


def _best_split(y: np.ndarray, lo: int, hi: int) -> int:
    """The split of ``y[lo:hi]`` that best separates two levels (maximum CUSUM)."""
    seg = y[lo:hi]
    m = seg.size
    if m < 2:
        return lo
    # Clip outliers so that a spike cannot pull the split.
    med = float(np.median(seg))
    mad = float(np.median(np.abs(seg - med))) * _MAD_TO_SIGMA
    if mad > 0:
        seg = np.clip(seg, med - 4 * mad, med + 4 * mad)
    centred = seg - seg.mean()
    cusum = np.cumsum(centred)[:-1]
    # Standardised CUSUM: splits near the edges are not favoured.
    k = np.arange(1, m)
    stat = np.abs(cusum) / np.sqrt(k * (m - k) / m)
    return lo + 1 + int(np.argmax(stat))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` widened by ``radius`` points on both sides."""
    n = mask.size
    hits = np.flatnonzero(mask)
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, np.maximum(hits - radius, 0), 1)
    np.add.at(edges, np.minimum(hits + radius + 1, n), -1)
    return np.asarray(np.cumsum(edges[:n]) > 0)


def _tail_probability(z: np.ndarray, calm: np.ndarray) -> np.ndarray:
    """Exceedance probability of ``z`` from the upper tail of the calm jumps ``calm``.

    Median differences of real (and even Gaussian) data have heavier tails than the normal
    p-value assumes; the series' own tail (exponential beyond its 90 % quantile) says how
    often a value this large happens. The excess scale comes from the median excess, so a
    few true changes do not inflate it.
    """
    u = float(np.quantile(calm, 0.9))
    excess = calm[calm > u] - u
    if excess.size < 20:
        return np.zeros_like(z)
    beta = max(float(np.median(excess)) / float(np.log(2.0)), 1e-12)
    share = excess.size / calm.size
    return np.asarray(np.where(z > u, share * np.exp(-(z - u) / beta), share))


def detect_change_points(values: np.ndarray, config: ChangePointConfig) -> ChangePointResult:
    """Detect level changes in a series.

    Args:
        values: 1-D float readings (NaN = missing; at least ``2 * stable_trend_window + 1``
            points for anything to be found).
        config: Period, stable-trend window and confidence threshold.

    Returns:
        Per-point change-point flags and confidence scores.

    Raises:
        EngineError: If ``values`` is not 1-D.
    """
    x, missing = fill_missing(np.asarray(values, dtype=np.float64))
    if x.ndim != 1:
        raise EngineError(f"need a 1-D series, got shape {x.shape}")
    n = x.size
    w = config.stable_trend_window
    flags = np.zeros(n, dtype=bool)
    scores = np.zeros(n)
    y, period = _deseasonalise(x, config.period)
    if n < 2 * w + 1:
        return ChangePointResult(period, flags, scores)

    # The stable window itself, and 4x and 16x longer ones: a modest shift that then holds
    # for long is as much a change as a large one, and longer windows see it.
    stretch = STRETCH_WINDOWS * w
    for scale, means in ((w, False), (4 * w, False), (16 * w, True)):
        scores = np.maximum(scores, _scale_confidence(y, scale, stretch, means=means))
    scores = np.clip(scores, 0.0, 1.0)
    scores[missing] = 0.0

    above = scores >= config.threshold
    # Each stretch above the threshold is one change (stretches less than a window apart are
    # one stretch); locate it by the best split over the stretch and a window either side.
    starts = np.flatnonzero(above & ~np.concatenate([[False], above[:-1]])).tolist()
    ends = np.flatnonzero(above & ~np.concatenate([above[1:], [False]])).tolist()
    stretches: list[list[int]] = []
    for s, e in zip(starts, ends, strict=True):
        if stretches and s - stretches[-1][1] <= w:
            stretches[-1][1] = e
        else:
            stretches.append([s, e])
    last = -w
    for s, e in stretches:
        best = float(scores[s : e + 1].max())
        split = _best_split(y, max(0, s - w), min(n, e + w + 1))
        while split < n - 1 and missing[split]:
            split += 1  # a change "at" a missing point is reported at the next reading
        if missing[split] or split - last < w:
            continue
        flags[split] = True
        scores[split] = max(scores[split], best)
        last = split
    logger.debug("%s change points in %s points (period %s)", int(flags.sum()), n, period)
    return ChangePointResult(period, flags, scores)
