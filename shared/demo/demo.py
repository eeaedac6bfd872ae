"""The main job, end to end with no cloud: a synthetic household through the real pipeline.

1. Use (or start) Azurite.
2. Generate a labelled household: per-minute power, voltage, kitchen and laundry with a daily
   rhythm and injected spikes, dips, level shifts and dropouts (:mod:`shared.demo.household`).
3. Turn it into device messages as a meter would send them (multi-metric JSON, a few readings
   lost, a few delivered twice, one malformed message) and replay them batch by batch through
   the same use cases the triggers call: :func:`shared.telemetry.ingest.ingest_batch` (Event Hub
   trigger) then :func:`shared.univariate.live.judge_raw_blob` for every raw blob written
   (blob trigger: live streaming judgement, alerts).
4. Read the live results back, run entire-series detection over the series they hold (what
   the scheduled and on-demand jobs do), write a CSV and a picture per series, and a
   precision/recall table against the labels.
5. A fleet (dozens of meters, one reading a minute) through ingest and live detection, with
   what a reading costs (:mod:`shared.demo.fleet`).

The multivariate part (zip upload, Durable train → detect → export, root cause) is
:func:`shared.demo.multivariate.run_multivariate_demo`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from shared.demo.fleet import run_fleet_demo
from shared.demo.household import LabelledSeries, household
from shared.demo.plots import plot_univariate
from shared.evaluation import Scores, event_scores
from shared.jsontypes import JSONObject, JSONValue
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import live_result_name
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import ingest_batch
from shared.timefmt import format_timestamp, iso_epoch
from shared.univariate.detect import DetectionOptions, detect_series
from shared.univariate.live import judge_raw_blob

logger = logging.getLogger(__name__)

DEVICE_ID = "house-001"
BATCH_SIZE = 240  # events per delivered batch (4 hours of one meter)


@dataclass(frozen=True)
class SeriesOutcome:
    """Detection outcome of one demo series."""

    metric: str
    events: int
    entire: Scores
    stream: Scores
    flagged: int
    picture: Path
    csv: Path


class Progress:
    """A one-line progress bar on a text stream (the CLI's stderr)."""

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream, self.label, self.total, self.started = (
            stream,
            label,
            max(total, 1),
            time.time(),
        )

    def redraw(self, done: int, total: int) -> None:
        """Redraw with a new total (for callers that report ``(done, total)``)."""
        self.total = max(total, 1)
        self.update(done)

    def update(self, done: int, note: str = "") -> None:
        """Redraw the bar at ``done`` of ``total``."""
        width = 30
        filled = int(width * done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.time() - self.started
        self.stream.write(
            f"\r{self.label:<22} [{bar}] {done}/{self.total} {elapsed:5.1f}s {note:<30}"
        )
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def household_messages(
    series: dict[str, LabelledSeries], seed: int = 0
) -> tuple[list[bytes], list[str]]:
    """Turn the household into device messages, with the flaws of real delivery.

    About 0.5 % of minutes are lost, 0.5 % delivered twice, and one message is malformed (it is
    dead-lettered by the ingest). Returns the bodies and a description of the flaws.
    """
    rng = np.random.default_rng(seed + 99)
    names = list(series)
    first = series[names[0]]
    n = first.values.size
    stamps = first.timestamps.astype("datetime64[s]").astype(np.int64)
    lost = rng.random(n) < 0.005
    twice = (rng.random(n) < 0.005) & ~lost
    bodies: list[bytes] = []
    for i in range(n):
        if lost[i]:
            continue
        message: JSONObject = {"deviceId": DEVICE_ID, "timestamp": format_timestamp(stamps[i])}
        for name in names:
            message[name] = round(float(series[name].values[i]), 3)
        body = json.dumps(message).encode()
        bodies.append(body)
        if twice[i]:
            bodies.append(body)
        if i == n // 3:
            bodies.append(b'{"deviceId": "house-001", "timestamp": "garbled", "power": 1.2')
    flaws = [
        f"{int(lost.sum())} readings lost in transit",
        f"{int(twice.sum())} readings delivered twice",
        "1 malformed message",
    ]
    return bodies, flaws


def run_univariate_demo(
    settings: Settings,
    store: BlobStore,
    output: Path,
    *,
    days: int = 4,
    seed: int = 0,
    progress_stream: TextIO = sys.stderr,
) -> list[SeriesOutcome]:
    """Replay a synthetic household through ingest and detection; write results and pictures.

    Returns:
        One outcome per metric (precision, recall and F1 of entire and stream detection).
    """
    series = household(days=days, seed=seed)
    bodies, flaws = household_messages(series, seed)
    for flaw in flaws:
        progress_stream.write(f"  telemetry: {flaw}\n")
    batches = [bodies[i : i + BATCH_SIZE] for i in range(0, len(bodies), BATCH_SIZE)]
    bar = Progress(progress_stream, "ingest + detect", len(batches))
    sequence = 0
    dead = 0
    raw_blobs: list[str] = []
    for number, batch in enumerate(batches, start=1):
        events = []
        for body in batch:
            events.append(RawEvent(body, "0", sequence))
            sequence += 1
        report = ingest_batch(events, store, settings)
        dead += len(report.dead_letters)
        for blob in report.raw_blobs:
            judge_raw_blob(
                blob, store.get_bytes(BlobRef(settings.raw_container, blob)), store, settings
            )
            raw_blobs.append(blob)
        bar.update(number, f"{report.readings} readings")
    progress_stream.write(
        f"  dead-lettered: {dead} message(s) in '{settings.deadletter_container}'\n"
    )
    judged = _live_points(store, settings, raw_blobs)
    outcomes = []
    for metric, labelled in series.items():
        outcomes.append(_collect(settings, judged.get(metric, {}), metric, labelled, output))
    return outcomes


def _live_points(
    store: BlobStore, settings: Settings, raw_blobs: list[str]
) -> dict[str, dict[float, tuple[float, bool]]]:
    """Per metric of the demo meter: ``{epoch: (value, stream anomaly)}`` from live results."""
    points: dict[str, dict[float, tuple[float, bool]]] = {}
    for blob in raw_blobs:
        document = store.get_json_object_or_none(
            BlobRef(settings.results_container, live_result_name(blob))
        )
        for item in _list((document or {}).get("series")):
            if not isinstance(item, dict) or item.get("deviceId") != DEVICE_ID:
                continue
            target = points.setdefault(str(item["metric"]), {})
            for stamp, value, flag in zip(
                _list(item["timestamps"]),
                _list(item["values"]),
                _list(item["isAnomaly"]),
                strict=True,
            ):
                number = float(value) if isinstance(value, int | float) else float("nan")
                target[iso_epoch(str(stamp))] = (number, bool(flag))
    return points


def _list(value: JSONValue | None) -> list[JSONValue]:
    """``value`` when it is a JSON array, else no items."""
    return value if isinstance(value, list) else []


def _collect(
    settings: Settings,
    judged: dict[float, tuple[float, bool]],
    metric: str,
    labelled: LabelledSeries,
    output: Path,
) -> SeriesOutcome:
    """Entire-series detection over the judged points, and the live (stream) flags."""
    stamps = labelled.timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    index = {float(t): i for i, t in enumerate(stamps)}
    n = stamps.size
    expected = np.full(n, np.nan)
    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    flagged = np.zeros(n, dtype=bool)
    severity = np.zeros(n)
    stream_flagged = np.zeros(n, dtype=bool)
    moments = np.array(sorted(judged), dtype=np.float64)
    if moments.size >= 12:
        values = np.array([judged[m][0] for m in moments.tolist()])
        entire = detect_series(moments, values, "entire", DetectionOptions.from_settings(settings))
        fields = {
            name: entire.per_input(name)
            for name in ("expectedValue", "lowerMargin", "upperMargin", "isAnomaly", "severity")
        }
        for j, moment in enumerate(moments.tolist()):
            i = index.get(moment)
            if i is None:
                continue
            expected[i] = fields["expectedValue"][j]
            lower[i] = expected[i] - fields["lowerMargin"][j]
            upper[i] = expected[i] + fields["upperMargin"][j]
            flagged[i] = bool(fields["isAnomaly"][j])
            severity[i] = fields["severity"][j]
            stream_flagged[i] = judged[moment][1]
    picture = plot_univariate(
        output / f"{metric}.png",
        title=f"{DEVICE_ID} {metric}: {int(flagged.sum())} points flagged, "
        f"{len(labelled.events)} labelled anomalies",
        timestamps=stamps,
        values=labelled.values,
        expected=expected,
        lower=lower,
        upper=upper,
        is_anomaly=flagged,
        labelled=labelled.labels,
    )
    csv_path = output / f"{metric}.csv"
    with csv_path.open("w", encoding="utf-8") as handle:
        handle.write(
            "timestamp,value,isAnomaly,severity,expectedValue,lowerBound,upperBound,label\n"
        )
        for i in range(n):
            handle.write(
                f"{format_timestamp(stamps[i])},{labelled.values[i]:.6g},{str(bool(flagged[i])).lower()},"
                f"{severity[i]:.4f},{expected[i]:.6g},{lower[i]:.6g},{upper[i]:.6g},"
                f"{str(bool(labelled.labels[i])).lower()}\n"
            )
    return SeriesOutcome(
        metric=metric,
        events=len(labelled.events),
        entire=event_scores(labelled.events, flagged),
        stream=event_scores(labelled.events, stream_flagged),
        flagged=int(flagged.sum()),
        picture=picture,
        csv=csv_path,
    )


def score_table(outcomes: list[SeriesOutcome]) -> str:
    """A Markdown precision/recall table of the outcomes (event-wise, tolerance 3 points)."""
    lines = [
        "| series | labelled events | flagged points | entire P | entire R | entire F1 "
        "| stream P | stream R | stream F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.metric} | {o.events} | {o.flagged} | {o.entire.precision:.2f} "
            f"| {o.entire.recall:.2f} | {o.entire.f1:.2f} | {o.stream.precision:.2f} "
            f"| {o.stream.recall:.2f} | {o.stream.f1:.2f} |"
        )
    return "\n".join(lines)


def multivariate_table(outcome: JSONObject) -> str:
    """A Markdown summary of the multivariate part (model, flags, root cause)."""
    found = outcome.get("eventScores")
    scores: Mapping[str, JSONValue] = found if isinstance(found, Mapping) else {}
    return "\n".join(
        [
            "| multivariate model | status | flagged timestamps | injected anomalies found "
            "| top contributor right | precision | recall | F1 |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            f"| household (4 meters) | {outcome.get('status')} "
            f"| {outcome.get('anomalies')} of {outcome.get('timestamps')} "
            f"| {outcome.get('eventsFound')} of {outcome.get('labelledEvents')} "
            f"| {outcome.get('rootCauseCorrect')} of {outcome.get('eventsFound')} "
            f"| {scores.get('precision', 0.0):.2f} | {scores.get('recall', 0.0):.2f} "
            f"| {scores.get('f1', 0.0):.2f} |",
        ]
    )


def run_demo(
    output: Path,
    *,
    days: int = 4,
    seed: int = 0,
    connection: str | None = None,
    multivariate: bool = True,
    fleet_meters: int = 30,
    echo: Callable[[str], None] = print,
) -> JSONObject:
    """Run the whole demo; return its summary (also written to ``output/summary.json``)."""
    from shared.demo.azurite import running_azurite

    output.mkdir(parents=True, exist_ok=True)
    azurite = running_azurite() if connection is None else nullcontext(connection)
    with azurite as conn:
        # A fleet of dozens of meters: 8 state shards (about series / 10) rather than the
        # default 64 sized for larger fleets, so a batch touches few shards.
        settings = Settings.from_env({"AzureWebJobsStorage": conn, "LIVE_STATE_SHARDS": "8"})
        store = BlobStore.from_settings(settings)
        echo(f"meterwatch demo: synthetic household, {days} days per minute, on Azurite")
        outcomes = run_univariate_demo(settings, store, output, days=days, seed=seed)
        table = score_table(outcomes)
        fleet = run_fleet_demo(
            settings, store, meters=fleet_meters, progress=Progress(sys.stderr, "fleet", 1).redraw
        )
        fleet_line = (
            f"fleet: {fleet.meters} meters x 2 metrics, one reading a minute; {fleet.found} of "
            f"{fleet.spikes} injected spikes alerted ({fleet.alerts} alerts); a reading cost "
            f"{fleet.requests_per_reading:.3f} storage requests and "
            f"{fleet.cpu_ms_per_reading:.3f} ms of CPU (ingest + detection, steady state)"
        )
        summary: JSONObject = {
            "fleet": {
                "meters": fleet.meters,
                "readings": fleet.readings,
                "alerts": fleet.alerts,
                "spikes": fleet.spikes,
                "spikesAlerted": fleet.found,
                "requestsPerReading": round(fleet.requests_per_reading, 4),
                "cpuMsPerReading": round(fleet.cpu_ms_per_reading, 4),
            },
            "univariate": [
                {
                    "metric": o.metric,
                    "events": o.events,
                    "flagged": o.flagged,
                    "entire": o.entire.__dict__,
                    "stream": o.stream.__dict__,
                    "picture": o.picture.name,
                    "csv": o.csv.name,
                }
                for o in outcomes
            ],
        }
        if multivariate:
            from shared.demo.multivariate import run_multivariate_demo

            mv = run_multivariate_demo(settings, store, output, seed=seed, days=max(days, 4))
            summary["multivariate"] = mv
            table += "\n\n" + multivariate_table(mv)
    (output / "scores.md").write_text(table + "\n", encoding="utf-8")
    (output / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    echo("\nDetection against the labels (event-wise, ±3 points):\n")
    echo(table)
    echo("\n" + fleet_line)
    echo(f"\nResults, pictures and tables are in {output}/")
    return summary
