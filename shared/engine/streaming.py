"""Causal (streaming) anomaly detection for live telemetry.

Each point is judged only from the points before it, then learned from; the detector's whole
state is a JSON-serialisable dict, so a function invocation can save it and the next one
continue exactly where the last stopped (:meth:`StreamDetector.to_state`,
:meth:`StreamDetector.from_state`).

How it works:

* **Warm-up** - the first ``warmup`` points are only collected, never flagged. Until the fit
  has :data:`~shared.engine.stream_fit.YOUNG_POINTS` points of history, and until two cycles
  of a known period are in it, the model is still guessing (no seasonality yet, no tail to
  calibrate on), so its margins are :data:`~shared.engine.stream_fit.YOUNG_WIDEN` times wider:
  only gross anomalies are flagged then.
* **Refit** - at the end of the warm-up and then every eighth of a cycle (64 to
  ``refit_every`` points; 256 without seasonality) the robust batch model of
  :mod:`shared.engine.univariate` is fitted to the recent history, ending at the last point
  (:mod:`shared.engine.stream_fit`). In auto mode the period is looked for every 256 points
  and adopted once two looks agree (at once when the history holds six cycles of it), then
  re-examined every 512 points.
  The fit provides, exactly as the batch *last* judgement uses them, the seasonal value and
  the noise scales (above and below) of each phase one cycle back, the tail-calibrated margin
  factors, the drift and the flat-line rule. A refit costs a few milliseconds, spread over
  the points until the next one. A burst of alarms (:data:`_SURPRISE` since the last refit)
  brings the next refit forward once, so a new behaviour is learned at once instead of being
  flagged point by point.
* **Self-calibration** - the batch fit's residuals are smaller than the detector's own
  one-step-ahead errors (the level lags a step, the season is one cycle old, a weekly
  pattern hides under a daily period). The detector keeps its last :data:`_ERRORS`
  standardised errors and widens the margin factors to their tail (peaks over threshold at
  the false-alarm rate of the sensitivity, as the batch does for its residuals).
* **Per point** (plain Python floats, a few microseconds): the level is the median of the
  last few deseasonalised readings (up to 5) moved on by the drift over the half window it
  lags; ``expected = level + season[phase]`` and the margins are ``k * scale[phase] * gain``.
  The error is judged against the nearest of ``season[phase]`` and its two neighbours'
  (timing jitter: a cycle's spike or edge a step early or late is no error of the level),
  except that at a peak or trough of the season (standing out by :data:`_FEATURE` scales) the
  feature's absence is excused only when the previous reading showed it early: a missing spike
  is an anomaly. The season learns from its own phase's error. No phase's scale is below
  a tenth of how far its seasonal value stands out from the season's median (a job's spike
  varies in height with its size). The point is judged, then learned: it joins
  the median window (a spike does not move a median), and in-band points nudge the seasonal
  value of their phase and the ``gain`` (noise that grows widens the band).
* **Level shifts, hysteresis** - the model's band decides when the level has moved: when a
  second point in a row is beyond the band on the same side, nearer the previous point than
  the old level, the new level is taken over at once; going back to the level from before
  the shift within :data:`_RETURN_WINDOW` points ends the episode (an appliance switching
  off). After a point beyond the band the band is held wider for a few dozen points.
* **Flat-lines and dropouts** - a run of identical readings longer than the history ever
  showed, and a reading of a positive series below half its 0.5 % quantile, are anomalies by
  rule.
* **Severity and isAnomaly** - :mod:`shared.engine.likelihood`: the severity is the
  calibrated tail probability of the point (its error and its value against the detector's
  own recent history, and the mean of the last few points' surprises), as
  ``min(1, -log10(p) / 10)``, reported once per episode. It ranks: the more surprising, the
  higher. ``isAnomaly`` is ``severity >= -log10(false_alarm_rate(sensitivity)) / 10`` (0.4
  at the default sensitivity 95, i.e. p <= 1e-4; 0.37 at 99); the direction is the sign of
  the error. Errors the model explains (a confirmed shift, the return after it, and the fall
  back of an alarmed excursion: an error against the side the last point was beyond while the
  episode is at alarm level, where the level had followed the burst) are judged on the
  reading alone; a rule (flat-line, dropout) alarms at exactly that level.

Missing values (NaN) get an expected value and margins, are never flagged, and teach nothing
to the tails (the batch refit interpolates over them).

The saved state (:mod:`shared.engine.stream_state`) stores its arrays exactly, as integers
Rice-coded in base85 (:mod:`shared.engine.intcodec`; zlib on top where runs are long):
readings with a few decimals (as meters send them) as scaled-integer differences, and what the
detector itself keeps on a grid on that grid: the per-phase scales ~2 % apart (a logarithmic
grid), the season at 1/64 of the noise scale or finer, the standardised errors at 1/32, the
collective surprises in sixteenths; so a restored detector continues bit-identically and the
readings' tail is rebuilt from the history. A day of per-minute readings with a daily period
takes ~15 KB of JSON, most of it the history the refits need.
"""

