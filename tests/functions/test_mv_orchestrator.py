"""The multivariate Durable functions: the orchestrator through the SDK's own replay, bindings,
and the client triggers with real ``azure.functions`` objects.

The orchestrator is driven exactly as the Durable extension drives it: a history of events
(OrchestratorStarted, ExecutionStarted, TaskScheduled/TaskCompleted/TaskFailed,
TimerCreated/TimerFired) goes in as the orchestration-trigger JSON, the registered function's
``Orchestrator.create`` handle replays it, and the JSON state that comes out (``isDone``, the
``actions`` to schedule next, ``output``, ``customStatus``) is what is asserted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.durable_functions.constants import DATETIME_STRING_FORMAT
from azure.durable_functions.models.actions.ActionType import ActionType

from functions.multivariate import upload_request
from shared.multivariate.activities import TrainingActivities
from shared.multivariate.local_runner import LocalRetry, run_orchestration, training_activities
from shared.multivariate.payloads import TrainingRequest
from shared.multivariate.workflow import (
    ACTIVITIES,
    DETECT_ACTIVITY,
    EXPORT_ACTIVITY,
    FAIL_ACTIVITY,
    HTTP_STARTER,
    ORCHESTRATOR,
    PREPARE_ACTIVITY,
    RETRY_FIRST_INTERVAL_MS,
    RETRY_MAX_ATTEMPTS,
    STATUS_ACTIVITY,
    STATUS_QUERY,
    SUMMARY_ACTIVITY,
    TRAIN_ACTIVITY,
    UPLOAD_TRIGGER,
    training_orchestration,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from tests.functions.durable_history import DurableHistory, stamp

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
REQUEST = TrainingRequest.create(
    "mv-training", "energy.zip", "ab" * 32, poll_interval_seconds=30, deadline_minutes=1
)
MODEL = {"modelId": REQUEST.model_id, "instanceId": REQUEST.instance_id}
CREATED = {"modelId": REQUEST.model_id, "status": "CREATED", "errors": []}
READY = {"modelId": REQUEST.model_id, "status": "READY", "errors": []}
RUNNING = {"modelId": REQUEST.model_id, "status": "RUNNING", "errors": []}
DETECTED = {
    "resultId": "r1",
    "status": "READY",
    "errors": [],
    "anomalies": 3,
    "timestamps": 61,
    "topAnomalies": [],
}
EXPORTED = {"container": "mv-models", "name": f"{REQUEST.model_id}/export.zip", "bytes": 10}


def training_history(request: TrainingRequest = REQUEST, start: datetime = T0) -> DurableHistory:
    """The training orchestration's history for ``request`` (shared builder)."""
    return DurableHistory(ORCHESTRATOR, request.instance_id, request.to_dict(), start)


@pytest.fixture(scope="module")
def orchestrator(app_functions: dict[str, Any]) -> Callable[[DurableHistory], dict[str, Any]]:
    """The registered orchestrator's replay handle (``Orchestrator.create(fn)``)."""
    handle = app_functions[ORCHESTRATOR].get_user_function()

    def replay(history: DurableHistory) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(handle(history.context_json()))
        return state

    return replay


