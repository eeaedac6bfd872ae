"""A synthetic meter fleet for the demo, the live-detection tests and ``bench/bench_live.py``.

Every meter sends one reading a minute of two metrics (``power`` with a daily rhythm, ``voltage``
around 230 V) with noise; chosen (meter, metric, minute) get a spike (power up 6 kW, voltage
down 40 V). :func:`run_fleet_demo` sends the fleet through the real use cases, batch by batch
(ingest, then live detection of every raw blob written), and reports what a reading costs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared.settings import Settings
from shared.storage.client import REQUESTS, BlobRef, BlobStore
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch
from shared.timefmt import format_timestamp
from shared.univariate.live import judge_raw_blob

#: 2026-12-01T00:00:00Z, the fleet's first minute.
FLEET_START = 1_796_083_200.0
FLEET_METRICS = ("power", "voltage")


@dataclass
class Fleet:
    """Meters with a daily rhythm and noise; ``spikes`` holds (meter, metric, minute)."""

    meters: int
    seed: int = 0
    spikes: set[tuple[int, str, int]] = field(default_factory=set)

    @staticmethod
    def device(meter: int) -> str:
        """The device id of meter number ``meter``."""
        return f"meter-{meter:05d}"

    def value(self, meter: int, metric: str, minute: int) -> float:
        """The reading of one meter's metric at one minute (deterministic)."""
        rng = np.random.default_rng((self.seed, meter, FLEET_METRICS.index(metric), minute))
        phase = 2 * np.pi * (minute % 1440) / 1440
        spiked = (meter, metric, minute) in self.spikes
        if metric == "power":
            base = 1.5 + 0.8 * np.sin(phase + meter) + 0.05 * rng.standard_normal()
            base += 6.0 if spiked else 0.0
        else:
            base = 230.0 + 2.0 * np.sin(phase) + 0.3 * rng.standard_normal()
            base -= 40.0 if spiked else 0.0
        return round(float(base), 3)

    def readings(self, minutes: range) -> dict[tuple[str, str], dict[str, float]]:
        """Readings over ``minutes``, grouped as the raw-batch writer takes them."""
        return {
            (self.device(meter), metric): {
                format_timestamp(FLEET_START + 60.0 * m): self.value(meter, metric, m)
                for m in minutes
            }
            for meter in range(self.meters)
            for metric in FLEET_METRICS
        }

    def messages(self, minute: int) -> list[bytes]:
        """One minute of the fleet as device messages (one JSON event per meter)."""
        stamp = format_timestamp(FLEET_START + 60.0 * minute)
        return [
            json.dumps(
                {
                    "deviceId": self.device(meter),
                    "timestamp": stamp,
                    **{metric: self.value(meter, metric, minute) for metric in FLEET_METRICS},
                }
            ).encode()
            for meter in range(self.meters)
        ]


@dataclass(frozen=True)
class FleetCost:
    """What the fleet demo measured."""

    meters: int
    readings: int
    alerts: int
    spikes: int
    found: int
    requests: int
    cpu_seconds: float

    @property
    def requests_per_reading(self) -> float:
        """Storage requests per reading (ingest and detection, at the HTTP layer)."""
        return self.requests / max(self.readings, 1)

    @property
    def cpu_ms_per_reading(self) -> float:
        """App CPU per reading in ms (ingest and detection, this process)."""
        return 1000.0 * self.cpu_seconds / max(self.readings, 1)


def run_fleet_demo(
    settings: Settings,
    store: BlobStore,
    *,
    meters: int = 40,
    minutes: int = 180,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FleetCost:
    """Send a fleet through ingest and live detection, one delivered batch a minute.

    Spikes are injected after the detectors' warm-up; the cost is measured over the last third
    (the steady state): storage requests at the HTTP layer and this process's CPU time.
    """
    rng = np.random.default_rng(seed)
    spikes = {
        (int(rng.integers(meters)), FLEET_METRICS[i % 2], int(rng.integers(minutes // 2, minutes)))
        for i in range(max(2, meters // 8))
    }
    fleet = Fleet(meters, seed, spikes)
    found: set[tuple[str, str, str]] = set()
    sequence = 0
    measured_from = minutes - minutes // 3
    readings = 0
    cpu = 0.0
    requests = 0
    for minute in range(minutes):
        started_cpu, started_requests = time.process_time(), REQUESTS.count
        events = []
        for body in fleet.messages(minute):
            events.append(RawEvent(body, "0", sequence))
            sequence += 1
        report = ingest_batch(events, store, settings)
        for blob in report.raw_blobs:
            data = store.get_bytes(BlobRef(settings.raw_container, blob))
            for alert in judge_raw_blob(blob, data, store, settings).alerts:
                found.add((alert.device_id, alert.metric, alert.timestamp))
        if minute >= measured_from:
            cpu += time.process_time() - started_cpu
            requests += REQUESTS.count - started_requests
            readings += report.readings
        if progress is not None:
            progress(minute + 1, minutes)
    expected = {
        (Fleet.device(m), metric, format_timestamp(FLEET_START + 60.0 * minute))
        for m, metric, minute in spikes
    }
    return FleetCost(
        meters=meters,
        readings=readings,
        alerts=len(found),
        spikes=len(expected),
        found=len(expected & found),
        requests=requests,
        cpu_seconds=cpu,
    )
