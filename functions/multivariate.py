"""Multivariate training: upload or HTTP → Durable orchestration → model, results, export.

The doors of the multivariate family, all in one Durable blueprint:

* ``mv_training_upload``: blob trigger on the training container (``.zip`` MultiTable,
  ``.csv`` OneTable; ``.json`` sidecars are skipped). It hashes the upload and starts the
  orchestration with the deterministic instance id of (blob path, content hash), unless an
  instance with that id already exists: a duplicate trigger never starts a second training.
* ``mv_train_http`` (``POST /api/mv/train``) starts the same orchestration for a blob already
  in storage, with the training spec in the body (v1.1 field names); ``mv_training_status``
  (``GET /api/mv/status/{instanceId}``) answers the Durable status query.
* ``mv_training_orchestrator`` runs :func:`shared.multivariate.workflow.training_orchestration`
  (the one deterministic implementation of the flow), and the activities each run one step of
  :class:`shared.multivariate.activities.TrainingActivities` (called directly with typed
  payloads), imported on first use so that
  importing the function app stays light.
* ``mv_api_detection_orchestrator`` runs the v1.1 API's batch detection
  (:func:`shared.multivariate.workflow.detection_orchestration`) with its activities
  ``mv_api_detect`` and ``mv_api_detect_failed``; the API's HTTP function
  (:mod:`functions.api`) starts it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.bindings import (
    RETRY_OPTIONS,
    STORAGE_CONNECTION,
    DurableStarter,
    blob_name_in_container,
)
from shared.errors import InputError
from shared.jsontypes import JSONObject
from shared.multivariate.ids import is_dataset_name, stream_hash
from shared.multivariate.payloads import (
    DetectionFailure,
    DetectionJob,
    FailRequest,
    ModelStep,
    SummaryRequest,
    TrainingRequest,
)
from shared.multivariate.workflow import (
    BATCH_DETECT_ACTIVITY,
    BATCH_FAILED_ACTIVITY,
    DETECT_ACTIVITY,
    DETECTION_ORCHESTRATOR,
    EXPORT_ACTIVITY,
    FAIL_ACTIVITY,
    HTTP_STARTER,
    ORCHESTRATOR,
    PREPARE_ACTIVITY,
    STATUS_ACTIVITY,
    STATUS_QUERY,
    SUMMARY_ACTIVITY,
    TRAIN_ACTIVITY,
    UPLOAD_TRIGGER,
    Orchestration,
    detection_orchestration,
    start_unless_exists,
    training_orchestration,
)
from shared.settings import Settings, get_settings, trigger_source_from_env
from shared.timefmt import isoformat_or_none

if TYPE_CHECKING:
    from shared.multivariate.activities import BatchDetectionActivities, TrainingActivities

logger = logging.getLogger(__name__)

bp = df.Blueprint()


def _model_deleted(settings: Settings, request: TrainingRequest) -> bool:
    from shared.multivariate.registry import ModelRegistry
    from shared.storage.client import BlobStore

    registry = ModelRegistry(
        BlobStore.from_settings(settings), settings.models_container, settings.results_container
    )
    return not registry.exists(request.model_id)


def training_request(
    settings: Settings, container: str, name: str, sha256: str, spec: JSONObject | None = None
) -> TrainingRequest:
    """The orchestration input for a dataset blob, with the monitor settings of the app."""
    return TrainingRequest.create(
        container,
        name,
        sha256,
        spec=spec,
        poll_interval_seconds=settings.mv_poll_interval_seconds,
        deadline_minutes=settings.mv_training_deadline_minutes,
    )


async def start_training(
    client: df.DurableOrchestrationClient, request: TrainingRequest, settings: Settings
) -> bool:
    """Start the training orchestration unless its instance already exists.

    A finished instance whose model was deleted from the registry is started again.

    Returns:
        Whether a new instance was started.
    """
    return await start_unless_exists(
        DurableStarter(client),
        ORCHESTRATOR,
        request.instance_id,
        request.to_dict(),
        model_deleted=lambda: _model_deleted(settings, request),
    )


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


@bp.function_name(UPLOAD_TRIGGER)
@bp.blob_trigger(
    arg_name="blob",
    path="%TRAINING_CONTAINER%/{name}",
    connection=STORAGE_CONNECTION,
    source=func.BlobSource(trigger_source_from_env()),
)
@bp.durable_client_input(client_name="client")
async def mv_training_upload(blob: func.InputStream, client: df.DurableOrchestrationClient) -> None:
    """Start a training for an uploaded dataset (once per blob path and content)."""
    settings = get_settings()
    request = upload_request(blob, settings)
    if request is not None:
        await start_training(client, request, settings)


def upload_request(blob: func.InputStream, settings: Settings) -> TrainingRequest | None:
    """The training request of an uploaded blob, or ``None`` for a blob that is not a dataset.

    The instance id comes from the blob's path and a SHA-256 of its content, so the same upload
    delivered twice (or overwritten with the same bytes) maps to the same instance.
    """
    name = blob_name_in_container(blob.name or "", settings.training_container)
    if not is_dataset_name(name):
        logger.info("Skipping %s: not a .zip or .csv dataset (sidecars are read by training)", name)
        return None
    return training_request(settings, settings.training_container, name, stream_hash(blob))


@bp.function_name(HTTP_STARTER)
@bp.route(route="mv/train", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def mv_train_http(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/mv/train``: train on a blob already in storage (202 with status links).

    The body is a v1.1 training request: ``dataSource`` (a blob name in the training container
    or a blob URL of this storage account) and the training spec fields.
    """
    from azure.core.exceptions import ResourceNotFoundError

    from shared.multivariate.datasource import DataSourcePolicy
    from shared.multivariate.ids import content_hash
    from shared.multivariate.spec import parse_training_spec
    from shared.storage.client import BlobStore

    settings = get_settings()
    try:
        body = req.get_json()
    except ValueError:
        return _error(400, "InvalidRequest", "The body must be a JSON object (the training spec).")
    if not isinstance(body, dict):
        return _error(400, "InvalidRequest", "The body must be a JSON object (the training spec).")
    store = BlobStore.from_settings(settings)
    try:
        policy = DataSourcePolicy(
            str(store.service.url), default_container=settings.training_container
        )
        ref = policy.dataset_blob(body.get("dataSource"))
        spec = parse_training_spec(body).to_dict()
    except InputError as exc:
        return _error(400, exc.code, exc.message)
    try:
        data = store.get_bytes(ref)
    except ResourceNotFoundError:
        return _error(404, "DataSourceNotFound", f"The dataset {ref} does not exist.")
    request = training_request(settings, ref.container, ref.name, content_hash(data), spec)
    started = await start_training(client, request, settings)
    response = client.create_check_status_response(req, request.instance_id)
    links = json.loads(response.get_body())
    links.update(modelId=request.model_id, started=started)
    return func.HttpResponse(
        json.dumps(links),
        status_code=202,
        headers=dict(response.headers),
        mimetype="application/json",
    )


