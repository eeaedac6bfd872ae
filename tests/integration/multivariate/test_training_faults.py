"""Storage outages at chosen points of multivariate training: trained once, nothing lost.

Azurite (its own, persisted on disk) is stopped by PID right before a chosen request of the
prepare → train → poll → detect → export → summary workflow, driven by the real orchestration
generator in the in-process runner (:mod:`shared.multivariate.local_runner`) with the real
activities. The activity attempt fails with a storage error, as it would in the host; Azurite is
back before the runtime's retry (an outage shorter than the retry interval). The run must
converge to a run without outage: the model READY exactly once, the engine's artifact written
once, the result, its CSV, the export and the summary never holding any other bytes than the
clean run's, and never half a step (a READY model without its artifact, a READY result
without its CSV) visible between the failed attempt and its retry.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from functions.multivariate import upload_request
from shared.multivariate.activities import TrainingActivities
from shared.multivariate.local_runner import LocalTaskHub, training_activities
from shared.multivariate.payloads import TrainingRequest
from shared.multivariate.workflow import (
    ORCHESTRATOR,
    PREPARE_ACTIVITY,
    STATUS_ACTIVITY,
    TRAIN_ACTIVITY,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from tests.integration.multivariate.test_pipeline import Clock, multitable, orchestrate
from tests.integration.telemetry.test_ingest_storage import RestartableAzurite
from tests.jsonview import json_blob

#: The method of a point that stops Azurite as the n-th status poll starts.
POLL = "POLL"
#: How long the dead worker's lease still runs when the poll scenario starts.
DEAD_LEASE = timedelta(seconds=25)
ENV = {
    "TRAINING_CONTAINER": "training-faults",
    "MODELS_CONTAINER": "models-faults",
    "RESULTS_CONTAINER": "results-faults",
}
#: (label, HTTP method, blob path pattern, occurrence) of the request before which storage
#: goes away. ``model.json`` is written at create, prepare, the training lease, READY and when
#: the result is noted on the model.
POINTS = [
    ("prepare: model create", "PUT", r"/model\.json", 1),
    ("prepare: dataset read", "GET", r"/training-faults/meters\.zip", 1),
    ("train: lease taken", "PUT", r"/model\.json", 3),
    ("train: dataset read under the lease", "GET", r"/training-faults/meters\.zip", 2),
    ("train: artifact write", "PUT", r"/model\.mvm", 1),
    ("train: READY after the artifact", "PUT", r"/model\.json", 4),
    ("detect: result CSV write", "PUT", r"/multivariate/.*\.csv", 1),
    ("detect: result JSON write", "PUT", r"/multivariate/.*\.json", 1),
    ("detect: result noted on the model", "PUT", r"/model\.json", 5),
    ("export: export write", "PUT", r"/export\.zip", 1),
    ("summary: summary write", "PUT", r"/summary\.json", 1),
    # A dead worker's lease on the model: the run polls until it expires, then takes over.
    ("poll: status read while a dead worker's lease runs out", POLL, "", 2),
]
#: Blobs whose bytes must be those of the clean run (``model.json`` and the export carry the
#: fit's wall time, normalised away below).
WRITE_ONCE = (r"/model\.mvm$", r"/export\.zip$", r"/summary\.json$", r"/multivariate/")
#: The dataset, built once: a zip's bytes carry the time it was written, and the same bytes
#: are the same training (instance and model ids come from the content hash).
DATASET = multitable()


class Outage:
    """Raw-request and -response hooks: stop Azurite before a chosen request; count writes."""

    def __init__(self, server: RestartableAzurite) -> None:
        self.server = server
        self.armed: tuple[str, re.Pattern[str], int] | None = None
        self.fired = 0
        self.writes: Counter[str] = Counter()

    def request(self, request: Any) -> None:
        if self.armed is None:
            return
        method, pattern, occurrence = self.armed
        http = request.http_request
        if http.method == method and pattern.search(http.url.split("?")[0]):
            if occurrence > 1:
                self.armed = (method, pattern, occurrence - 1)
                return
            self.armed = None
            self.fired += 1
            self.server.stop()

    def response(self, response: Any) -> None:
        http = response.http_request
        name = http.url.split("?")[0].split("/", 4)[-1]
        if (
            http.method == "PUT"
            and response.http_response.status_code == 201
            and name.startswith((ENV["MODELS_CONTAINER"] + "/", ENV["RESULTS_CONTAINER"] + "/"))
        ):
            self.writes[name] += 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableAzurite]:
    with RestartableAzurite.running(tmp_path_factory.mktemp("azurite-training")) as own:
        yield own


class Workflow:
    """Storage with the outage hooks, the real activities and a local task hub."""

    def __init__(self, server: RestartableAzurite) -> None:
        self.settings = Settings.from_env({"AzureWebJobsStorage": server.connection, **ENV})
        self.outage = Outage(server)
        service = BlobServiceClient.from_connection_string(
            server.connection,
            retry_total=0,  # fail fast: the runtime's retry is what is under test
            connection_timeout=2,
            read_timeout=5,
            raw_request_hook=self.outage.request,
            raw_response_hook=self.outage.response,
        )
        self.store = BlobStore(service)
        self.clock = Clock()
        self.activities = TrainingActivities(self.store, self.settings, self.clock)
        self.server = server
        self.visible: list[str] = []
        self.polls = 0
        self.stop_at_poll: int | None = None
        steps = {
            name: self._recovering(name, step)
            for name, step in training_activities(self.activities).items()
        }
        self.hub = LocalTaskHub({ORCHESTRATOR: orchestrate}, steps)

    def _recovering(self, name: str, step: Any) -> Any:
        """The activity; when storage went away under it, Azurite is back before the retry."""

        def attempt(payload: Any) -> Any:
            if name == STATUS_ACTIVITY:
                self.polls += 1
                if self.polls == self.stop_at_poll:
                    self.outage.fired += 1
                    self.server.stop()
            try:
                outcome = step(payload)
                if name == STATUS_ACTIVITY:  # the monitor's timer: time passes to the next poll
                    self.clock.now += timedelta(seconds=self.settings.mv_poll_interval_seconds)
                return outcome
            except AzureError:
                if self.server.process is None:
                    self.server.restart()
                    self.visible.extend(half_written(self.store, self.settings))
                raise

        return attempt

    def clear(self) -> None:
        for container in (self.settings.models_container, self.settings.results_container):
            for name in list(self.store.list_names(container)):
                self.store.delete(BlobRef(container, name))
        self.outage.writes.clear()

    def upload(self, dead_lease: bool = False) -> TrainingRequest:
        """Upload the dataset and its sidecar spec; the request the blob trigger builds.

        With ``dead_lease`` the model is prepared and left RUNNING under the lease of a worker
        that died, :data:`DEAD_LEASE` before it expires.
        """
        container = self.settings.training_container
        data = DATASET
        self.store.put_json(BlobRef(container, "meters.json"), {"slidingWindow": 60})
        self.store.put_bytes(BlobRef(container, "meters.zip"), data)
        stream = func.blob.InputStream(data=data, name=f"{container}/meters.zip")
        request = upload_request(stream, self.settings)
        assert request is not None
        if dead_lease:
            assert self.hub.activities[PREPARE_ACTIVITY](request.to_dict())["status"] == "CREATED"
            expires = (self.clock.now + DEAD_LEASE).isoformat()
            self.activities.registry.transition(
                request.model_id, "RUNNING", internal={"lease": {"id": "dead", "expires": expires}}
            )
        return request

    def run(self, request: TrainingRequest) -> Any:
        return self.hub.start_new(ORCHESTRATOR, request.instance_id, request.to_dict())


def half_written(store: BlobStore, settings: Settings) -> list[str]:
    """What a reader would see of a step done by half: a READY document without its blob."""
    found = []
    for name in store.list_names(settings.models_container):
        if name.endswith("/model.json"):
            document = json_blob(store, BlobRef(settings.models_container, name))
            artifact = BlobRef(settings.models_container, name.replace("model.json", "model.mvm"))
            if document["model"]["modelInfo"]["status"] == "READY" and not store.exists(artifact):
                found.append(f"{name} READY without its artifact")
    for name in store.list_names(settings.results_container, "multivariate/"):
        if name.endswith(".json"):
            result = json_blob(store, BlobRef(settings.results_container, name))
            csv = BlobRef(settings.results_container, name[: -len(".json")] + ".csv")
            if result["summary"]["status"] == "READY" and not store.exists(csv):
                found.append(f"{name} READY without its CSV")
    return found


def normalised(name: str, data: bytes) -> Any:
    """The stored bytes, less the fit's wall time (the only thing two fits may differ in)."""

    def without_latency(model: dict[str, Any]) -> dict[str, Any]:
        model = json.loads(json.dumps(model))
        model["modelInfo"]["diagnosticsInfo"]["modelState"].pop("latenciesInSeconds", None)
        return model

    if name.endswith("/model.json"):
        document = json.loads(data)
        return {**document, "model": without_latency(document["model"])}
    if name.endswith("/export.zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = json.loads(archive.read("model.json"))
            return {**info, "model": without_latency(info["model"])}, archive.read("model.mvm")
    return data


def stored(workflow: Workflow) -> dict[str, Any]:
    settings, store = workflow.settings, workflow.store
    return {
        f"{container}/{name}": normalised(name, store.get_bytes(BlobRef(container, name)))
        for container in (settings.models_container, settings.results_container)
        for name in store.list_names(container)
    }


Reference = tuple[dict[str, Any], Counter[str], Any]


@pytest.fixture(scope="module")
def reference(server: RestartableAzurite) -> Callable[[bool], Reference]:
    """The clean run (with or without a dead worker's lease): what is stored, how many times
    each blob was written, the summary."""
    runs: dict[bool, Reference] = {}

    def clean(dead_lease: bool) -> Reference:
        if dead_lease not in runs:
            workflow = Workflow(server)
            workflow.clear()
            run = workflow.run(workflow.upload(dead_lease))
            assert run.runtime_status == "Completed", run.error
            assert run.output["status"] == "READY", run.output
            assert run.executions(TRAIN_ACTIVITY) == (2 if dead_lease else 1)
            assert workflow.polls == (4 if dead_lease else 0)  # 0 s, 10 s, 20 s, 30 s: expired
            writes = Counter(workflow.outage.writes)
            for pattern in WRITE_ONCE:
                matching = [name for name in writes if re.search(pattern, name)]
                assert matching and all(writes[name] == 1 for name in matching), (pattern, writes)
            runs[dead_lease] = stored(workflow), writes, run.output
        return runs[dead_lease]

    return clean


@pytest.mark.parametrize(
    ("label", "method", "pattern", "occurrence"), POINTS, ids=[p[0] for p in POINTS]
)
def test_outage_during_training_converges_trained_once_with_nothing_lost(
    server: RestartableAzurite,
    reference: Callable[[bool], Reference],
    caplog: pytest.LogCaptureFixture,
    label: str,
    method: str,
    pattern: str,
    occurrence: int,
) -> None:
    dead_lease = method == POLL
    clean, clean_writes, clean_summary = reference(dead_lease)
    workflow = Workflow(server)
    workflow.clear()
    request = workflow.upload(dead_lease)
    restarts = server.restarts
    if dead_lease:
        workflow.stop_at_poll = occurrence
    else:
        workflow.outage.armed = (method, re.compile(pattern), occurrence)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="shared.multivariate.registry"):
        run = workflow.run(request)
    assert time.monotonic() - started < 30
    assert workflow.outage.fired == 1, f"no request matched the {label}"
    assert server.restarts == restarts + 1
    # The failed attempt was retried and the run converged: READY, the clean run's summary.
    assert run.runtime_status == "Completed", run.error
    assert len(run.activity_attempts) > len(run.results), "no activity attempt failed"
    assert run.output == clean_summary
    # READY exactly once.
    ready = [r for r in caplog.records if r.getMessage().endswith(" is now READY")]
    assert len(ready) == 1, [r.getMessage() for r in ready]
    # 0 lost, 0 doubled: every blob as in the clean run, nothing more, nothing less.
    assert stored(workflow) == clean
    # The artifact is written once; the result, CSV, export and summary only ever held the
    # clean run's bytes (a rewrite after the outage writes the same bytes again).
    writes = workflow.outage.writes
    assert sorted(writes) == sorted(clean_writes)
    artifact = [name for name in writes if name.endswith("/model.mvm")]
    assert [writes[name] for name in artifact] == [1]
    # No step seen done by half between the failed attempt and its retry.
    assert workflow.visible == []
