"""The multivariate training workflow: names, deterministic ids and the orchestration itself.

This module is the single place that names the Durable functions of the multivariate family
and the one implementation of the orchestration's control flow. It imports nothing but the
standard library, so the function app imports it for free and the in-process runner of the demo
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

Instance ids are deterministic (:func:`training_instance_id`): a duplicate trigger for the same
blob and content finds the instance already there and does not start a second training
(:func:`should_start`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.multivariate.statuses import FAILED, READY, TERMINAL_STATUSES

#: Orchestrator function name.
ORCHESTRATOR = "mv_training_orchestrator"
#: Activity function names (the functions in ``functions/multivariate.py`` carry these names).
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

#: Retry policy of every activity call: first retry after 5 s (the runtime backs off), 3 tries.
RETRY_FIRST_INTERVAL_MS = 5_000
RETRY_MAX_ATTEMPTS = 3

#: Durable runtime statuses after which a duplicate trigger may start the instance again: the
#: instance ended without finishing its work (a crash, an operator's terminate). Retraining is
#: still never repeated: the train activity returns a READY model as it is.
RESTARTABLE_RUNTIME_STATUSES = frozenset({"Failed", "Terminated", "Canceled"})
#: Runtime statuses of an instance that is still working (never started twice).
ACTIVE_RUNTIME_STATUSES = frozenset({"Pending", "Running", "Suspended"})

#: Dataset extensions the training container trains on (``.json`` sidecars are not datasets).
DATASET_SUFFIXES = (".zip", ".csv")

_INSTANCE_PREFIX = "mvtrain-"
_MODEL_NAMESPACE = uuid.UUID("6f2b1c52-3f7e-4d7a-9a57-0c1f2f6f8e11")
_CHUNK = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Deterministic identities
# --------------------------------------------------------------------------------------------


def content_hash(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


class Readable(Protocol):
    """Anything with ``read(size) -> bytes`` (a file, ``func.InputStream``)."""

    def read(self, size: int = -1, /) -> bytes: ...


def stream_hash(stream: Readable) -> str:
    """Return the SHA-256 of a binary stream (read in 1 MiB chunks) as 64 hex digits."""
    digest = hashlib.sha256()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        digest.update(chunk)
    return digest.hexdigest()


def is_dataset_name(name: str) -> bool:
    """Whether a blob in the training container is a dataset to train on (not a sidecar)."""
    return name.lower().endswith(DATASET_SUFFIXES)


def training_instance_id(
    container: str, name: str, sha256: str, spec: Mapping[str, Any] | None = None
) -> str:
    """The orchestration instance id of one training: the same input always gives the same id.

    Args:
        container: Container of the dataset blob.
        name: Blob name inside the container.
        sha256: SHA-256 of the blob's content (:func:`content_hash`).
        spec: A training spec given with the request (HTTP starter); ``None`` when the spec is
            read from the blob's sidecar or metadata.

    Returns:
        ``mvtrain-`` followed by 32 hex digits.
    """
    canonical = "" if spec is None else json.dumps(spec, sort_keys=True, separators=(",", ":"))
    key = f"{container}/{name}\n{sha256.lower()}\n{canonical}"
    return _INSTANCE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


def model_id_for(instance_id: str) -> str:
    """The model id (a v1.1 GUID) of the training run with this instance id."""
    return str(uuid.uuid5(_MODEL_NAMESPACE, instance_id))


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
# The orchestration input
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRequest:
    """What starts a training orchestration (its JSON input).

    Attributes:
        container: Container of the dataset blob.
        name: Blob name of the dataset (``.zip`` MultiTable or ``.csv`` OneTable).
        sha256: Content hash the trigger saw; the prepare step refuses a blob that changed since.
        instance_id: The deterministic orchestration instance id.
        model_id: The deterministic model id.
        spec: The training spec when given inline (HTTP); ``None``: read the sidecar or metadata.
        poll_interval_seconds: Monitor interval while training runs elsewhere.
        deadline_minutes: Training not READY by then is marked FAILED (``TrainingTimeout``).
    """

    container: str
    name: str
    sha256: str
    instance_id: str
    model_id: str
    spec: dict[str, Any] | None = None
    poll_interval_seconds: int = 10
    deadline_minutes: int = 60

    @classmethod
    def create(
        cls,
        container: str,
        name: str,
        sha256: str,
        *,
        spec: Mapping[str, Any] | None = None,
        poll_interval_seconds: int = 10,
        deadline_minutes: int = 60,
    ) -> TrainingRequest:
        """Build a request with its deterministic instance and model ids."""
        instance_id = training_instance_id(container, name, sha256, spec)
        return cls(
            container=container,
            name=name,
            sha256=sha256,
            instance_id=instance_id,
            model_id=model_id_for(instance_id),
            spec=None if spec is None else dict(spec),
            poll_interval_seconds=poll_interval_seconds,
            deadline_minutes=deadline_minutes,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON input of the orchestration."""
        return {
            "dataSource": {"container": self.container, "name": self.name},
            "sha256": self.sha256,
            "instanceId": self.instance_id,
            "modelId": self.model_id,
            "spec": self.spec,
            "pollIntervalSeconds": self.poll_interval_seconds,
            "deadlineMinutes": self.deadline_minutes,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> TrainingRequest:
        """Read the orchestration input written by :meth:`to_dict`.

        Raises:
            ValueError: A field is missing or has the wrong type (a programming error: inputs
                are only written by :meth:`to_dict`).
        """
        try:
            source = document["dataSource"]
            spec = document.get("spec")
            return cls(
                container=str(source["container"]),
                name=str(source["name"]),
                sha256=str(document["sha256"]),
                instance_id=str(document["instanceId"]),
                model_id=str(document["modelId"]),
                spec=None if spec is None else dict(spec),
                poll_interval_seconds=int(document.get("pollIntervalSeconds", 10)),
                deadline_minutes=int(document.get("deadlineMinutes", 60)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Not a training request: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The orchestration
# --------------------------------------------------------------------------------------------


class OrchestrationContext(Protocol):
    """The part of ``DurableOrchestrationContext`` the workflow uses (the local runner's too)."""

    @property
    def current_utc_datetime(self) -> datetime: ...

    def get_input(self) -> Any: ...

    def call_activity_with_retry(
        self, name: str, retry_options: Any, input_: Any = None
    ) -> Any: ...

    def create_timer(self, fire_at: datetime) -> Any: ...

    def set_custom_status(self, status: Any) -> None: ...


def training_orchestration(
    context: OrchestrationContext, retry_options: Any
) -> Generator[Any, Any, dict[str, Any]]:
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
    request = TrainingRequest.from_dict(_as_mapping(context.get_input()))
    model = {"modelId": request.model_id, "instanceId": request.instance_id}
    context.set_custom_status({"stage": "prepare", **model})
    prepared = yield context.call_activity_with_retry(
        PREPARE_ACTIVITY, retry_options, request.to_dict()
    )
    status = str(prepared["status"])
    if status != FAILED:
        status = yield from _train_and_monitor(context, retry_options, request, model)
    detected: dict[str, Any] | None = None
    exported: dict[str, Any] | None = None
    if status == READY:
        context.set_custom_status({"stage": "detect", **model})
        detected = yield context.call_activity_with_retry(DETECT_ACTIVITY, retry_options, model)
        context.set_custom_status({"stage": "export", **model})
        exported = yield context.call_activity_with_retry(EXPORT_ACTIVITY, retry_options, model)
    context.set_custom_status({"stage": "summary", **model})
    summary: dict[str, Any] = yield context.call_activity_with_retry(
        SUMMARY_ACTIVITY,
        retry_options,
        {**model, "detection": detected, "export": exported},
    )
    context.set_custom_status({"stage": "done", "status": summary.get("status"), **model})
    return summary


def _train_and_monitor(
    context: OrchestrationContext,
    retry_options: Any,
    request: TrainingRequest,
    model: dict[str, str],
) -> Generator[Any, Any, str]:
    """Train, then poll the model status with durable timers until READY, FAILED or the deadline."""
    context.set_custom_status({"stage": "train", **model})
    try:
        trained = yield context.call_activity_with_retry(TRAIN_ACTIVITY, retry_options, model)
    except Exception as exc:  # the runtime's retries are spent: record it, then summarise
        return (yield from _mark_failed(context, retry_options, model, "TrainingFailed", exc))
    status = str(trained["status"])
    deadline = context.current_utc_datetime + timedelta(minutes=request.deadline_minutes)
    while status not in TERMINAL_STATUSES:
        now = context.current_utc_datetime
        if now >= deadline:
            reason = (
                f"Training did not finish within {request.deadline_minutes} minutes "
                f"(MV_TRAINING_DEADLINE_MINUTES); the model was still {status}."
            )
            return (
                yield from _mark_failed(context, retry_options, model, "TrainingTimeout", reason)
            )
        context.set_custom_status({"stage": "monitor", "status": status, **model})
        yield context.create_timer(now + timedelta(seconds=request.poll_interval_seconds))
        polled = yield context.call_activity_with_retry(STATUS_ACTIVITY, retry_options, model)
        status = str(polled["status"])
        if polled.get("stale"):
            # The worker that held the training lease is gone: train again (idempotent).
            try:
                trained = yield context.call_activity_with_retry(
                    TRAIN_ACTIVITY, retry_options, model
                )
            except Exception as exc:
                return (
                    yield from _mark_failed(context, retry_options, model, "TrainingFailed", exc)
                )
            status = str(trained["status"])
    return status


def _mark_failed(
    context: OrchestrationContext,
    retry_options: Any,
    model: dict[str, str],
    code: str,
    reason: object,
) -> Generator[Any, Any, str]:
    message = str(reason).strip() or type(reason).__name__
    outcome = yield context.call_activity_with_retry(
        FAIL_ACTIVITY, retry_options, {**model, "code": code, "message": message[:1000]}
    )
    return str(outcome["status"])


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"The orchestration input must be a JSON object, not {type(value).__name__}"
        )
    return value
