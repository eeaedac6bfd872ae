"""The multivariate workflow: every Durable name of the family and both orchestrations.

This module is the single place that names the Durable functions of the multivariate family
(the client functions, both orchestrators and every activity) and the one implementation of the
control flow of both orchestrations: training (below) and the API's batch detection (one
activity, retried; when the retries are spent a second activity records the result FAILED, so
a client polling ``detect-batch/{resultId}`` always gets an answer). It imports nothing but the
standard library and the typed payloads (:mod:`shared.multivariate.payloads`), so the
function app imports it for free and the in-process runner of the demo
(:mod:`shared.multivariate.local_runner`) drives exactly the generator the Durable host drives.

The flow (each step an activity; the orchestrator itself does no I/O)::

    prepare/validate ──FAILED──────────────────────────────────────────┐
        │ CREATED                                                       │
    train ──(RUNNING: another worker holds the training lease)──┐       │
        │                                                       ▼       │
        │                 monitor: timer, poll status, deadline → FAILED│
        ▼ READY                                                         │
    detect → export → summary ◀─────────────────────────────────────────┘

* Validation failures (a bad dataset or spec) come back from ``prepare`` or ``train`` as a
  FAILED outcome already recorded on the model: they fail fast, without retries.
* Transient failures (storage hiccups, a recycled worker) are retried by the Durable runtime
  (``call_activity_with_retry``); when the retries are spent the model is marked FAILED with
  the code ``TrainingFailed`` and the orchestration still completes with a summary.
* A detect, export or summary step that still fails after its retries fails the instance
  (Durable runtime status ``Failed``; the model stays READY). Such an instance may be started
  again under the same id (:func:`should_start`): the READY model is reused, not retrained.
* The monitor waits with durable timers (``create_timer``), never ``sleep``, reads the time from
  ``context.current_utc_datetime`` and gives up at a deadline with the explicit code
  ``TrainingTimeout``.

Instance ids are deterministic (:func:`shared.multivariate.ids.training_instance_id`): a
duplicate trigger for the same blob and content finds the instance already there and does not
start a second training
(:func:`should_start`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Protocol, TypeAlias, TypeVar

from shared.jsontypes import JSONObject, JSONValue
from shared.multivariate.payloads import (
    DetectionFailure,
    DetectionJob,
    DetectionSummary,
    ExportOutcome,
    FailRequest,
    ModelOutcome,
    ModelStep,
    SummaryRequest,
    TrainingRequest,
    as_object,
)
from shared.multivariate.statuses import FAILED, READY, TERMINAL_STATUSES

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Every Durable name of the family (the functions in ``functions/multivariate.py`` carry them)
# --------------------------------------------------------------------------------------------

#: Client functions (triggers that start or query orchestrations).
UPLOAD_TRIGGER = "mv_training_upload"
HTTP_STARTER = "mv_train_http"
STATUS_QUERY = "mv_training_status"
#: The training orchestrator and its activities.
ORCHESTRATOR = "mv_training_orchestrator"
PREPARE_ACTIVITY = "mv_prepare"
TRAIN_ACTIVITY = "mv_train"
STATUS_ACTIVITY = "mv_model_status"
FAIL_ACTIVITY = "mv_mark_failed"
DETECT_ACTIVITY = "mv_detect"
EXPORT_ACTIVITY = "mv_export"
SUMMARY_ACTIVITY = "mv_summary"
ACTIVITIES = (
    PREPARE_ACTIVITY,
    TRAIN_ACTIVITY,
    STATUS_ACTIVITY,
    FAIL_ACTIVITY,
    DETECT_ACTIVITY,
    EXPORT_ACTIVITY,
    SUMMARY_ACTIVITY,
)
#: The batch-detection orchestrator (the v1.1 API's ``detect-batch``) and its activities.
DETECTION_ORCHESTRATOR = "mv_api_detection_orchestrator"
BATCH_DETECT_ACTIVITY = "mv_api_detect"
BATCH_FAILED_ACTIVITY = "mv_api_detect_failed"
BATCH_ACTIVITIES = (BATCH_DETECT_ACTIVITY, BATCH_FAILED_ACTIVITY)

#: Retry policy of every activity call: first retry after 5 s (the runtime backs off), 3 tries.
RETRY_FIRST_INTERVAL_MS = 5_000
RETRY_MAX_ATTEMPTS = 3

#: Durable runtime statuses after which a duplicate trigger may start the instance again: the
#: instance ended without finishing its work (a crash, an operator's terminate). Retraining is
#: still never repeated: the train activity returns a READY model as it is.
RESTARTABLE_RUNTIME_STATUSES = frozenset({"Failed", "Terminated", "Canceled"})
#: Runtime statuses of an instance that is still working (never started twice).
ACTIVE_RUNTIME_STATUSES = frozenset({"Pending", "Running", "Suspended"})


def should_start(runtime_status: str | None, *, model_deleted: bool = False) -> bool:
    """Whether a trigger should start the instance, given the instance's current status.

    Args:
        runtime_status: The Durable runtime status of the instance with the deterministic id
            (``Pending``, ``Running``, ``Completed``, ...), or ``None`` when there is none.
        model_deleted: The instance's model is no longer in the registry (an operator deleted
            it): a finished instance is then started again, so re-uploading the same dataset
            trains a new model instead of pointing at a deleted one.

    Returns:
        ``True`` when no instance exists, it ended abnormally
        (:data:`RESTARTABLE_RUNTIME_STATUSES`), or it finished and its model was deleted;
        ``False`` for a duplicate of a pending, running or completed training.
    """
    if runtime_status is None or runtime_status in RESTARTABLE_RUNTIME_STATUSES:
        return True
    return model_deleted and runtime_status not in ACTIVE_RUNTIME_STATUSES


# --------------------------------------------------------------------------------------------
# Starting an orchestration unless it exists (every starter: triggers, API, in-process)
# --------------------------------------------------------------------------------------------


class OrchestrationStarter(Protocol):
    """Starts orchestration instances and reports their runtime status."""

    async def start(self, orchestrator: str, instance_id: str, client_input: object) -> None:
        """Start ``orchestrator`` as ``instance_id`` with ``client_input``."""
        ...

    async def runtime_status(self, instance_id: str) -> str | None:
        """The Durable runtime status of an instance (``Running``, ``Completed``...), or None."""
        ...


#: The starter of the current request (the function app's HTTP function sets it around each
#: invocation, lending the API its Durable client binding).
current_starter: ContextVar[OrchestrationStarter | None] = ContextVar(
    "meterwatch_orchestration_starter", default=None
)


async def start_unless_exists(
    starter: OrchestrationStarter,
    orchestrator: str,
    instance_id: str,
    client_input: object,
    *,
    known_new: bool = False,
    model_deleted: Callable[[], bool] | None = None,
) -> bool:
    """Start the instance unless one with its (deterministic) id exists already.

    Args:
        starter: Who starts it.
        orchestrator: The orchestrator's name.
        instance_id: The deterministic instance id.
        client_input: The orchestration input (JSON-ready).
        known_new: The caller knows no instance exists (skips the status query).
        model_deleted: Asked only for a finished instance: whether its model was deleted (a
            finished instance whose model is gone starts again, see
            :func:`~shared.multivariate.workflow.should_start`).

    Returns:
        Whether a new instance was started.
    """
    status = None if known_new else await starter.runtime_status(instance_id)
    deleted = status is not None and model_deleted is not None and model_deleted()
    if not should_start(status, model_deleted=deleted):
        logger.info("Instance %s exists (%s); not starting it again", instance_id, status)
        return False
    await starter.start(orchestrator, instance_id, client_input)
    logger.info("Started %s as %s", orchestrator, instance_id)
    return True


# --------------------------------------------------------------------------------------------
# The orchestrations
# --------------------------------------------------------------------------------------------


#: A durable task (an activity call or a timer, of the SDK or of the local runner). Opaque to
#: the workflow: it only yields the task, and the runtime sends back the task's result.
DurableTask: TypeAlias = object
_R = TypeVar("_R")
#: An orchestration's generator: yields durable tasks, is sent each task's JSON result (``None``
#: for a timer), returns ``_R``.
Orchestration: TypeAlias = Generator[DurableTask, JSONValue, _R]


class RetryPolicy(Protocol):
    """The retry policy of an activity call: the SDK's ``RetryOptions`` or the local twin."""

    @property
    def first_retry_interval_in_milliseconds(self) -> int: ...

    @property
    def max_number_of_attempts(self) -> int: ...