def scheduled(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action scheduled so far, in order (the SDK resends them all each episode)."""
    return [action for group in state["actions"] for action in group]


def names(state: dict[str, Any]) -> list[str]:
    return [
        action.get("functionName", "timer")
        if action["actionType"] != ActionType.CREATE_TIMER
        else "timer"
        for action in scheduled(state)
    ]


def last_input(state: dict[str, Any]) -> Any:
    return json.loads(scheduled(state)[-1]["input"])


def through_training(history: DurableHistory) -> DurableHistory:
    return history.completed(PREPARE_ACTIVITY, CREATED)


# ------------------------------------------------------------------ replay


def test_the_first_episode_schedules_prepare_with_the_retry_policy(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    state = orchestrator(training_history())
    assert state["isDone"] is False
    (action,) = scheduled(state)
    assert action["actionType"] == ActionType.CALL_ACTIVITY_WITH_RETRY
    assert action["functionName"] == PREPARE_ACTIVITY
    assert action["retryOptions"] == {
        "firstRetryIntervalInMilliseconds": RETRY_FIRST_INTERVAL_MS,
        "maxNumberOfAttempts": RETRY_MAX_ATTEMPTS,
    }
    assert json.loads(action["input"]) == REQUEST.to_dict()
    assert state["customStatus"]["stage"] == "prepare"


def test_a_ready_model_is_detected_exported_and_summarised(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    history = through_training(training_history()).completed(TRAIN_ACTIVITY, READY)
    state = orchestrator(history)
    assert names(state)[-1] == DETECT_ACTIVITY and last_input(state) == MODEL
    history.completed(DETECT_ACTIVITY, DETECTED).completed(EXPORT_ACTIVITY, EXPORTED)
    state = orchestrator(history)
    assert names(state)[-1] == SUMMARY_ACTIVITY
    assert last_input(state) == {**MODEL, "detection": DETECTED, "export": EXPORTED}
    summary = {"modelId": REQUEST.model_id, "status": "READY", "anomalies": 3}
    state = orchestrator(history.completed(SUMMARY_ACTIVITY, summary))
    assert state["isDone"] is True
    assert state["output"] == summary
    assert names(state) == [
        PREPARE_ACTIVITY,
        TRAIN_ACTIVITY,
        DETECT_ACTIVITY,
        EXPORT_ACTIVITY,
        SUMMARY_ACTIVITY,
    ]
    assert state["customStatus"]["stage"] == "done"


def test_a_validation_failure_skips_training_and_is_summarised(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    failed = {
        "modelId": REQUEST.model_id,
        "status": "FAILED",
        "errors": [{"code": "EmptyDataset", "message": "The zip holds no CSV file"}],
    }
    history = training_history().completed(PREPARE_ACTIVITY, failed)
    state = orchestrator(history)
    assert names(state) == [PREPARE_ACTIVITY, SUMMARY_ACTIVITY]
    assert last_input(state) == {**MODEL, "detection": None, "export": None}
    state = orchestrator(history.completed(SUMMARY_ACTIVITY, failed))
    assert state["isDone"] is True and state["output"]["status"] == "FAILED"


def test_the_monitor_polls_with_durable_timers_until_ready(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    history = through_training(training_history()).completed(TRAIN_ACTIVITY, RUNNING)
    state = orchestrator(history)
    timer = scheduled(state)[-1]
    assert timer["actionType"] == ActionType.CREATE_TIMER
    first_fire = history.now + timedelta(seconds=30)  # the orchestration's time + interval
    assert timer["fireAt"] == stamp(first_fire)
    assert state["customStatus"] == {"stage": "monitor", "status": "RUNNING", **MODEL}
    history.timer_fired(first_fire)
    state = orchestrator(history)
    assert names(state)[-1] == STATUS_ACTIVITY and last_input(state) == MODEL
    history.completed(STATUS_ACTIVITY, {**RUNNING, "stale": False})
    state = orchestrator(history)
    assert scheduled(state)[-1]["fireAt"] == stamp(history.now + timedelta(seconds=30))
    history.timer_fired(history.now + timedelta(seconds=30))
    history.completed(STATUS_ACTIVITY, {**READY, "stale": False})
    state = orchestrator(history)
    assert names(state) == [
        PREPARE_ACTIVITY,
        TRAIN_ACTIVITY,
        "timer",
        STATUS_ACTIVITY,
        "timer",
        STATUS_ACTIVITY,
        DETECT_ACTIVITY,
    ]


def test_a_failing_activity_is_retried_and_the_run_goes_on(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    history = through_training(training_history()).failed(
        TRAIN_ACTIVITY, "ServiceRequestError: timeout"
    )
    state = orchestrator(history)
    assert state["isDone"] is False
    assert names(state) == [PREPARE_ACTIVITY, TRAIN_ACTIVITY]  # the runtime retries it
    history.retry_timer_fired().completed(TRAIN_ACTIVITY, READY)
    state = orchestrator(history)
    assert names(state) == [PREPARE_ACTIVITY, TRAIN_ACTIVITY, DETECT_ACTIVITY]
    assert FAIL_ACTIVITY not in names(state)


def test_spent_retries_mark_the_model_failed_and_summarise(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    history = through_training(training_history())
    for _ in range(RETRY_MAX_ATTEMPTS):
        history.failed(TRAIN_ACTIVITY, "MemoryError: out of memory").retry_timer_fired()
    state = orchestrator(history)
    assert names(state)[-1] == FAIL_ACTIVITY
    failure = last_input(state)
    assert failure["code"] == "TrainingFailed" and failure["modelId"] == REQUEST.model_id
    assert "out of memory" in failure["message"]
    failed = {**RUNNING, "status": "FAILED"}
    state = orchestrator(history.completed(FAIL_ACTIVITY, failed))
    assert names(state)[-1] == SUMMARY_ACTIVITY
    assert last_input(state)["detection"] is None


def test_the_deadline_marks_the_model_failed(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    history = through_training(training_history()).completed(TRAIN_ACTIVITY, RUNNING)
    deadline = history.now + timedelta(minutes=REQUEST.deadline_minutes)
    timers = 0
    state = orchestrator(history)
    while names(state)[-1] == "timer":
        timers += 1
        fire_at = datetime.strptime(scheduled(state)[-1]["fireAt"], DATETIME_STRING_FORMAT)
        history.timer_fired(fire_at.replace(tzinfo=UTC))
        history.completed(STATUS_ACTIVITY, {**RUNNING, "stale": False})
        state = orchestrator(history)
    assert history.now >= deadline
    assert timers == 2  # 30 s apart: T+32 s, T+63 s; the poll after the second passes 60 s
    assert names(state)[-1] == FAIL_ACTIVITY
    failure = last_input(state)
    assert failure["code"] == "TrainingTimeout"
    assert "1 minutes" in failure["message"] and "RUNNING" in failure["message"]
    history.completed(FAIL_ACTIVITY, {**RUNNING, "status": "FAILED"})
    history.completed(SUMMARY_ACTIVITY, {"modelId": REQUEST.model_id, "status": "FAILED"})
    state = orchestrator(history)
    assert state["isDone"] is True and state["output"]["status"] == "FAILED"


def test_a_stale_training_lease_trains_again(
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
) -> None:
    history = through_training(training_history()).completed(TRAIN_ACTIVITY, RUNNING)
    history.timer_fired(history.now + timedelta(seconds=30))
    history.completed(STATUS_ACTIVITY, {**RUNNING, "stale": True})
    state = orchestrator(history)
    assert names(state)[-1] == TRAIN_ACTIVITY
    state = orchestrator(history.completed(TRAIN_ACTIVITY, READY))
    assert names(state)[-1] == DETECT_ACTIVITY


def test_replay_is_deterministic(orchestrator: Callable[[DurableHistory], dict[str, Any]]) -> None:
    history = through_training(training_history()).completed(TRAIN_ACTIVITY, RUNNING)
    history.timer_fired(history.now + timedelta(seconds=30))
    assert orchestrator(history) == orchestrator(history)


# ------------------------------------------------------------------ bindings


def bindings(app_functions: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    document = json.loads(app_functions[name].get_function_json())
    return {binding["type"]: binding for binding in document["bindings"]}


def test_function_app_is_a_durable_app() -> None:
    import function_app

    assert isinstance(function_app.app, df.DFApp)


def test_upload_trigger_binding(app_functions: dict[str, Any]) -> None:
    found = bindings(app_functions, UPLOAD_TRIGGER)
    assert set(found) == {"blobTrigger", "durableClient"}
    trigger = found["blobTrigger"]
    assert trigger["path"] == "%TRAINING_CONTAINER%/{name}"
    assert trigger["connection"] == "AzureWebJobsStorage"
    assert trigger["source"] == "LogsAndContainerScan"
    assert trigger["direction"] == "IN"
    assert found["durableClient"]["direction"] == "IN"


def test_http_starter_and_status_bindings(app_functions: dict[str, Any]) -> None:
    starter = bindings(app_functions, HTTP_STARTER)
    assert set(starter) == {"httpTrigger", "http", "durableClient"}
    assert starter["httpTrigger"]["route"] == "mv/train"
    assert starter["httpTrigger"]["methods"] == ["POST"]
    assert starter["httpTrigger"]["authLevel"] == "FUNCTION"
    status = bindings(app_functions, STATUS_QUERY)
    assert status["httpTrigger"]["route"] == "mv/status/{instanceId}"
    assert status["httpTrigger"]["methods"] == ["GET"]
    assert "durableClient" in status


def test_orchestrator_and_activity_bindings(app_functions: dict[str, Any]) -> None:
    assert bindings(app_functions, ORCHESTRATOR) == {
        "orchestrationTrigger": {
            "direction": "IN",
            "type": "orchestrationTrigger",
            "name": "context",
        }
    }
    for activity in ACTIVITIES:
        (binding,) = bindings(app_functions, activity).values()
        assert binding["type"] == "activityTrigger" and binding["name"] == "payload"


# ------------------------------------------------------------------ clients


def input_stream(name: str, data: bytes) -> func.InputStream:
    return func.blob.InputStream(data=data, name=name, length=len(data), uri=f"http://x/{name}")


def test_upload_request_is_deterministic_per_path_and_content(app_env: dict[str, str]) -> None:
    settings = Settings.from_env(app_env)
    container = settings.training_container
    first = upload_request(input_stream(f"{container}/site/energy.zip", b"zip bytes"), settings)
    again = upload_request(input_stream(f"{container}/site/energy.zip", b"zip bytes"), settings)
    changed = upload_request(input_stream(f"{container}/site/energy.zip", b"new bytes"), settings)
    moved = upload_request(input_stream(f"{container}/other/energy.zip", b"zip bytes"), settings)
    assert first is not None and again is not None and changed is not None and moved is not None
    assert first == again
    assert first.name == "site/energy.zip" and first.container == container
    assert first.instance_id != changed.instance_id != moved.instance_id
    assert first.poll_interval_seconds == settings.mv_poll_interval_seconds
    assert first.deadline_minutes == settings.mv_training_deadline_minutes
    assert upload_request(input_stream(f"{container}/site/energy.json", b"{}"), settings) is None


CLIENT_BINDING = json.dumps(
    {
        # The port is closed: a test passes only if the client is never called.
        "taskHubName": "meterwatch",
        "creationUrls": {},
        "managementUrls": {},
        "rpcBaseUrl": "http://127.0.0.1:9/durabletask/",
    }
)


def test_the_upload_trigger_skips_sidecars_without_calling_the_host(
    function_env: dict[str, str], app_functions: dict[str, Any]
) -> None:
    trigger = app_functions[UPLOAD_TRIGGER].get_user_function()
    name = f"{function_env['TRAINING_CONTAINER']}/energy.json"
    asyncio.run(trigger(blob=input_stream(name, b"{}"), client=CLIENT_BINDING))


def http_request(body: bytes) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url="http://localhost/api/mv/train", body=body)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "InvalidRequest"),
        (b"[1, 2]", 400, "InvalidRequest"),
        (b'{"slidingWindow": 100}', 400, "InvalidDataSource"),
        (b'{"dataSource": "https://elsewhere.example/c/x.zip"}', 400, "InvalidDataSource"),
        (b'{"dataSource": "energy.zip", "slidingWindow": 5}', 400, "InvalidSlidingWindow"),
        (b'{"dataSource": "missing.zip"}', 404, "DataSourceNotFound"),
    ],
)
def test_the_http_starter_refuses_bad_requests_before_starting_anything(
    function_env: dict[str, str],
    app_functions: dict[str, Any],
    body: bytes,
    status: int,
    code: str,
) -> None:
    starter = app_functions[HTTP_STARTER].get_user_function()
    response = asyncio.run(starter(req=http_request(body), client=CLIENT_BINDING))
    assert response.status_code == status
    assert json.loads(response.get_body())["code"] == code
    assert response.headers["x-ms-error-code"] == code


# ------------------------------------------------------------------ the real activities, replayed


def test_the_sdk_replays_a_real_run_to_the_same_output(
    function_env: dict[str, str],
    orchestrator: Callable[[DurableHistory], dict[str, Any]],
    energy_zip: Path,
) -> None:
    """Run the energy case with the real activities, then replay their results through the SDK."""
    settings = Settings.from_env(function_env)
    store = BlobStore.from_settings(settings)
    container = settings.training_container
    spec = {
        "startTime": "2006-12-16T17:24:00Z",
        "endTime": "2006-12-18T02:43:00Z",
        "detectStartTime": "2006-12-19T00:00:00Z",
        "detectEndTime": "2006-12-19T20:26:00Z",
    }
    store.put_json(BlobRef(container, "energy-data.json"), spec)
    data = energy_zip.read_bytes()
    store.put_bytes(BlobRef(container, "energy-data.zip"), data)
    request = upload_request(input_stream(f"{container}/energy-data.zip", data), settings)
    assert request is not None
    run = run_orchestration(
        lambda context: training_orchestration(context, LocalRetry()),
        request.to_dict(),
        training_activities(TrainingActivities(store, settings)),
        instance_id=request.instance_id,
    )
    assert run.runtime_status == "Completed" and run.output["status"] == "READY"

    history = training_history(request)
    state = orchestrator(history)
    for name, given, output in run.results:
        assert scheduled(state)[-1]["functionName"] == name
        assert json.loads(scheduled(state)[-1]["input"]) == given
        history.completed(name, output)
        state = orchestrator(history)
    assert state["isDone"] is True
    assert state["output"] == run.output
    assert state["output"]["status"] == "READY"
    assert state["output"]["anomalies"] > 0
