"""The multivariate part of ``meterwatch demo``: upload a household zip, train, detect, explain.

1. Zip the synthetic household (:func:`shared.demo.household.household`: ``power``, ``voltage``,
   ``kitchen``, ``laundry``; one ``timestamp,value`` CSV each) and upload it to the training
   container on Azurite, with a sidecar spec (train on the first half, detect on the rest).
2. Do what the blob trigger does: hash the upload, derive the deterministic instance id, start
   the orchestration unless it exists. The orchestration is the real one
   (:func:`shared.multivariate.workflow.training_orchestration`), run in-process by
   :mod:`shared.multivariate.local_runner` through the same activity functions the Durable host
   calls. A second, duplicate trigger shows that it does not train twice.
3. Read the stored v1.1 result back, write it as JSON and CSV with the export zip and the
   root-cause picture, and score the flags against the injected anomalies: how many labelled
   events were found, and how often the top contributor was the meter the anomaly was put in.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import zipfile
from pathlib import Path
from typing import TextIO, TypedDict

import numpy as np

from shared.demo.household import LabelledSeries, household
from shared.errors import MeterwatchError
from shared.evaluation import AnomalyEvent, Scores, event_scores
from shared.jsontypes import JSONObject
from shared.multivariate.activities import TrainingActivities
from shared.multivariate.datasets import Dataset
from shared.multivariate.detection import anomaly_object, result_csv, top_anomalies
from shared.multivariate.documents import DetectionResult
from shared.multivariate.ids import content_hash
from shared.multivariate.local_runner import (
    LocalContext,
    LocalRetry,
    LocalTaskHub,
    training_activities,
)
from shared.multivariate.payloads import TrainingRequest
from shared.multivariate.registry import ModelRegistry
from shared.multivariate.spec import parse_training_spec
from shared.multivariate.training import read_dataset
from shared.multivariate.workflow import (
    ORCHESTRATOR,
    TRAIN_ACTIVITY,
    Orchestration,
    training_orchestration,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import format_timestamp

logger = logging.getLogger(__name__)

DATASET_NAME = "household-{seed}.zip"


def household_zip(series: dict[str, LabelledSeries]) -> bytes:
    """A MultiTable zip: one ``timestamp,value`` CSV per variable (ISO 8601 timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, labelled in series.items():
            stamps = labelled.timestamps.astype("datetime64[s]").astype(np.int64)
            lines = ["timestamp,value"]
            lines.extend(
                f"{format_timestamp(float(t))},{v:.6g}"
                for t, v in zip(stamps, labelled.values, strict=True)
            )
            archive.writestr(f"{name}.csv", "\n".join(lines) + "\n")
    return buffer.getvalue()


class _Scores(TypedDict):
    events: int
    found: int
    rootCause: int
    scores: JSONObject | None


def demo_spec(series: dict[str, LabelledSeries]) -> JSONObject:
    """Train on the first half of the household, detect on the second half."""
    stamps = next(iter(series.values())).timestamps.astype("datetime64[s]")
    half = stamps.size // 2
    iso = [str(np.datetime_as_string(stamps[i], unit="s")) + "Z" for i in (0, half - 1, half, -1)]
    return {
        "displayName": "household demo",
        "startTime": iso[0],
        "endTime": iso[1],
        "detectStartTime": iso[2],
        "detectEndTime": iso[3],
        "slidingWindow": 300,
        "topContributorCount": 4,
        "alignPolicy": {"alignMode": "Outer", "fillNAMethod": "Linear"},
    }


def run_multivariate_demo(
    settings: Settings,
    store: BlobStore,
    output: Path,
    seed: int = 0,
    *,
    days: int = 4,
    progress_stream: TextIO = sys.stderr,
) -> JSONObject:
    """Run the multivariate demo on the given storage; write results and the picture.

    Args:
        settings: App settings (containers, monitor interval and deadline).
        store: Blob storage (Azurite).
        output: Folder for ``multivariate-*`` files.
        seed: Seed of the synthetic household.
        days: Days of household data (half to train, half to detect).
        progress_stream: Where progress lines go.

    Returns:
        A short summary: model id and status, anomalies found, the top anomalies with their top
        contributors, and the scores against the injected anomalies.
    """
    output.mkdir(parents=True, exist_ok=True)
    series = household(days=days, seed=seed)
    data = household_zip(series)
    spec = demo_spec(series)
    name = DATASET_NAME.format(seed=seed)
    container = settings.training_container
    store.put_json(BlobRef(container, name.removesuffix(".zip") + ".json"), spec)
    store.put_bytes(BlobRef(container, name), data, content_type="application/zip")
    progress_stream.write(
        f"  multivariate: uploaded {container}/{name} ({len(data):,} bytes, "
        f"{len(series)} meters) with its sidecar spec\n"
    )

    activities = TrainingActivities(store, settings)
    hub = LocalTaskHub(
        {ORCHESTRATOR: lambda context: _orchestrate(context)}, training_activities(activities)
    )
    request = TrainingRequest.create(
        container,
        name,
        content_hash(store.get_bytes(BlobRef(container, name))),
        poll_interval_seconds=settings.mv_poll_interval_seconds,
        deadline_minutes=settings.mv_training_deadline_minutes,
    )
    run = hub.start_if_new(ORCHESTRATOR, request.instance_id, request.to_dict())
    duplicate = hub.start_if_new(ORCHESTRATOR, request.instance_id, request.to_dict())
    if run is None or run.runtime_status != "Completed":
        raise MeterwatchError(
            f"The multivariate orchestration did not complete: {run.error if run else 'not run'}",
            "DemoFailed",
        )
    summary = run.output
    progress_stream.write(
        f"  multivariate: orchestration {request.instance_id} {run.runtime_status}, model "
        f"{summary['modelId']} {summary['status']}; duplicate trigger "
        f"{'skipped' if duplicate is None else 'STARTED AGAIN'}\n"
    )
    outcome: JSONObject = {
        "instanceId": request.instance_id,
        "modelId": summary["modelId"],
        "status": summary["status"],
        "errors": summary["errors"],
        "duplicateTriggerSkipped": duplicate is None,
        "trainings": run.executions(TRAIN_ACTIVITY),
    }
    if summary["status"] != "READY" or not summary.get("resultId"):
        return outcome
    registry = ModelRegistry.from_settings(store, settings)
    result = registry.get_result(str(summary["resultId"]))
    (output / "multivariate-results.json").write_text(json.dumps(result, indent=2), "utf-8")
    (output / "multivariate-results.csv").write_text(result_csv(result), "utf-8")
    (output / "multivariate-model.zip").write_bytes(registry.get_export(str(summary["modelId"])))
    window = _detection_window(data, name, spec)
    from shared.demo.plots_mv import plot_multivariate

    plot_multivariate(
        output / "multivariate.png",
        window,
        result,
        title=f"synthetic household (seed {seed}), detection window",
    )
    scores = _score(series, result)
    outcome.update(
        resultId=summary["resultId"],
        timestamps=len(result["results"]),
        anomalies=sum(1 for item in result["results"] if item["value"]["isAnomaly"]),
        topAnomalies=[anomaly_object(item) for item in top_anomalies(result, 5)],
        labelledEvents=scores["events"],
        eventsFound=scores["found"],
        rootCauseCorrect=scores["rootCause"],
        eventScores=scores["scores"],
        files=[
            "multivariate-results.json",
            "multivariate-results.csv",
            "multivariate-model.zip",
            "multivariate.png",
        ],
    )
    progress_stream.write(
        f"  multivariate: {outcome['anomalies']} of {outcome['timestamps']} timestamps flagged; "
        f"{scores['found']} of {scores['events']} injected anomalies found, top contributor "
        f"right for {scores['rootCause']}\n"
    )
    return outcome


def _orchestrate(context: LocalContext) -> Orchestration[JSONObject]:
    return training_orchestration(context, LocalRetry())


def _detection_window(data: bytes, name: str, spec: JSONObject) -> Dataset:
    from shared.multivariate.datasets import align

    parsed = parse_training_spec(spec)
    return align(
        read_dataset(data, name),
        parsed.align_policy,
        parsed.detect_start_time,
        parsed.detect_end_time,
    )


def _score(series: dict[str, LabelledSeries], result: DetectionResult) -> _Scores:
    """Event-wise scores of the flags and the share of found events whose cause was named."""
    first = next(iter(series.values()))
    stamps = first.timestamps.astype("datetime64[s]")
    index = {str(np.datetime_as_string(t, unit="s")) + "Z": i for i, t in enumerate(stamps)}
    flagged = np.zeros(stamps.size, dtype=bool)
    top = np.full(stamps.size, "", dtype=object)
    severity = np.zeros(stamps.size)
    judged = np.zeros(stamps.size, dtype=bool)
    for item in result["results"]:
        i = index.get(item["timestamp"])
        if i is None:
            continue
        judged[i] = True
        value = item["value"]
        if value["isAnomaly"]:
            flagged[i] = True
            severity[i] = float(value["severity"])
            if value["interpretation"]:
                top[i] = value["interpretation"][0]["variable"]
    events: list[AnomalyEvent] = []
    causes: list[str] = []
    for variable, labelled in series.items():
        for event in labelled.events:
            if judged[event.start] and judged[event.end]:
                events.append(event)
                causes.append(variable)
    scores = event_scores(events, flagged) if events else None
    found = right = 0
    for event, cause in zip(events, causes, strict=True):
        lo, hi = max(0, event.start - 3), min(stamps.size - 1, event.end + 3)
        hits = np.flatnonzero(flagged[lo : hi + 1]) + lo
        if hits.size:
            found += 1
            strongest = hits[int(np.argmax(severity[hits]))]
            right += int(top[strongest] == cause)
    return {
        "events": len(events),
        "found": found,
        "rootCause": right,
        "scores": None if scores is None else _scores_object(scores),
    }


def _scores_object(scores: Scores) -> JSONObject:
    return {
        "precision": scores.precision,
        "recall": scores.recall,
        "f1": scores.f1,
        "true_positives": scores.true_positives,
        "false_positives": scores.false_positives,
        "false_negatives": scores.false_negatives,
    }