class OrchestrationContext(Protocol):
    """The part of ``DurableOrchestrationContext`` the workflow uses (the local runner's too).

    Inputs and custom statuses are ``object``: anything ``json.dumps`` takes (the runtime
    serialises them); what comes back is decoded JSON (:data:`~shared.jsontypes.JSONValue`),
    read through the typed payloads.
    """

    @property
    def current_utc_datetime(self) -> datetime: ...

    def get_input(self) -> JSONValue: ...

    def call_activity_with_retry(
        self, name: str, retry_options: RetryPolicy, input_: object = None
    ) -> DurableTask: ...

    def create_timer(self, fire_at: datetime) -> DurableTask: ...

    def set_custom_status(self, status: object) -> None: ...


def training_orchestration(
    context: OrchestrationContext, retry_options: RetryPolicy
) -> Orchestration[JSONObject]:
    """The training orchestration: prepare → train → monitor → detect → export → summary.

    Deterministic: no I/O, no clock but ``context.current_utc_datetime``, no randomness; every
    decision depends only on the input and the activities' results, so replay takes the same
    path.

    Args:
        context: The Durable orchestration context (or the local runner's).
        retry_options: The SDK's ``RetryOptions`` (or the local runner's equivalent), built
            from :data:`RETRY_FIRST_INTERVAL_MS` and :data:`RETRY_MAX_ATTEMPTS`.

    Yields:
        Durable tasks (activity calls and timers).

    Returns:
        The summary written by the summary activity: model id, status, errors, anomalies found,
        result and export locations.
    """
    request = TrainingRequest.from_dict(context.get_input())
    step = request.step
    model = step.to_dict()
    context.set_custom_status({"stage": "prepare", **model})
    prepared = yield context.call_activity_with_retry(
        PREPARE_ACTIVITY, retry_options, request.to_dict()
    )
    status = ModelOutcome.from_dict(prepared).status
    if status != FAILED:
        status = yield from _train_and_monitor(context, retry_options, request)
    detected: DetectionSummary | None = None
    exported: ExportOutcome | None = None
    if status == READY:
        context.set_custom_status({"stage": "detect", **model})
        detection = yield context.call_activity_with_retry(DETECT_ACTIVITY, retry_options, model)
        detected = DetectionSummary.from_dict(detection)
        context.set_custom_status({"stage": "export", **model})
        export = yield context.call_activity_with_retry(EXPORT_ACTIVITY, retry_options, model)
        exported = ExportOutcome.from_dict(export)
    context.set_custom_status({"stage": "summary", **model})
    summary = as_object(
        (
            yield context.call_activity_with_retry(
                SUMMARY_ACTIVITY, retry_options, SummaryRequest(step, detected, exported).to_dict()
            )
        ),
        "training summary",
    )
    context.set_custom_status({"stage": "done", "status": summary.get("status"), **model})
    return dict(summary)


