"""A varied labelled benchmark corpus (benchmark-only; the demo's household is elsewhere).

:func:`quality_corpus` - labelled series modelled on public telemetry benchmarks (NAB, Yahoo S5):
1-minute, 5-minute, 15-minute and hourly series, skewed and heavy-tailed noise, drift, random
walks, daily and weekly seasonality whose amplitude and phase change, heteroscedastic noise,
sparse counts and quantised sensors, with spikes, dips, level shifts, variance changes and
flat-lines. Some series have no anomaly at all, so false alarms count. Deterministic for a given
``seed``; the series are :class:`shared.demo.household.LabelledSeries`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shared.demo.household import LabelledSeries, _finish, _Rng, _rng, _Slots
from shared.evaluation import AnomalyEvent


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
