"""Causal (streaming) anomaly detection for live telemetry.

Each point is judged only from the points before it, then learned from; the detector's whole
state is a JSON-serialisable dict, so a function invocation can save it and the next one
continue exactly where the last stopped (:meth:`StreamDetector.to_state`,
:meth:`StreamDetector.from_state`).

How it works:

* **Warm-up** - the first ``warmup`` points are only collected, never flagged. Until two
  cycles are in the history the model has no seasonality, so the first cycles of a seasonal
  stream are judged less well.
* **Refit** - at the end of the warm-up and then every eighth of a cycle (64 to
  ``refit_every`` points; 256 without seasonality) the robust batch model of
  :mod:`shared.engine.univariate` is fitted to the recent history, ending at the last point.
  In auto mode the period is looked for every 256 points and adopted once two looks agree
  (at once when the history holds six cycles of it), then re-examined every 512 points.
  The fit provides, exactly as the batch *last* judgement uses them, the seasonal value and
  the noise scales (above and below) of each phase one cycle back, the tail-calibrated margin
  factors, the drift and the flat-line rule. A refit costs a few milliseconds, spread over
  the points until the next one.
* **Per point** (plain Python floats, a few microseconds): the level is the median of the
  last few deseasonalised readings (up to 31, the batch trend window) moved on by the drift
  over the half window it lags; ``expected = level + season[phase]`` and the margins are
  ``k * scale[phase] * gain``. The point is judged, then learned: it joins the median window
  (a spike does not move a median; after a level shift the new level takes over within half a
  window, so the shift is flagged at its start and then adapted to), and in-band points nudge
  the seasonal value of their phase and the ``gain`` (noise that grows widens the band).
* **Flat-lines** - a run of identical readings longer than the history ever showed is
  flagged, as in the batch detector.

Missing values (NaN) get an expected value and margins, are never flagged, and teach nothing.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shared.engine.periodicity import MIN_CYCLES, detect_period
from shared.engine.robust import fill_missing
from shared.engine.univariate import (
    FlatlineRule,
    _factors,
    _fit,
    _trend_window,
    flatline_rule,
    margin_factor,
)

logger = logging.getLogger(__name__)

__all__ = ["STATE_VERSION", "StreamBatch", "StreamConfig", "StreamDetector", "StreamPoint"]

#: Version of the saved-state layout; :meth:`StreamDetector.from_state` refuses others.
STATE_VERSION = 1
#: Window of recent readings whose median is the current level, and the widening of the
#: batch scale that the noise of that median adds (sqrt(1 + 1.4 / 5): a median of 5 has
#: about 1.4 / 5 of the variance of one reading).
_MAX_RECENT = 5
_LEVEL_NOISE = 1.13
#: Per-phase scales are kept above this share of their median and of the other side.
_PHASE_FLOOR = 0.5
_SEASON_RATE = 0.1
_GAIN_RATE = 0.01
_GAIN_CAP = 3.0
#: Points over which the refit measures the trend's slope (at least a cycle).
_SLOPE_SPAN = 30
_SLOPE_HISTORY = 1024
_CLIP = 2.0
_HALF_NORMAL = 1.2533141373155003  # sigma / E|r| for one side of a Gaussian
_GAIN_LIMITS = (1.0, 4.0)
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


@dataclass(frozen=True)
class StreamConfig:
    """Parameters of streaming detection.

    Attributes:
        sensitivity: 0-99; higher means narrower margins (v1.1 semantics).
        period: Points per cycle; ``None`` detects it from the history, ``0`` means none.
        warmup: Points collected before the first judgement (at least 12).
        history: Recent points kept for refits and period detection (at least 3 cycles of
            the given period are always kept).
        refit_every: Points between refits of the robust model (once a cycle at most, for
            seasonal series with shorter cycles, but never more often than every 64 points).
    """

    sensitivity: int = 95
    period: int | None = None
    warmup: int = 60
    history: int = 5760
    refit_every: int = 512

    def __post_init__(self) -> None:
        if not 0 <= self.sensitivity <= 99:
            raise ValueError(f"sensitivity must be between 0 and 99, got {self.sensitivity}")
        if self.period is not None and self.period < 0:
            raise ValueError(f"period must be >= 0 (0 = no seasonality), got {self.period}")
        if self.warmup < 12:
            raise ValueError(f"warmup must be at least 12 points, got {self.warmup}")
        if self.history < self.warmup:
            raise ValueError(f"history ({self.history}) must be at least warmup ({self.warmup})")
        if self.refit_every < 1:
            raise ValueError(f"refit_every must be >= 1, got {self.refit_every}")


@dataclass(frozen=True)
class StreamPoint:
    """The judgement of one point."""

    expected_value: float
    upper_margin: float
    lower_margin: float
    is_anomaly: bool
    is_positive_anomaly: bool
    is_negative_anomaly: bool
    severity: float


@dataclass(frozen=True)
class StreamBatch:
    """The judgements of consecutive points, as arrays."""

    expected_values: np.ndarray
    upper_margins: np.ndarray
    lower_margins: np.ndarray
    is_anomaly: np.ndarray
    is_positive_anomaly: np.ndarray
    is_negative_anomaly: np.ndarray
    severity: np.ndarray


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class StreamDetector:
    """Causal detector with JSON-serialisable state.

    Args:
        config: Sensitivity, period, warm-up and refit cadence.
    """

    def __init__(self, config: StreamConfig) -> None:
        self._config = config
        cap = config.history
        if config.period:
            cap = max(cap, MIN_CYCLES * config.period + 1)
        self._history: deque[float] = deque(maxlen=cap)
        self._count = 0
        self._since_refit = 0
        self._ready = False
        self._period = 0  # in use (needs two cycles of history)
        self._target = config.period or 0  # given or detected
        self._last_detected: int | None = None
        self._detected_at = 0
        self._recent: deque[float] = deque([0.0], maxlen=1)
        self._slope = 0.0
        self._season: list[float] = [0.0]
        self._scale_up: list[float] = [0.0]
        self._scale_down: list[float] = [0.0]
        self._busy_up: list[float] = [0.0]
        self._busy_down: list[float] = [0.0]
        self._gain = 1.0
        self._k_up = margin_factor(config.sensitivity)
        self._k_down = self._k_up
        self._flat_value: float | None = None
        self._flat_length = 0
        self._flat = FlatlineRule(10, None)

    @property
    def config(self) -> StreamConfig:
        """The detector's configuration."""
        return self._config

    @property
    def period(self) -> int:
        """The period in use (0 while none is known)."""
        return self._period

    # ----------------------------------------------------------------------------------------
    # Fitting
    # ----------------------------------------------------------------------------------------

    def _refit_interval(self) -> int:
        """Points between refits: an eighth of a cycle (64 to ``refit_every``), or 128."""
        if self._target:
            return min(max(self._target // 8, _MIN_REFIT), self._config.refit_every)
        return min(4 * _MIN_REFIT, self._config.refit_every)

    def _detect(self, values: np.ndarray) -> None:
        """Look for the period (auto mode); adopt it once two looks in a row agree, or at
        once when the history holds many cycles of it."""
        found = detect_period(values)
        previous = self._last_detected
        self._last_detected = found
        self._detected_at = self._count
        agree = previous is not None and abs(found - previous) <= max(1, 0.02 * max(found, 1))
        if agree or (found and values.size >= _SURE_CYCLES * found):
            self._target = found

    def _refit(self) -> None:
        """Fit the robust batch model to the recent history (it ends at the last point)."""
        values = np.array(self._history, dtype=np.float64)
        if self._config.period is None and values.size >= _MIN_DETECT:
            every = _DETECT_EVERY if self._target else _DETECT_EVERY // 2
            if self._count - self._detected_at >= every or self._last_detected is None:
                self._detect(values)
        if self._target:
            values = values[-max(_FIT_CYCLES * self._target, _FIT_MIN) :]
        n = values.size
        fit = _fit(values, self._target)
        p = fit.period
        k = margin_factor(self._config.sensitivity)
        if p:
            # As the batch "last" judgement: the next point's seasonal value is the one a cycle
            # back (from the neighbouring cycles), its scale that of the same phase.
            last = np.arange(self._count - p, self._count) % p
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
            up = np.maximum(up, _PHASE_FLOOR * float(np.median(up)))
            down = np.maximum(down, _PHASE_FLOOR * float(np.median(down)))
            up, down = np.maximum(up, _PHASE_FLOOR * down), np.maximum(down, _PHASE_FLOOR * up)
            self._season = [float(v) for v in season]
            self._scale_up = [float(v * _LEVEL_NOISE) for v in up]
            self._scale_down = [float(v * _LEVEL_NOISE) for v in down]
            self._busy_up = [float(k * v) for v in busy_up]
            self._busy_down = [float(k * v) for v in busy_down]
        else:
            self._season = [0.0]
            self._scale_up = [float(fit.scale_up[-1] * _LEVEL_NOISE)]
            self._scale_down = [float(fit.scale_down[-1] * _LEVEL_NOISE)]
            self._busy_up = [float(k * fit.busy_up[-1])]
            self._busy_down = [float(k * fit.busy_down[-1])]
        self._period = p
        known = ~fit.missing
        deseasonalised = (fit.filled - fit.seasonal)[known]
        window = min(_trend_window(n, p), _MAX_RECENT)
        if deseasonalised.size == 0:  # nothing but missing values so far
            deseasonalised = np.array([float(fit.trend[-1])])
        self._recent = deque((float(v) for v in deseasonalised[-window:]), maxlen=window)
        # Drift is carried on between refits, once there is enough history to tell drift from
        # an unrecognised cycle (whose rising half looks like a trend).
        self._slope = 0.0
        if p or n >= _SLOPE_HISTORY:
            span = min(max(p, n // 4, _SLOPE_SPAN), n - 1)
            self._slope = float(fit.trend[-1] - fit.trend[-1 - span]) / span
        self._k_up, self._k_down = _factors(fit, self._config.sensitivity)
        filled, missing = fill_missing(values)
        self._flat = flatline_rule(filled, missing, self._config.sensitivity)
        self._since_refit = 0
        self._ready = True
        logger.debug("stream refit at %s points: period %s", self._count, self._period)

    # ----------------------------------------------------------------------------------------
    # Detection
    # ----------------------------------------------------------------------------------------

    def update(self, value: float) -> StreamPoint:
        """Judge one new point from the points before it, then learn from it.

        Args:
            value: The reading (NaN = missing).

        Returns:
            The judgement of this point.
        """
        v = float(value)
        known = math.isfinite(v)
        if not self._ready:
            return self._warming(v, known)
        p = self._period
        phase = self._count % p if p else 0
        seasonal = self._season[phase]
        recent = self._recent
        # The level: median of the recent deseasonalised readings, moved on by the drift over
        # the half window it lags behind.
        level = statistics.median(recent) + self._slope * (len(recent) + 1) * 0.5
        expected = level + seasonal
        up_scale = self._scale_up[phase] * self._gain
        down_scale = self._scale_down[phase] * self._gain
        # The busy band (normal excursions of a busy stretch) where it is wider.
        upper = max(self._k_up * up_scale, self._busy_up[phase])
        lower = max(self._k_down * down_scale, self._busy_down[phase])
        if not known:
            self._flat_value = None
            self._flat_length = 0
            self._advance(math.nan)
            return StreamPoint(expected, upper, lower, False, False, False, 0.0)

        r = v - expected
        severity = 0.0
        if r > upper:
            severity = 1.0 - upper / r
        elif -r > lower:
            severity = 1.0 - lower / -r
        outside = severity > 0.0
        if v == self._flat_value:
            self._flat_length += 1
        else:
            self._flat_value = v
            self._flat_length = 1
        severity = max(severity, self._flat.severity(v, self._flat_length))
        anomalous = severity > 0.0

        # Learn. The median ignores a spike; a level shift takes over after half a window.
        recent.append(v - seasonal)
        if p and not outside:
            clipped = min(max(r, -_CLIP * down_scale), _CLIP * up_scale)
            self._season[phase] = seasonal + _SEASON_RATE * clipped
        # Outliers count too, capped: many of them in a row mean a busier regime.
        side = up_scale if r > 0 else down_scale
        if side > 0:
            ratio = min(abs(r) / side, _GAIN_CAP) * _HALF_NORMAL
            gain = self._gain * (1.0 + _GAIN_RATE * (ratio - 1.0))
            self._gain = min(max(gain, _GAIN_LIMITS[0]), _GAIN_LIMITS[1])
        self._advance(v)
        positive = anomalous and r >= 0
        return StreamPoint(
            expected, upper, lower, anomalous, positive, anomalous and not positive, severity
        )

    def _warming(self, v: float, known: bool) -> StreamPoint:
        """Collect a warm-up point; report the running median as its expectation."""
        recent = [x for x in list(self._history)[-50:] if math.isfinite(x)]
        expected = statistics.median(recent) if recent else (v if known else 0.0)
        self._advance(v if known else math.nan)
        return StreamPoint(expected, 0.0, 0.0, False, False, False, 0.0)

    def _advance(self, v: float) -> None:
        self._history.append(v)
        self._count += 1
        self._since_refit += 1
        if not self._ready:
            if self._count >= self._config.warmup:
                self._refit()
        elif self._since_refit >= self._refit_interval():
            self._refit()

    def update_many(self, values: np.ndarray) -> StreamBatch:
        """Judge consecutive points, one after the other (same as calling :meth:`update`).

        Args:
            values: 1-D readings (NaN = missing).

        Returns:
            The judgements, as arrays.
        """
        points = [self.update(v) for v in np.asarray(values, dtype=np.float64).tolist()]
        return StreamBatch(
            expected_values=np.array([pt.expected_value for pt in points], dtype=np.float64),
            upper_margins=np.array([pt.upper_margin for pt in points], dtype=np.float64),
            lower_margins=np.array([pt.lower_margin for pt in points], dtype=np.float64),
            is_anomaly=np.array([pt.is_anomaly for pt in points], dtype=bool),
            is_positive_anomaly=np.array([pt.is_positive_anomaly for pt in points], dtype=bool),
            is_negative_anomaly=np.array([pt.is_negative_anomaly for pt in points], dtype=bool),
            severity=np.array([pt.severity for pt in points], dtype=np.float64),
        )

    # ----------------------------------------------------------------------------------------
    # State
    # ----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The detector's whole state as plain JSON types (``json.dumps`` works on it).

        Floats round-trip exactly through JSON, so a restored detector continues with
        identical results. Missing values are stored as ``null``.
        """
        return {
            "version": STATE_VERSION,
            "config": asdict(self._config),
            "count": self._count,
            "since_refit": self._since_refit,
            "ready": self._ready,
            "period": self._period,
            "target_period": self._target,
            "last_detected": self._last_detected,
            "detected_at": self._detected_at,
            "history_cap": self._history.maxlen,
            "history": [_finite_or_none(v) for v in self._history],
            "recent": list(self._recent),
            "recent_window": self._recent.maxlen,
            "slope": self._slope,
            "season": list(self._season),
            "scale_up": list(self._scale_up),
            "scale_down": list(self._scale_down),
            "busy_up": list(self._busy_up),
            "busy_down": list(self._busy_down),
            "gain": self._gain,
            "k_up": self._k_up,
            "k_down": self._k_down,
            "flat_value": self._flat_value,
            "flat_length": self._flat_length,
            "flat_threshold": self._flat.threshold,
            "flat_resting": self._flat.resting,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StreamDetector:
        """Restore a detector saved by :meth:`to_state`.

        Args:
            state: The saved state (for example after ``json.loads``).

        Returns:
            A detector that continues exactly where the saved one stopped.

        Raises:
            ValueError: If the state is of another version or malformed.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"stream state version {found!r} is not supported (expected {STATE_VERSION}); "
                "start a new detector"
            )
        try:
            detector = cls(StreamConfig(**state["config"]))
            detector._history = deque(
                (math.nan if v is None else float(v) for v in state["history"]),
                maxlen=int(state["history_cap"]),
            )
            detector._count = int(state["count"])
            detector._since_refit = int(state["since_refit"])
            detector._ready = bool(state["ready"])
            detector._period = int(state["period"])
            detector._target = int(state["target_period"])
            last_detected = state["last_detected"]
            detector._last_detected = None if last_detected is None else int(last_detected)
            detector._detected_at = int(state["detected_at"])
            detector._recent = deque(
                (float(v) for v in state["recent"]), maxlen=int(state["recent_window"])
            )
            detector._slope = float(state["slope"])
            detector._season = [float(v) for v in state["season"]]
            detector._scale_up = [float(v) for v in state["scale_up"]]
            detector._scale_down = [float(v) for v in state["scale_down"]]
            detector._busy_up = [float(v) for v in state["busy_up"]]
            detector._busy_down = [float(v) for v in state["busy_down"]]
            detector._gain = float(state["gain"])
            detector._k_up = float(state["k_up"])
            detector._k_down = float(state["k_down"])
            flat_value = state["flat_value"]
            detector._flat_value = None if flat_value is None else float(flat_value)
            detector._flat_length = int(state["flat_length"])
            resting = state["flat_resting"]
            detector._flat = FlatlineRule(
                int(state["flat_threshold"]), None if resting is None else float(resting)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"stream state is malformed ({exc}); start a new detector") from exc
        return detector