def _train_and_monitor(
    context: OrchestrationContext, retry_options: RetryPolicy, request: TrainingRequest
) -> Orchestration[str]:
    """Train, then poll the model status with durable timers until READY, FAILED or the deadline."""
    step = request.step
    model = step.to_dict()
    context.set_custom_status({"stage": "train", **model})
    try:
        trained = yield context.call_activity_with_retry(TRAIN_ACTIVITY, retry_options, model)
    except Exception as exc:  # the runtime's retries are spent: record it, then summarise
        return (yield from _mark_failed(context, retry_options, step, "TrainingFailed", exc))
    status = ModelOutcome.from_dict(trained).status
    deadline = context.current_utc_datetime + timedelta(minutes=request.deadline_minutes)
    while status not in TERMINAL_STATUSES:
        now = context.current_utc_datetime
        if now >= deadline:
            reason = (
                f"Training did not finish within {request.deadline_minutes} minutes "
                f"(MV_TRAINING_DEADLINE_MINUTES); the model was still {status}."
            )
            return (
                yield from _mark_failed(context, retry_options, step, "TrainingTimeout", reason)
            )
        context.set_custom_status({"stage": "monitor", "status": status, **model})
        yield context.create_timer(now + timedelta(seconds=request.poll_interval_seconds))
        polled = ModelOutcome.from_dict(
            (yield context.call_activity_with_retry(STATUS_ACTIVITY, retry_options, model))
        )
        status = polled.status
        if polled.stale:
            # The worker that held the training lease is gone: train again (idempotent).
            try:
                trained = yield context.call_activity_with_retry(
                    TRAIN_ACTIVITY, retry_options, model
                )
            except Exception as exc:
                return (
                    yield from _mark_failed(context, retry_options, step, "TrainingFailed", exc)
                )
            status = ModelOutcome.from_dict(trained).status
    return status


def _mark_failed(
    context: OrchestrationContext,
    retry_options: RetryPolicy,
    step: ModelStep,
    code: str,
    reason: object,
) -> Orchestration[str]:
    message = str(reason).strip() or type(reason).__name__
    request = FailRequest(step, code, message[:1000])
    outcome = yield context.call_activity_with_retry(
        FAIL_ACTIVITY, retry_options, request.to_dict()
    )
    return ModelOutcome.from_dict(outcome).status


def detection_orchestration(
    context: OrchestrationContext, retry_options: RetryPolicy
) -> Orchestration[JSONObject]:
    """Batch detection: detect, or record the failure once the retries are spent. No I/O.

    Args:
        context: The Durable orchestration context (or the local runner's).
        retry_options: The SDK's ``RetryOptions`` (or the local runner's equivalent).

    Returns:
        ``{"resultId", "status", "anomalies"}`` from the activity that ran last.
    """
    job = DetectionJob.from_dict(context.get_input())
    try:
        outcome = yield context.call_activity_with_retry(
            BATCH_DETECT_ACTIVITY, retry_options, job.to_dict()
        )
    except Exception as exc:  # the runtime's retries are spent: the result must say so
        failure = DetectionFailure(job, (str(exc).strip() or type(exc).__name__)[:1000])
        outcome = yield context.call_activity_with_retry(
            BATCH_FAILED_ACTIVITY, retry_options, failure.to_dict()
        )
    return dict(as_object(outcome, "batch detection outcome"))
