"""Change-point detection: where the level of a series moves to a new value that then holds.

The series is first freed of seasonality (one profile per phase of the given or detected
period, the median over all cycles, so the profile's own noise adds no slow wander), of spikes
(clipped beyond three interquartile ranges of the quartiles, and beyond five robust spreads
from a running median of ``2W + 1`` points, ``W`` = ``stable_trend_window``: a burst shorter
than a window is no level) and of a steady drift (removed when the median move from one block
of ``4W`` points to the next is clearly not 0: a slope moves every block alike, a change moves
one; its size is the median slope over all pairs of blocks).

Then seeded binary segmentation: stretches of ``n, n/2, n/4, ...`` down to ``2W`` points,
overlapping by half. The split of a stretch that best separates two levels (the largest
standardised CUSUM, at least ``W`` points on each side: the new level must last a window, a
level change and not a spike) is kept when its confidence reaches ``threshold``; the most
significant split of the stretches inside the part being searched (or of the part itself) is
taken first, and both sides are searched again. Each change is then placed at the best split
of the stretch that found it, between its neighbours.

**The noise a move is measured against** is the series' long-run variance ``σ²`` (the
variance of a mean of ``m`` points is ``σ² / m``), which counts autocorrelation: it is read
off the differences of consecutive block means (``Var = 2σ² / b``, a robust spread, so the
few blocks a true change touches do not set it), for blocks of ``2W``, ``4W`` and ``8W``
points, and the largest is used (correlation longer than a small block raises the larger
ones). A move is therefore judged against how much the level of this series wanders by
itself, not against white noise: an autocorrelated or on/off meter needs a larger move than a
white-noise one.

**What the confidence means.** For a split at ``k`` of a stretch of ``m`` points,
``u = |S_k| / sqrt(σ² k (m - k) / m)`` (``S_k`` the cumulative sum of the deviations from the
stretch's mean) is the two-sample z of the means left and right of ``k``. ``p`` is the
probability that a change-free stretch of ``m`` points shows a ``u`` this large at *any* of its
admissible splits (standardised Brownian bridge over the fractions ``[e, 1 - e]``,
``e = W / m``)::

    p ≈ u φ(u) log((1 - e)² / e²) + 2 (1 - Φ(u))
    confidence = 1 - min(1, N p)

with ``N`` the number of seeded stretches (about ``2n / W``), a Bonferroni correction over
positions and scales. So ``confidence`` is (at least) the probability that a series of this
length without any change would show no move this large anywhere: at the default threshold
0.99 a change-free series gets a false change in at most about one case in a hundred, whatever
its length (a longer series needs a larger move for the same confidence). A further split of
a part already split is one more such test. Points that are not changes score the confidence
of splitting their final segment there (0 within ``W`` points of a segment's ends).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from shared.engine.periodicity import detect_period
from shared.engine.robust import block_trend, fill_missing, median_filter
from shared.errors import EngineError

logger = logging.getLogger(__name__)

__all__ = ["ChangePointConfig", "ChangePointResult", "detect_change_points"]

_MAD_TO_SIGMA = 1.482602218505602
#: Block sizes (in windows) whose consecutive means set the long-run variance.
_LRV_BLOCKS = (2, 4, 8)
#: Fewest blocks for a block size to be used.
_MIN_BLOCKS = 8
#: Block size (in windows) of the steady drift.
_DRIFT_BLOCK = 4
#: A drift is removed when its median block step is this many standard errors from 0.
_DRIFT_Z = 4.0
#: Spikes are clipped this many robust spreads from the running median.
_SPIKE_REACH = 5.0
#: Most blocks whose pairs estimate a drift's slope.
_SLOPE_BLOCKS = 200
#: Most rounds of moving each change to the best split between its neighbours.
_REFINE_ROUNDS = 5


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
    """``x`` less one seasonal profile (per-phase median over all cycles of the detrended
    series, centred), and the period used (0: none)."""
    n = x.size
    p = detect_period(x) if period is None else period
    if p <= 1 or n < 2 * p:
        return x, 0
    cycles = -(-n // p)
    padded = np.full(cycles * p, np.nan)
    padded[:n] = x - block_trend(x, p)
    profile = np.nanmedian(padded.reshape(cycles, p), axis=0)
    profile -= profile.mean()
    return x - np.tile(profile, cycles)[:n], p


def _clipped(y: np.ndarray) -> np.ndarray:
    """``y`` with values beyond three interquartile ranges of its quartiles clipped (spikes)."""
    q1, q3 = np.quantile(y, [0.25, 0.75])
    reach = 3.0 * max(float(q3 - q1), 1e-12)
    return np.asarray(np.clip(y, q1 - reach, q3 + reach))


def _despiked(y: np.ndarray, w: int) -> np.ndarray:
    """``y`` clipped to its running median (``2W + 1`` points: it keeps a level that holds a
    window and drops a burst shorter than that) plus or minus ``_SPIKE_REACH`` robust
    spreads of the residual, after the global clip of ``_clipped``."""
    y = _clipped(y)
    level = median_filter(y, 2 * w + 1, "nearest")
    spread = _robust_spread(y - level)
    if spread <= 0:
        return y
    reach = _SPIKE_REACH * spread
    return np.asarray(np.clip(y, level - reach, level + reach))


def _block_mean_steps(y: np.ndarray, b: int) -> np.ndarray:
    """Differences of the means of consecutive blocks of ``b`` points."""
    nb = y.size // b
    return np.diff(y[: nb * b].reshape(nb, b).mean(axis=1))


def _robust_spread(d: np.ndarray) -> float:
    return float(np.median(np.abs(d - np.median(d)))) * _MAD_TO_SIGMA


def _without_drift(y: np.ndarray, w: int) -> np.ndarray:
    """``y`` less a steady slope: the median move from one block of ``4W`` to the next."""
    b = _DRIFT_BLOCK * w
    if y.size // b < _MIN_BLOCKS:
        return y
    steps = _block_mean_steps(y, b)
    typical = float(np.median(steps))
    # Only a clear drift: the median of noise has a standard error of 1.25 spreads / sqrt(count),
    # and a noise slope removed over the whole series would itself look like a change.
    if abs(typical) <= _DRIFT_Z * 1.25 * _robust_spread(steps) / np.sqrt(steps.size):
        return y
    # Its size from all pairs of blocks (Theil-Sen; at most _SLOPE_BLOCKS blocks), far less
    # noisy than the median step.
    b = max(b, y.size // _SLOPE_BLOCKS)
    nb = y.size // b
    means = y[: nb * b].reshape(nb, b).mean(axis=1)
    i, j = np.triu_indices(nb, 1)
    slope = float(np.median((means[j] - means[i]) / ((j - i) * b)))
    return np.asarray(y - slope * np.arange(y.size))


def _long_run_variance(y: np.ndarray, w: int) -> float:
    """Long-run variance (``Var(mean of m points) ≈ σ² / m``) from consecutive block means."""
    best = 0.0
    for blocks in _LRV_BLOCKS:
        b = blocks * w
        if y.size // b < _MIN_BLOCKS:
            continue
        best = max(best, b * _robust_spread(_block_mean_steps(y, b)) ** 2 / 2.0)
    if best <= 0.0:
        # Short or piecewise-constant series: the plain variance (or a floor of the range).
        best = float(np.var(y))
    return max(best, (float(np.ptp(y)) * 1e-6) ** 2, 1e-24)


def _split_statistic(seg: np.ndarray, sigma2: float, w: int) -> np.ndarray:
    """``u[k - 1]`` for the split of ``seg`` before index ``k`` (0 where a side has < ``w``)."""
    m = seg.size
    cusum = np.cumsum(seg - seg.mean())[:-1]
    k = np.arange(1, m)
    u = np.abs(cusum) / np.sqrt(sigma2 * k * (m - k) / m)
    return np.asarray(np.where((k >= w) & (m - k >= w), u, 0.0))


def _no_change_probability(u: np.ndarray, m: int, w: int) -> np.ndarray:
    """Probability that a change-free stretch of ``m`` points shows a split statistic ``u``
    anywhere (standardised Brownian bridge over ``[w / m, 1 - w / m]``)."""
    from scipy import special  # imported on first use: it is slow to import

    e = w / m
    span = np.log((1.0 - e) ** 2 / e**2)
    density = np.exp(-0.5 * u * u) / np.sqrt(2.0 * np.pi)
    return np.asarray(np.minimum(1.0, u * density * span + special.erfc(u / np.sqrt(2.0))))


def _seeded_intervals(n: int, w: int) -> list[tuple[int, np.ndarray]]:
    """Seeded stretches: for each length ``L = n, n/2, n/4, ... >= 2W``, starts every ``L/2``
    (the last one ending at ``n``)."""
    levels: list[tuple[int, np.ndarray]] = []
    length = n
    while length >= 2 * w:
        starts = np.unique(np.append(np.arange(0, n - length + 1, max(1, length // 2)), n - length))
        levels.append((length, starts))
        if length == 2 * w:
            break
        length = max(2 * w, length // 2)
    return levels


def _interval_splits(
    y: np.ndarray, sigma2: float, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every seeded stretch ``[a, b)``: its best split and the split's uncorrected
    no-change probability (``a, b, split, p``)."""
    sums = np.concatenate([[0.0], np.cumsum(y)])
    out_a, out_b, out_split, out_p = [], [], [], []
    for length, starts in _seeded_intervals(y.size, w):
        k = np.arange(w, length - w + 1)
        left = sums[starts[:, None] + k] - sums[starts][:, None]
        total = (sums[starts + length] - sums[starts])[:, None]
        u = np.abs(left - k * total / length) / np.sqrt(sigma2 * k * (length - k) / length)
        best = np.argmax(u, axis=1)
        out_a.append(starts)
        out_b.append(starts + length)
        out_split.append(starts + k[best])
        out_p.append(_no_change_probability(u[np.arange(starts.size), best], length, w))
    return (
        np.concatenate(out_a),
        np.concatenate(out_b),
        np.concatenate(out_split),
        np.concatenate(out_p),
    )


