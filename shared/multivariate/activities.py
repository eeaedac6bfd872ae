"""The activities of both multivariate orchestrations: what each step does with storage.

Training (:func:`shared.multivariate.workflow.training_orchestration`): prepare/validate, train
(under a lease, idempotent), report status, mark failed, detect, export, summarise. Batch
detection (:func:`shared.multivariate.workflow.detection_orchestration`): detect, or record the
failure. Each method takes and returns a typed payload of :mod:`shared.multivariate.payloads`;
the functions in ``functions/multivariate.py`` call them directly (decode the payload, call the
method, encode its result), and so does the in-process runner.

A bad dataset or spec is recorded on the model as FAILED with its coded error and returned as
an outcome (no retry helps), while storage errors propagate so the Durable runtime retries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.errors import InputError, ModelNotFoundError, ModelNotReadyError
from shared.multivariate.detection import (
    anomaly_object,
    failed_result,
    result_csv,
    setup_info,
    top_anomalies,
)
from shared.multivariate.documents import TrainingLease
from shared.multivariate.export import export_model
from shared.multivariate.payloads import (
    BatchOutcome,
    DetectionFailure,
    DetectionJob,
    DetectionSummary,
    ExportOutcome,
    FailRequest,
    ModelOutcome,
    ModelStep,
    RunSummary,
    SummaryRequest,
    TrainingRequest,
)
from shared.multivariate.registry import ModelRecord
from shared.multivariate.service import MultivariateService, outcome_of
from shared.multivariate.spec import Windows, parse_training_spec
from shared.multivariate.statuses import CREATED, FAILED, READY, RUNNING
from shared.multivariate.training import diagnostics_info, train_model
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import format_time, utc_now

logger = logging.getLogger(__name__)

#: How long a training lease holds. An activity cannot outlive the function timeout
#: (host.json: 10 minutes), so a RUNNING model whose lease is older belongs to a dead worker.
TRAINING_LEASE = timedelta(minutes=15)


class TrainingActivities:
    """The training orchestration's activities, over one storage account.

    Args:
        store: The blob store.
        settings: App settings (containers, upload limit).
        clock: Returns the current time (the training lease and the registry's times).
    """

    def __init__(
        self, store: BlobStore, settings: Settings, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.service = MultivariateService(settings, store, clock=clock)
        self.registry = self.service.registry

    def prepare(self, request: TrainingRequest) -> ModelOutcome:
        """Create the model, read the spec and validate the dataset (see
        :meth:`MultivariateService.prepare`)."""
        return self.service.prepare(request)

    def train(self, step: ModelStep) -> ModelOutcome:
        """Train the model under a lease; idempotent.

        A READY or FAILED model is returned as it is (a duplicate never trains twice); a model
        another run is training (live lease) is returned as RUNNING for the orchestrator to
        poll; otherwise this run takes the lease (named after its instance id, so a retry of
        this activity takes over its own lease at once), trains, stores the artifact
        (create-only) and marks the model READY (or FAILED with the coded error of a dataset
        the engine refuses). On an unexpected error the lease is given back (status CREATED)
        and the error propagates, so the runtime's retry trains again; when storage is down
        the give-back fails too, and the retry takes its own lease over.
        """
        model_id = step.model_id
        # The lease is named after the run: a retry of this activity (the runtime retries only
        # once the attempt has ended) takes over its own lease at once. A random id per attempt
        # left a lease nobody held after a storage blip, and the run waited it out (15 minutes)
        # or, in the in-process runner, ran into its deadline and marked the model FAILED.
        holder = step.instance_id or uuid.uuid4().hex
        record = self.registry.get_record(model_id)
        if record.status in (READY, FAILED) or (
            record.status == RUNNING and not self._may_take(record, holder)
        ):
            return outcome_of(record)
        lease: TrainingLease = {"id": holder, "expires": format_time(self.clock() + TRAINING_LEASE)}
        acquired, record = self.registry.transition(
            model_id,
            RUNNING,
            internal={"lease": lease},
            when=lambda current: (
                "windows" in current.internal
                and (current.status == CREATED or self._may_take(current, holder))
            ),
        )
        if not acquired:
            return outcome_of(record)

        def holds_lease(current: ModelRecord) -> bool:
            held = current.internal.get("lease")
            return held is not None and held.get("id") == lease["id"]

        source = record.internal["dataSource"]
        ref = BlobRef(source["container"], source["name"])
        try:
            spec = parse_training_spec(record.internal["spec"])
            series = self.service.reader.read(ref, str(record.internal.get("sha256", "")))
            trained = train_model(series, spec)
        except InputError as exc:
            logger.warning("Model %s FAILED: %s (%s)", model_id, exc.message, exc.code)
            _, record = self.registry.transition(
                model_id, FAILED, errors=[exc.to_dict()], internal={"lease": None}, when=holds_lease
            )
            return outcome_of(record)
        except BaseException:
            self.registry.transition(model_id, CREATED, internal={"lease": None}, when=holds_lease)
            raise
        # Create-only: a retry after the artifact was stored (READY not yet recorded) trains
        # the same bytes again (the fit is deterministic) and keeps the stored ones.
        self.registry.put_artifact(model_id, trained.model.to_bytes())
        _, record = self.registry.transition(
            model_id,
            READY,
            errors=[],
            diagnostics=diagnostics_info(trained.model, trained.seconds),
            internal={"lease": None, "variables": list(trained.model.variables)},
            when=holds_lease,
        )
        return outcome_of(record)

    def _may_take(self, record: ModelRecord, holder: str) -> bool:
        """Whether ``holder`` may take the training lease of a RUNNING model: it is its own
        (an earlier attempt of this run failed), or its worker is gone (expired)."""
        lease = record.internal.get("lease")
        return (lease is not None and lease.get("id") == holder) or self._lease_expired(record)

    def _lease_expired(self, record: ModelRecord) -> bool:
        lease = record.internal.get("lease")
        expires = lease.get("expires") if lease is not None else None
        if not expires:
            return True
        return datetime.fromisoformat(str(expires)) <= self.clock()

    def status(self, step: ModelStep) -> ModelOutcome:
        """The model's status; ``stale`` when it is RUNNING under an expired lease."""
        record = self.registry.get_record(step.model_id)
        outcome = outcome_of(record)
        stale = record.status == RUNNING and self._lease_expired(record)
        return ModelOutcome(outcome.model_id, outcome.status, outcome.errors, stale)

    def mark_failed(self, request: FailRequest) -> ModelOutcome:
        """Mark the model FAILED with the request's code and message (READY stays READY)."""
        error = {"code": request.code, "message": request.message}
        _, record = self.registry.transition(
            request.step.model_id, FAILED, errors=[error], internal={"lease": None}
        )
        return outcome_of(record)

    def detect(self, step: ModelStep) -> DetectionSummary:
        """Detect on the spec's detection window; store the v1.1 result as JSON and CSV.

        Raises:
            ModelNotReadyError: The model is not READY.
        """
        record = self.registry.get_record(step.model_id)
        spec = parse_training_spec(record.internal["spec"])
        windows = Windows.from_dict(record.internal["windows"])
        source = record.internal["dataSource"]
        result = self.service.detect_and_store(
            step.model_id,
            BlobRef(source["container"], source["name"]),
            windows.detect_start,
            windows.detect_end,
            spec.top_contributor_count,
            sha256=str(record.internal.get("sha256", "")),
        )
        summary = result["summary"]
        return DetectionSummary(
            result_id=result["resultId"],
            status=summary["status"],
            errors=tuple(summary["errors"]),
            anomalies=sum(1 for item in result["results"] if item["value"]["isAnomaly"]),
            timestamps=len(result["results"]),
            top_anomalies=tuple(anomaly_object(item) for item in top_anomalies(result)),
        )

    def export(self, step: ModelStep) -> ExportOutcome:
        """Write the portable export zip of a READY model."""
        engine_bytes = self.registry.get_artifact(step.model_id)
        data = export_model(engine_bytes, self.registry.get(step.model_id))
        ref = self.registry.put_export(step.model_id, data)
        return ExportOutcome(ref.container, ref.name, len(data))

    def summarize(self, request: SummaryRequest) -> RunSummary:
        """Write and return the run's summary (status, errors, anomalies, where things are)."""
        record = self.registry.get_record(request.step.model_id)
        summary = RunSummary(
            instance_id=request.step.instance_id,
            model_id=record.model_id,
            status=record.status,
            errors=outcome_of(record).errors,
            data_source=record.info.get("dataSource"),
            display_name=record.info.get("displayName", ""),
            variables=tuple(record.internal.get("variables", [])),
            windows=record.internal.get("windows"),
            detection=request.detection,
            export=request.export,
        )
        self.registry.put_summary(record.model_id, summary.to_dict())
        return summary


class BatchDetectionActivities:
    """The activities of the batch-detection orchestration (the v1.1 API's ``detect-batch``).

    Args:
        store: The blob store.
        settings: App settings (containers, upload limit).
    """

    def __init__(self, store: BlobStore, settings: Settings) -> None:
        self.service = MultivariateService(settings, store)
        self.registry = self.service.registry

    def detect(self, job: DetectionJob) -> BatchOutcome:
        """Run the detection and store its v1.1 result (READY, or FAILED for unusable data).

        A model deleted before the detection ran gives a FAILED outcome and stores nothing.
        Storage errors propagate, so the runtime retries the activity.
        """
        try:
            result = self.service.detect_and_store(
                job.model_id,
                BlobRef(job.container, job.name),
                job.start_time,
                job.end_time,
                job.top_contributor_count,
                sha256=job.sha256,
                data_source=job.data_source,
                result_id=job.result_id,
            )
        except ModelNotFoundError:
            logger.info("Model %s was deleted before detection %s ran", job.model_id, job.result_id)
            return BatchOutcome(job.result_id, FAILED)
        except ModelNotReadyError as exc:  # the detection was accepted: its result says why
            setup = setup_info(
                job.data_source, job.top_contributor_count, job.start_time, job.end_time
            )
            result = failed_result(job.result_id, setup, [exc.to_dict()])
            self.registry.put_result(job.model_id, result, result_csv(result))
        anomalies = sum(1 for item in result["results"] if item["value"]["isAnomaly"])
        return BatchOutcome(job.result_id, result["summary"]["status"], anomalies)

    def fail(self, failure: DetectionFailure) -> BatchOutcome:
        """Record the detection as FAILED (``DetectionFailed``) after the retries were spent."""
        job = failure.job
        error = {"code": "DetectionFailed", "message": failure.message}
        setup = setup_info(job.data_source, job.top_contributor_count, job.start_time, job.end_time)
        result = failed_result(job.result_id, setup, [error])
        try:
            self.registry.put_result(job.model_id, result, result_csv(result))
        except ModelNotFoundError:
            logger.info("Model %s was deleted; detection %s dropped", job.model_id, job.result_id)
        return BatchOutcome(job.result_id, FAILED)
