"""Robust building blocks shared by the detectors: gap filling, running medians, cycle medians.

All functions take and return float64 NumPy arrays and are vectorised (no Python loop over
points), so an 8,640-point series costs well under a millisecond per call. SciPy is imported
on first use, so importing the engine (and the function app) stays cheap.
"""

from __future__ import annotations

import numpy as np

#: Standard-normal quantiles that turn absolute-deviation quantiles into a standard deviation.
_Z = {0.5: 0.6744897501960817, 0.75: 1.1503493803760079, 0.9: 1.6448536269514722}


def _median_filter(y: np.ndarray, size: int, mode: str) -> np.ndarray:
    """``scipy.ndimage.median_filter``, imported on first use (it costs ~0.2 s to import)."""
    from scipy import ndimage

    return np.asarray(ndimage.median_filter(y, size=size, mode=mode))


def median_filter(y: np.ndarray, size: int, mode: str = "nearest") -> np.ndarray:
    """Centred running median of ``size`` points (SciPy's, imported on first use)."""
    return _median_filter(y, size, mode)


def odd(w: int) -> int:
    """Return ``w`` rounded up to an odd number, at least 1."""
    w = max(1, int(w))
    return w if w % 2 else w + 1


def fill_missing(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN/inf by linear interpolation (edges: nearest valid value).

    Args:
        values: 1-D readings, possibly with NaN for missing points.

    Returns:
        ``(filled, missing)``: the filled copy and the boolean mask of the points that were
        missing. An all-missing series is filled with zeros.
    """
    x = np.array(values, dtype=np.float64, copy=True)
    missing = ~np.isfinite(x)
    if missing.any():
        good = np.flatnonzero(~missing)
        if good.size == 0:
            x[:] = 0.0
        else:
            bad = np.flatnonzero(missing)
            x[bad] = np.interp(bad, good, x[good])
    return x, missing


def median_smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred running median with a point-symmetric extension at both ends.

    A running median keeps steps sharp and ignores outliers shorter than half its window. The
    odd (point-symmetric) extension around a robust end level keeps a trend going to the very
    ends, where plain reflection would bend it flat.

    Args:
        y: 1-D series without NaN.
        window: Window length in points (made odd).

    Returns:
        The smoothed series, same length as ``y``.
    """
    n = y.size
    w = min(odd(window), odd(2 * n - 3) if n > 2 else 1)
    if w <= 1 or n < 3:
        return y.copy()
    h = w // 2
    m = max(1, min(h // 2, n))
    left_pivot = float(np.median(y[:m]))
    right_pivot = float(np.median(y[-m:]))
    left = 2.0 * left_pivot - y[1 : h + 1][::-1]
    right = 2.0 * right_pivot - y[-h - 1 : -1][::-1]
    padded = np.concatenate([left, y, right])
    out = _median_filter(padded, w, "nearest")
    return np.asarray(out[h : h + n])


def block_trend(y: np.ndarray, block: int) -> np.ndarray:
    """A coarse, cheap trend: medians of consecutive blocks, interpolated between centres.

    Much cheaper than a running median of a long window; good enough to remove slow wander
    before looking for periodicity.
    """
    n = y.size
    block = max(1, min(int(block), n))
    nb = max(1, n // block)
    size = n // nb
    medians = np.median(y[: nb * size].reshape(nb, size), axis=1)
    if nb * size < n:
        medians[-1] = np.median(y[(nb - 1) * size :])
    if nb == 1:
        return np.full(n, medians[0])
    centres = (np.arange(nb) + 0.5) * size - 0.5
    pos = np.arange(n)
    trend = np.interp(pos, centres, medians)
    # Beyond the outer centres, carry the outer slopes on (a trend does not stop at the ends).
    head = pos < centres[0]
    tail = pos > centres[-1]
    slope_head = (medians[1] - medians[0]) / (centres[1] - centres[0])
    slope_tail = (medians[-1] - medians[-2]) / (centres[-1] - centres[-2])
    trend[head] = medians[0] + slope_head * (pos[head] - centres[0])
    trend[tail] = medians[-1] + slope_tail * (pos[tail] - centres[-1])
    return np.asarray(trend)


def running_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean with the end values repeated beyond the ends."""
    w = odd(window)
    if w <= 1 or y.size < 2:
        return y.copy()
    h = w // 2
    padded = np.concatenate([np.full(h, y[0]), y, np.full(h, y[-1])])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    return np.asarray((sums[w:] - sums[:-w]) / w)


def running_median(y: np.ndarray, window: int) -> np.ndarray:
    """Centred running median with mirrored ends (for scale profiles, which have no trend)."""
    w = odd(window)
    if w <= 1 or y.size < 2:
        return y.copy()
    return _median_filter(y, min(w, odd(y.size)), "mirror")


def _cycle_rows(d: np.ndarray, period: int, half_width: int, leave_out: bool) -> np.ndarray:
    """The same-phase values of neighbouring cycles: shape ``(cycles, neighbours, period)``."""
    n = d.size
    cycles = -(-n // period)
    padded = np.empty(cycles * period)
    padded[:n] = d
    if cycles * period > n:
        # The last, partial cycle borrows the previous cycle's values at the same phase.
        tail = np.arange(n, cycles * period)
        src = tail - period
        while (src >= n).any():
            src[src >= n] -= period
        padded[tail] = padded[np.maximum(src, 0)]
    rows = padded.reshape(cycles, period)
    own = np.arange(cycles)
    width = min(2 * half_width + 1, cycles)
    lo = np.clip(own - half_width, 0, cycles - width)
    idx = lo[:, None] + np.arange(width)[None, :]
    if leave_out and cycles >= 2:
        # Every row holds its own cycle exactly once; drop it.
        idx = idx[idx != own[:, None]].reshape(cycles, width - 1)
    return np.asarray(rows[idx])


def _median_axis1(g: np.ndarray) -> np.ndarray:
    """Median along axis 1 of a ``(cycles, m, period)`` array; closed forms for small ``m``."""
    m = g.shape[1]
    if m == 1:
        return np.asarray(g[:, 0])
    if m == 2:
        return np.asarray(0.5 * (g[:, 0] + g[:, 1]))
    if m in (3, 4):
        inner = g.sum(axis=1) - g.min(axis=1) - g.max(axis=1)
        return np.asarray(inner if m == 3 else 0.5 * inner)
    return np.asarray(np.median(g, axis=1))


def cycle_median(
    d: np.ndarray, period: int, half_width: int = 2, *, leave_out: bool = False
) -> np.ndarray:
    """Median across neighbouring cycles at the same phase.

    For each point, the median of the values at the same phase in the ``2 * half_width + 1``
    cycles around it (fewer when the series has fewer cycles). This follows seasonality whose
    amplitude or shape changes slowly while ignoring an anomaly confined to one cycle.

    Args:
        d: 1-D detrended series without NaN.
        period: Cycle length in points (>= 2).
        half_width: Neighbouring cycles on each side.
        leave_out: Leave each point's own cycle out, so that the estimate does not follow the
            point's own noise (an honest residual, not a shrunk one).

    Returns:
        The per-point seasonal estimate, same length as ``d``.
    """
    gathered = _cycle_rows(d, period, half_width, leave_out)
    return np.asarray(_median_axis1(gathered).ravel()[: d.size])


def cycle_median_and_spread(
    d: np.ndarray, period: int, half_width: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out cross-cycle median and the spread of the cycles around it.

    The spread (median absolute deviation of the neighbouring cycles from their median, as a
    standard deviation) says how consistent the seasonal shape is at each phase: a daily peak
    that comes earlier or later from day to day makes it large there.

    Returns:
        ``(median, spread)`` per point.
    """
    gathered = _cycle_rows(d, period, half_width, True)
    centre = _median_axis1(gathered)
    dispersion = _median_axis1(np.abs(gathered - centre[:, None, :])) * 1.482602218505602
    return centre.ravel()[: d.size], dispersion.ravel()[: d.size]


def spread(abs_dev: np.ndarray) -> float:
    """A robust standard deviation from absolute deviations, resistant to heavy tails.

    The largest of the estimates from the 50 %, 75 % and 90 % quantiles of ``|r|``, each
    divided by the matching Gaussian quantile: equal for Gaussian noise, the larger for
    heavy-tailed noise, and unaffected by up to ~10 % outliers.

    Args:
        abs_dev: Absolute deviations (no NaN).

    Returns:
        The estimate (0.0 for an empty input).
    """
    if abs_dev.size == 0:
        return 0.0
    qs = np.quantile(abs_dev, [0.5, 0.75, 0.9])
    return float(max(qs[0] / _Z[0.5], qs[1] / _Z[0.75], qs[2] / _Z[0.9]))


#: Quantile levels of the sided spread and the matching one-sided Gaussian quantiles.
_SIDED_Q = np.array([0.75, 0.9])
_SIDED_Z = np.array([0.6744897501960817, 1.2815515655446004])
_LEVELS = np.concatenate([1.0 - _SIDED_Q[::-1], [0.5], _SIDED_Q])
_MID = _SIDED_Q.size
#: Levels used in busy blocks (the 97 % quantiles join in).
_BUSY_Q = 0.97
_BUSY_Z = 3.0
#: Separate excursions that make a block busy, and busy blocks that make busyness normal.
BUSY_RUNS = 4
BUSY_BLOCKS = 3


def _spreads(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid = q[_MID]
    up = np.max((q[_MID + 1 :] - mid) / _SIDED_Z[:, None], axis=0)
    down = np.max((mid - q[_MID - 1 :: -1]) / _SIDED_Z[:, None], axis=0)
    return up, down


def sided_spread(
    r: np.ndarray,
    block: int,
    busy_factor: float | None = None,
    weight: np.ndarray | None = None,
    *,
    neighbours: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local robust spreads above and below the typical residual, per point.

    The series is cut into blocks; in each, the distance from the median to the 75 % and 90 %
    quantiles (and to the 25 % and 10 % ones below) is divided by the Gaussian quantile, and
    the larger estimate is kept. For Gaussian noise both agree; for skewed noise (CPU load,
    latency, appliance bursts) the band widens on the side that needs it. Up to 10 % outliers
    per block do not move it. Block values are interpolated linearly between block centres.

    With ``busy_factor``, a block where the residual leaves ``busy_factor`` spreads at least
    :data:`BUSY_RUNS` separate times is *busy* (a heater cycling, a machine under load). If
    the series has at least :data:`BUSY_BLOCKS` busy blocks, busyness is part of its normal
    life, and busy blocks also take their 97 % quantiles into account, so that recurring
    activity is not flagged excursion by excursion. A single busy stretch stays anomalous.
    Busy spreads are returned apart, from the 97 % quantiles of ``r * weight`` (the residual
    in its original units when ``r`` was standardised), divided by a factor chosen so that
    the default margin lands about 1.4 times beyond the normal excursions.

    With ``neighbours``, each block's spreads are the median of its own and those of the
    ``neighbours`` blocks on each side: an excursion confined to one or two blocks (a
    two-hour level shift, a cluster of bursts) then cannot widen the band around itself, while
    a noisy stretch several blocks long still does. The busy test keeps measuring excursions
    against each block's own spreads.

    Args:
        r: 1-D residuals without NaN.
        block: Block length in points.
        busy_factor: Band width (in spreads) that defines an excursion; ``None`` disables it.
        weight: Multiplier that turns ``r`` back into original units for the busy spreads.
        neighbours: Blocks on each side whose spreads the block's own is the median with.

    Returns:
        ``(upper, lower, busy_upper, busy_lower)`` per point, all >= 0; the busy spreads are 0
        outside busy blocks and in original units.
    """
    n = r.size
    block = max(8, min(block, n))
    nb = max(1, n // block)
    size = n // nb
    q = np.quantile(r[: nb * size].reshape(nb, size), _LEVELS, axis=1)  # (levels, blocks)
    if nb * size < n:
        # The few leftover points join the last block.
        q[:, -1] = np.quantile(r[(nb - 1) * size :], _LEVELS)
    own_up, own_down = up, down = _spreads(q)
    if neighbours > 0 and nb >= 3:
        up = _block_median(up, neighbours)
        down = _block_median(down, neighbours)
    busy_up = np.zeros(nb)
    busy_down = np.zeros(nb)
    if busy_factor is not None and nb >= BUSY_BLOCKS:
        which = np.minimum(np.arange(n) // size, nb - 1)
        mid = q[_MID][which]
        # Excursions are judged against the block's own spreads.
        out = (r > mid + busy_factor * own_up[which]) | (r < mid - busy_factor * own_down[which])
        runs = _run_counts(out, which, nb)
        if neighbours > 0 and weight is not None:
            # A busy phase raises its own noise level (the weight), which can hide its
            # excursions in standardised units; judged in the original units against the
            # neighbour-median spreads too, each side's runs apart (on and off spells).
            raw_r = r * weight
            qr = np.quantile(raw_r[: nb * size].reshape(nb, size), _LEVELS, axis=1)
            raw_up, raw_down = _spreads(qr)
            raw_up = _block_median(raw_up, neighbours)[which]
            raw_down = _block_median(raw_down, neighbours)[which]
            raw_mid = qr[_MID][which]
            high = raw_r > raw_mid + busy_factor * raw_up
            low = raw_r < raw_mid - busy_factor * raw_down
            runs = np.maximum(
                runs, np.maximum(_run_counts(high, which, nb), _run_counts(low, which, nb))
            )
        busy = np.flatnonzero(runs >= BUSY_RUNS)
        if busy.size >= BUSY_BLOCKS:
            raw = r if weight is None else r * weight
            for b in busy:
                seg = raw[b * size : n if b == nb - 1 else (b + 1) * size]
                lo, mid, hi = np.quantile(seg, [1.0 - _BUSY_Q, 0.5, _BUSY_Q])
                busy_up[b] = (hi - mid) / _BUSY_Z
                busy_down[b] = (mid - lo) / _BUSY_Z
    if nb == 1:
        full = np.full(n, 1.0)
        return up[0] * full, down[0] * full, busy_up[0] * full, busy_down[0] * full
    centres = (np.arange(nb) + 0.5) * size - 0.5
    pos = np.arange(n)
    return (
        np.interp(pos, centres, up),
        np.interp(pos, centres, down),
        np.interp(pos, centres, busy_up),
        np.interp(pos, centres, busy_down),
    )


def _run_counts(out: np.ndarray, which: np.ndarray, nb: int) -> np.ndarray:
    """Separate runs of ``out`` starting in each of ``nb`` blocks (``which``: block of a point)."""
    starts = out & ~np.concatenate([[False], out[:-1]])
    return np.bincount(which[starts], minlength=nb)


def _block_median(v: np.ndarray, half: int) -> np.ndarray:
    """Median of each block value with ``half`` neighbours on each side (mirrored ends)."""
    width = min(2 * half + 1, v.size if v.size % 2 else v.size - 1)
    return running_median(v, width) if width > 1 else v


def resolution(values: np.ndarray) -> float:
    """The quantisation step of the readings (smallest common gap between distinct values).

    Returns 0.0 for continuous data, where distinct values are not on a coarse grid.
    """
    u = np.unique(values[np.isfinite(values)])
    if u.size < 3:
        return 0.0
    gaps = np.diff(u)
    step = float(np.quantile(gaps, 0.1))
    span = float(u[-1] - u[0])
    # A grid is coarse when few distinct values cover the range.
    if span <= 0 or u.size > 0.5 * values.size or step < span * 1e-6:
        return 0.0
    return step
