"""The ``meterwatch`` command line: detect, simulate, demo (and the multivariate, serve,
history and evaluate commands).

Every command calls the same use cases as the triggers (``shared.univariate.detect``,
``shared.telemetry.ingest``); there is no second implementation here, only argument parsing
and file formats.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, SupportsFloat, TextIO

import numpy as np

from shared.cli.options import add_date_format_argument
from shared.errors import MeterwatchError
from shared.univariate.parameters import (
    DEFAULT_MAX_ANOMALY_RATIO,
    DEFAULT_SENSITIVITY,
    IMPUTE_MODES,
)

if TYPE_CHECKING:
    from azure.eventhub import EventDataBatch

    from shared.settings import Settings

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``meterwatch`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except MeterwatchError as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="meterwatch", description="Smart-meter anomaly detection on an embedded engine."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="detect anomalies in a timestamp,value CSV")
    detect.add_argument("input", type=Path, help="CSV with header timestamp,value")
    detect.add_argument(
        "--mode", choices=("entire", "last", "changepoint", "stream"), default="entire"
    )
    detect.add_argument("--granularity", default="auto", help="v1.1 granularity or auto")
    detect.add_argument("--custom-interval", type=int, default=None)
    detect.add_argument("--period", type=int, default=None, help="points per period; 0 = none")
    detect.add_argument(
        "--sensitivity", type=int, default=DEFAULT_SENSITIVITY, help="0-99 (higher flags more)"
    )
    detect.add_argument("--max-anomaly-ratio", type=float, default=DEFAULT_MAX_ANOMALY_RATIO)
    detect.add_argument(
        "--impute-mode",
        default="auto",
        choices=IMPUTE_MODES,
    )
    detect.add_argument("--impute-fixed-value", type=float, default=None)
    detect.add_argument("--stable-trend-window", type=int, default=10)
    detect.add_argument("--threshold", type=float, default=0.99)
    detect.add_argument("--output", type=Path, default=None, help="CSV file (default: stdout)")
    add_date_format_argument(detect)
    detect.set_defaults(handler=_detect)

    simulate = commands.add_parser("simulate", help="replay a CSV as device telemetry")
    simulate.add_argument("input", type=Path, help="CSV with header timestamp,value")
    simulate.add_argument("--device-id", default="meter-001")
    simulate.add_argument("--metric", default="power", help="metric name sent with each reading")
    simulate.add_argument("--rate", type=float, default=0.0, help="events per second (0: max)")
    simulate.add_argument("--limit", type=int, default=None, help="send at most N readings")
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--local",
        action="store_true",
        help="straight into the ingest and detection use cases, in-process, on the configured "
        "storage (Azurite by default)",
    )
    target.add_argument(
        "--namespace",
        help="Event Hubs namespace (NAME.servicebus.windows.net); signs in with "
        "DefaultAzureCredential, no keys",
    )
    simulate.add_argument("--eventhub", default=None, help="hub name (default: EVENTHUB_NAME)")
    simulate.add_argument("--batch-size", type=int, default=100)
    add_date_format_argument(simulate)
    simulate.set_defaults(handler=_simulate)

    demo = commands.add_parser("demo", help="run the main job end to end on Azurite")
    demo.add_argument("--output", type=Path, default=Path("demo-output"))
    demo.add_argument("--days", type=int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--connection", default=None, help="storage connection string (default: start Azurite)"
    )
    demo.add_argument("--no-multivariate", action="store_true")
    demo.set_defaults(handler=_demo)

    for extension in (
        "shared.cli.multivariate",
        "shared.cli.serve",
        "shared.cli.history",
        "shared.cli.evaluate",
    ):
        try:
            module = importlib.import_module(extension)
        except ModuleNotFoundError as exc:
            if exc.name != extension:
                raise
            continue
        module.add_commands(commands)
    return parser


# --------------------------------------------------------------------------- detect

ENTIRE_COLUMNS = (
    "timestamp",
    "value",
    "isAnomaly",
    "severity",
    "expectedValue",
    "lowerMargin",
    "upperMargin",
)
CHANGEPOINT_COLUMNS = ("timestamp", "value", "isChangePoint", "confidenceScore")


def _detect(args: argparse.Namespace) -> int:
    from shared.cli.csvio import read_series_csv
    from shared.timefmt import format_timestamp
    from shared.univariate.detect import DetectionOptions, detect_series

    series = read_series_csv(args.input, date_format=args.date_format)
    options = DetectionOptions(
        granularity=args.granularity,
        custom_interval=args.custom_interval,
        period=args.period,
        sensitivity=args.sensitivity,
        max_anomaly_ratio=args.max_anomaly_ratio,
        impute_mode=args.impute_mode,
        impute_fixed_value=args.impute_fixed_value,
        stable_trend_window=args.stable_trend_window,
        threshold=args.threshold,
    )
    result = detect_series(series.timestamps, series.values, args.mode, options)
    columns = CHANGEPOINT_COLUMNS if args.mode == "changepoint" else ENTIRE_COLUMNS
    per_input = {name: result.per_input(name) for name in columns[2:]}
    handle: TextIO
    with _open_output(args.output) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for i, stamp in enumerate(series.timestamps):
            row: list[str] = [format_timestamp(float(stamp)), _number(series.values[i])]
            for name in columns[2:]:
                row.append(_cell(per_input[name][i]))
            writer.writerow(row)
    flagged = per_input["isChangePoint" if args.mode == "changepoint" else "isAnomaly"]
    print(
        f"{args.mode}: {int(np.count_nonzero(flagged))} of {series.values.size} points flagged "
        f"(period {result.period}, {result.series.grid.granularity} x"
        f"{result.series.grid.custom_interval})",
        file=sys.stderr,
    )
    return 0


class _open_output:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.handle: TextIO | None = None

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("w", encoding="utf-8", newline="")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def _number(value: float) -> str:
    return f"{value:.10g}"


def _cell(value: SupportsFloat) -> str:
    if isinstance(value, np.bool_ | bool):
        return "true" if value else "false"
    number = float(value)
    return "" if np.isnan(number) else _number(number)


# --------------------------------------------------------------------------- simulate


def _simulate(args: argparse.Namespace) -> int:
    from shared.cli.csvio import read_series_csv
    from shared.settings import Settings, local_environment
    from shared.timefmt import format_timestamp

    series = read_series_csv(args.input, date_format=args.date_format)
    count = series.values.size if args.limit is None else min(args.limit, series.values.size)
    bodies = [
        json.dumps(
            {
                "deviceId": args.device_id,
                "timestamp": format_timestamp(float(series.timestamps[i])),
                args.metric: float(series.values[i]),
            }
        ).encode()
        for i in range(count)
    ]
    settings = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local_environment()}
    )
    pacer = _Pacer(args.rate)
    if args.local:
        return _simulate_local(bodies, settings, args.batch_size, pacer)
    return _simulate_eventhubs(
        bodies, args.namespace, args.eventhub or settings.eventhub_name, args.device_id, pacer
    )


class _Pacer:
    """Keeps a target event rate (0: as fast as possible)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.started, self.sent = rate, time.monotonic(), 0

    def wait(self, events: int) -> None:
        self.sent += events
        if self.rate > 0:
            ahead = self.sent / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def _simulate_local(bodies: list[bytes], settings: Settings, batch_size: int, pacer: _Pacer) -> int:
    from shared.storage.client import BlobRef, BlobStore
    from shared.telemetry.events import RawEvent
    from shared.telemetry.ingest import ingest_batch
    from shared.univariate.live import judge_raw_blob

    store = BlobStore.from_settings(settings)
    anomalies = 0
    for start in range(0, len(bodies), batch_size):
        chunk = bodies[start : start + batch_size]
        events = [RawEvent(body, "0", start + i) for i, body in enumerate(chunk)]
        report = ingest_batch(events, store, settings)
        for blob in report.raw_blobs:
            data = store.get_bytes(BlobRef(settings.raw_container, blob))
            anomalies += len(judge_raw_blob(blob, data, store, settings).alerts)
        pacer.wait(len(chunk))
        print(f"\rsent {start + len(chunk)}/{len(bodies)}, anomalies {anomalies}", end="")
    print(f"\nresults in container '{settings.results_container}'")
    return 0


