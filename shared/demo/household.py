"""Labelled synthetic telemetry: a smart-meter household and a varied benchmark corpus.

Everything here is deterministic for a given ``seed`` (NumPy ``PCG64``), so tests, the demo and
the benchmarks see the same series on every machine.

Two generators:

* :func:`household` - a per-minute smart-meter household (``power`` kW, ``voltage`` V,
  ``kitchen`` and ``laundry`` Wh/min) with a daily rhythm that moves from day to day, noise, slow
  drift and *normal* appliance bursts, plus labelled injected anomalies of the kinds a person
  looking at the plot would point at: extreme spikes, voltage sags, level shifts (a heater left
  on, a tap change), dropouts (readings stuck at 0) and stuck sensors.
* :func:`quality_corpus` - a corpus of labelled series modelled on public telemetry benchmarks
  (NAB, Yahoo S5): 1-minute, 5-minute, 15-minute and hourly series, skewed and heavy-tailed
  noise, drift, random walks, daily and weekly seasonality whose amplitude and phase change,
  heteroscedastic noise, sparse counts and quantised sensors, with spikes, dips, level shifts,
  variance changes and flat-lines. Some series have no anomaly at all, so false alarms count.

Labels are per point (``labels``) and per event (``events``, inclusive index ranges); the two
always agree: ``labels[i]`` is true exactly when ``i`` lies inside some event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AnomalyEvent",
    "LabelledSeries",
    "household",
    "quality_corpus",
]

#: The anomaly kinds the generators inject.
ANOMALY_KINDS = (
    "spike",
    "dip",
    "level_shift",
    "dropout",
    "flatline",
    "variance_change",
    "contextual",
)

MINUTE = 60
_Rng = np.random.Generator


@dataclass(frozen=True)
class AnomalyEvent:
    """One labelled anomaly: the inclusive index range ``[start, end]`` and its kind."""

    start: int
    end: int
    kind: str

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"AnomalyEvent needs 0 <= start <= end, got {self.start}..{self.end}")


@dataclass(frozen=True)
class LabelledSeries:
    """A regularly sampled series with its anomaly labels.

    Attributes:
        name: Unique name inside its corpus (``family-index``).
        timestamps: ``datetime64[s]`` in UTC, strictly increasing, one step apart.
        values: float64 readings.
        labels: Boolean per point, true inside a labelled event.
        events: The labelled events, sorted by start, not overlapping.
    """

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    events: tuple[AnomalyEvent, ...]

    @property
    def step_seconds(self) -> int:
        """The sampling step in seconds."""
        return int((self.timestamps[1] - self.timestamps[0]) / np.timedelta64(1, "s"))


def _rng(seed: int, *salt: int) -> _Rng:
    return np.random.default_rng(np.random.SeedSequence([seed, *salt]))


def _timestamps(start: str, n: int, step_s: int) -> np.ndarray:
    t0 = np.datetime64(start, "s")
    return t0 + np.arange(n, dtype=np.int64) * np.timedelta64(step_s, "s")


def _finish(
    name: str, start: str, step_s: int, values: np.ndarray, events: list[AnomalyEvent]
) -> LabelledSeries:
    events = sorted(events, key=lambda e: e.start)
    labels = np.zeros(values.size, dtype=bool)
    for event in events:
        labels[event.start : event.end + 1] = True
    return LabelledSeries(
        name=name,
        timestamps=_timestamps(start, values.size, step_s),
        values=np.asarray(values, dtype=np.float64),
        labels=labels,
        events=tuple(events),
    )


class _Slots:
    """Picks non-overlapping anomaly positions with a guard gap between them."""

    def __init__(self, rng: _Rng, n: int, margin: int, gap: int) -> None:
        self._rng = rng
        self._n = n
        self._margin = margin
        self._gap = gap
        self._taken: list[tuple[int, int]] = []

    def take(self, length: int, where: Callable[[int], bool] | None = None) -> int:
        """Return a start index for an event of ``length`` points (optionally where ``where``)."""
        lo, hi = self._margin, self._n - self._margin - length
        if hi <= lo:
            raise ValueError("series too short for the requested anomalies")
        for _ in range(2000):
            start = int(self._rng.integers(lo, hi))
            end = start + length - 1
            if any(start <= b + self._gap and end + self._gap >= a for a, b in self._taken):
                continue
            if where is not None and not where(start):
                continue
            self._taken.append((start, end))
            return start
        raise ValueError("could not place the requested anomalies without overlap")


# --------------------------------------------------------------------------------------------
# Household
# --------------------------------------------------------------------------------------------


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = (hours - centre + 12.0) % 24.0 - 12.0
    return np.asarray(np.exp(-0.5 * (d / width) ** 2))


def _activity(n: int, rng: _Rng) -> np.ndarray:
    """Daily activity 0..1: night low, morning and evening peaks; moves a little every day."""
    minutes = np.arange(n)
    days = n // 1440 + 1
    shift = np.repeat(rng.normal(0.0, 0.4, days), 1440)[:n]
    amp = np.repeat(rng.uniform(0.8, 1.2, days), 1440)[:n]
    hours = (minutes / 60.0) % 24.0 - shift
    level = 0.7 * _bump(hours, 7.5, 0.9) + 0.35 * _bump(hours, 13.0, 1.5)
    level = level + 1.0 * _bump(hours, 19.5, 1.6)
    return np.asarray(np.clip(amp * level, 0.0, 1.2))


def _kitchen(n: int, rng: _Rng) -> np.ndarray:
    """Kitchen sub-meter in Wh/min: zero most of the time, appliance bursts at meal times."""
    wh = np.zeros(n)
    for day in range(n // 1440 + 1):
        base = day * 1440
        # Kettle / microwave: a few short bursts around breakfast and dinner.
        for centre in (7.3, 12.8, 18.8):
            for _ in range(int(rng.integers(0, 3))):
                s = base + int((centre + rng.normal(0, 0.6)) * 60)
                length = int(rng.integers(2, 6))
                if 0 <= s < n - length:
                    wh[s : s + length] = np.maximum(wh[s : s + length], rng.integers(18, 30))
        # Oven on most evenings: thermostat cycling around 37-38 Wh/min.
        if rng.random() < 0.7:
            s = base + int((18.5 + rng.normal(0, 0.5)) * 60)
            end = s + int(rng.integers(30, 70))
            pos = s
            while pos < min(end, n):
                on = int(rng.integers(3, 9))
                wh[pos : min(pos + on, n)] = rng.integers(36, 39, size=min(pos + on, n) - pos)
                pos += on
                off = int(rng.integers(1, 4))
                stop = min(pos + off, n)
                wh[pos:stop] = rng.integers(1, 3, size=max(0, stop - pos))
                pos += off
    return np.round(wh)


def _laundry(n: int, rng: _Rng) -> np.ndarray:
    """Laundry sub-meter in Wh/min: a cycling fridge (1-2) and washing-machine programmes."""
    wh = np.zeros(n)
    pos = int(rng.integers(0, 40))
    while pos < n:
        on = int(rng.integers(8, 16))
        wh[pos : pos + on] = rng.integers(1, 3, size=min(on, n - pos))
        pos += on + int(rng.integers(30, 55))
    for day in range(n // 1440 + 1):
        if rng.random() < 0.6:
            s = day * 1440 + int(rng.uniform(9.0, 20.0) * 60)
            # Heating phase, washing, spin.
            phases = [(15, 33, 37), (45, 1, 4), (10, 20, 30)]
            pos = s
            for length, lo, hi in phases:
                seg = slice(pos, min(pos + length, n))
                k = seg.stop - seg.start
                if k > 0:
                    wh[seg] = rng.integers(lo, hi + 1, size=k)
                pos += length
    return np.round(wh)


def _heater(n: int, rng: _Rng) -> np.ndarray:
    """A thermostat-controlled heater in kW: on most evenings it cycles on and off for hours."""
    kw = np.zeros(n)
    for day in range(n // 1440 + 1):
        if rng.random() < 0.75:
            pos = day * 1440 + int(rng.uniform(16.5, 20.0) * 60)
            end = pos + int(rng.integers(60, 200))
            while pos < min(end, n):
                on = int(rng.integers(2, 10))
                kw[pos : min(pos + on, n)] = rng.uniform(1.8, 2.6)
                pos += on + int(rng.integers(2, 12))
    return kw


def household(
    days: int = 4, seed: int = 0, start: str = "2026-11-02T00:00:00"
) -> dict[str, LabelledSeries]:
    """Generate a labelled per-minute smart-meter household.

    Args:
        days: Number of whole days (1,440 points each); at least 2.
        seed: Seed; the same seed always gives the same household.
        start: First timestamp (UTC, ISO 8601).

    Returns:
        ``{"power", "voltage", "kitchen", "laundry"}`` to :class:`LabelledSeries`. ``power`` is
        in kW (multiples of 0.002, as real meters report), ``voltage`` in V, the two sub-meters
        in whole Wh per minute.

    Raises:
        ValueError: If ``days`` is below 2.
    """
    if days < 2:
        raise ValueError(f"household needs at least 2 days, got {days}")
    n = days * 1440
    rng = _rng(seed, 1)
    minutes = np.arange(n)
    hours = (minutes / 60.0) % 24.0
    activity = _activity(n, rng)
    kitchen = _kitchen(n, rng)
    laundry = _laundry(n, rng)

    # Un-metered load: standby, lighting, water heater; heteroscedastic (busier = noisier).
    drift = 0.15 * np.sin(2 * np.pi * minutes / (n * 1.3) + rng.uniform(0, 6.3))
    other = 0.25 + drift + 1.4 * activity + rng.normal(0, 0.02 + 0.12 * activity, n)
    other = np.maximum(other, 0.1)
    power = other + (kitchen + laundry) * 0.06 + _heater(n, rng)

    slow = np.cumsum(rng.normal(0, 0.02, n))
    slow = slow - np.linspace(slow[0], slow[-1], n)
    voltage = (
        241.0 + 2.0 * np.sin(2 * np.pi * (hours - 4.0) / 24.0) + slow - 0.6 * power
    ) + rng.normal(0, 0.45, n)

    arng = _rng(seed, 2)
    day_ok: Callable[[int], bool] = lambda i: 8.0 <= hours[i] <= 22.0  # noqa: E731
    night: Callable[[int], bool] = lambda i: hours[i] < 5.0 or hours[i] >= 23.0  # noqa: E731

    # Power anomalies.
    events_p: list[AnomalyEvent] = []
    slots = _Slots(arng, n, 90, 120)
    for _ in range(2):  # extreme spikes, well above any appliance
        length = int(arng.integers(1, 3))
        s = slots.take(length)
        power[s : s + length] += arng.uniform(6.0, 8.0)
        events_p.append(AnomalyEvent(s, s + length - 1, "spike"))
    for _ in range(2):  # dropouts: the meter reports 0 for a few minutes
        length = int(arng.integers(3, 8))
        s = slots.take(length, day_ok)
        power[s : s + length] = 0.0
        events_p.append(AnomalyEvent(s, s + length - 1, "dropout"))
    length = int(arng.integers(120, 240))  # heater left on overnight
    s = slots.take(length, night)
    power[s : s + length] += arng.uniform(1.8, 2.5)
    events_p.append(AnomalyEvent(s, s + length - 1, "level_shift"))

    # Voltage anomalies.
    events_v: list[AnomalyEvent] = []
    slots = _Slots(arng, n, 90, 120)
    for _ in range(2):  # sags
        length = int(arng.integers(1, 4))
        s = slots.take(length)
        voltage[s : s + length] -= arng.uniform(12.0, 20.0)
        events_v.append(AnomalyEvent(s, s + length - 1, "dip"))
    length = int(arng.integers(1, 3))  # swell
    s = slots.take(length)
    voltage[s : s + length] += arng.uniform(10.0, 14.0)
    events_v.append(AnomalyEvent(s, s + length - 1, "spike"))
    length = int(arng.integers(180, 360))  # tap change that is reverted hours later
    s = slots.take(length)
    voltage[s : s + length] += arng.choice([-1.0, 1.0]) * arng.uniform(6.0, 8.0)
    events_v.append(AnomalyEvent(s, s + length - 1, "level_shift"))
    length = int(arng.integers(2, 6))  # meter dropout
    s = slots.take(length)
    voltage[s : s + length] = 0.0
    events_v.append(AnomalyEvent(s, s + length - 1, "dropout"))

    # Kitchen anomalies: an impossible burst and a stuck reading lasting hours.
    events_k: list[AnomalyEvent] = []
    slots = _Slots(arng, n, 90, 120)
    length = int(arng.integers(1, 3))
    s = slots.take(length, lambda i: bool(kitchen[i - 5 : i + 8].max() == 0))
    kitchen[s : s + length] = arng.integers(100, 130)
    events_k.append(AnomalyEvent(s, s + length - 1, "spike"))
    length = int(arng.integers(180, 300))
    s = slots.take(length, lambda i: bool(kitchen[i - 5 : i + 305].max() == 0))
    kitchen[s : s + length] = 37.0
    events_k.append(AnomalyEvent(s, s + length - 1, "flatline"))

    # Laundry anomalies: a burst far above the washing machine and a stuck fridge reading.
    events_l: list[AnomalyEvent] = []
    slots = _Slots(arng, n, 90, 120)
    length = int(arng.integers(1, 3))
    s = slots.take(length, lambda i: bool(laundry[i - 5 : i + 8].max() <= 2))
    laundry[s : s + length] = arng.integers(140, 170)
    events_l.append(AnomalyEvent(s, s + length - 1, "spike"))
    length = int(arng.integers(180, 300))
    s = slots.take(length, lambda i: bool(laundry[i - 5 : i + 305].max() <= 2))
    laundry[s : s + length] = 9.0
    events_l.append(AnomalyEvent(s, s + length - 1, "flatline"))

    power = np.round(np.maximum(power, 0.0) / 0.002) * 0.002
    voltage = np.round(voltage, 2)
    return {
        "power": _finish("power", start, MINUTE, power, events_p),
        "voltage": _finish("voltage", start, MINUTE, voltage, events_v),
        "kitchen": _finish("kitchen", start, MINUTE, kitchen, events_k),
        "laundry": _finish("laundry", start, MINUTE, laundry, events_l),
    }


# --------------------------------------------------------------------------------------------
# Quality corpus
# --------------------------------------------------------------------------------------------


def _ar1(rng: _Rng, n: int, phi: float, sigma: float) -> np.ndarray:
    """AR(1) noise with stationary standard deviation ``sigma``."""
    e = rng.normal(0.0, sigma * np.sqrt(1.0 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def _daily(n: int, period: int, rng: _Rng, harmonics: int = 3) -> np.ndarray:
    """A smooth seasonal shape with unit amplitude and random harmonics."""
    t = np.arange(n) / period
    shape = np.zeros(n)
    for h in range(1, harmonics + 1):
        shape += rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * h * t + rng.uniform(0, 2 * np.pi))
    return np.asarray(shape / np.max(np.abs(shape)))


def _inject_spikes(
    values: np.ndarray,
    slots: _Slots,
    rng: _Rng,
    count: int,
    size: Callable[[], float],
    kind: str = "spike",
) -> list[AnomalyEvent]:
    events = []
    for _ in range(count):
        length = int(rng.integers(1, 3))
        s = slots.take(length)
        sign = -1.0 if kind == "dip" else 1.0
        values[s : s + length] += sign * size()
        events.append(AnomalyEvent(s, s + length - 1, kind))
    return events


def _level_shift(
    values: np.ndarray, slots: _Slots, rng: _Rng, size: float, permanent: bool
) -> AnomalyEvent:
    n = values.size
    if permanent:
        # A permanent shift: labelled at its onset, as a person marks the moment it happened.
        s = slots.take(8)
        values[s:] += size
        return AnomalyEvent(s, s + 7, "level_shift")
    length = int(rng.integers(max(20, n // 60), max(40, n // 20)))
    s = slots.take(length)
    values[s : s + length] += size
    return AnomalyEvent(s, s + length - 1, "level_shift")


def _cpu_5min(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Server CPU % at 5 minutes: daily cycle, right-skewed noise, spikes and a level shift."""
    n = int(rng.integers(2016, 4033))
    period = 288
    level = rng.uniform(25, 45)
    amp = rng.uniform(5, 15) * (1 + 0.3 * np.sin(2 * np.pi * np.arange(n) / (n * 0.9)))
    noise_scale = rng.uniform(1.0, 3.0)
    values = level + amp * _daily(n, period, rng) + rng.gamma(2.0, noise_scale / 1.4, n)
    slots = _Slots(rng, n, 100, 60)
    events = _inject_spikes(values, slots, rng, 3, lambda: rng.uniform(10, 16) * noise_scale)
    events += _inject_spikes(values, slots, rng, 1, lambda: rng.uniform(8, 12) * noise_scale, "dip")
    events.append(_level_shift(values, slots, rng, rng.uniform(8, 12) * noise_scale, i % 2 == 0))
    return np.clip(values, 0, 100), events, 300


