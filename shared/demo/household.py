"""Labelled synthetic telemetry: a smart-meter household (the demo's meter).

Everything here is deterministic for a given ``seed`` (NumPy ``PCG64``), so tests, the demo and
the benchmarks see the same series on every machine.

* :func:`household` - a per-minute smart-meter household (``power`` kW, ``voltage`` V,
  ``kitchen`` and ``laundry`` Wh/min) with a daily rhythm that moves from day to day, noise, slow
  drift and *normal* appliance bursts, plus labelled injected anomalies of the kinds a person
  looking at the plot would point at: extreme spikes, voltage sags, level shifts (a heater left
  on, a tap change), dropouts (readings stuck at 0) and stuck sensors.

The benchmark corpus built from the same labelled types lives in ``bench/corpus.py``.

Labels are per point (``labels``) and per event (``events``, inclusive index ranges); the two
always agree: ``labels[i]`` is true exactly when ``i`` lies inside some event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.errors import InputError
from shared.evaluation.events import AnomalyEvent
from shared.timefmt import regular_timestamps

__all__ = [
    "LabelledSeries",
    "household",
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


def _finish(
    name: str, start: str, step_s: int, values: np.ndarray, events: list[AnomalyEvent]
) -> LabelledSeries:
    events = sorted(events, key=lambda e: e.start)
    labels = np.zeros(values.size, dtype=bool)
    for event in events:
        labels[event.start : event.end + 1] = True
    return LabelledSeries(
        name=name,
        timestamps=regular_timestamps(start, values.size, step_s),
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
            raise InputError(
                "series too short for the requested anomalies", "InvalidHouseholdParameters"
            )
        for _ in range(2000):
            start = int(self._rng.integers(lo, hi))
            end = start + length - 1
            if any(start <= b + self._gap and end + self._gap >= a for a, b in self._taken):
                continue
            if where is not None and not where(start):
                continue
            self._taken.append((start, end))
            return start
        raise InputError(
            "could not place the requested anomalies without overlap", "InvalidHouseholdParameters"
        )


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
        raise InputError(
            f"household needs at least 2 days, got {days}", "InvalidHouseholdParameters"
        )
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
