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
  :class:`shared.multivariate.pipeline.TrainingActivities`, imported on first use so that
  importing the function app stays light.
* ``mv_api_detection_orchestrator`` runs the v1.1 API's batch detection
  (:func:`shared.api.batch.detection_orchestration`) with its activities ``mv_api_detect`` and
  ``mv_api_detect_failed``; the API's HTTP function (:mod:`functions.api`) starts it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.bindings import RETRY_OPTIONS, STORAGE_CONNECTION, blob_name_in_container
from shared.api.batch import (
    DETECT_ACTIVITY as BATCH_DETECT_ACTIVITY,
)
from shared.api.batch import (
    DETECT_FAILED_ACTIVITY as BATCH_DETECT_FAILED_ACTIVITY,
)
from shared.api.batch import (
    DETECTION_ORCHESTRATOR,
    detection_orchestration,
)
from shared.errors import InputError
from shared.multivariate.workflow import (
    DETECT_ACTIVITY,
    EXPORT_ACTIVITY,
    FAIL_ACTIVITY,
    ORCHESTRATOR,
    PREPARE_ACTIVITY,
    STATUS_ACTIVITY,
    SUMMARY_ACTIVITY,
    TRAIN_ACTIVITY,
    TrainingRequest,
    is_dataset_name,
    should_start,
    stream_hash,
    training_orchestration,
)
from shared.settings import Settings, get_settings, trigger_source_from_env

logger = logging.getLogger(__name__)

bp = df.Blueprint()

UPLOAD_TRIGGER = "mv_training_upload"
HTTP_STARTER = "mv_train_http"
STATUS_QUERY = "mv_training_status"


def _model_deleted(settings: Settings, request: TrainingRequest) -> bool:
    from shared.multivariate.registry import ModelRegistry
    from shared.storage.client import BlobStore

    registry = ModelRegistry(
        BlobStore.from_settings(settings), settings.models_container, settings.results_container
    )
    return not registry.exists(request.model_id)


def training_request(
    settings: Settings, container: str, name: str, sha256: str, spec: dict[str, Any] | None = None
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
    existing = await client.get_status(request.instance_id)
    runtime = existing.runtime_status if existing else None
    current = None if runtime is None else str(runtime.value)
    if not should_start(
        current, model_deleted=current is not None and _model_deleted(settings, request)
    ):
        logger.info(
            "Training %s for %s/%s exists (%s); not starting it again",
            request.instance_id,
            request.container,
            request.name,
            current,
        )
        return False
    await client.start_new(ORCHESTRATOR, request.instance_id, request.to_dict())
    logger.info(
        "Started training %s (model %s) for %s/%s",
        request.instance_id,
        request.model_id,
        request.container,
        request.name,
    )
    return True


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

    from shared.multivariate.pipeline import parse_data_source, parse_training_spec
    from shared.multivariate.workflow import content_hash
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
        ref = parse_data_source(body.get("dataSource"), store, settings.training_container)
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
        "createdTime": _iso(status.created_time),
        "lastUpdatedTime": _iso(status.last_updated_time),
    }
    return func.HttpResponse(json.dumps(document), status_code=200, mimetype="application/json")


def _error(status_code: int, code: str, message: str) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"code": code, "message": message}),
        status_code=status_code,
        headers={"x-ms-error-code": code},
        mimetype="application/json",
    )


def _iso(moment: Any) -> str | None:
    return None if moment is None else str(moment.isoformat())


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------


@bp.function_name(ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def mv_training_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """prepare → train → monitor → detect → export → summary (see
    :mod:`shared.multivariate.workflow`)."""
    return (yield from training_orchestration(context, RETRY_OPTIONS))


# --------------------------------------------------------------------------------------------
# Activities
# --------------------------------------------------------------------------------------------


def run_step(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one activity of the training on the app's storage."""
    from shared.multivariate.pipeline import run_activity
    from shared.storage.client import BlobStore

    settings = get_settings()
    return run_activity(name, payload, BlobStore.from_settings(settings), settings)


@bp.function_name(PREPARE_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_prepare(payload: dict[str, Any]) -> dict[str, Any]:
    """Create the model, read the spec, validate the dataset."""
    return run_step(PREPARE_ACTIVITY, payload)


@bp.function_name(TRAIN_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_train(payload: dict[str, Any]) -> dict[str, Any]:
    """Train the model (idempotent, under a lease)."""
    return run_step(TRAIN_ACTIVITY, payload)


@bp.function_name(STATUS_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_model_status(payload: dict[str, Any]) -> dict[str, Any]:
    """Report the model's status for the monitor."""
    return run_step(STATUS_ACTIVITY, payload)


@bp.function_name(FAIL_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_mark_failed(payload: dict[str, Any]) -> dict[str, Any]:
    """Mark the model FAILED with a coded error."""
    return run_step(FAIL_ACTIVITY, payload)


@bp.function_name(DETECT_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_detect(payload: dict[str, Any]) -> dict[str, Any]:
    """Detect on the detection window; store the v1.1 result as JSON and CSV."""
    return run_step(DETECT_ACTIVITY, payload)


@bp.function_name(EXPORT_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_export(payload: dict[str, Any]) -> dict[str, Any]:
    """Write the portable model zip."""
    return run_step(EXPORT_ACTIVITY, payload)


@bp.function_name(SUMMARY_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """Write the run's summary."""
    return run_step(SUMMARY_ACTIVITY, payload)


# --------------------------------------------------------------------------------------------
# Batch detection (the v1.1 API's detect-batch), its orchestrator and activities
# --------------------------------------------------------------------------------------------


@bp.function_name(DETECTION_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def mv_api_detection_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Detect on a READY model, or record the failure (see :mod:`shared.api.batch`)."""
    return (yield from detection_orchestration(context, RETRY_OPTIONS))


def _batch_activities() -> Any:
    from shared.api.multivariate import BatchDetectionActivities
    from shared.settings import get_settings
    from shared.storage.client import BlobStore

    settings = get_settings()
    return BatchDetectionActivities(BlobStore.from_settings(settings), settings)


@bp.function_name(BATCH_DETECT_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_api_detect(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one batch detection and store its v1.1 result."""
    outcome: dict[str, Any] = _batch_activities().detect(payload)
    return outcome


@bp.function_name(BATCH_DETECT_FAILED_ACTIVITY)
@bp.activity_trigger(input_name="payload")
def mv_api_detect_failed(payload: dict[str, Any]) -> dict[str, Any]:
    """Record a batch detection as FAILED once its retries are spent."""
    outcome: dict[str, Any] = _batch_activities().fail(payload)
    return outcome