def _traffic_hourly(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Hourly request counts: daily and weekly cycles, Poisson noise, a missing busy day."""
    n = int(rng.integers(1000, 2200))
    t = np.arange(n)
    base = rng.uniform(300, 1500)
    day = 1.0 + 0.6 * _daily(n, 24, rng, 2)
    week = np.where(((t // 24) + int(rng.integers(0, 7))) % 7 >= 5, 0.7, 1.0)
    trend = 1.0 + rng.uniform(-0.2, 0.3) * t / n
    mean = base * day * week * trend
    slots = _Slots(rng, n, 60, 40)
    events: list[AnomalyEvent] = []
    # A contextual dip: a few hours of a busy period lose most of their traffic (an outage).
    busy = mean > np.quantile(mean, 0.7)
    length = int(rng.integers(3, 8))
    s = slots.take(length, lambda k: bool(busy[k : k + length].all()))
    mean[s : s + length] *= rng.uniform(0.25, 0.45)
    events.append(AnomalyEvent(s, s + length - 1, "contextual"))
    for _ in range(2):
        length = int(rng.integers(1, 3))
        s = slots.take(length)
        mean[s : s + length] *= rng.uniform(1.8, 2.5)
        events.append(AnomalyEvent(s, s + length - 1, "spike"))
    values = rng.poisson(mean).astype(np.float64)
    return values, events, 3600


def _temperature_1min(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Room temperature per minute: daily cycle drifting in phase, AR noise, sensor faults."""
    n = int(rng.integers(4320, 8641))
    t = np.arange(n)
    phase = 2 * np.pi * (t / 1440 + 0.05 * np.sin(2 * np.pi * t / (n * 1.1)))
    amp = rng.uniform(1.0, 2.5) * (1 + 0.4 * t / n)
    sigma = rng.uniform(0.08, 0.2)
    values = 21.0 + amp * np.sin(phase) + _ar1(rng, n, 0.9, sigma) + 0.5 * t / n
    slots = _Slots(rng, n, 200, 100)
    events = _inject_spikes(values, slots, rng, 1, lambda: rng.uniform(2.5, 4.0))
    length = int(rng.integers(60, 180))  # stuck sensor: repeats its last reading
    s = slots.take(length)
    values[s : s + length] = values[s - 1]
    events.append(AnomalyEvent(s, s + length - 1, "flatline"))
    length = int(rng.integers(150, 300))  # loose connector: noise jumps
    s = slots.take(length)
    values[s : s + length] += rng.normal(0, sigma * 8, length)
    events.append(AnomalyEvent(s, s + length - 1, "variance_change"))
    return np.round(values, 2), events, 60


def _latency_1min(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Service latency (ms) per minute: heavy-tailed, no seasonality, degradations."""
    n = int(rng.integers(2000, 5001))
    median = rng.uniform(40, 120)
    values = median * rng.lognormal(0.0, 0.25, n)
    slots = _Slots(rng, n, 100, 60)
    events = _inject_spikes(values, slots, rng, 2, lambda: median * rng.uniform(6, 10))
    events.append(_level_shift(values, slots, rng, median * rng.uniform(1.5, 2.5), i % 2 == 1))
    return np.round(values, 1), events, 60


def _random_walk(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """A wandering metric (e.g. a queue or stock level): near-unit-root AR, jumps and spikes."""
    n = int(rng.integers(1500, 4001))
    innov = rng.uniform(0.5, 1.5)
    values = 100 + _ar1(rng, n, 0.995, innov * 10) + rng.normal(0, innov, n)
    slots = _Slots(rng, n, 100, 60)
    events = _inject_spikes(values, slots, rng, 2, lambda: innov * rng.uniform(12, 18))
    events += _inject_spikes(values, slots, rng, 1, lambda: innov * rng.uniform(12, 18), "dip")
    events.append(_level_shift(values, slots, rng, innov * rng.uniform(15, 25), True))
    return values, events, 300


def _sparse_counts(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Error counts per 5 minutes: mostly zero, small counts, occasional error storms."""
    n = int(rng.integers(1500, 4001))
    lam = rng.uniform(0.2, 0.8)
    values = rng.poisson(lam, n).astype(np.float64)
    slots = _Slots(rng, n, 60, 40)
    events = []
    for _ in range(2):
        length = int(rng.integers(1, 5))
        s = slots.take(length)
        values[s : s + length] += rng.integers(15, 30, size=length)
        events.append(AnomalyEvent(s, s + length - 1, "spike"))
    return values, events, 300


def _hetero_daily(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Energy per 15 minutes: busy days are noisy, nights are quiet; anomalies at night too."""
    n = int(rng.integers(1920, 3361))
    period = 96
    t = np.arange(n)
    hours = (t % period) / 4.0
    activity = np.clip(np.sin(np.pi * (hours - 6.0) / 16.0), 0, None)
    values = 5 + 20 * activity + rng.normal(0, 0.3 + 3.0 * activity, n)
    quiet = activity < 0.05
    slots = _Slots(rng, n, 100, 40)
    events = []
    length = int(rng.integers(1, 3))  # a night-time spike: small in absolute terms, obvious
    s = slots.take(length, lambda k: bool(quiet[k : k + length].all()))
    values[s : s + length] += rng.uniform(5, 7)
    events.append(AnomalyEvent(s, s + length - 1, "spike"))
    length = int(rng.integers(2, 5))  # a daytime drop to the night level
    s = slots.take(length, lambda k: bool(activity[k : k + length].min() > 0.8))
    values[s : s + length] = 5 + rng.normal(0, 0.3, length)
    events.append(AnomalyEvent(s, s + length - 1, "dip"))
    events += _inject_spikes(values, slots, rng, 1, lambda: rng.uniform(25, 35))
    return values, events, 900


def _drift_trend(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """A strongly trending metric (disk usage, a growing user base) with a daily rhythm."""
    n = int(rng.integers(1000, 3001))
    t = np.arange(n)
    slope = rng.uniform(0.05, 0.2) * rng.choice([-1.0, 1.0])
    sigma = rng.uniform(1.0, 2.0)
    values = 500 + slope * t + 6 * sigma * _daily(n, 24, rng) + _ar1(rng, n, 0.5, sigma)
    slots = _Slots(rng, n, 80, 40)
    events = _inject_spikes(values, slots, rng, 1, lambda: sigma * rng.uniform(10, 14))
    events += _inject_spikes(values, slots, rng, 1, lambda: sigma * rng.uniform(10, 14), "dip")
    events.append(_level_shift(values, slots, rng, -sigma * rng.uniform(15, 20), True))
    return values, events, 3600


def _quantised_sensor(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """A coarse sensor (0.5-unit steps) per minute: pressure or humidity; dropouts, flat-lines."""
    n = int(rng.integers(1000, 3001))
    values = 55 + 4 * _daily(n, 1440, rng, 1) + _ar1(rng, n, 0.97, 1.5) + rng.normal(0, 0.4, n)
    values = np.round(values * 2) / 2
    slots = _Slots(rng, n, 80, 40)
    events = []
    length = int(rng.integers(2, 6))
    s = slots.take(length)
    values[s : s + length] = 0.0
    events.append(AnomalyEvent(s, s + length - 1, "dropout"))
    length = int(rng.integers(60, 150))
    s = slots.take(length)
    values[s : s + length] = values[s - 1]
    events.append(AnomalyEvent(s, s + length - 1, "flatline"))
    events += _inject_spikes(values, slots, rng, 1, lambda: rng.uniform(9, 14))
    return values, events, 60


def _seasonal_phase_change(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """Hourly load whose daily peak moves by an hour midway (a daylight-saving change)."""
    n = int(rng.integers(1200, 2400))
    t = np.arange(n)
    cut = n // 2
    shifted = np.where(t < cut, t, t + 1)
    amp = rng.uniform(20, 40) * (1 + 0.5 * np.sin(2 * np.pi * t / n))
    sigma = rng.uniform(1.5, 3.0)
    values = 100 + amp * np.sin(2 * np.pi * shifted / 24) + rng.normal(0, sigma, n)
    slots = _Slots(rng, n, 60, 40)
    events = _inject_spikes(values, slots, rng, 2, lambda: sigma * rng.uniform(8, 12))
    events += _inject_spikes(values, slots, rng, 1, lambda: sigma * rng.uniform(8, 12), "dip")
    return values, events, 3600


def _clean(rng: _Rng, i: int) -> tuple[np.ndarray, list[AnomalyEvent], int]:
    """A normal series with no anomaly at all: every flag on it is a false alarm."""
    n = int(rng.integers(1000, 8641))
    kind = i % 3
    if kind == 0:  # seasonal with AR noise, 10-minute data
        values = 50 + 10 * _daily(n, 144, rng) + _ar1(rng, n, 0.6, 1.5)
        return values, [], 600
    if kind == 1:  # skewed noise around a slow drift
        values = 20 + np.linspace(0, rng.uniform(-5, 5), n) + rng.gamma(3.0, 1.0, n)
        return values, [], 60
    values = 10 + _ar1(rng, n, 0.98, 2.0) + rng.normal(0, 0.3, n)  # wandering
    return values, [], 300


_FAMILIES: tuple[
    tuple[str, Callable[[_Rng, int], tuple[np.ndarray, list[AnomalyEvent], int]], int], ...
] = (
    ("cpu_5min", _cpu_5min, 4),
    ("traffic_hourly", _traffic_hourly, 3),
    ("temperature_1min", _temperature_1min, 2),
    ("latency_1min", _latency_1min, 3),
    ("random_walk", _random_walk, 3),
    ("sparse_counts", _sparse_counts, 2),
    ("hetero_daily", _hetero_daily, 3),
    ("drift_trend", _drift_trend, 2),
    ("quantised_sensor", _quantised_sensor, 2),
    ("seasonal_phase_change", _seasonal_phase_change, 2),
    ("clean", _clean, 3),
)


def quality_corpus(seed: int = 0) -> list[LabelledSeries]:
    """Generate the labelled benchmark corpus.

    Args:
        seed: Seed; the same seed always gives the same corpus.

    Returns:
        29 labelled series, 1,000 to 8,640 points each, named ``family-index``.
    """
    corpus = []
    for family_no, (family, make, count) in enumerate(_FAMILIES):
        for i in range(count):
            rng = _rng(seed, 100 + family_no, i)
            values, events, step = make(rng, i)
            corpus.append(_finish(f"{family}-{i}", "2026-01-05T00:00:00", step, values, events))
    return corpus