def _best_split(y: np.ndarray, lo: int, hi: int, sigma2: float, w: int) -> tuple[int, float]:
    """The best split of ``y[lo:hi]`` (its index) and its uncorrected no-change probability."""
    u = _split_statistic(y[lo:hi], sigma2, w)
    j = int(np.argmax(u))
    if u[j] <= 0:
        return lo, 1.0
    return lo + j + 1, float(_no_change_probability(u[j : j + 1], hi - lo, w)[0])


def _segment(
    y: np.ndarray, sigma2: float, w: int, threshold: float
) -> tuple[dict[int, float], float]:
    """Seeded binary segmentation: change index -> confidence of its split, and the number of
    seeded stretches (the tests the confidence is corrected for).

    A stretch is split at the most significant split among the seeded stretches inside it and
    the stretch itself (short stretches see a brief plateau that a split of the whole would
    miss), while that split's probability, times the number of seeded stretches, is at most
    ``1 - threshold``; then each change is moved to the best split of the stretch that found
    it, bounded by its neighbours (a split of a stretch holding two changes can land beside
    the true one).
    """
    a, b, split, p = _interval_splits(y, sigma2, w)
    tests = float(a.size)
    found: dict[int, tuple[float, int, int]] = {}
    stack = [(0, y.size)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo < 2 * w:
            continue
        cut, p_best = _best_split(y, lo, hi, sigma2, w)
        at_lo, at_hi = lo, hi
        inside = np.flatnonzero((a >= lo) & (b <= hi))
        if inside.size:
            best = int(inside[np.argmin(p[inside])])
            if p[best] < p_best:
                cut, p_best, at_lo, at_hi = (
                    int(split[best]),
                    float(p[best]),
                    int(a[best]),
                    int(b[best]),
                )
        confidence = 1.0 - min(1.0, tests * p_best)
        if confidence >= threshold:
            found[cut] = (confidence, at_lo, at_hi)
            stack += [(lo, cut), (cut, hi)]
    for _ in range(_REFINE_ROUNDS):
        cuts = sorted(found)
        moved: dict[int, tuple[float, int, int]] = {}
        for i, cut in enumerate(cuts):
            confidence, at_lo, at_hi = found[cut]
            lo = max(at_lo, cuts[i - 1] if i else 0)
            hi = min(at_hi, cuts[i + 1] if i + 1 < len(cuts) else y.size)
            new = _best_split(y, lo, hi, sigma2, w)[0] if hi - lo >= 2 * w else cut
            if new not in moved or moved[new][0] < confidence:
                moved[new] = (confidence, at_lo, at_hi)
        if sorted(moved) == cuts:
            break
        found = moved
    return {cut: conf for cut, (conf, _, _) in found.items()}, tests


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

    y = _without_drift(_despiked(y, w), w)
    sigma2 = _long_run_variance(y, w)
    changes, tests = _segment(y, sigma2, w, config.threshold)
    # Every other point: the confidence of splitting its final segment there.
    bounds = [0, *sorted(changes), n]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b - a >= 2 * w:
            u = _split_statistic(y[a:b], sigma2, w)
            p_none = np.minimum(1.0, tests * _no_change_probability(u, b - a, w))
            scores[a + 1 : b] = np.where(u > 0, 1.0 - p_none, 0.0)
    last = -w
    for split in sorted(changes):
        at = split
        while at < n - 1 and missing[at]:
            at += 1  # a change "at" a missing point is reported at the next reading
        if missing[at] or at - last < w:
            continue
        flags[at] = True
        scores[at] = max(scores[at], changes[split])
        last = at
    scores = np.clip(scores, 0.0, 1.0)
    scores[missing] = 0.0
    logger.debug("%s change points in %s points (period %s)", int(flags.sum()), n, period)
    return ChangePointResult(period, flags, scores)
