"""The v1.1 API's HTTP function, called in-process with real ``func.HttpRequest`` objects.

The function is taken from the real function app (``app.get_functions()``), so its binding
metadata and the Durable client wrapper are the host's. Training goes through the function's
Durable client to a recording stand-in for the Durable extension's HTTP API; the recorded
orchestration input is then run by the in-process runner, exactly as the host would run it.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import azure.functions as func
import pytest
from azure.durable_functions.models.actions.ActionType import ActionType

from shared.multivariate.activities import BatchDetectionActivities, TrainingActivities
from shared.multivariate.detection import pending_result
from shared.multivariate.local_runner import (
    LocalRetry,
    LocalTaskHub,
    batch_activities,
    training_activities,
)
from shared.multivariate.payloads import DetectionJob
from shared.multivariate.registry import ModelRegistry
from shared.multivariate.workflow import (
    BATCH_DETECT_ACTIVITY,
    BATCH_FAILED_ACTIVITY,
    DETECTION_ORCHESTRATOR,
    ORCHESTRATOR,
    RETRY_FIRST_INTERVAL_MS,
    RETRY_MAX_ATTEMPTS,
    detection_orchestration,
    training_orchestration,
)
from shared.settings import get_settings
from shared.storage.client import BlobRef, BlobStore
from tests.functions.durable_history import DurableHistory

T = TypeVar("T")
KEY = "function-test-key"
HOST = "http://localhost:7071"


def function_json(app_functions: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(json.loads(app_functions[name].get_function_json()))


def test_api_binding_metadata(app_functions: dict[str, Any]) -> None:
    bindings = {
        b["type"]: b for b in function_json(app_functions, "anomalydetector_api")["bindings"]
    }
    trigger = bindings["httpTrigger"]
    assert trigger["route"] == "anomalydetector/{*path}"
    assert sorted(trigger["methods"]) == ["DELETE", "GET", "POST"]
    assert trigger["authLevel"] == "ANONYMOUS"  # the API checks its own keys
    assert bindings["durableClient"]["name"] == "client"
    assert bindings["http"]["direction"] == "OUT"


class FakeDurableExtension:
    """Records what the Durable client sends to the extension's HTTP API (``rpcBaseUrl``)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, Any]] = []
        self.statuses: dict[str, str] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                if isinstance(body, str):  # the client sends the input JSON-encoded
                    body = json.loads(body)
                parts = self.path.split("?")[0].strip("/").split("/")
                # /durabletask/orchestrators/{name}/{instanceId}
                outer.started.append((parts[2], parts[3], body))
                outer.statuses[parts[3]] = "Pending"
                self._reply(202, {"id": parts[3]})

            def do_GET(self) -> None:
                # /durabletask/instances/{instanceId}
                instance_id = self.path.split("?")[0].strip("/").split("/")[-1]
                status = outer.statuses.get(instance_id)
                if status is None:
                    self._reply(404, {})
                    return
                self._reply(
                    200,
                    {
                        "name": ORCHESTRATOR,
                        "instanceId": instance_id,
                        "createdTime": "2026-11-22T00:00:00Z",
                        "lastUpdatedTime": "2026-11-22T00:00:01Z",
                        "runtimeStatus": status,
                    },
                )

            def _reply(self, status: int, document: Any) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def client_binding(self) -> str:
        """The JSON the host passes for a ``durableClient`` binding."""
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        return json.dumps(
            {
                "taskHubName": "meterwatch",
                "creationUrls": {},
                "managementUrls": {},
                "baseUrl": f"{base}/runtime/webhooks/durabletask",
                "requiredQueryStringParameters": "",
                "rpcBaseUrl": f"{base}/durabletask/",
            }
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def durable() -> Iterator[FakeDurableExtension]:
    extension = FakeDurableExtension()
    yield extension
    extension.close()


@pytest.fixture
def api_env(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("METERWATCH_API_KEYS", KEY)
    get_settings.cache_clear()
    return function_env


def http_request(
    method: str, path: str, body: Any = None, key: str | None = KEY, request_id: str = ""
) -> func.HttpRequest:
    headers = {"content-type": "application/json"}
    if request_id:  # what every SDK sends, the same on its retries
        headers["x-ms-client-request-id"] = request_id
    if key is not None:
        headers["Ocp-Apim-Subscription-Key"] = key
    return func.HttpRequest(
        method=method,
        url=f"{HOST}/api/anomalydetector/{path}",
        headers=headers,
        params={},
        route_params={"path": path.split("?")[0]},
        body=b"" if body is None else json.dumps(body).encode(),
    )


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on a fresh loop, then close the Durable client's shared HTTP session."""
    from azure.durable_functions.models.utils import http_utils

    async def main() -> T:
        try:
            return await scenario
        finally:
            await http_utils._close_session()

    return asyncio.run(main())


async def call(
    app_functions: dict[str, Any], request: func.HttpRequest, binding: str
) -> func.HttpResponse:
    user_function = app_functions["anomalydetector_api"].get_user_function()
    response: func.HttpResponse = await user_function(req=request, client=binding)
    return response


def series(n: int = 120, spike_at: int = 100) -> dict[str, Any]:
    values = [10.0 + (i % 7) * 0.1 for i in range(n)]
    values[spike_at] = 60.0
    return {
        "series": [
            {"timestamp": f"2026-11-02T{i // 60:02d}:{i % 60:02d}:00Z", "value": v}
            for i, v in enumerate(values)
        ],
        "granularity": "minutely",
    }


def test_univariate_requests_through_the_function(
    app_functions: dict[str, Any], api_env: dict[str, str], durable: FakeDurableExtension
) -> None:
    async def scenario() -> list[func.HttpResponse]:
        binding = durable.client_binding
        return [
            await call(app_functions, http_request("POST", "v1.1/timeseries/entire/detect",
                                                   series()), binding),
            await call(app_functions, http_request("POST", "v1.1/timeseries/last/detect",
                                                   series(spike_at=119)), binding),
            await call(app_functions, http_request("POST", "v1.1/timeseries/entire/detect",
                                                   series(), key="wrong"), binding),
            await call(app_functions, http_request("POST", "v1.1/timeseries/entire/detect",
                                                   {"series": [], "granularity": "minutely"}),
                       binding),
            await call(app_functions, http_request("GET", "v1.1/nowhere"), binding),
        ]  # fmt: skip

    entire, last, unauthorized, invalid, unknown = run(scenario())
    assert entire.status_code == 200
    assert entire.mimetype == "application/json"
    flags = json.loads(entire.get_body())["isAnomaly"]
    assert len(flags) == 120 and flags[100] is True
    assert last.status_code == 200 and json.loads(last.get_body())["isAnomaly"] is True
    assert unauthorized.status_code == 401
    assert unauthorized.headers["x-ms-error-code"] == "Unauthorized"
    assert invalid.status_code == 400
    assert json.loads(invalid.get_body())["code"] == "InvalidSeries"
    assert unknown.status_code == 404
    assert not durable.started


def test_without_keys_the_api_does_not_run(
    app_functions: dict[str, Any],
    function_env: dict[str, str],
    durable: FakeDurableExtension,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("METERWATCH_API_KEYS", raising=False)
    get_settings.cache_clear()

    async def scenario() -> func.HttpResponse:
        request = http_request("POST", "v1.1/timeseries/entire/detect", series(), key="")
        return await call(app_functions, request, durable.client_binding)

    response = run(scenario())
    assert response.status_code == 503
    assert response.headers["x-ms-error-code"] == "MissingApiKeys"
    assert "METERWATCH_API_KEYS" in json.loads(response.get_body())["message"]


def test_training_through_the_function_starts_the_orchestration(
    app_functions: dict[str, Any],
    api_env: dict[str, str],
    durable: FakeDurableExtension,
    energy_zip: Path,
) -> None:
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    ref = BlobRef(settings.training_container, "api/energy-data.zip")
    store.put_bytes(ref, energy_zip.read_bytes())
    data_source = f"{store.service.url}{ref.container}/{ref.name}"
    body = {
        "dataSource": data_source,
        "startTime": "2006-12-16T17:24:00Z",
        "endTime": "2006-12-18T02:43:00Z",
        "slidingWindow": 200,
    }

    async def train() -> func.HttpResponse:
        return await call(
            app_functions,
            http_request("POST", "v1.1/multivariate/models", body, request_id="train-1"),
            durable.client_binding,
        )

    created = run(train())
    assert created.status_code == 201, created.get_body()
    model = json.loads(created.get_body())
    model_id = model["modelId"]
    # Without API_PUBLIC_URL (infra sets it) the link is a path: never the request's Host.
    assert created.headers["Location"] == (
        f"/api/anomalydetector/v1.1/multivariate/models/{model_id}"
    )
    assert model["modelInfo"]["status"] == "CREATED"
    assert model["modelInfo"]["dataSource"] == data_source
    # The function's Durable client asked the extension to start the training orchestration.
    ((name, instance_id, orchestration_input),) = durable.started
    assert name == ORCHESTRATOR
    assert orchestration_input["modelId"] == model_id
    assert orchestration_input["instanceId"] == instance_id
    assert orchestration_input["dataSource"] == {"container": ref.container, "name": ref.name}

    # What the host would do with that request: run the orchestration.
    hub = LocalTaskHub(
        {ORCHESTRATOR: lambda context: training_orchestration(context, LocalRetry())},
        training_activities(TrainingActivities(store, settings)),
    )
    assert hub.start_new(name, instance_id, orchestration_input).runtime_status == "Completed"
    durable.statuses[instance_id] = "Completed"

    async def use_model() -> list[func.HttpResponse]:
        binding = durable.client_binding
        return [
            await call(app_functions, http_request("GET", f"v1.1/multivariate/models/{model_id}"),
                       binding),
            await call(app_functions, http_request(
                "POST", f"v1.1/multivariate/models/{model_id}:detect-batch", DETECT_BODY
                | {"dataSource": data_source}), binding),
            await call(app_functions, http_request(
                "GET", f"v1.1-preview.1/multivariate/models/{model_id}/export"), binding),
            await call(app_functions, http_request("POST", "v1.1/multivariate/models", body,
                                                   request_id="train-1"), binding),
        ]  # fmt: skip

    got, accepted, exported, again = run(use_model())
    assert json.loads(got.get_body())["modelInfo"]["status"] == "READY"
    assert exported.status_code == 200
    assert exported.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(exported.get_body())) as archive:
        assert "model.mvm" in archive.namelist()
    # The same call retried (same client request id): the same model, no second orchestration.
    assert again.status_code == 201
    assert json.loads(again.get_body())["modelId"] == model_id

    # Batch detection: 202 with a CREATED result, and a detection orchestration started.
    assert accepted.status_code == 202
    pending = json.loads(accepted.get_body())
    result_id = pending["resultId"]
    assert pending["summary"]["status"] == "CREATED"
    assert pending["summary"]["setupInfo"]["dataSource"] == data_source
    assert accepted.headers["Operation-Location"] == (
        f"/api/anomalydetector/v1.1/multivariate/detect-batch/{result_id}"
    )
    assert [started[0] for started in durable.started] == [ORCHESTRATOR, DETECTION_ORCHESTRATOR]
    _, detect_instance, job = durable.started[1]
    assert job["result_id"] == result_id and job["model_id"] == model_id

    hub = LocalTaskHub(
        {DETECTION_ORCHESTRATOR: lambda context: detection_orchestration(context, LocalRetry())},
        batch_activities(BatchDetectionActivities(store, settings)),
    )
    assert hub.start_new(DETECTION_ORCHESTRATOR, detect_instance, job).output["status"] == "READY"

    async def poll() -> func.HttpResponse:
        return await call(
            app_functions,
            http_request("GET", f"v1.1/multivariate/detect-batch/{result_id}"),
            durable.client_binding,
        )

    result = json.loads(run(poll()).get_body())
    assert result["summary"]["status"] == "READY"
    assert len(result["results"]) == 1227


DETECT_BODY = {
    "startTime": "2006-12-19T00:00:00Z",
    "endTime": "2006-12-19T20:26:00Z",
    "topContributorCount": 4,
}


# ------------------------------------------------------------------ detection orchestrator

JOB = DetectionJob(
    model_id="m-1",
    result_id="r-1",
    container="data",
    name="energy.zip",
    sha256="ab" * 32,
    data_source="http://127.0.0.1:10000/devstoreaccount1/data/energy.zip",
    start_time="2006-12-19T00:00:00Z",
    end_time="2006-12-19T20:26:00Z",
    top_contributor_count=3,
)
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def detection_history() -> DurableHistory:
    """The detection orchestration's history for the test job (shared builder)."""
    return DurableHistory(DETECTION_ORCHESTRATOR, JOB.instance_id, JOB.to_dict(), T0)


def replay(app_functions: dict[str, Any], history: DurableHistory) -> dict[str, Any]:
    handle = app_functions[DETECTION_ORCHESTRATOR].get_user_function()
    state: dict[str, Any] = json.loads(handle(history.context_json()))
    return state


def actions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [action for group in state["actions"] for action in group]


def test_detection_functions_are_registered(app_functions: dict[str, Any]) -> None:
    (trigger,) = function_json(app_functions, DETECTION_ORCHESTRATOR)["bindings"]
    assert trigger["type"] == "orchestrationTrigger"
    for name in (BATCH_DETECT_ACTIVITY, BATCH_FAILED_ACTIVITY):
        (activity,) = function_json(app_functions, name)["bindings"]
        assert activity["type"] == "activityTrigger"


def test_the_orchestrator_detects_with_the_retry_policy(app_functions: dict[str, Any]) -> None:
    state = replay(app_functions, detection_history())
    assert state["isDone"] is False
    (action,) = actions(state)
    assert action["actionType"] == ActionType.CALL_ACTIVITY_WITH_RETRY
    assert action["functionName"] == BATCH_DETECT_ACTIVITY
    assert action["retryOptions"] == {
        "firstRetryIntervalInMilliseconds": RETRY_FIRST_INTERVAL_MS,
        "maxNumberOfAttempts": RETRY_MAX_ATTEMPTS,
    }
    assert json.loads(action["input"]) == JOB.to_dict()
    outcome = {"resultId": "r-1", "status": "READY", "anomalies": 2}
    state = replay(app_functions, detection_history().completed(BATCH_DETECT_ACTIVITY, outcome))
    assert state["isDone"] is True
    assert state["output"] == outcome


def test_spent_retries_record_the_result_as_failed(app_functions: dict[str, Any]) -> None:
    history = detection_history()
    for _ in range(RETRY_MAX_ATTEMPTS):
        history.failed(BATCH_DETECT_ACTIVITY, "ServiceRequestError: storage timed out")
        history.retry_timer_fired()
    state = replay(app_functions, history)
    assert state["isDone"] is False
    last = actions(state)[-1]
    assert last["functionName"] == BATCH_FAILED_ACTIVITY
    failure = json.loads(last["input"])
    assert failure["result_id"] == "r-1" and "storage timed out" in failure["message"]
    outcome = {"resultId": "r-1", "status": "FAILED", "anomalies": 0}
    state = replay(app_functions, history.completed(BATCH_FAILED_ACTIVITY, outcome))
    assert state["isDone"] is True and state["output"] == outcome


def test_the_failed_activity_stores_a_coded_failed_result(api_env: dict[str, str]) -> None:
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    registry = ModelRegistry.from_settings(store, settings)
    registry.create("m-1", {"dataSource": JOB.data_source})
    registry.put_result("m-1", pending_result(JOB))
    assert registry.get_result("r-1")["summary"]["status"] == "CREATED"
    activities = batch_activities(BatchDetectionActivities(store, settings))
    outcome = activities[BATCH_FAILED_ACTIVITY]({**JOB.to_dict(), "message": "storage timed out"})
    assert outcome["status"] == "FAILED"
    result = registry.get_result("r-1")
    assert result["summary"]["status"] == "FAILED"
    assert result["summary"]["errors"] == [
        {"code": "DetectionFailed", "message": "storage timed out"}
    ]
    # The model is not READY, so the detection activity itself records a coded failure too.
    assert activities[BATCH_DETECT_ACTIVITY](JOB.to_dict())["status"] == "FAILED"
    assert registry.get_result("r-1")["summary"]["errors"][0]["code"] == "ModelNotReady"