from __future__ import annotations

import logging
import math
import statistics
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from shared.engine.likelihood import (
    COLLECTIVE_CODES,
    FULL_SURPRISE,
    MIN_TAIL,
    SHORT,
    TAIL_WINDOW,
    Episode,
    TailWindow,
    alarm_severity,
    young_surprise,
)
from shared.engine.periodicity import MIN_CYCLES
from shared.engine.stream_bounds import bounded
from shared.engine.stream_fit import refit, refit_interval
from shared.engine.stream_state import (
    ERROR_STEP,
    READABLE_VERSIONS,
    STATE_VERSION,
    detector_state,
    on_grid,
    restore_state,
)
from shared.engine.stream_types import StreamBatch, StreamConfig, StreamPoint
from shared.engine.univariate import (
    FlatlineRule,
    dropout_severity,
    false_alarm_rate,
    margin_factor,
)
from shared.errors import EngineError
from shared.jsontypes import JSONObject

logger = logging.getLogger(__name__)

__all__ = ["STATE_VERSION", "StreamBatch", "StreamConfig", "StreamDetector", "StreamPoint"]

#: Older layouts, which :meth:`StreamDetector.from_state` takes as no state.
_OLDER_VERSIONS = (1, 2, 3)
#: A peak or trough of the season standing out by this many noise scales is a feature.
_FEATURE = 3.0
_SEASON_RATE = 0.1
_GAIN_RATE = 0.01
_GAIN_CAP = 3.0
_CLIP = 2.0
_HALF_NORMAL = 1.2533141373155003  # sigma / E|r| for one side of a Gaussian
_GAIN_LIMITS = (1.0, 4.0)
#: Standardised one-step-ahead errors kept (to calibrate the margins, :mod:`shared.engine.
#: stream_fit`, and for the severity's error tail), and where an error is clipped.
_ERRORS = TAIL_WINDOW
_ERROR_CLIP = 1000.0
#: Alarms since the last refit that bring the next one forward (once per refit interval),
#: and the fewest points between two refits.
_SURPRISE = 3
_SURPRISE_GAP = 16
#: After an alarm the band is held at this multiple of the alarming deviation (at most
#: _HOLD_MAX times the plain band), the excess shrinking by _HOLD_DECAY per point (half-life
#: ~14 points).
_HOLD_OVER = 1.5
_HOLD_MAX = 4.0
_HOLD_DECAY = 0.95
#: Points after a level shift within which going back to the level before is not flagged.
_RETURN_WINDOW = 120