def event_batches(
    bodies: Sequence[bytes],
    device_id: str,
    new_batch: Callable[[], EventDataBatch],
    per_send: int | None = None,
) -> Iterator[EventDataBatch]:
    """Pack message bodies into Event Hubs batches (``EventDataBatch`` from ``new_batch``).

    A batch is yielded when it is full (the SDK's size limit) or holds ``per_send`` events
    (to pace a slow simulated meter). Each event carries the ``deviceId`` application property.
    """
    from azure.eventhub import EventData

    batch = new_batch()
    for body in bodies:
        event = EventData(body)
        event.properties = {"deviceId": device_id}
        try:
            batch.add(event)
        except ValueError:  # full: ship it and start the next one
            yield batch
            batch = new_batch()
            batch.add(event)
        if per_send is not None and len(batch) >= per_send:
            yield batch
            batch = new_batch()
    if len(batch):
        yield batch


def _simulate_eventhubs(
    bodies: list[bytes], namespace: str, hub: str, device_id: str, pacer: _Pacer
) -> int:
    from azure.eventhub import EventHubProducerClient
    from azure.identity import DefaultAzureCredential

    producer = EventHubProducerClient(
        fully_qualified_namespace=namespace,
        eventhub_name=hub,
        credential=DefaultAzureCredential(),
    )
    per_send = max(1, int(pacer.rate)) if pacer.rate > 0 else None
    sent = 0
    with producer:
        for batch in event_batches(
            bodies, device_id, lambda: producer.create_batch(partition_key=device_id), per_send
        ):
            producer.send_batch(batch)
            sent += len(batch)
            pacer.wait(len(batch))
            print(f"\rsent {sent}/{len(bodies)}", end="")
    print(f"\nsent {sent} events to {namespace}/{hub}")
    return 0


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    from shared.demo.demo import run_demo

    run_demo(
        args.output,
        days=args.days,
        seed=args.seed,
        connection=args.connection,
        multivariate=not args.no_multivariate,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
