"""The model registry over Azurite: v1.1 objects, status rules, paging, artifacts, results."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import (
    ModelError,
    ModelNotFoundError,
    ModelNotReadyError,
    ResultNotFoundError,
)
from shared.multivariate.documents import DetectionResult, ModelInfo, ResultSummary
from shared.multivariate.registry import ModelRecord, ModelRegistry
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore

SUMMARY: ResultSummary = {
    "status": "READY",
    "errors": [],
    "variableStates": [],
    "setupInfo": {"dataSource": "", "topContributorCount": 10, "startTime": "", "endTime": ""},
}
INFO: ModelInfo = {
    "dataSource": "http://127.0.0.1/devstoreaccount1/mv-training/energy.zip",
    "dataSchema": "MultiTable",
    "displayName": "energy",
    "slidingWindow": 300,
    "alignPolicy": {"alignMode": "Outer", "fillNAMethod": "Linear", "paddingValue": 0.0},
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(app_env: dict[str, str]) -> BlobStore:
    return BlobStore.from_settings(Settings.from_env(app_env))


@pytest.fixture
def registry(app_env: dict[str, str], store: BlobStore, clock: Clock) -> ModelRegistry:
    return ModelRegistry.from_settings(store, Settings.from_env(app_env), clock)


def test_create_stores_a_v11_model_object(registry: ModelRegistry) -> None:
    registry.create("m1", {**INFO, "status": "READY"}, internal={"sha256": "ab"})
    model = registry.get("m1")
    assert model == {
        "modelId": "m1",
        "createdTime": "2026-11-02T08:00:00.000Z",
        "lastUpdatedTime": "2026-11-02T08:00:00.000Z",
        "modelInfo": {
            **INFO,
            "status": "CREATED",  # a caller cannot create a READY model
            "errors": [],
            "diagnosticsInfo": {
                "modelState": {
                    "epochIds": [],
                    "trainLosses": [],
                    "validationLosses": [],
                    "latenciesInSeconds": [],
                },
                "variableStates": [],
            },
        },
    }
    assert registry.get_record("m1").internal == {"sha256": "ab"}  # bookkeeping kept apart


def test_create_is_idempotent(registry: ModelRegistry, clock: Clock) -> None:
    first = registry.create("m1", INFO)
    clock.tick(60)
    second = registry.create("m1", {**INFO, "displayName": "other"})
    assert second.model == first.model
    assert registry.get("m1")["modelInfo"]["displayName"] == "energy"


def test_unknown_and_unsafe_ids_are_not_found(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        registry.get("nope")
    assert caught.value.code == "ModelNotExist"
    for bad in ("../m1", "a/b", ""):
        with pytest.raises(ModelNotFoundError):
            registry.get(bad)
    with pytest.raises(ResultNotFoundError) as result_caught:
        registry.get_result("missing")
    assert result_caught.value.code == "ResultNotExist"
    with pytest.raises(ResultNotFoundError):
        registry.get_result("../x")


def test_status_follows_created_running_ready_and_ready_is_final(
    registry: ModelRegistry, clock: Clock
) -> None:
    registry.create("m1", INFO)
    changed, _ = registry.transition("m1", "READY")
    assert not changed  # CREATED cannot jump to READY
    clock.tick()
    changed, record = registry.transition("m1", "RUNNING", internal={"lease": {"id": "x"}})
    assert changed and record.status == "RUNNING"
    assert record.model["lastUpdatedTime"] == "2026-11-02T08:00:01.000Z"
    changed, record = registry.transition(
        "m1",
        "READY",
        diagnostics={
            "modelState": {
                "epochIds": [1],
                "trainLosses": [0.5],
                "validationLosses": [0.5],
                "latenciesInSeconds": [0.1],
            },
            "variableStates": [],
        },
        internal={"lease": None},
    )
    assert changed and record.status == "READY" and "lease" not in record.internal
    changed, record = registry.transition(
        "m1", "FAILED", errors=[{"code": "TrainingTimeout", "message": "late"}]
    )
    assert not changed and record.status == "READY" and record.info["errors"] == []


def test_failed_records_the_coded_errors(registry: ModelRegistry) -> None:
    registry.create("m1", INFO)
    registry.transition("m1", "FAILED", errors=[{"code": "EmptyDataset", "message": "no CSV"}])
    info = registry.get("m1")["modelInfo"]
    assert info["status"] == "FAILED"
    assert info["errors"] == [{"code": "EmptyDataset", "message": "no CSV"}]
    changed, _ = registry.transition("m1", "RUNNING")
    assert not changed


def test_a_condition_guards_the_transition(registry: ModelRegistry) -> None:
    registry.create("m1", INFO)
    registry.transition("m1", "RUNNING", internal={"lease": {"id": "mine"}})

    def holds(lease: str) -> Callable[[ModelRecord], bool]:
        return lambda record: bool(record.internal["lease"]["id"] == lease)

    changed, _ = registry.transition("m1", "READY", when=holds("theirs"))
    assert not changed
    changed, _ = registry.transition("m1", "READY", when=holds("mine"))
    assert changed


def test_concurrent_updates_are_not_lost(app_env: dict[str, str], store: BlobStore) -> None:
    settings = Settings.from_env(app_env)
    one = ModelRegistry.from_settings(store, settings)
    other = ModelRegistry.from_settings(BlobStore.from_settings(settings), settings)
    one.create("m1", INFO)
    calls = {"n": 0}

    def theirs(record: ModelRecord) -> bool:
        record.internal["instanceId"] = "theirs"
        return True

    def interleaved(record: ModelRecord) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:  # another worker writes between our read and our write
            other.update("m1", theirs)
        record.internal["sha256"] = "mine"
        return True

    changed, record = one.update("m1", interleaved)
    assert changed and calls["n"] == 2  # the first write lost the ETag race and was redone
    assert record.internal == {"instanceId": "theirs", "sha256": "mine"}


def test_list_pages_oldest_first(registry: ModelRegistry, clock: Clock) -> None:
    for name in ("c", "a", "b", "d", "e"):
        registry.create(name, INFO)
        clock.tick()
    first = registry.list(skip=0, top=2)
    assert [m["modelId"] for m in first.models] == ["c", "a"]
    assert first.current_count == 5 and first.max_count == 300 and first.next_skip == 2
    last = registry.list(skip=4, top=2)
    assert [m["modelId"] for m in last.models] == ["e"] and last.next_skip is None
    assert last.to_v11()["nextLink"] == ""
    assert registry.list(skip=10, top=2).models == []
    with pytest.raises(ModelError) as caught:
        registry.list(skip=-1, top=2)
    assert caught.value.code == "InvalidParameter"


def test_artifacts_are_served_for_ready_models_only(registry: ModelRegistry) -> None:
    registry.create("m1", INFO)
    registry.put_artifact("m1", b"engine bytes")
    with pytest.raises(ModelNotReadyError) as caught:
        registry.get_artifact("m1")
    assert "CREATED" in caught.value.message
    with pytest.raises(ModelNotReadyError):
        registry.get_export("m1")
    registry.transition("m1", "RUNNING")
    registry.transition("m1", "READY")
    assert registry.get_artifact("m1") == b"engine bytes"
    with pytest.raises(ModelNotReadyError):
        registry.get_export("m1")  # READY, but not exported yet
    registry.put_export("m1", b"zip bytes")
    assert registry.get_export("m1") == b"zip bytes"


def test_results_are_stored_as_json_and_csv(registry: ModelRegistry) -> None:
    registry.create("m1", INFO)
    result: DetectionResult = {"resultId": "r1", "summary": SUMMARY, "results": []}
    registry.put_result("m1", result, "timestamp\n")
    registry.put_result("m1", result, "timestamp\n")  # stored again: noted once
    assert registry.get_result("r1") == result
    assert registry.get_result_csv("r1") == "timestamp\n"
    assert registry.get_record("m1").internal["resultIds"] == ["r1"]


def test_delete_removes_the_model_and_everything_it_owns(
    registry: ModelRegistry, store: BlobStore
) -> None:
    registry.create("m1", INFO)
    registry.create("m2", INFO)
    registry.put_artifact("m1", b"engine")
    registry.put_export("m1", b"zip")
    registry.put_summary("m1", {"status": "READY"})
    registry.put_result("m1", {"resultId": "r1", "summary": SUMMARY, "results": []}, "csv")
    registry.delete("m1")
    with pytest.raises(ModelNotFoundError):
        registry.get("m1")
    assert list(store.list_names(registry.models_container, "m1/")) == []
    assert not store.exists(BlobRef(registry.results_container, "multivariate/r1.json"))
    assert not store.exists(BlobRef(registry.results_container, "multivariate/r1.csv"))
    assert [m["modelId"] for m in registry.list().models] == ["m2"]
    with pytest.raises(ModelNotFoundError):
        registry.delete("m1")


def test_the_upload_trigger_sees_a_deleted_model(
    app_env: dict[str, str], registry: ModelRegistry
) -> None:
    from functions.multivariate import _model_deleted, training_request

    settings = Settings.from_env(app_env)
    request = training_request(settings, settings.training_container, "house.zip", "ab" * 32)
    assert _model_deleted(settings, request)
    registry.create(request.model_id, INFO)
    assert not _model_deleted(settings, request)
    registry.delete(request.model_id)
    assert _model_deleted(settings, request)
