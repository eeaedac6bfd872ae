"""Typed orchestration payloads: JSON round trips, refusals, and the start-unless-exists rule."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.errors import DatasetError, PayloadError
from shared.multivariate.datasource import DataSourcePolicy
from shared.multivariate.payloads import (
    BatchOutcome,
    DetectionFailure,
    DetectionJob,
    DetectionSummary,
    ExportOutcome,
    FailRequest,
    ModelOutcome,
    ModelStep,
    SummaryRequest,
    TrainingRequest,
)
from shared.multivariate.workflow import start_unless_exists

REQUEST = TrainingRequest.create("mv-training", "a.zip", "ab" * 32, spec={"slidingWindow": 60})
JOB = DetectionJob(
    model_id="m-1",
    result_id="r-1",
    container="mv-training",
    name="d.zip",
    sha256="ab" * 32,
    data_source="http://127.0.0.1:10000/devstoreaccount1/mv-training/d.zip",
    start_time="2026-11-02T05:00:00Z",
    end_time="2026-11-02T06:00:00Z",
    top_contributor_count=3,
)


def through_json(document: object) -> object:
    return json.loads(json.dumps(document))


def test_every_payload_survives_the_runtime_json_unchanged() -> None:
    step = ModelStep("m-1", "mvtrain-1")
    detection = DetectionSummary("r-1", "READY", (), 2, 61, ({"timestamp": "t", "severity": 1},))
    export = ExportOutcome("mv-models", "m-1/export.zip", 10)
    request = TrainingRequest.create("mv-training", "a.zip", "cd" * 32, spec={"slidingWindow": 60})
    assert TrainingRequest.from_dict(through_json(request.to_dict())) == request
    assert ModelStep.from_dict(through_json(step.to_dict())) == step
    failure = FailRequest(step, "TrainingTimeout", "60 minutes")
    assert FailRequest.from_dict(through_json(failure.to_dict())) == failure
    outcome = ModelOutcome("m-1", "FAILED", ({"code": "EmptyDataset", "message": "no CSV"},))
    assert ModelOutcome.from_dict(through_json(outcome.to_dict())) == outcome
    assert DetectionSummary.from_dict(through_json(detection.to_dict())) == detection
    assert ExportOutcome.from_dict(through_json(export.to_dict())) == export
    summary = SummaryRequest(step, detection, export)
    assert SummaryRequest.from_dict(through_json(summary.to_dict())) == summary
    assert SummaryRequest.from_dict(SummaryRequest(step).to_dict()) == SummaryRequest(step)
    assert DetectionJob.from_dict(json.dumps(JOB.to_dict())) == JOB  # JSON text, as the host may
    dropped = DetectionFailure(JOB, "storage timed out")
    assert DetectionFailure.from_dict(through_json(dropped.to_dict())) == dropped


def test_status_alone_says_whether_the_lease_is_stale() -> None:
    assert "stale" not in ModelOutcome("m-1", "READY").to_dict()
    assert ModelOutcome("m-1", "RUNNING", stale=True).to_dict()["stale"] is True
    assert ModelOutcome.from_dict({"modelId": "m-1", "status": "RUNNING"}).stale is None


def test_the_job_keeps_the_field_names_running_instances_carry() -> None:
    assert set(JOB.to_dict()) == {
        "model_id", "result_id", "container", "name", "sha256", "data_source", "start_time",
        "end_time", "top_contributor_count",
    }  # fmt: skip
    assert JOB.instance_id == "mvdetect-r-1"
    assert BatchOutcome("r-1", "FAILED").to_dict() == {
        "resultId": "r-1",
        "status": "FAILED",
        "anomalies": 0,
    }


@pytest.mark.parametrize(
    ("reader", "document"),
    [
        (TrainingRequest.from_dict, {"dataSource": {}}),
        (TrainingRequest.from_dict, "not json"),
        (ModelStep.from_dict, {"instanceId": "x"}),
        (FailRequest.from_dict, {"modelId": "m-1"}),
        (ModelOutcome.from_dict, {"modelId": "m-1"}),
        (DetectionSummary.from_dict, {"status": "READY"}),
        (ExportOutcome.from_dict, {"container": "c"}),
        (DetectionJob.from_dict, ["a", "list"]),
        (DetectionJob.from_dict, {**JOB.to_dict(), "top_contributor_count": "many"}),
        (DetectionJob.from_dict, {**JOB.to_dict(), "top_contributor_count": [3]}),
        (TrainingRequest.from_dict, {**REQUEST.to_dict(), "dataSource": "mv-training/a.zip"}),
        (TrainingRequest.from_dict, {**REQUEST.to_dict(), "spec": ["slidingWindow", 60]}),
        (TrainingRequest.from_dict, {**REQUEST.to_dict(), "pollIntervalSeconds": None}),
        (DetectionSummary.from_dict, {"resultId": "r", "status": "READY", "topAnomalies": "x"}),
        (DetectionSummary.from_dict, {"resultId": "r", "status": "READY", "topAnomalies": [1]}),
    ],
)
def test_a_payload_of_the_wrong_shape_is_a_coded_payload_error(reader, document) -> None:
    with pytest.raises(PayloadError) as caught:
        reader(document)
    assert caught.value.code == "InvalidPayload"


class Starter:
    """A starter that records what it was asked (the Durable client's two calls)."""

    def __init__(self, status: str | None) -> None:
        self.status = status
        self.started: list[tuple[str, str, object]] = []
        self.queries = 0

    async def start(self, orchestrator: str, instance_id: str, client_input: object) -> None:
        self.started.append((orchestrator, instance_id, client_input))

    async def runtime_status(self, instance_id: str) -> str | None:
        self.queries += 1
        return self.status


@pytest.mark.parametrize(
    ("status", "deleted", "started"),
    [
        (None, False, True),
        ("Running", True, False),
        ("Completed", False, False),
        ("Completed", True, True),
        ("Failed", False, True),
    ],
)
def test_an_instance_starts_unless_it_exists(
    status: str | None, deleted: bool, started: bool
) -> None:
    starter = Starter(status)
    asked: list[bool] = []

    def model_deleted() -> bool:
        asked.append(True)
        return deleted

    result = asyncio.run(
        start_unless_exists(starter, "orch", "id-1", {"a": 1}, model_deleted=model_deleted)
    )
    assert result is started
    assert starter.started == ([("orch", "id-1", {"a": 1})] if started else [])
    assert asked == ([] if status is None else [True])


def test_a_caller_that_knows_the_instance_is_new_skips_the_status_query() -> None:
    starter = Starter("Completed")
    assert asyncio.run(start_unless_exists(starter, "orch", "id-1", {}, known_new=True))
    assert starter.queries == 0 and len(starter.started) == 1


def test_plain_blob_names_only_with_a_default_container() -> None:
    endpoint = "http://127.0.0.1:10000/devstoreaccount1/"
    starter = DataSourcePolicy(endpoint, default_container="mv-training")
    assert starter.dataset_blob("site/energy.zip").container == "mv-training"
    with pytest.raises(DatasetError) as caught:
        DataSourcePolicy(endpoint).resolve("site/energy.zip")  # the v1.1 API: URLs only
    assert caught.value.code == "InvalidDataSource"
    with pytest.raises(DatasetError) as caught:
        starter.dataset_blob(f"{endpoint}mv-training/folder/")
    assert caught.value.code == "UnsupportedFormat"
