"""The multivariate service: what the API, the CLI's ``serve`` and the activities call.

One place for each job that used to be done in several:

* **One dataset reader** (:class:`~shared.multivariate.materialize.DatasetReader`) and one
  way a ``dataSource`` becomes a dataset blob (:mod:`shared.multivariate.materialize`).
* **"Detect with a stored model and store the result"**
  (:meth:`MultivariateService.detect_and_store`): the training's detect step and the API's
  batch detection both end here.
* **"Start the orchestration unless it exists"**
  (:func:`~shared.multivariate.workflow.start_unless_exists`, kept light in the workflow module
  for the function app's triggers), over any ``OrchestrationStarter``: the Durable client in
  the function app, the in-process runner of :mod:`shared.multivariate.local_runner` under
  ``meterwatch serve``.
* **Register a training** (:meth:`MultivariateService.prepare`): create the model, read its
  spec (inline, sidecar or metadata), validate the dataset; the prepare activity and the API's
  ``POST multivariate/models`` (which answers 201 with the model already there) both call it.

The service raises the coded errors of :mod:`shared.errors`; storage errors propagate (the
Durable runtime retries activities).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError

from shared.engine.multivariate import MultivariateModel
from shared.errors import (
    ConfigurationError,
    DatasetError,
    InputError,
    ModelError,
    ModelNotReadyError,
    ResultNotFoundError,
)
from shared.jsontypes import JSONValue
from shared.multivariate.datasets import AlignPolicy, align
from shared.multivariate.datasource import (
    DataSourcePolicy,
    blob_url,
    without_sas,
)
from shared.multivariate.detection import (
    detect_batch,
    detecting_points,
    failed_result,
    parse_variables,
    pending_result,
    required_time,
    result_csv,
    result_id_for,
    setup_info,
    top_contributors,
    variable_states,
)
from shared.multivariate.documents import DetectionResult, LastDetection, ModelDocument
from shared.multivariate.export import export_model
from shared.multivariate.ids import (
    call_training_instance_id,
    model_id_for,
)
from shared.multivariate.materialize import DatasetMaterializer, DatasetReader, Materialized
from shared.multivariate.payloads import DetectionJob, ModelOutcome, TrainingRequest
from shared.multivariate.registry import ModelRecord, ModelRegistry
from shared.multivariate.spec import (
    DEFAULT_TOP_CONTRIBUTORS,
    TrainingSpec,
    data_schema_of,
    merge_specs,
    parse_training_spec,
    sidecar_names,
    spec_from_metadata,
)
from shared.multivariate.statuses import CREATED, FAILED, READY
from shared.multivariate.training import model_info, plan_training
from shared.multivariate.workflow import (
    DETECTION_ORCHESTRATOR,
    ORCHESTRATOR,
    OrchestrationStarter,
    current_starter,
    start_unless_exists,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import iso, utc_now

logger = logging.getLogger(__name__)

#: Request fields of a v1.1 training request that are not training-spec fields.
_NOT_SPEC = frozenset({"dataSource", "status", "errors", "diagnosticsInfo"})


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------


class MultivariateService:
    """The multivariate operations over one storage account.

    Args:
        settings: App settings (containers, upload limit, local-path switch, polling).
        store: The blob store.
        starter: Who starts orchestrations; ``None`` means the request's starter
            (:data:`current_starter`, set by the HTTP function).
        clock: Returns the current time (the registry's times).
    """

    def __init__(
        self,
        settings: Settings,
        store: BlobStore,
        starter: OrchestrationStarter | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = ModelRegistry.from_settings(store, settings, clock)
        self.reader = DatasetReader(store, settings)
        self.policy = DataSourcePolicy(
            str(store.service.url),
            allow_local_paths=settings.api_allow_local_paths,
            training_container=settings.training_container,
        )
        self.materializer = DatasetMaterializer(settings, store, self.reader, self.policy)
        self._starter = starter

    def close(self) -> None:
        """Wait for in-process orchestrations to finish (a starter with ``close``)."""
        close: Callable[[], None] | None = getattr(self._starter, "close", None)
        if close is not None:
            close()

    def starter(self) -> OrchestrationStarter:
        """The orchestration starter for this request.

        Raises:
            ConfigurationError: Neither an in-process runner nor a Durable client is available.
        """
        starter = self._starter or current_starter.get()
        if starter is None:
            raise ConfigurationError(
                "No orchestration runner is available to train models: call the API through "
                "the function app's HTTP function or `meterwatch serve`.",
                "NoOrchestrationRunner",
            )
        return starter

    # ------------------------------------------------------------------ data sources

    def materialize(self, value: object) -> Materialized:
        """Resolve a ``dataSource`` to a dataset blob of this account and read it.

        See :meth:`shared.multivariate.materialize.DatasetMaterializer.materialize`.

        Raises:
            InputError: ``InvalidDataSource``, ``DataSourceNotFound``, ``UnsupportedFormat``
                or ``TooLarge``.
        """
        return self.materializer.materialize(value)

    # ------------------------------------------------------------------ training

    def prepare(self, request: TrainingRequest) -> ModelOutcome:
        """Create the model, read the spec and validate the dataset; record a bad one as FAILED.

        Idempotent: a model prepared before is returned as it is.

        Returns:
            CREATED when training may start; FAILED with the coded errors otherwise; the current
            status when the model was prepared before.
        """
        ref = BlobRef(request.container, request.name)
        record = self.registry.create(
            request.model_id,
            {
                "dataSource": blob_url(self.store, ref),
                "dataSchema": data_schema_of(request.name),
                "displayName": "",
            },
            internal={
                "dataSource": {"container": ref.container, "name": ref.name},
                "sha256": request.sha256,
                "instanceId": request.instance_id,
            },
        )
        if record.status != CREATED or "windows" in record.internal:
            return outcome_of(record)
        try:
            spec = self._spec_for(request, ref)
            series = self.reader.read(ref, request.sha256, spec.date_format)
            training, windows = plan_training(series, spec)
        except InputError as exc:
            return self.fail(request.model_id, exc)
        info = model_info(blob_url(self.store, ref), request.name, spec, windows)

        def prepared(current: ModelRecord) -> bool:
            if current.status != CREATED:
                return False
            current.info.update(info)
            current.internal["spec"] = spec.to_dict()
            current.internal["windows"] = windows.to_dict()
            current.internal["variables"] = list(training.variables)
            return True

        _, record = self.registry.update(request.model_id, prepared)
        logger.info(
            "Prepared model %s: %s variables, training %s to %s",
            request.model_id,
            len(training.variables),
            info.get("startTime"),
            info.get("endTime"),
        )
        return outcome_of(record)

    def _spec_for(self, request: TrainingRequest, ref: BlobRef) -> TrainingSpec:
        if request.spec is not None:
            return parse_training_spec(request.spec)
        sidecar: JSONValue = None
        for name in sidecar_names(ref.name):
            if name == ref.name:
                continue
            sidecar_ref = BlobRef(ref.container, name)
            if not self.store.exists(sidecar_ref):
                continue
            try:
                sidecar = json.loads(self.store.get_bytes(sidecar_ref).decode("utf-8-sig"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise DatasetError(
                    f"The sidecar {sidecar_ref} is not valid JSON ({exc}); it must hold the "
                    "training spec as one JSON object.",
                    "InvalidSpec",
                ) from exc
            break
        try:
            metadata = spec_from_metadata(self.store.get_metadata(ref))
        except ResourceNotFoundError as exc:
            raise DatasetError(
                f"The dataset {ref} does not exist (deleted after upload?); upload it again.",
                "DataSourceNotFound",
            ) from exc
        return parse_training_spec(merge_specs(metadata or None, sidecar))

    def fail(self, model_id: str, error: InputError) -> ModelOutcome:
        """Record the model FAILED with the coded error (no retry helps)."""
        logger.warning("Model %s FAILED: %s (%s)", model_id, error.message, error.code)
        _, record = self.registry.transition(
            model_id, FAILED, errors=[error.to_dict()], internal={"lease": None}
        )
        return outcome_of(record)

    async def train(
        self, body: Mapping[str, object], request_id: str | None = None
    ) -> ModelDocument:
        """Register and start a training (v1.1 ``POST multivariate/models``); the model object.

        Every call creates a new model, as the service did; a retried call with the same
        ``request_id`` (``x-ms-client-request-id``) gets the model of its first try
        (:func:`~shared.multivariate.ids.call_training_instance_id`). The storage work runs in
        a worker thread, so the event loop keeps serving.

        Raises:
            InputError: A bad request (spec field, data source).
        """
        call = request_id or uuid.uuid4().hex
        request, fresh = await asyncio.to_thread(self._register, body, call)
        await start_unless_exists(
            self.starter(),
            ORCHESTRATOR,
            request.instance_id,
            request.to_dict(),
            known_new=fresh,
        )
        return await asyncio.to_thread(self.registry.get, request.model_id)

    def _register(self, body: Mapping[str, object], call: str) -> tuple[TrainingRequest, bool]:
        fields = {key: value for key, value in body.items() if key not in _NOT_SPEC}
        # A bad field is a 400 now, not a FAILED model later; the canonical spec (defaults
        # filled in) makes the same request give the same ids as the function app's starter.
        spec = parse_training_spec(fields).to_dict()
        dataset = self.materialize(body.get("dataSource"))
        instance_id = call_training_instance_id(
            dataset.ref.container, dataset.ref.name, dataset.sha256, spec, call
        )
        request = TrainingRequest(
            container=dataset.ref.container,
            name=dataset.ref.name,
            sha256=dataset.sha256,
            instance_id=instance_id,
            model_id=model_id_for(instance_id),
            spec=spec,
            poll_interval_seconds=self.settings.mv_poll_interval_seconds,
            deadline_minutes=self.settings.mv_training_deadline_minutes,
        )
        fresh = not self.registry.exists(request.model_id)
        # The orchestration's own first step registers the model (idempotent): run it now so
        # that the model exists when the 201 is answered.
        self.prepare(request)
        return request, fresh

    def get_model(self, model_id: str) -> ModelDocument:
        """The v1.1 model object."""
        return self.registry.get(model_id)

    def delete_model(self, model_id: str) -> None:
        """Delete a model and everything stored with it."""
        self.registry.delete(model_id)

    def get_result(self, result_id: str) -> DetectionResult:
        """A stored v1.1 batch result."""
        return self.registry.get_result(result_id)

    def export(self, model_id: str) -> bytes:
        """The portable model zip of a READY model (built now if the export step is pending)."""
        record = self.registry.ready_record(model_id, "export it once training has finished.")
        try:
            return self.registry.get_export(model_id)
        except ModelNotReadyError:
            return export_model(self.registry.get_artifact(model_id), record.model)

    # ------------------------------------------------------------------ detection

    def detect_and_store(
        self,
        model_id: str,
        ref: BlobRef,
        start: object,
        end: object,
        top_contributor_count: int,
        *,
        sha256: str = "",
        data_source: str | None = None,
        result_id: str | None = None,
    ) -> DetectionResult:
        """Batch-detect with a READY stored model on a dataset blob and store the v1.1 result.

        A dataset the model cannot judge (other variables, no data in the window, a blob that
        changed since ``sha256`` was taken, or was deleted) gives a stored result with
        ``summary.status`` FAILED and the coded error, not an exception.

        Args:
            model_id: The model.
            ref: The dataset blob (``.zip`` MultiTable or ``.csv`` OneTable).
            start: First timestamp to judge.
            end: Last timestamp to judge.
            top_contributor_count: Contributors per anomaly.
            sha256: Expected content hash of the blob (empty: not checked).
            data_source: Echoed in ``setupInfo`` (default: the blob's URL).
            result_id: The ``resultId`` (default: derived from model, window and data).

        Returns:
            The stored v1.1 batch result.

        Raises:
            ModelNotFoundError: No such model.
            ModelNotReadyError: The model is not READY.
        """
        engine_bytes = self.registry.get_artifact(model_id)
        record = self.registry.get_record(model_id)
        result_id = result_id or result_id_for(model_id, start, end, top_contributor_count, sha256)
        source = blob_url(self.store, ref) if data_source is None else data_source
        try:
            detection = detect_batch(
                MultivariateModel.from_bytes(engine_bytes),
                self.reader.read(ref, sha256, _date_format(record)),
                AlignPolicy.from_v11(record.info.get("alignPolicy")),
                start=start,
                end=end,
                top_contributor_count=top_contributor_count,
                data_source=source,
                result_id=result_id,
            )
            result = detection.to_v11()
        except (InputError, ModelError) as exc:
            logger.warning("Detection %s for model %s failed: %s (%s)", result_id, model_id,
                           exc.message, exc.code)  # fmt: skip
            setup = setup_info(source, top_contributor_count, start, end)
            result = failed_result(result_id, setup, [exc.to_dict()])
        self.registry.put_result(model_id, result, result_csv(result))
        logger.info("Detection %s for model %s is %s", result_id, model_id,
                    result["summary"]["status"])  # fmt: skip
        return result

    async def detect_batch(self, model_id: str, body: Mapping[str, object]) -> DetectionResult:
        """Accept a batch detection (v1.1 ``detect-batch`` body): store a CREATED result and
        start its orchestration.

        A request identical to an earlier one (same model, window, top contributors and data)
        gets the earlier result back and starts nothing.

        Returns:
            The v1.1 batch result as it stands (CREATED, or the earlier READY/FAILED one).

        Raises:
            ModelNotFoundError: No such model.
            ModelNotReadyError: The model is not READY.
            InputError: A bad request (times, top contributors, data source).
        """
        job, existing = await asyncio.to_thread(self._register_detection, model_id, body)
        if existing is not None and existing["summary"]["status"] in (READY, FAILED):
            return existing
        await start_unless_exists(
            self.starter(),
            DETECTION_ORCHESTRATOR,
            job.instance_id,
            job.to_dict(),
            known_new=existing is None,
        )
        return existing or pending_result(job)

    def _register_detection(
        self, model_id: str, body: Mapping[str, object]
    ) -> tuple[DetectionJob, DetectionResult | None]:
        self.registry.ready_record(model_id, "poll it until READY before detecting.")
        top = top_contributors(body.get("topContributorCount", DEFAULT_TOP_CONTRIBUTORS))
        start = required_time(body.get("startTime"), "startTime", "InvalidStartTime")
        end = required_time(body.get("endTime"), "endTime", "InvalidEndTime")
        if end < start:
            raise DatasetError(
                f"endTime {body.get('endTime')} is before startTime {body.get('startTime')}.",
                "InvalidEndTime",
            )
        dataset = self.materialize(body.get("dataSource"))
        job = DetectionJob(
            model_id=model_id,
            result_id=result_id_for(model_id, start, end, top, dataset.sha256),
            container=dataset.ref.container,
            name=dataset.ref.name,
            sha256=dataset.sha256,
            # Results echo the dataSource in setupInfo: never with its SAS token.
            data_source=without_sas(str(body.get("dataSource"))),
            start_time=iso(start),
            end_time=iso(end),
            top_contributor_count=top,
        )
        try:
            return job, self.registry.get_result(job.result_id)
        except ResultNotFoundError:
            self.registry.put_result(model_id, pending_result(job))
            return job, None

    def detect_last(self, model_id: str, body: Mapping[str, object]) -> LastDetection:
        """Judge the last timestamps of the request's variables (v1.1 ``detect-last`` body).

        Raises:
            ModelNotFoundError: No such model.
            ModelNotReadyError: The model is not READY.
            InputError: Malformed variables, or variables that differ from training.
        """
        record = self.registry.ready_record(model_id, "poll it until READY before detecting.")
        top = top_contributors(body.get("topContributorCount", DEFAULT_TOP_CONTRIBUTORS))
        series = parse_variables(body.get("variables"))
        policy = AlignPolicy.from_v11(record.info.get("alignPolicy"))
        aligned = align(series, policy)
        points = detecting_points(body.get("detectingPoints", 1), len(aligned))
        model = MultivariateModel.from_bytes(self.registry.get_artifact(model_id))
        detection = detect_batch(
            model,
            series,
            policy,
            start=aligned.timestamps[-points],
            end=aligned.timestamps[-1],
            top_contributor_count=top,
        )
        return {
            "variableStates": variable_states(aligned),
            "results": detection.to_v11()["results"],
        }


def _date_format(record: ModelRecord) -> str:
    """The ``dateFormat`` the model was trained with (detection reads its data the same way)."""
    spec = record.internal.get("spec")
    value = spec.get("dateFormat") if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) else "auto"


def outcome_of(record: ModelRecord) -> ModelOutcome:
    """The model's status and errors, as the training steps return them."""
    errors = tuple(
        {str(key): str(value) for key, value in error.items()}
        for error in record.info.get("errors", [])
    )
    return ModelOutcome(record.model_id, record.status, errors)
