"""The live path end to end: Event Hub batch in, alerts out, what a reading costs.

Run by the suite in a subprocess pinned to one CPU (``python -m bench.bench_live --output
FILE``) over a private Azurite. A fleet of 200 meters x 2 metrics sends one reading a minute;
each minute is one delivered Event Hub batch. Both triggers run in-process with real binding
objects (``eventhub_ingest`` on ``func.EventHubEvent``, ``raw_blob_trigger`` on
``func.blob.InputStream`` with the ``anomalies`` output), and the raw blob is read back as the
host reads it for the blob trigger. After a warm-up past the detectors' first refits, the
steady state is measured:

* ``live_requests_per_reading`` - storage requests at the HTTP layer (the storage client's
  ``raw_request_hook``, once per try), ingest + the host's blob read + detection;
* ``live_cpu_ms_per_reading`` - this process's CPU (one core), ingest + detection, SDK included;
* ``live_capacity_meter_metrics`` - meter-metrics one instance carries at one reading a minute,
  serially (no overlap of storage waits): ``60 s / (CPU + requests x storage latency)`` per
  reading;
* ``live_alert_latency_ms`` - from the Event Hub batch handed to the ingest to the alert set on
  the output binding, worst of the measured batches with an anomaly;
* ``live_state_kb`` - a series' saved state (snapshot + pending points) after 4 days with a
  daily period at one reading a minute;
* ``live_peak_mb`` - peak RSS of a process whose blob-trigger invocation judged a batch of 1,000
  readings from a cold cache (1,000 detectors rebuilt from their shards).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.harness import (
    EXIT_NOT_AVAILABLE,
    NotAvailable,
    PartReport,
    pin_to_one_core,
    require,
    run_measuring_process,
)

REPO = Path(__file__).resolve().parents[1]
METERS = 200
WARMUP_MINUTES = 100
MEASURED_MINUTES = 60
MEMORY_METERS = 500  # x 2 metrics = 1,000 readings per batch
METRICS_PER_METER = 2  # shared.demo.fleet.FLEET_METRICS


def delivered(bodies: list[bytes], first_sequence: int, partition: str, enqueued: str) -> Any:
    """A batch decoded exactly as the Python worker does for ``cardinality=many``."""
    from azure.functions.eventhub import EventHubTriggerConverter
    from azure.functions.meta import Datum

    system = [
        {"SequenceNumber": first_sequence + i, "Offset": str(i), "EnqueuedTimeUtc": enqueued}
        for i in range(len(bodies))
    ]
    metadata = {
        "PartitionContext": Datum(json.dumps({"PartitionId": partition}), "json"),
        "SystemPropertiesArray": Datum(json.dumps(system), "json"),
        "PropertiesArray": Datum(json.dumps([{}] * len(bodies)), "json"),
    }
    data = Datum(SimpleNamespace(bytes=bodies), "collection_bytes")
    return EventHubTriggerConverter.decode(data, trigger_metadata=metadata)


class Published:
    """The ``anomalies`` output binding; records when the alerts were set."""

    def __init__(self) -> None:
        self.value: list[str] = []
        self.at: float | None = None

    def set(self, val: list[str]) -> None:
        self.value = val
        self.at = time.perf_counter()

    def get(self) -> list[str]:
        return self.value


def fleet_run(meters: int, warmup: int, measured: int) -> dict[str, Any]:
    """Drive the fleet through both triggers; return the steady-state figures."""
    import azure.functions as func

    import function_app
    from shared.demo.fleet import FLEET_METRICS, FLEET_START, Fleet
    from shared.settings import get_settings
    from shared.storage.client import REQUESTS, BlobRef, BlobStore
    from shared.timefmt import format_timestamp

    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    ingest = functions["eventhub_ingest"].get_user_function()
    detect = functions["raw_blob_trigger"].get_user_function()
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    at = [warmup + measured * k // 5 for k in (1, 2, 3, 4)]
    spikes = {
        (7 % meters, "power", at[0]),
        (42 % meters, "voltage", at[1]),
        (150 % meters, "power", at[2]),
        (199 % meters, "voltage", at[3]),
    }
    fleet = Fleet(meters, seed=1, spikes=spikes)
    readings = requests = 0
    cpu = wall = 0.0
    latencies: list[float] = []
    found: set[tuple[str, str, str]] = set()
    sequence = 0
    for minute in range(warmup + measured):
        bodies = fleet.messages(minute)
        enqueued = format_timestamp(FLEET_START + 60.0 * minute + 2)
        events = delivered(bodies, sequence, "0", enqueued)
        sequence += len(bodies)
        before = set(store.list_names(settings.raw_container)) if minute == 0 else None
        start_cpu, start_wall, start_requests = (
            time.process_time(),
            time.perf_counter(),
            REQUESTS.count,
        )
        ingest(events)
        name = _raw_name(FLEET_START + 60.0 * minute + 2, sequence - len(bodies), sequence - 1)
        if before is not None:
            assert name in set(store.list_names(settings.raw_container)) - before, name
        data = store.get_bytes(BlobRef(settings.raw_container, name))  # the host's read
        out = Published()
        detect(func.blob.InputStream(data=data, name=f"{settings.raw_container}/{name}"), out)
        if minute >= warmup:
            cpu += time.process_time() - start_cpu
            wall += time.perf_counter() - start_wall
            requests += REQUESTS.count - start_requests
            readings += len(bodies) * len(FLEET_METRICS)
            if out.value and out.at is not None:
                latencies.append(out.at - start_wall)
        for text in out.value:
            alert = json.loads(text)
            found.add((alert["deviceId"], alert["metric"], alert["timestamp"]))
    expected = {
        (Fleet.device(m), metric, format_timestamp(FLEET_START + 60.0 * t))
        for m, metric, t in spikes
    }
    cpu_per_reading = cpu / readings
    requests_per_reading = requests / readings
    # Storage latency per request: the measured wall time not spent on this process's CPU.
    latency = max(wall - cpu, 0.0) / max(requests, 1)
    seconds_per_reading = cpu_per_reading + requests_per_reading * latency
    return {
        "live_meters": meters,
        "live_metrics_per_meter": len(FLEET_METRICS),
        "live_readings_measured": readings,
        "live_requests_per_reading": requests_per_reading,
        "live_cpu_ms_per_reading": 1000.0 * cpu_per_reading,
        "live_storage_latency_ms": 1000.0 * latency,
        "live_capacity_meter_metrics": 60.0 / seconds_per_reading,
        "live_capacity_cpu_only_meter_metrics": 60.0 / cpu_per_reading,
        "live_alert_latency_ms": 1000.0 * max(latencies) if latencies else None,
        "live_alerts": len(found),
        "live_spikes_alerted": len(found & expected),
        "live_spikes": len(expected),
        "live_false_alerts": len(found - expected),
        "live_function_executions_per_reading": 2.0 / (meters * len(FLEET_METRICS)),
        "live_state_shards": settings.live_state_shards,
    }


def shards_for(series: int) -> int:
    """``LIVE_STATE_SHARDS`` by the setting's sizing rule: about one shard per 100 series."""
    return max(1, math.ceil(series / 100))


