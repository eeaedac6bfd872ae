"""``meterwatch history``, ``anomalies`` and ``compact``: the archive read by series.

* ``history DEVICE METRIC --start --end --mode entire|changepoint|stream|request --output FILE``
  reads one series from the history (:func:`shared.history.reader.read_history`, one request per
  day) and writes the mode's result, or the v1.1 request itself, as JSON.
* ``anomalies --since T [--until T] [--device D]`` prints the anomaly log's alerts as JSON lines
  (:func:`shared.alerts.read_anomalies`, one per id).
* ``compact`` runs the compaction job now (and, with ``--detect``, the scheduled detection),
  for a machine without the Functions host's timers; ``--backfill-hours`` first records the raw
  batches of the last hours that were never recorded.

Settings come from ``local.settings.json`` and the environment, as for the function app.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.univariate.parameters import IMPUTE_MODES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.jsontypes import JSONObject, JSONValue
    from shared.settings import Settings

MODES = ("entire", "changepoint", "stream", "request")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``history``, ``anomalies`` and ``compact`` (called by :mod:`shared.cli.main`)."""
    history = commands.add_parser(
        "history",
        help="detect over (or export the v1.1 request of) one series of the history",
        description="Read DEVICE's METRIC from the compacted history between --start and --end "
        "(plus the readings not compacted yet) and run one detection mode on it.",
    )
    history.add_argument("device", help="device id")
    history.add_argument("metric", help="metric name")
    history.add_argument("--start", required=True, help="first timestamp (ISO 8601, inclusive)")
    history.add_argument("--end", required=True, help="last timestamp (ISO 8601, inclusive)")
    history.add_argument("--mode", choices=MODES, default="entire")
    history.add_argument("--output", type=Path, default=None, help="JSON file (default: stdout)")
    history.add_argument(
        "--no-tail", action="store_true", help="compacted history only (no raw-batch tail)"
    )
    history.add_argument("--granularity", default=None, help="v1.1 granularity (default: auto)")
    history.add_argument("--custom-interval", type=int, default=None)
    history.add_argument("--period", type=int, default=None)
    history.add_argument("--sensitivity", type=int, default=None)
    history.add_argument("--impute-mode", choices=IMPUTE_MODES, default=None)
    history.set_defaults(handler=_history)

    anomalies = commands.add_parser(
        "anomalies", help="print the anomaly log's alerts (JSON lines, one per alert id)"
    )
    anomalies.add_argument("--since", required=True, help="first anomaly time (inclusive)")
    anomalies.add_argument("--until", default=None, help="end (exclusive; default: open)")
    anomalies.add_argument("--device", default=None, help="only this device")
    anomalies.add_argument("--output", type=Path, default=None, help="file (default: stdout)")
    anomalies.set_defaults(handler=_anomalies)

    compact = commands.add_parser(
        "compact", help="run the history compaction now (and the scheduled detection)"
    )
    compact.add_argument(
        "--backfill-hours",
        type=int,
        default=0,
        help="first record the raw batches enqueued in the last N hours",
    )
    compact.add_argument(
        "--detect", action="store_true", help="then run the scheduled detection (prints alerts)"
    )
    compact.set_defaults(handler=_compact)


def _settings() -> Settings:
    from shared.settings import Settings, local_environment

    return Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local_environment()}
    )


def _write(path: Path | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _history(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from shared.history.detection import detect_history
    from shared.storage.client import BlobStore
    from shared.univariate.detect import DetectionOptions

    settings = _settings()
    overrides = {
        "granularity": args.granularity,
        "custom_interval": args.custom_interval,
        "period": args.period,
        "sensitivity": args.sensitivity,
        "impute_mode": args.impute_mode,
    }
    options = replace(
        DetectionOptions.from_settings(settings),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    document = detect_history(
        BlobStore.from_settings(settings),
        settings,
        args.device,
        args.metric,
        args.start,
        args.end,
        args.mode,
        options,
        tail=not args.no_tail,
    )
    _write(args.output, json.dumps(document, allow_nan=False) + "\n")
    if args.mode == "request":
        print(
            f"request: {len(_column(document, 'series'))} points, {document['granularity']} x"
            f"{document.get('customInterval', 1)}",
            file=sys.stderr,
        )
    else:
        flag = "isChangePoint" if args.mode == "changepoint" else "isAnomaly"
        print(
            f"{args.mode}: {sum(bool(hit) for hit in _column(document, flag))} of "
            f"{len(_column(document, 'timestamps'))} points flagged "
            f"({document['granularity']} x{document['customInterval']})",
            file=sys.stderr,
        )
    return 0


def _anomalies(args: argparse.Namespace) -> int:
    from shared.history.detection import anomalies_between
    from shared.storage.client import BlobStore

    settings = _settings()
    alerts = anomalies_between(
        BlobStore.from_settings(settings), settings, args.since, args.until, args.device
    )
    _write(args.output, "".join(alert.to_json() + "\n" for alert in alerts))
    print(f"{len(alerts)} alerts", file=sys.stderr)
    return 0


def _compact(args: argparse.Namespace) -> int:
    from shared.history.compaction import backfill, compact
    from shared.history.detection import run_scheduled_detection
    from shared.storage.client import BlobStore

    settings = _settings()
    store = BlobStore.from_settings(settings)
    now = datetime.now(UTC)
    if args.backfill_hours > 0:
        recorded = backfill(store, settings, now - timedelta(hours=args.backfill_hours), now)
        print(f"recorded {recorded} raw batches", file=sys.stderr)
    report = compact(store, settings, now)
    print(
        f"compaction: {report.batches} batches, {report.readings} readings, "
        f"{report.device_days} device-days ({report.written} written)",
        file=sys.stderr,
    )
    for line in report.unreadable:
        print(f"skipped {line}", file=sys.stderr)
    if args.detect:
        detected = run_scheduled_detection(store, settings, now)
        for alert in detected.alerts:
            print(alert.to_json())
        print(
            f"scheduled detection {detected.run}: {detected.judged} of {detected.series} series "
            f"judged, {len(detected.alerts)} alerts",
            file=sys.stderr,
        )
    return 0


def _column(document: JSONObject, key: str) -> Sequence[JSONValue]:
    """The list ``document[key]`` (empty when it is not one), for the summary line."""
    value = document.get(key)
    return value if isinstance(value, list) else ()
