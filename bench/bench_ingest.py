"""Ingest throughput: ``shared.telemetry.ingest.prepare_batch`` on one core, against bare
``json.loads``.

Run by the suite in a subprocess pinned to one CPU (``python -m bench.bench_ingest --output
FILE``), so the figure is single-core whatever the machine. The events imitate a partition of
an IoT Hub: 250 meters reporting every minute, each with its own clock phase (and milliseconds
for the multi-metric firmware); half send the tutorial's ``{"timestamp", "value": "0.418"}``
with the device id in the IoT Hub system properties, half send multi-metric bodies with a
``deviceId``. About 0.5 % of events are redelivered duplicates and 0.2 % are malformed (they
are dead-lettered), as on a real hub. Delivered in batches of 256 events.

Besides the rates, it reports what a batch costs in storage: ``ingest_requests_per_batch``
(create-only writes: one raw batch v2 blob plus one per dead letter; the v1 layout wrote one
blob per device and metric, about 520 per batch of this fleet) and the gzip bytes stored per
reading.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    EXIT_NOT_AVAILABLE,
    NotAvailable,
    PartReport,
    Results,
    median,
    pin_to_one_core,
    require,
    run_measuring_process,
)

BATCH_SIZE = 256
REPO = Path(__file__).resolve().parents[1]
DEVICES = 250
START = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
_AUTH_METHOD = '{"scope":"device","type":"sas","issuer":"iothub"}'


@dataclass(frozen=True)
class EventSpec:
    """One simulated delivery: body, partition metadata and IoT Hub system properties."""

    body: bytes
    sequence_number: int
    enqueued_time: datetime
    system_properties: dict[str, Any]


def _stamp(moment: datetime, with_ms: bool) -> str:
    if with_ms:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def simulate_events(count: int, devices: int = DEVICES, seed: int = 7) -> list[EventSpec]:
    """Return ``count`` realistic telemetry deliveries of one Event Hub partition.

    Args:
        count: Events to generate.
        devices: Meters writing to the partition (each reports once a minute).
        seed: Random seed (the output is deterministic for a seed).
    """
    rng = random.Random(seed)
    phases = [
        timedelta(seconds=rng.randrange(60), milliseconds=rng.randrange(1000))
        for _ in range(devices)
    ]
    base_power = [rng.uniform(0.2, 2.5) for _ in range(devices)]
    order = list(range(devices))
    events: list[EventSpec] = []
    minute = 0
    sequence = 1_000_000
    while len(events) < count:
        rng.shuffle(order)  # arrival order within a minute varies with network latency
        for device in order:
            if len(events) >= count:
                break
            moment = START + timedelta(minutes=minute) + phases[device]
            power = max(0.0, base_power[device] + rng.gauss(0.0, 0.3))
            name = f"meter-{device:04d}"
            system: dict[str, Any] = {
                "iothub-connection-device-id": name,
                "iothub-connection-auth-method": _AUTH_METHOD,
                "iothub-enqueuedtime": moment.isoformat(),
                "iothub-message-source": "Telemetry",
            }
            roll = rng.random()
            if roll < 0.002:
                body = rng.choice(
                    [
                        b'{"timestamp":"2024-05-01T00:00:00Z","value":"n/a"}',
                        b'{"timestamp":"yesterday","value":"0.418"}',
                        b'{"timestamp":"2024-05-01T00:00:00Z","val',
                        b'{"value":"0.418"}',
                    ]
                )
            elif device % 2 == 0:
                body = json.dumps(
                    {"timestamp": _stamp(moment, False), "value": f"{power:.3f}"},
                    separators=(",", ":"),
                ).encode()
            else:
                body = json.dumps(
                    {
                        "deviceId": name,
                        "timestamp": _stamp(moment, True),
                        "power": round(power, 3),
                        "voltage": round(rng.gauss(236.0, 2.0), 1),
                        "kitchen": rng.choice((0, 0, 0, 1, 2, 35)),
                        "laundry": rng.choice((0, 0, 1, 2, 30)),
                        "firmware": "2.4.1",
                    },
                    separators=(",", ":"),
                ).encode()
            sequence += 1
            events.append(EventSpec(body, sequence, moment + timedelta(seconds=1), system))
            if rng.random() < 0.005 and len(events) < count:  # redelivered duplicate
                sequence += 1
                events.append(EventSpec(body, sequence, moment + timedelta(seconds=2), system))
        minute += 1
    return events


def events_per_second(call: Callable[[], object], events: int, repeats: int) -> float:
    """Return the median events per second of ``call`` (which handles ``events`` events)."""
    call()  # warm caches and lazy imports; not timed
    rates: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        rates.append(events / (time.perf_counter() - start))
    return median(rates)


def paired_rates(
    subject: Callable[[], object], baseline: Callable[[], object], events: int, repeats: int
) -> tuple[float, float, float]:
    """Time ``subject`` and ``baseline`` alternately; return their median rates and the ratio.

    Each repeat times one pass of each, back to back, so both see the same machine load; the
    ratio is the median of the per-repeat ``subject time / baseline time`` (how many times
    slower the subject is), which a busy neighbour shifts far less than two separate medians.

    Returns:
        ``(subject events/s, baseline events/s, ratio)``.
    """
    subject()
    baseline()  # warm both; not timed
    subject_s: list[float] = []
    baseline_s: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        subject()
        middle = time.perf_counter()
        baseline()
        subject_s.append(middle - start)
        baseline_s.append(time.perf_counter() - middle)
    return (
        events / median(subject_s),
        events / median(baseline_s),
        median(a / b for a, b in zip(subject_s, baseline_s, strict=True)),
    )


def to_raw_events(specs: Sequence[EventSpec]) -> list[Any]:
    """Wrap simulated deliveries in ``RawEvent`` (partition 3, IoT Hub metadata).

    Raises:
        NotAvailable: ``shared.telemetry.ingest`` (or its ``RawEvent``/``prepare_batch``) is
        missing.
    """
    raw_event = require("shared.telemetry.ingest", "RawEvent", "prepare_batch").RawEvent
    return [
        raw_event(
            body=spec.body,
            partition_id="3",
            sequence_number=spec.sequence_number,
            offset=str(spec.sequence_number * 512),
            enqueued_time=spec.enqueued_time,
            properties={},
            system_properties=spec.system_properties,
        )
        for spec in specs
    ]


def fleet_batches(count: int, devices: int) -> tuple[list[Sequence[Any]], list[bytes]]:
    """Return ``count`` simulated events of ``devices`` meters in batches, and their bodies."""
    specs = simulate_events(count, devices)
    events = to_raw_events(specs)
    batches: list[Sequence[Any]] = [
        events[i : i + BATCH_SIZE] for i in range(0, len(events), BATCH_SIZE)
    ]
    return batches, [spec.body for spec in specs]


def measure(count: int = 51_200, repeats: int = 9) -> Results:
    """Measure ingest against bare JSON parsing of the same events, in this process.

    The headline is a fleet of :data:`DEVICES` meters on the partition, timed alternately with
    ``json.loads`` of the same bodies (see :func:`paired_rates`). A single household (4 meters)
    is measured too: the raw batch v2 layout (one blob per delivered batch) makes the cost
    nearly independent of how many devices share a batch.

    Raises:
        NotAvailable: ``shared.telemetry.ingest`` (or its ``RawEvent``/``prepare_batch``) is
        missing.
    """
    prepare_batch = require("shared.telemetry.ingest", "prepare_batch").prepare_batch
    batches, bodies = fleet_batches(count, DEVICES)

    def run_ingest() -> None:
        for batch in batches:
            prepare_batch(batch)

    def run_json() -> None:
        loads = json.loads
        for body in bodies:
            try:
                loads(body)
            except ValueError:  # the malformed few: the baseline must survive them too
                pass

    prepared = [prepare_batch(batch) for batch in batches]
    readings = sum(p.readings for p in prepared)
    ingest_rate, json_rate, slower = paired_rates(run_ingest, run_json, len(bodies), repeats)

    household, _ = fleet_batches(count, 4)

    def run_household() -> None:
        for batch in household:
            prepare_batch(batch)

    household_rate = events_per_second(run_household, count, max(3, repeats // 2))
    return {
        "ingest_events_per_s": ingest_rate,
        "json_parse_events_per_s": json_rate,
        "ingest_vs_json_ratio": slower,
        "ingest_readings_per_s": ingest_rate * readings / len(bodies),
        "ingest_blobs_per_batch": sum(len(p.blobs) for p in prepared) / len(prepared),
        "ingest_requests_per_batch": sum(len(p.blobs) + len(p.dead_letters) for p in prepared)
        / len(prepared),
        "ingest_raw_bytes_per_reading": sum(len(b.data) for p in prepared for b in p.blobs)
        / max(readings, 1),
        "ingest_events": len(bodies),
        "ingest_devices": DEVICES,
        "ingest_dead_letters": sum(len(p.dead_letters) for p in prepared),
        "ingest_4_devices_events_per_s": household_rate,
        "ingest_4_devices_blobs_per_batch": sum(len(prepare_batch(b).blobs) for b in household)
        / len(household),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: pin to one core, measure, and write the figures as JSON (stdout or ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the figures here (default: stdout)")
    parser.add_argument("--events", type=int, default=51_200)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    try:
        figures = measure(args.events, args.repeats)
    except NotAvailable as exc:
        sys.stderr.write(f"not available: {exc}\n")
        return EXIT_NOT_AVAILABLE
    figures["ingest_cpu"] = cpu
    text = json.dumps(figures)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


def run(report: PartReport, quick: bool = False) -> None:
    """The ``ingest`` part: run :func:`main` in a fresh subprocess pinned to one core."""
    quick_arguments = ["--events", "12800", "--repeats", "3"] if quick else []
    run_measuring_process(report, "bench.bench_ingest", quick_arguments, timeout=900)


if __name__ == "__main__":
    sys.exit(main())