def _error_code(z: float) -> float:
    """A standardised error as kept: clipped far beyond any margin, on a 1/32 grid."""
    return on_grid(min(max(z, -_ERROR_CLIP), _ERROR_CLIP), ERROR_STEP)


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
        self._season_step = 0.0  # the season's grid (see stream_state.season_step)
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
        self._floor: float | None = None
        self._errors: deque[float] = deque(maxlen=_ERRORS)
        self._outside = 0  # side (+1/-1) of the last point if it was beyond the band
        self._last_level = 0.0  # the last reading, deseasonalised
        self._alarms = 0  # since the last refit
        self._hurried = False  # the current refit interval was already cut short
        self._hold = 1.0  # band widening after an alarm, decaying back to 1
        self._before = 0.0  # the level before the latest episode of level shifts
        self._since_shift = _RETURN_WINDOW + 1  # points since the latest shift
        self._early = False  # the last reading was nearest the next phase's season
        # Severity (shared.engine.likelihood): the tails of the recent errors (the errors
        # deque above), of the recent readings (the last points of the history) and of the
        # recent collective surprises, and the current episode.
        self._alarm = alarm_severity(false_alarm_rate(config.sensitivity))
        self._alarm_surprise = self._alarm * FULL_SURPRISE
        self._values: deque[float] = deque(maxlen=TAIL_WINDOW)
        self._known = 0  # known readings in the history
        self._value_tail = TailWindow()
        self._error_tail = TailWindow()
        self._short: deque[float] = deque(maxlen=SHORT)
        self._collective: deque[float] = deque(maxlen=TAIL_WINDOW)
        self._collective_tail = TailWindow()
        self._episode = Episode()

    @property
    def config(self) -> StreamConfig:
        """The detector's configuration."""
        return self._config

    @property
    def period(self) -> int:
        """The period in use (0 while none is known)."""
        return self._period

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
        base_upper = max(self._k_up * up_scale, self._busy_up[phase])
        base_lower = max(self._k_down * down_scale, self._busy_down[phase])
        # After an alarm the band is held wider for a while (see below).
        upper = base_upper * self._hold
        lower = base_lower * self._hold
        if not known:
            self._flat_value = None
            self._flat_length = 0
            self._outside = 0
            self._episode.report(0.0)
            self._advance(math.nan)
            return StreamPoint(
                *bounded(self._value_tail, expected, upper, lower, base_upper, base_lower),
                False,
                False,
                False,
                0.0,
            )

        r = v - expected
        own = r  # against the point's own phase: what the season learns from
        early = False
        if p:
            # Timing jitter: a cycle's features (a spike, an edge) arriving a step early or
            # late is no error of the level; the nearer neighbouring phase is judged.
            # At a phase that is a peak or trough of the cycle (the feature itself), the
            # feature's absence is excused only when the previous point showed it early: a
            # missing spike is an anomaly.
            season = self._season
            before, after = season[phase - 1], season[(phase + 1) % p]
            nearest, step = r, 0
            for shift, neighbour in ((-1, before), (1, after)):
                moved = v - level - neighbour
                if abs(moved) < abs(nearest):
                    nearest, step = moved, shift
            rise, fall = seasonal - before, seasonal - after
            peak = rise * fall > 0.0 and min(abs(rise), abs(fall)) > _FEATURE * up_scale
            if step and (self._early or not peak):
                r = nearest
            early = step == 1
        severity = 0.0
        if r > upper:
            severity = 1.0 - upper / r
        elif -r > lower:
            severity = 1.0 - lower / -r
        outside = severity > 0.0
        shifted = False
        returned = False
        self._since_shift += 1
        previous = self._outside  # side of the last point if it was beyond the band
        # Level shifts are recognised against the plain band (the held one is for alarms).
        beyond = r > base_upper or -r > base_lower
        if beyond:
            sign = 1 if r > 0 else -1
            deseasonalised = v - seasonal
            back = deseasonalised - self._before
            if self._since_shift <= _RETURN_WINDOW and (
                back <= base_upper if back >= 0 else -back <= base_lower
            ):
                # Back at the level from before a recent shift: the episode is over (an
                # appliance switching off), which is no new anomaly.
                returned = True
                self._outside = 0
            else:
                if self._outside == sign and abs(deseasonalised - self._last_level) < abs(r):
                    # The second point beyond the band on the same side, nearer the first than
                    # the old level: the level has moved. The shift was flagged at its first
                    # point; returning to the old level later is not flagged either.
                    shifted = True
                    if self._since_shift > _RETURN_WINDOW:
                        self._before = level
                    self._since_shift = 0
                self._outside = sign
            if shifted or returned:
                severity = 0.0
                outside = False
        else:
            self._outside = 0
        if v == self._flat_value:
            self._flat_length += 1
        else:
            self._flat_value = v
            self._flat_length = 1
        rule = max(self._flat.severity(v, self._flat_length), dropout_severity(v, self._floor))
        anomalous = severity > 0.0 or rule > 0.0  # beyond the band: the model's own alarms
        band = upper if r > 0 else lower
        explained = shifted or returned
        if previous * r < 0.0 and self._episode.peak >= self._alarm_surprise:
            # The fall back of an alarmed excursion (an error against the side the last point
            # was beyond): the error is the level having followed the burst, part of the
            # episode already reported; only the reading itself is judged.
            explained = True
        band_units = 0.0 if explained or not band > 0 else abs(r) / band
        side = 0.0 if explained else (up_scale if r > 0 else down_scale)
        surprise = self._surprise(v, r, side, band_units, rule)
        reported = self._episode.report(surprise)
        severity = min(reported / FULL_SURPRISE, 1.0)
        alarm = severity >= self._alarm

        # Learn. The median ignores a spike; a confirmed shift replaces the level at once.
        if shifted or returned:
            recent.clear()
            recent.append(self._before if returned else self._last_level)
        if returned:
            self._since_shift = _RETURN_WINDOW + 1
        self._last_level = v - seasonal
        recent.append(self._last_level)
        side = up_scale if r > 0 else down_scale
        if side > 0 and not shifted:
            # A confirmed shift is explained, no error of the model (the end of an episode is
            # kept: such moves are part of what the band must hold). Kept on a 1/32 grid (clipped
            # far beyond any margin): a tail fit needs no more, and the state stays small.
            self._learn_error(_error_code(r / side))
        if anomalous:
            self._alarms += 1
        if p and not beyond:
            clipped = min(max(own, -_CLIP * down_scale), _CLIP * up_scale)
            self._season[phase] = on_grid(seasonal + _SEASON_RATE * clipped, self._season_step)
        # Outliers count too, capped: many of them in a row mean a busier regime.
        if side > 0:
            ratio = min(abs(r) / side, _GAIN_CAP) * _HALF_NORMAL
            gain = self._gain * (1.0 + _GAIN_RATE * (ratio - 1.0))
            self._gain = min(max(gain, _GAIN_LIMITS[0]), _GAIN_LIMITS[1])
        # Hysteresis: after an alarm the band takes in the deviation that raised it, then
        # narrows again within a few dozen points. Excursions of the same episode (an appliance
        # cycling, the edges of a new regime) are not flagged one by one; a larger one is.
        hold = 1.0 + (self._hold - 1.0) * _HOLD_DECAY
        if outside and band > 0:
            hold = max(hold, min(self._hold * _HOLD_OVER * abs(r) / band, _HOLD_MAX))
        self._hold = hold
        self._early = early
        self._advance(v)
        positive = alarm and r >= 0
        shown, above, below = bounded(
            self._value_tail, expected, upper, lower, base_upper, base_lower
        )
        return StreamPoint(shown, above, below, alarm, positive, alarm and not positive, severity)

    def _surprise(self, v: float, r: float, side: float, band_units: float, rule: float) -> float:
        """How surprising the reading is, ``-log10(p)`` (see :mod:`shared.engine.likelihood`).

        ``side`` is the noise scale on the error's side, 0 where the model explains the error
        (the confirmed second point of a level shift, the return to the level before it):
        then only the reading itself is judged.
        """
        errors = self._error_tail
        if len(errors) < MIN_TAIL:
            # Too few errors for a tail: judged in band units, and not learned from (the
            # collective tail holds calibrated surprises only).
            young = young_surprise(band_units, self._alarm_surprise)
            return max(young, self._alarm_surprise) if rule > 0.0 else young
        if side > 0:
            z = _error_code(r / side)
            point = max(errors.surprise_above(z, pot=True), errors.surprise_below(z, pot=True))
        else:
            point = 0.0
        values = self._value_tail
        if len(values) >= MIN_TAIL:
            point = max(point, values.surprise_above(v), values.surprise_below(v))
        if rule > 0.0:
            # A flat-line or a dropout is an anomaly by rule: it alarms (once, as an episode)
            # at the sensitivity's level; how far below its range a dropout is, the tails say.
            point = max(point, self._alarm_surprise)
        short = self._short
        short.append(point)
        mean = min(round(math.fsum(short) / len(short) * COLLECTIVE_CODES), 255) / COLLECTIVE_CODES
        collective = self._collective
        judged = self._collective_tail
        together = judged.surprise_above(mean) if len(judged) >= MIN_TAIL else 0.0
        if len(collective) == collective.maxlen:
            judged.discard(collective[0])
        collective.append(mean)
        judged.add(mean)
        return max(point, together)

    def _learn_error(self, z: float) -> None:
        errors = self._errors
        if len(errors) == errors.maxlen:
            self._error_tail.discard(errors[0])
        errors.append(z)
        self._error_tail.add(z)

    def _warming(self, v: float, known: bool) -> StreamPoint:
        """Collect a warm-up point; report the running median as its expectation."""
        recent = [x for x in list(self._history)[-50:] if math.isfinite(x)]
        expected = statistics.median(recent) if recent else (v if known else 0.0)
        self._advance(v if known else math.nan)
        return StreamPoint(expected, 0.0, 0.0, False, False, False, 0.0)

    def _advance(self, v: float) -> None:
        # The value tail holds the last TAIL_WINDOW known readings of the history (so it is
        # rebuilt from the history on restore and costs no state).
        history = self._history
        values = self._values
        if len(history) == history.maxlen and math.isfinite(history[0]):
            self._known -= 1
            if len(values) > self._known:
                self._value_tail.discard(values.popleft())
        history.append(v)
        if math.isfinite(v):
            if len(values) == values.maxlen:
                self._value_tail.discard(values.popleft())
            values.append(v)
            self._value_tail.add(v)
            self._known += 1
        self._count += 1
        self._since_refit += 1
        if not self._ready:
            if self._count >= self._config.warmup:
                refit(self)
        elif self._since_refit >= refit_interval(self):
            refit(self)
        elif self._alarms >= _SURPRISE and not self._hurried and self._since_refit >= _SURPRISE_GAP:
            refit(self, hurried=True)

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

    def to_state(self) -> JSONObject:
        """The detector's whole state as plain JSON types (``json.dumps`` works on it).

        Arrays are stored exactly (base64 of compressed float bytes, missing values as NaN),
        so a restored detector continues with identical results.
        """
        return detector_state(self)

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> StreamDetector:
        """Restore a detector saved by :meth:`to_state`.

        A state of an older layout (:data:`_OLDER_VERSIONS`, whose severities meant something
        else) is taken as no state: a new detector with the saved configuration is returned,
        which warms up afresh, so a live series is never refused for its old state.

        Args:
            state: The saved state (for example after ``json.loads``).

        Returns:
            A detector that continues exactly where the saved one stopped.

        Raises:
            EngineError: (a ``ValueError``) If the state is of an unknown version or malformed.
        """
        version = state.get("version") if isinstance(state, Mapping) else None
        if version in _OLDER_VERSIONS:
            try:
                config = _saved_config(state)
            except (KeyError, TypeError, ValueError) as exc:
                raise EngineError(
                    f"stream state is malformed ({exc}); start a new detector"
                ) from exc
            logger.warning("stream state of version %s is outdated: starting afresh", version)
            return cls(config)
        if version not in READABLE_VERSIONS:
            found = version if isinstance(state, Mapping) else type(state).__name__
            raise EngineError(
                f"stream state version {found!r} is not supported (expected {STATE_VERSION}); "
                "start a new detector"
            )
        try:
            detector = cls(_saved_config(state))
            restore_state(detector, state)
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise EngineError(f"stream state is malformed ({exc}); start a new detector") from exc
        return detector


def _saved_config(state: Mapping[str, object]) -> StreamConfig:
    """The configuration a state document was saved with (``StreamConfig`` checks its fields)."""
    saved = state["config"]
    if not isinstance(saved, Mapping):
        raise EngineError(f"config is a {type(saved).__name__}, not an object")
    fields: dict[str, Any] = dict(saved)  # each field is checked by StreamConfig itself
    return StreamConfig(**fields)
