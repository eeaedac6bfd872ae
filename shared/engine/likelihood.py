"""How surprising a point is given its history: the severity of the streaming detector.

The streaming predictor (:mod:`shared.engine.streaming`) says what it expected and how noisy
the series is; this module turns that into a *ranked* severity, the calibrated tail
probability of what was seen, so that one threshold means the same on every series (the idea
of the anomaly likelihood of HTM and ARTime). All figures are surprises ``-log10(p)``:

* **Point surprise** - the smallest tail probability of four one-sided tails, each judged
  against the detector's own recent history of the same quantity (a rolling window of
  :data:`TAIL_WINDOW` observations):

  - the standardised prediction error above and below (``r / scale``): a reading the model
    did not foresee;
  - the reading itself above and below its recent range: a value the series has not shown
    lately (this catches what a model that adapts quickly absorbs).

  Inside the window the probability is empirical, ``(k + 1) / (n + 1)`` with ``k`` the
  observations at least as extreme, so bursts, heavy tails, quantised and count values
  calibrate themselves. Beyond the largest observation the tail is extrapolated as
  exponential from ``1 / (n + 1)``, its scale the mean excess of the top 3 % (never below
  ``(q97 - median) / ln(0.5 / 0.03)``, what an exponential tail of that spread would give,
  so ties and quantised values do not make the next step infinitely surprising). For the
  prediction errors, where at most 3 observations are as extreme, the top 3 % is also
  modelled that way (peaks over threshold) and the smaller probability taken, so one earlier
  extreme error does not make the next one ordinary; up to 3 past errors ten times as
  extreme (an outage's, of hundreds of noise scales) are left out of that count and that
  top 3 %, so they do not stretch the tail an ordinary anomaly after them is judged by.
* **Young windows** - until a window holds :data:`MIN_TAIL` observations it is not used; the
  error is then judged parametrically in band units ``u = |r| / band`` of the predictor (whose
  young band is already widened): ``surprise = alarm_level * u**2``, so only a point beyond
  the band alarms, a spike of many scales alarms at once, and the range of a young series
  (an hour of readings) is never taken for the range of the meter.
* **Collective surprise** - the mean point surprise of the last :data:`SHORT` points, judged
  against the window of its own past values: the onset of a sustained change (several
  moderately surprising points in a row) scores high early, steady noise low.
* **Episodes** - a point reports its surprise only when it exceeds the surprise of the
  episode so far (the largest recent surprise, decaying by :data:`EPISODE_DECAY` a point,
  half-life ~23 points); otherwise 0. A level shift, a burst or a dropout alarms at its
  first point, not point by point, while a larger excursion of the same episode still counts.

``severity = min(1, surprise / FULL_SURPRISE)``: 1 for ``p <= 1e-10``. A point is an anomaly
when ``severity >= alarm_severity(sensitivity)``, i.e. when its tail probability is below the
per-point false-alarm rate of the sensitivity (1e-4 at the default 95, 2e-4 at 99; see
:func:`shared.engine.univariate.false_alarm_rate`). Missing points are never judged and teach
nothing. Work per point is constant (a few bisections in windows of fixed size).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

__all__ = [
    "COLLECTIVE_CODES",
    "EPISODE_DECAY",
    "FULL_SURPRISE",
    "MIN_TAIL",
    "SHORT",
    "TAIL_WINDOW",
    "Episode",
    "TailWindow",
    "alarm_severity",
    "young_surprise",
]

#: Observations in each rolling window of a tail, and the fewest that make a tail.
TAIL_WINDOW = 2048
MIN_TAIL = 100
#: Points whose mean surprise is the collective surprise, and its resolution: kept in
#: sixteenths (beyond 255 / 16 every collective surprise is as extreme as severity can say).
SHORT = 5
COLLECTIVE_CODES = 16
#: Decay per point of the surprise of an episode.
EPISODE_DECAY = 0.97
#: The surprise that gives severity 1 (p = 1e-10).
FULL_SURPRISE = 10.0
#: Share of a window that makes its top tail (peaks over threshold).
_TOP_SHARE = 0.03
_SMALLEST_P = 1e-300
#: Observations this many times as extreme as the one judged are of another order (an outage,
#: a glitch): left out of the tail it is judged by (see ``pot``).
_FAR = 10.0
#: Exceedances too few for an empirical tail probability (see ``pot``).
_FEW = 3
_SPREAD_TO_SCALE = math.log(0.5 / _TOP_SHARE)


def alarm_severity(false_alarm_rate: float) -> float:
    """The severity at and above which a point is an anomaly, for a per-point false-alarm rate.

    Args:
        false_alarm_rate: Target probability that a normal point alarms (0 < rate < 1).

    Returns:
        ``-log10(rate) / FULL_SURPRISE``.
    """
    return -math.log10(false_alarm_rate) / FULL_SURPRISE


def young_surprise(band_units: float, alarm_surprise: float) -> float:
    """The surprise of an error of ``band_units`` bands while the tails are still young.

    At most :data:`FULL_SURPRISE`: a model of a few dozen points can tell an error far beyond
    its band, but not how far beyond.
    """
    return min(alarm_surprise * band_units * band_units, FULL_SURPRISE)


class TailWindow:
    """The observations of a rolling window, kept sorted for tail look-ups.

    The caller owns the window's order (which observation leaves next) and tells this one
    what enters and what leaves, so the observations are stored once.

    Args:
        values: The observations in the window now.
    """

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._sorted = sorted(values)

    def __len__(self) -> int:
        return len(self._sorted)

    def lowest(self) -> float:
        """The smallest observation in the window (the window must not be empty)."""
        return self._sorted[0]

    def highest(self) -> float:
        """The largest observation in the window (the window must not be empty)."""
        return self._sorted[-1]

    def add(self, x: float) -> None:
        """An observation enters the window."""
        bisect.insort(self._sorted, x)

    def discard(self, x: float) -> None:
        """An observation (present in the window) leaves it."""
        ordered = self._sorted
        del ordered[bisect.bisect_left(ordered, x)]

    def surprise_above(self, x: float, pot: bool = False) -> float:
        """``-log10`` of the probability of an observation at least ``x``.

        Args:
            x: The observation.
            pot: Where at most :data:`_FEW` observations are as extreme (too few for an
                empirical probability), also model the top 3 % as an exponential tail (peaks
                over threshold) and take the smaller probability: then one earlier extreme
                does not make the next one ordinary. At most :data:`_FEW` observations
                :data:`_FAR` times as extreme are left out (of that count and of that top):
                an outage's errors (hundreds of noise scales) do not stretch the tail that a
                later sag of a dozen is judged by.
        """
        ordered = self._sorted
        n = len(ordered)
        at_least = n - bisect.bisect_left(ordered, x)
        if at_least and not (pot and at_least <= _FEW + _FEW):
            return -math.log10((at_least + 1) / (n + 1))
        # Few observations of another order (an outage's errors) are left out.
        far = n - bisect.bisect_left(ordered, _FAR * x) if at_least and x > 0.0 else 0
        if far > _FEW:
            far = 0
        if at_least - far > _FEW:
            return -math.log10((at_least + 1) / (n + 1))
        k = self._top_count()
        top = ordered[n - far - k : n - far]
        threshold = top[0]
        mean_excess = (math.fsum(top) - k * threshold) / (k - 1)
        scale = _tail_scale(mean_excess, threshold - ordered[n // 2])
        if at_least:
            log_p = math.log((at_least + 1) / (n + 1))
        else:
            log_p = _log_beyond(x - ordered[-1], scale, n)
        if pot and scale > 0.0:
            log_p = min(log_p, math.log(k / n) - (x - threshold) / scale)
        return _surprise(log_p)

    def surprise_below(self, x: float, pot: bool = False) -> float:
        """``-log10`` of the probability of an observation at most ``x`` (see above)."""
        ordered = self._sorted
        n = len(ordered)
        at_most = bisect.bisect_right(ordered, x)
        if at_most and not (pot and at_most <= _FEW + _FEW):
            return -math.log10((at_most + 1) / (n + 1))
        far = bisect.bisect_right(ordered, _FAR * x) if at_most and x < 0.0 else 0
        if far > _FEW:
            far = 0
        if at_most - far > _FEW:
            return -math.log10((at_most + 1) / (n + 1))
        k = self._top_count()
        bottom = ordered[far : far + k]
        threshold = bottom[-1]
        mean_excess = (k * threshold - math.fsum(bottom)) / (k - 1)
        scale = _tail_scale(mean_excess, ordered[n // 2] - threshold)
        if at_most:
            log_p = math.log((at_most + 1) / (n + 1))
        else:
            log_p = _log_beyond(ordered[0] - x, scale, n)
        if pot and scale > 0.0:
            log_p = min(log_p, math.log(k / n) - (threshold - x) / scale)
        return _surprise(log_p)

    def _top_count(self) -> int:
        return max(int(_TOP_SHARE * len(self._sorted)), 2)


def _tail_scale(mean_excess: float, spread: float) -> float:
    """The exponential tail's scale: the mean excess, at least what the spread implies.

    ``spread`` is the distance from the median to the top-3 % threshold, which an exponential
    tail of scale ``b`` puts at ``b * ln(0.5 / 0.03)``: a floor that ties and quantised values
    cannot shrink to nothing, and that one extreme observation does not inflate.
    """
    return max(mean_excess, spread / _SPREAD_TO_SCALE)


def _log_beyond(excess: float, scale: float, n: int) -> float:
    """Natural log of the probability beyond the extreme: exponential from ``1 / (n + 1)``."""
    if not scale > 0.0:
        return math.log(_SMALLEST_P)
    return -math.log(n + 1.0) - excess / scale


def _surprise(log_p: float) -> float:
    return min(-log_p / math.log(10.0), -math.log10(_SMALLEST_P))


class Episode:
    """The surprise of the current episode: the largest recent surprise, decaying per point.

    Args:
        peak: The episode's surprise so far.
    """

    def __init__(self, peak: float = 0.0) -> None:
        self.peak = peak

    def report(self, surprise: float) -> float:
        """The surprise a point reports: its own when it exceeds the episode's, else 0."""
        reported = surprise if surprise > self.peak else 0.0
        self.peak = max(self.peak * EPISODE_DECAY, surprise)
        return reported
