"""History costs on Azurite: recording, compaction, range reads and the scheduled detection.

A fleet of ``--meters`` meters x 2 metrics reading once a minute, one raw batch (v2, the one
writer) per minute holding every reading of that minute, as the ingest writes them. The day is
prefilled with 23 hours of history (compacted, not counted), so the measured hour is the most
expensive of the day (the largest day blobs). Then, for one hour: each minute's batch is
recorded in the raw journal (the raw blob trigger's hook), the compaction runs every
``--every`` minutes, and the scheduled detection runs at the end of the hour. Storage requests
are counted at the HTTP layer (every try of every call, through the SDK's request hook) and app
CPU with
``time.process_time`` (this process only: Azurite is another process).

    .venv/bin/python -m bench.bench_history [--meters 200] [--every 15] [--output FILE]

Prints one JSON document of figures.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from azure.storage.blob import BlobServiceClient

from shared.demo.azurite import running_azurite
from shared.history.compaction import compact, record_raw_batches
from shared.history.detection import run_scheduled_detection
from shared.history.reader import read_history
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import raw_batch_v2_name
from shared.telemetry.rawbatch import encode_raw_batch
from shared.timefmt import format_timestamp

METRICS = ("power", "voltage")
START = datetime(2026, 11, 2, tzinfo=UTC)  # the measured hour is 23:00-24:00 of this day


class Counter:
    """Counts HTTP requests (the SDK's ``raw_request_hook``)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Any) -> None:
        self.count += 1


def batch(store: BlobStore, settings: Settings, minute: int, meters: int, seq: int) -> str:
    """Write the raw batch of one minute of the fleet; return its name."""
    stamp = START.timestamp() + 60 * minute
    text = format_timestamp(stamp)
    rng = np.random.default_rng(minute)
    noise = rng.standard_normal(meters)
    series = {}
    for d in range(meters):
        base = 2.0 + np.sin(2 * np.pi * (stamp % 86_400) / 86_400) + 0.05 * noise[d]
        series[(f"meter-{d:05d}", "power")] = {text: float(base)}
        series[(f"meter-{d:05d}", "voltage")] = {text: float(230.0 + noise[d])}
    data = encode_raw_batch(
        series,
        partition="0",
        first_sequence=seq,
        last_sequence=seq + 2 * meters - 1,
        enqueued_time=format_timestamp(stamp + 1),
    )
    name = raw_batch_v2_name(stamp + 1, "0", seq, seq + 2 * meters - 1)
    store.put_bytes(BlobRef(settings.raw_container, name), data)
    return name


def prefill(store: BlobStore, settings: Settings, meters: int, minutes: int) -> int:
    """Hours of history before the measured hour: one raw batch per hour, compacted once."""
    seq = 0
    names = []
    for hour in range(minutes // 60):
        stamp0 = START.timestamp() + 3600 * hour
        series: dict[tuple[str, str], dict[str, float]] = {}
        for d in range(meters):
            for metric in METRICS:
                series[(f"meter-{d:05d}", metric)] = {
                    format_timestamp(stamp0 + 60 * m): float(2.0 + 0.01 * m + d % 7)
                    for m in range(60)
                }
        last = seq + 120 * meters - 1
        data = encode_raw_batch(
            series,
            partition="0",
            first_sequence=seq,
            last_sequence=last,
            enqueued_time=format_timestamp(stamp0 + 3599),
        )
        name = raw_batch_v2_name(stamp0 + 3599, "0", seq, last)
        store.put_bytes(BlobRef(settings.raw_container, name), data)
        names.append(name)
        seq = last + 1
    record_raw_batches(store, settings, names, START + timedelta(minutes=minutes - 5))
    compact(store, settings, START + timedelta(minutes=minutes - 1))
    # The scheduled detection's first run takes what the prefill made active (not measured).
    run_scheduled_detection(store, settings, START + timedelta(minutes=minutes - 1))
    return seq


def measure(meters: int, every: int = 15) -> dict[str, Any]:
    with running_azurite(reuse=False) as connection:
        counter = Counter()
        service = BlobServiceClient.from_connection_string(connection, raw_request_hook=counter)
        store = BlobStore(service)
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": connection,
                "RAW_CONTAINER": "raw-bench",
                "HISTORY_CONTAINER": "history-bench",
                "RESULTS_CONTAINER": "results-bench",
            }
        )
        prefill_minutes = 23 * 60
        seq = prefill(store, settings, meters, prefill_minutes)
        readings = 0
        record_requests = compaction_requests = 0
        compaction_cpu = 0.0
        runs = []
        for minute in range(prefill_minutes, prefill_minutes + 60):
            name = batch(store, settings, minute, meters, seq)
            seq += 2 * meters
            readings += 2 * meters
            now = START + timedelta(minutes=minute, seconds=30)
            before = counter.count
            record_raw_batches(store, settings, [name], now)
            record_requests += counter.count - before
            if (minute + 1) % every == 0:
                before, cpu = counter.count, time.process_time()
                report = compact(store, settings, now + timedelta(seconds=20))
                compaction_cpu += time.process_time() - cpu
                compaction_requests += counter.count - before
                runs.append(
                    {
                        "batches": report.batches,
                        "readings": report.readings,
                        "deviceDays": report.device_days,
                        "written": report.written,
                        "requests": counter.count - before,
                    }
                )
        end = START + timedelta(hours=24, minutes=5)
        before, cpu = counter.count, time.process_time()
        detection = run_scheduled_detection(store, settings, end)
        detection_cpu = time.process_time() - cpu
        detection_requests = counter.count - before
        reads = {}
        for days in (1, 2):
            before = counter.count
            history = read_history(
                store,
                settings,
                "meter-00007",
                "power",
                START.timestamp() + 86_400 - days * 86_400,
                START.timestamp() + 86_399,
                tail=False,
            )
            reads[f"{days}d"] = {"requests": counter.count - before, "points": history.size}
        return {
            "meters": meters,
            "compactionEveryMinutes": every,
            "metrics": len(METRICS),
            "readingsMeasured": readings,
            "recordRequestsPerReading": record_requests / readings,
            "compactionRequestsPerReading": compaction_requests / readings,
            "compactionCpuMsPerReading": 1000 * compaction_cpu / readings,
            "compactionRuns": runs,
            "historyRequestsPerReading": (record_requests + compaction_requests) / readings,
            "scheduledDetection": {
                "series": detection.series,
                "judged": detection.judged,
                "requests": detection_requests,
                "requestsPerSeries": detection_requests / max(1, detection.series),
                "requestsPerReading": detection_requests / readings,
                "cpuMsPerSeries": 1000 * detection_cpu / max(1, detection.series),
                "cpuMsPerReading": 1000 * detection_cpu / readings,
            },
            "rangeReads": reads,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--every", type=int, default=15, help="compaction interval, minutes")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    figures = measure(args.meters, args.every)
    text = json.dumps(figures, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)  # noqa: T201 - a command-line tool
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