def _raw_name(enqueued: float, first: int, last: int) -> str:
    from shared.storage.names import raw_batch_v2_name

    return raw_batch_v2_name(enqueued, "0", first, last)


def state_size() -> dict[str, Any]:
    """A series' saved state after 4 days, daily period, one reading a minute."""
    import numpy as np

    from shared.demo.fleet import Fleet
    from shared.engine.streaming import StreamConfig, StreamDetector
    from shared.settings import get_settings

    fleet = Fleet(1, seed=3)
    values = np.array([fleet.value(0, "power", m) for m in range(4 * 1440)])
    detector = StreamDetector(StreamConfig())
    detector.update_many(values)
    snapshot = json.dumps(detector.to_state(), separators=(",", ":"))
    pending = get_settings().live_snapshot_points
    # The shard entry: snapshot + at most LIVE_SNAPSHOT_POINTS pending [epoch, value] pairs.
    pending_bytes = len(json.dumps([[1796083200.0, 1234.567]] * pending, separators=(",", ":")))
    return {
        "live_state_kb": (len(snapshot) + pending_bytes + 120) / 1024.0,
        "live_state_snapshot_kb": len(snapshot) / 1024.0,
        "live_state_period": detector.period,
    }


def peak_memory(meters: int) -> dict[str, Any]:
    """Peak RSS of a process judging a 1,000-reading batch with a cold cache."""
    import azure.functions as func

    import function_app
    from shared.demo.fleet import FLEET_START, Fleet
    from shared.storage.names import raw_batch_v2_name
    from shared.telemetry.rawbatch import encode_raw_batch
    from shared.timefmt import format_timestamp
    from shared.univariate.live import PROCESS_STATE

    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    detect = functions["raw_blob_trigger"].get_user_function()
    fleet = Fleet(meters, seed=2)
    from shared.settings import get_settings

    container = get_settings().raw_container
    minutes = range(64)
    # Build the states with batches of several minutes (cheap), then judge one minute cold.
    for first in range(0, 64, 16):
        span = range(first, first + 16)
        data = encode_raw_batch(
            fleet.readings(span),
            partition="9",
            first_sequence=first * meters,
            last_sequence=(first + 16) * meters - 1,
            enqueued_time=format_timestamp(FLEET_START + 60.0 * span[-1]),
        )
        name = raw_batch_v2_name(FLEET_START + 60.0 * span[-1], "9", first * meters, 0)
        detect(func.blob.InputStream(data=data, name=f"{container}/{name}"), Published())
    PROCESS_STATE.clear()
    gc.collect()
    last = minutes.stop
    data = encode_raw_batch(
        fleet.readings(range(last, last + 1)),
        partition="9",
        first_sequence=last * meters,
        last_sequence=(last + 1) * meters - 1,
        enqueued_time=format_timestamp(FLEET_START + 60.0 * last),
    )
    name = raw_batch_v2_name(FLEET_START + 60.0 * last, "9", last * meters, 1)
    started = time.perf_counter()
    detect(func.blob.InputStream(data=data, name=f"{container}/{name}"), Published())
    return {
        "live_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "live_cold_batch_1000_s": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: start Azurite, measure on one core, write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the figures here (default: stdout)")
    parser.add_argument("--meters", type=int, default=METERS)
    parser.add_argument("--warmup", type=int, default=WARMUP_MINUTES)
    parser.add_argument("--measured", type=int, default=MEASURED_MINUTES)
    parser.add_argument(
        "--shards",
        type=int,
        default=None,
        help="LIVE_STATE_SHARDS (default: the setting's sizing rule, about series/100)",
    )
    parser.add_argument("--memory", action="store_true", help="only the peak-memory figure")
    args = parser.parse_args(argv)
    try:
        require("shared.univariate.live", "judge_raw_blob")
    except NotAvailable as exc:
        print(f"not available: {exc}", file=sys.stderr)
        return EXIT_NOT_AVAILABLE
    if args.memory:
        figures = peak_memory(MEMORY_METERS)
    else:
        from shared.demo.azurite import running_azurite

        cpu = pin_to_one_core()
        with running_azurite(reuse=False) as connection:
            shards = args.shards or shards_for(args.meters * METRICS_PER_METER)
            env = {"AzureWebJobsStorage": connection, "LIVE_STATE_SHARDS": str(shards)}
            os.environ.update(env)
            figures = fleet_run(args.meters, args.warmup, args.measured)
            figures |= state_size()
            done = subprocess.run(
                [sys.executable, "-m", "bench.bench_live", "--memory", "--output", "-"],
                cwd=REPO,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            if done.returncode != 0:
                raise RuntimeError(f"memory run exited {done.returncode}: {done.stderr[-1500:]}")
            figures |= json.loads(done.stdout)
        figures["live_cpu"] = cpu
    text = json.dumps(figures, indent=2)
    if args.output and str(args.output) != "-":
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


def run(report: PartReport, quick: bool = False) -> None:
    """The ``live`` part: run :func:`main` in a fresh subprocess pinned to one core."""
    quick_arguments = ["--meters", "50", "--warmup", "70", "--measured", "20"] if quick else []
    run_measuring_process(report, "bench.bench_live", quick_arguments, timeout=1800)


if __name__ == "__main__":
    sys.exit(main())
