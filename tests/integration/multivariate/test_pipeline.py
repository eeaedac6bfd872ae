"""The whole multivariate chain over Azurite: upload → orchestration → model, result, export.

Uploads go to the training container and through the blob trigger's own request builder
(:func:`functions.multivariate.upload_request`, fed a real ``InputStream``); the orchestration
is the real generator, run in process by :mod:`shared.multivariate.local_runner` with the
real activities.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pytest

from functions.multivariate import upload_request
from shared.errors import DatasetError
from shared.multivariate.activities import TRAINING_LEASE, TrainingActivities
from shared.multivariate.detection import detect_batch
from shared.multivariate.documents import TrainingLease
from shared.multivariate.export import load_export
from shared.multivariate.local_runner import (
    LocalContext,
    LocalRetry,
    LocalRun,
    LocalTaskHub,
    training_activities,
)
from shared.multivariate.payloads import TrainingRequest
from shared.multivariate.registry import ModelRegistry
from shared.multivariate.training import read_dataset
from shared.multivariate.workflow import (
    FAIL_ACTIVITY,
    ORCHESTRATOR,
    PREPARE_ACTIVITY,
    STATUS_ACTIVITY,
    TRAIN_ACTIVITY,
    training_orchestration,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from tests.jsonview import json_blob

ENERGY_SPEC = {
    "startTime": "2006-12-16T17:24:00Z",
    "endTime": "2006-12-18T02:43:00Z",
    "detectStartTime": "2006-12-19T00:00:00Z",
    "detectEndTime": "2006-12-19T20:26:00Z",
    "displayName": "energy tutorial",
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Chain:
    """Storage, activities and an in-process task hub for one test."""

    def __init__(self, env: dict[str, str], clock: Clock | None = None) -> None:
        self.settings = Settings.from_env(env)
        self.store = BlobStore.from_settings(self.settings)
        self.activities = TrainingActivities(self.store, self.settings, clock or Clock())
        self.registry: ModelRegistry = self.activities.registry
        self.steps = training_activities(self.activities)  # as the host binds them: JSON in, out
        self.hub = LocalTaskHub({ORCHESTRATOR: orchestrate}, self.steps)
        self.container = self.settings.training_container

    def upload(
        self,
        name: str,
        data: bytes,
        spec: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> TrainingRequest:
        """Upload (sidecar first), then build the request as the blob trigger does."""
        if spec is not None:
            stem = name.rsplit(".", 1)[0]
            self.store.put_json(BlobRef(self.container, f"{stem}.json"), spec)
        self.store.put_bytes(BlobRef(self.container, name), data, metadata=metadata)
        stored = self.store.get_bytes(BlobRef(self.container, name))
        stream = func.blob.InputStream(data=stored, name=f"{self.container}/{name}")
        request = upload_request(stream, self.settings)
        assert request is not None
        return request

    def trigger(self, request: TrainingRequest) -> LocalRun | None:
        return self.hub.start_if_new(ORCHESTRATOR, request.instance_id, request.to_dict())


def orchestrate(context: LocalContext) -> Any:
    return training_orchestration(context, LocalRetry(first_retry_interval_in_milliseconds=1))


@pytest.fixture
def chain(app_env: dict[str, str]) -> Chain:
    return Chain(app_env)


# ------------------------------------------------------------------ small datasets


def as_obj(value: object) -> dict[str, Any]:
    """A free-form JSON object (a run's output), for deep reads: asserts it is one."""
    assert isinstance(value, dict), value
    return value


def minute_stamps(count: int, start: str = "2026-11-02T00:00:00") -> list[str]:
    first = np.datetime64(start, "s")
    return [
        str(np.datetime_as_string(first + np.timedelta64(60 * i, "s"), unit="s")) + "Z"
        for i in range(count)
    ]


def meters(count: int = 400, seed: int = 1) -> dict[str, np.ndarray]:
    """Three meters that move together (a shared load) with their own noise."""
    rng = np.random.default_rng(seed)
    load = 2.0 + np.sin(np.arange(count) * 2 * np.pi / 90) + 0.2 * rng.standard_normal(count)
    return {
        "power": np.round(load + 0.05 * rng.standard_normal(count), 3),
        "kitchen": np.round(3.0 * load + 0.1 * rng.standard_normal(count), 2),
        "voltage": np.round(240.0 - 0.8 * load + 0.2 * rng.standard_normal(count), 2),
    }


def table(stamps: list[str], values: np.ndarray, header: str = "timestamp,value") -> str:
    rows = [header] + [f"{t},{v}" for t, v in zip(stamps, values, strict=True)]
    return "\n".join(rows) + "\n"


def zip_of(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def multitable(count: int = 400, seed: int = 1) -> bytes:
    stamps = minute_stamps(count)
    return zip_of({f"{name}.csv": table(stamps, v) for name, v in meters(count, seed).items()})


def onetable(count: int = 400, seed: int = 1) -> bytes:
    stamps = minute_stamps(count)
    series = meters(count, seed)
    lines = ["timestamp," + ",".join(series)]
    for i, stamp in enumerate(stamps):
        lines.append(stamp + "," + ",".join(str(v[i]) for v in series.values()))
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------ acceptance


def test_energy_tutorial_case_through_the_orchestration(chain: Chain, energy_zip: Path) -> None:
    request = chain.upload("energy-data.zip", energy_zip.read_bytes(), ENERGY_SPEC)
    run = chain.trigger(request)
    assert run is not None and run.runtime_status == "Completed", run and run.error
    summary = as_obj(run.output)
    assert summary["status"] == "READY", summary["errors"]
    assert summary["variables"] == ["kitchen", "laundryRoom", "power", "voltage"]

    model = chain.registry.get(request.model_id)
    info = model["modelInfo"]
    assert info["status"] == "READY" and info["errors"] == []
    assert info["startTime"] == "2006-12-16T17:24:00Z"
    assert info["endTime"] == "2006-12-18T02:43:00Z"
    assert info["displayName"] == "energy tutorial" and info["dataSchema"] == "MultiTable"
    states = info["diagnosticsInfo"]["variableStates"]
    assert [state["variable"] for state in states] == summary["variables"]
    assert all(0 < state["effectiveCount"] <= 2000 for state in states)
    assert states[0]["firstTimestamp"] == "2006-12-16T17:24:00Z"
    losses = info["diagnosticsInfo"]["modelState"]
    assert len(losses["epochIds"]) == len(losses["validationLosses"]) > 0

    result = chain.registry.get_result(summary["resultId"])
    assert result["summary"]["status"] == "READY"
    assert result["summary"]["setupInfo"]["startTime"] == "2006-12-19T00:00:00Z"
    assert result["summary"]["setupInfo"]["endTime"] == "2006-12-19T20:26:00Z"
    by_time = {item["timestamp"]: item["value"] for item in result["results"]}
    assert len(by_time) == 1227  # every minute of the detection window, judged
    episode = [f"2006-12-19T08:{minute}:00Z" for minute in ("39", "40", "41")]
    flagged = [stamp for stamp in episode if by_time[stamp]["isAnomaly"]]
    assert flagged, "the 08:39 kitchen episode must be flagged within its first three minutes"
    for stamp in flagged:
        contributors = by_time[stamp]["interpretation"]
        assert contributors[0]["variable"] == "kitchen", (stamp, contributors)
        assert sum(c["contributionScore"] for c in contributors) == pytest.approx(1.0, abs=1e-4)
    assert chain.registry.get_result_csv(summary["resultId"]).startswith("timestamp,isAnomaly")


def test_the_export_detects_anywhere_without_storage(chain: Chain, energy_zip: Path) -> None:
    data = energy_zip.read_bytes()
    request = chain.upload("energy-data.zip", data, ENERGY_SPEC)
    run = chain.trigger(request)
    assert run is not None and run.output["status"] == "READY"
    stored = chain.registry.get_result(as_obj(run.output)["resultId"])
    exported = load_export(chain.registry.get_export(request.model_id))
    assert exported.model_object["modelId"] == request.model_id
    assert exported.align_policy.align_mode == "Outer"
    detection = detect_batch(
        exported.model,
        read_dataset(data, "energy-data.zip"),
        exported.align_policy,
        start="2006-12-19T00:00:00Z",
        end="2006-12-19T20:26:00Z",
        top_contributor_count=10,
    )
    assert detection.to_v11()["results"] == stored["results"]


# ------------------------------------------------------------------ duplicates and idempotence


def artifact_etag(chain: Chain, model_id: str) -> str:
    ref = chain.registry.artifact_ref(model_id)
    blob = chain.store.container(ref.container).get_blob_client(ref.name)
    return str(blob.get_blob_properties().etag)


def test_a_duplicate_upload_trains_once(chain: Chain) -> None:
    data = multitable()
    first = chain.upload("meters.zip", data, {"slidingWindow": 60})
    run = chain.trigger(first)
    assert run is not None and run.output["status"] == "READY"
    etag = artifact_etag(chain, first.model_id)
    updated = chain.registry.get(first.model_id)["lastUpdatedTime"]

    again = chain.upload("meters.zip", data, {"slidingWindow": 60})  # same bytes, new event
    assert again.instance_id == first.instance_id
    assert chain.trigger(again) is None  # the instance exists: nothing starts

    # Even run again (e.g. a restart after a crash), a READY model is not trained again.
    rerun = chain.hub.start_new(ORCHESTRATOR, first.instance_id, first.to_dict())
    assert rerun.output["status"] == "READY" and rerun.executions(TRAIN_ACTIVITY) == 1
    assert artifact_etag(chain, first.model_id) == etag
    assert chain.registry.get(first.model_id)["lastUpdatedTime"] == updated
    assert chain.registry.list().current_count == 1

    changed = chain.upload("meters.zip", multitable(seed=2), {"slidingWindow": 60})
    assert changed.instance_id != first.instance_id  # new content: a new training
    run = chain.trigger(changed)
    assert run is not None and run.output["status"] == "READY"
    assert chain.registry.list().current_count == 2


def test_a_one_table_csv_with_a_spec_in_blob_metadata(chain: Chain) -> None:
    request = chain.upload(
        "meters.csv",
        onetable(),
        metadata={
            "slidingWindow": "60",
            "fillNAMethod": "Previous",
            "detectStartTime": "2026-11-02T05:00:00Z",
            "topContributorCount": "2",
        },
    )
    run = chain.trigger(request)
    assert run is not None
    assert run.output["status"] == "READY", run.output
    info = chain.registry.get(request.model_id)["modelInfo"]
    assert info["dataSchema"] == "OneTable" and info["slidingWindow"] == 60
    assert info["alignPolicy"]["fillNAMethod"] == "Previous"
    assert info["endTime"] == "2026-11-02T04:59:00Z"  # trained on what precedes detection
    result = chain.registry.get_result(as_obj(run.output)["resultId"])
    assert result["results"][0]["timestamp"] == "2026-11-02T05:00:00Z"
    assert len(result["results"]) == 400 - 300
    assert result["summary"]["setupInfo"]["topContributorCount"] == 2
    assert all(len(item["value"]["interpretation"]) <= 2 for item in result["results"])


# ------------------------------------------------------------------ bad datasets


def bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("power.csv", "timestamp,value\n" + "2026-11-02T00:00:00Z,0\n" * 200_000)
        archive.writestr("voltage.csv", "timestamp,value\n2026-11-02T00:00:00Z,1\n")
    return buffer.getvalue()


def good_csv(name: str = "power") -> str:
    return table(minute_stamps(400), meters()[name] if name in meters() else meters()["power"])


BAD_DATASETS: list[tuple[str, str, bytes, dict[str, Any] | None, str]] = [
    ("empty zip", "d.zip", zip_of({}), None, "EmptyDataset"),
    ("no CSVs", "d.zip", zip_of({"readme.txt": "hello"}), None, "EmptyDataset"),
    (
        "wrong header",
        "d.zip",
        zip_of({"power.csv": good_csv(), "kitchen.csv": "time,reading\n2026-11-02T00:00:00Z,1\n"}),
        None,
        "InvalidHeader",
    ),
    (
        "missing header",
        "d.zip",
        zip_of({"power.csv": good_csv(), "kitchen.csv": "2026-11-02T00:00:00Z,1\n"}),
        None,
        "InvalidHeader",
    ),
    (
        "non-numeric values",
        "d.zip",
        zip_of(
            {
                "power.csv": good_csv(),
                "kitchen.csv": "timestamp,value\n2026-11-02T00:00:00Z,abc\n",
            }
        ),
        None,
        "InvalidValue",
    ),
    (
        "zip slip",
        "d.zip",
        zip_of({"power.csv": good_csv(), "../kitchen.csv": good_csv("kitchen")}),
        None,
        "UnsafePath",
    ),
    (
        "absolute path",
        "d.zip",
        zip_of({"power.csv": good_csv(), "/etc/kitchen.csv": good_csv("kitchen")}),
        None,
        "UnsafePath",
    ),
    (
        "nested folder",
        "d.zip",
        zip_of({"data/power.csv": good_csv(), "data/kitchen.csv": good_csv("kitchen")}),
        None,
        "NestedFolder",
    ),
    ("zip bomb", "d.zip", bomb(), None, "TooLarge"),
    ("one variable", "d.zip", zip_of({"power.csv": good_csv()}), None, "TooFewVariables"),
    ("fewer rows than slidingWindow", "d.zip", multitable(count=200), None, "NotEnoughData"),
    ("not a zip", "d.zip", b"PK\x03\x04 truncated", None, "InvalidZip"),
    ("one-table without timestamp", "d.csv", b"time,a,b\n1,2,3\n", None, "InvalidHeader"),
    ("bad spec", "d.zip", multitable(), {"slidingWindow": 5000}, "InvalidSlidingWindow"),
    ("unknown spec field", "d.zip", multitable(), {"window": 60}, "InvalidSpec"),
    (
        "detection window outside the data",
        "d.zip",
        multitable(),
        {
            "slidingWindow": 60,
            "detectStartTime": "2030-01-01T00:00:00Z",
            "endTime": "2026-11-02T03:00:00Z",
        },
        "NotEnoughData",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "spec", "code"),
    [case[1:] for case in BAD_DATASETS],
    ids=[case[0] for case in BAD_DATASETS],
)
def test_a_bad_dataset_is_a_coded_error_on_a_failed_model(
    chain: Chain, name: str, data: bytes, spec: dict[str, Any] | None, code: str
) -> None:
    request = chain.upload(name, data, spec)
    run = chain.trigger(request)
    assert run is not None and run.runtime_status == "Completed", run and run.error
    assert run.output["status"] == "FAILED"
    assert [error["code"] for error in as_obj(run.output)["errors"]] == [code]
    assert run.executions(TRAIN_ACTIVITY) == 0  # failed fast, before training
    info = chain.registry.get(request.model_id)["modelInfo"]
    assert info["status"] == "FAILED" and info["errors"][0]["code"] == code
    assert info["errors"][0]["message"]  # says what to fix
    stored = json_blob(chain.store, chain.registry.summary_ref(request.model_id))
    assert stored["status"] == "FAILED"


def test_a_sidecar_that_is_not_json_fails_the_model(chain: Chain) -> None:
    chain.store.put_bytes(BlobRef(chain.container, "m.json"), b"{slidingWindow: 60")
    run = chain.trigger(chain.upload("m.zip", multitable()))
    assert run is not None and as_obj(run.output)["errors"][0]["code"] == "InvalidSpec"
    assert "m.json" in as_obj(run.output)["errors"][0]["message"]


def test_a_dataset_replaced_after_upload_is_not_trained_on(chain: Chain) -> None:
    request = chain.upload("m.zip", multitable(), {"slidingWindow": 60})
    chain.store.put_bytes(BlobRef(chain.container, "m.zip"), multitable(seed=5))
    run = chain.trigger(request)
    assert run is not None and as_obj(run.output)["errors"][0]["code"] == "DataSourceChanged"


def test_an_upload_over_the_size_limit_is_refused(app_env: dict[str, str]) -> None:
    chain = Chain({**app_env, "MV_MAX_UPLOAD_MB": "1"})
    padding = ("x" * 1000 + "\n") * 1200  # 1.2 MB of comments the reader never gets to
    request = chain.upload("big.csv", onetable() + padding.encode())
    run = chain.trigger(request)
    assert run is not None and as_obj(run.output)["errors"][0]["code"] == "TooLarge"
    assert "MV_MAX_UPLOAD_MB" in as_obj(run.output)["errors"][0]["message"]


def test_variables_that_differ_at_detection_are_a_clear_error(chain: Chain) -> None:
    request = chain.upload("m.zip", multitable(), {"slidingWindow": 60})
    run = chain.trigger(request)
    assert run is not None and run.output["status"] == "READY"
    exported = load_export(chain.registry.get_export(request.model_id))
    stamps = minute_stamps(400)
    renamed = zip_of(
        {
            "power.csv": table(stamps, meters()["power"]),
            "kitchen.csv": table(stamps, meters()["kitchen"]),
            "volts.csv": table(stamps, meters()["voltage"]),
        }
    )
    with pytest.raises(DatasetError) as caught:
        detect_batch(exported.model, read_dataset(renamed, "r.zip"), exported.align_policy)
    assert caught.value.code == "VariableMismatch"
    assert "missing voltage" in caught.value.message
    assert "not in training volts" in caught.value.message

    # Through storage (what a batch detection request does): a stored FAILED result, no crash.
    chain.store.put_bytes(BlobRef(chain.container, "renamed.zip"), renamed)
    window = ("2026-11-02T05:00:00Z", "2026-11-02T06:00:00Z")
    result = chain.activities.service.detect_and_store(
        request.model_id, BlobRef(chain.container, "renamed.zip"), *window, 3
    )
    assert result["summary"]["status"] == "FAILED" and result["results"] == []
    assert result["summary"]["errors"][0]["code"] == "VariableMismatch"
    assert chain.registry.get_result(result["resultId"]) == result
    good = chain.activities.service.detect_and_store(
        request.model_id, BlobRef(chain.container, "m.zip"), *window, 3
    )
    assert good["summary"]["status"] == "READY" and len(good["results"]) == 61
    assert good["summary"]["setupInfo"]["topContributorCount"] == 3


# ------------------------------------------------------------------ the training lease


def test_a_live_lease_waits_and_an_expired_one_is_taken_over(app_env: dict[str, str]) -> None:
    clock = Clock()
    chain = Chain(app_env, clock)
    request = chain.upload("m.zip", multitable(), {"slidingWindow": 60})
    assert chain.steps[PREPARE_ACTIVITY](request.to_dict())["status"] == "CREATED"
    model = {"modelId": request.model_id}
    lease: TrainingLease = {
        "id": "another-worker",
        "expires": (clock.now + TRAINING_LEASE).isoformat(),
    }
    chain.registry.transition(request.model_id, "RUNNING", internal={"lease": lease})

    assert chain.steps[TRAIN_ACTIVITY](model)["status"] == "RUNNING"  # someone else is training
    assert chain.steps[STATUS_ACTIVITY](model) == {
        **model,
        "status": "RUNNING",
        "errors": [],
        "stale": False,
    }
    clock.now += TRAINING_LEASE + timedelta(seconds=1)  # that worker died with its lease
    assert chain.steps[STATUS_ACTIVITY](model)["stale"] is True
    assert chain.steps[TRAIN_ACTIVITY](model)["status"] == "READY"
    record = chain.registry.get_record(request.model_id)
    assert "lease" not in record.internal
    assert chain.steps[FAIL_ACTIVITY]({**model, "code": "TrainingTimeout"})["status"] == "READY"


def test_the_deadline_failure_is_recorded_on_the_model(chain: Chain) -> None:
    request = chain.upload("m.zip", multitable(), {"slidingWindow": 60})
    chain.steps[PREPARE_ACTIVITY](request.to_dict())
    outcome = chain.steps[FAIL_ACTIVITY](
        {"modelId": request.model_id, "code": "TrainingTimeout", "message": "60 minutes"}
    )
    assert outcome["status"] == "FAILED"
    assert chain.registry.get(request.model_id)["modelInfo"]["errors"] == [
        {"code": "TrainingTimeout", "message": "60 minutes"}
    ]
    assert chain.steps[TRAIN_ACTIVITY]({"modelId": request.model_id})["status"] == "FAILED"


# ------------------------------------------------------------------ the demo


def test_the_multivariate_demo(app_env: dict[str, str], tmp_path: Path) -> None:
    from shared.demo.multivariate import run_multivariate_demo

    settings = Settings.from_env(app_env)
    progress = io.StringIO()
    outcome = run_multivariate_demo(
        settings,
        BlobStore.from_settings(settings),
        tmp_path,
        seed=0,
        days=2,
        progress_stream=progress,
    )
    summary = as_obj(outcome)  # a free-form JSON object, read deeply below
    assert summary["status"] == "READY"
    assert summary["duplicateTriggerSkipped"] is True and summary["trainings"] == 1
    assert summary["timestamps"] == 1440 and 0 < summary["anomalies"] < 1440
    for top in summary["topAnomalies"]:
        assert top["topContributors"][0]["variable"] in {"power", "voltage", "kitchen", "laundry"}
    assert summary["labelledEvents"] > 0
    assert summary["eventsFound"] >= 1 and summary["rootCauseCorrect"] >= 1
    assert (tmp_path / "multivariate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((tmp_path / "multivariate-results.json").read_text())
    assert result["resultId"] == summary["resultId"]
    header = (tmp_path / "multivariate-results.csv").read_text().splitlines()[0]
    assert header == "timestamp,isAnomaly,severity,score,topContributors,changedVariables"
    assert load_export((tmp_path / "multivariate-model.zip").read_bytes()).model.variables
    assert "duplicate trigger skipped" in progress.getvalue()