@bp.function_name(STATUS_QUERY)
@bp.route(route="mv/status/{instanceId}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def mv_training_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``GET /api/mv/status/{instanceId}``: the orchestration's status, custom status and output."""
    instance_id = req.route_params.get("instanceId", "")
    status = await client.get_status(instance_id)
    if not status:
        return _error(404, "InstanceNotFound", f"No training has the instance id {instance_id!r}.")
    runtime = status.runtime_status
    document = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": None if runtime is None else runtime.value,
        "customStatus": status.custom_status,
        "output": status.output,
        "createdTime": isoformat_or_none(status.created_time),
        "lastUpdatedTime": isoformat_or_none(status.last_updated_time),
    }
    return func.HttpResponse(json.dumps(document), status_code=200, mimetype="application/json")


def _error(status_code: int, code: str, message: str) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"code": code, "message": message}),
        status_code=status_code,
        headers={"x-ms-error-code": code},
        mimetype="application/json",
    )


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------


@bp.function_name(ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def mv_training_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Orchestration[JSONObject]:
    """prepare → train → monitor → detect → export → summary (see
    :mod:`shared.multivariate.workflow`)."""
    return (yield from training_orchestration(context, RETRY_OPTIONS))


# --------------------------------------------------------------------------------------------
# Activities
# --------------------------------------------------------------------------------------------


def training_activities() -> TrainingActivities:
    """The training activities over the app's storage (imported on first use: heavy)."""
    from shared.multivariate.activities import TrainingActivities
    from shared.storage.client import BlobStore

    settings = get_settings()
    return TrainingActivities(BlobStore.from_settings(settings), settings)


@bp.function_name(PREPARE_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_prepare(payload: JSONObject) -> JSONObject:
    """Create the model, read the spec, validate the dataset."""
    return training_activities().prepare(TrainingRequest.from_dict(payload)).to_dict()


@bp.function_name(TRAIN_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_train(payload: JSONObject) -> JSONObject:
    """Train the model (idempotent, under a lease)."""
    return training_activities().train(ModelStep.from_dict(payload)).to_dict()


@bp.function_name(STATUS_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_model_status(payload: JSONObject) -> JSONObject:
    """Report the model's status for the monitor."""
    return training_activities().status(ModelStep.from_dict(payload)).to_dict()


@bp.function_name(FAIL_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_mark_failed(payload: JSONObject) -> JSONObject:
    """Mark the model FAILED with a coded error."""
    return training_activities().mark_failed(FailRequest.from_dict(payload)).to_dict()


@bp.function_name(DETECT_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_detect(payload: JSONObject) -> JSONObject:
    """Detect on the detection window; store the v1.1 result as JSON and CSV."""
    return training_activities().detect(ModelStep.from_dict(payload)).to_dict()


@bp.function_name(EXPORT_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_export(payload: JSONObject) -> JSONObject:
    """Write the portable model zip."""
    return training_activities().export(ModelStep.from_dict(payload)).to_dict()


@bp.function_name(SUMMARY_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_summary(payload: JSONObject) -> JSONObject:
    """Write the run's summary."""
    return training_activities().summarize(SummaryRequest.from_dict(payload)).to_dict()


# --------------------------------------------------------------------------------------------
# Batch detection (the v1.1 API's detect-batch), its orchestrator and activities
# --------------------------------------------------------------------------------------------


@bp.function_name(DETECTION_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def mv_api_detection_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Orchestration[JSONObject]:
    """Detect on a READY model, or record the failure (see :mod:`shared.multivariate.workflow`)."""
    return (yield from detection_orchestration(context, RETRY_OPTIONS))


def batch_activities() -> BatchDetectionActivities:
    """The batch-detection activities over the app's storage (imported on first use)."""
    from shared.multivariate.activities import BatchDetectionActivities
    from shared.storage.client import BlobStore

    settings = get_settings()
    return BatchDetectionActivities(BlobStore.from_settings(settings), settings)


@bp.function_name(BATCH_DETECT_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_api_detect(payload: JSONObject) -> JSONObject:
    """Run one batch detection and store its v1.1 result."""
    return batch_activities().detect(DetectionJob.from_dict(payload)).to_dict()


@bp.function_name(BATCH_FAILED_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_api_detect_failed(payload: JSONObject) -> JSONObject:
    """Record a batch detection as FAILED once its retries are spent."""
    return batch_activities().fail(DetectionFailure.from_dict(payload)).to_dict()
