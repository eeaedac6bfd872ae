"""The typed payloads of the multivariate orchestrations: inputs and outputs of every activity.

Each payload is a frozen dataclass with ``to_dict`` (the JSON the Durable runtime carries,
v1.1-style camelCase names) and ``from_dict`` (its reader). The orchestrations
(:mod:`shared.multivariate.workflow`) and the activities (:mod:`shared.multivariate.activities`)
exchange only these; a payload of the wrong shape raises :class:`~shared.errors.PayloadError`.

Standard library only: the function app imports it when it is indexed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import PayloadError
from shared.multivariate.ids import detection_instance_id, model_id_for, training_instance_id

#: A JSON object as the runtime carries it (values: str, numbers, bools, None, lists, objects).
JSONObject = dict[str, Any]
#: A v1.1 error body ``{"code", "message"}``.
ErrorBody = dict[str, str]


def as_object(value: object, what: str) -> Mapping[str, Any]:
    """A payload as a mapping (the runtime may hand it over as JSON text).

    Raises:
        PayloadError: Not a JSON object.
    """
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise PayloadError(f"The {what} is not JSON ({exc}).") from exc
    if not isinstance(value, Mapping):
        raise PayloadError(f"The {what} must be a JSON object, not {type(value).__name__}.")
    return value


def _errors(value: object) -> tuple[ErrorBody, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(
        {str(k): str(v) for k, v in item.items()} for item in value if isinstance(item, Mapping)
    )


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRequest:
    """What starts a training orchestration (its input, and the prepare activity's).

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
    spec: JSONObject | None = None
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

    @property
    def step(self) -> ModelStep:
        """The input of the steps after prepare."""
        return ModelStep(self.model_id, self.instance_id)

    def to_dict(self) -> JSONObject:
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
    def from_dict(cls, document: object) -> TrainingRequest:
        """Read :meth:`to_dict` output.

        Raises:
            PayloadError: A field is missing or has the wrong type.
        """
        payload = as_object(document, "training request")
        try:
            source = payload["dataSource"]
            spec = payload.get("spec")
            return cls(
                container=str(source["container"]),
                name=str(source["name"]),
                sha256=str(payload["sha256"]),
                instance_id=str(payload["instanceId"]),
                model_id=str(payload["modelId"]),
                spec=None if spec is None else dict(spec),
                poll_interval_seconds=int(payload.get("pollIntervalSeconds", 10)),
                deadline_minutes=int(payload.get("deadlineMinutes", 60)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"Not a training request: {exc!r}") from exc


@dataclass(frozen=True)
class ModelStep:
    """The input of train, status, detect and export: which model, in which run."""

    model_id: str
    instance_id: str

    def to_dict(self) -> JSONObject:
        """``{"modelId", "instanceId"}``."""
        return {"modelId": self.model_id, "instanceId": self.instance_id}

    @classmethod
    def from_dict(cls, document: object) -> ModelStep:
        """Read :meth:`to_dict` output (extra fields are ignored).

        Raises:
            PayloadError: ``modelId`` is missing.
        """
        payload = as_object(document, "model step")
        if "modelId" not in payload:
            raise PayloadError("The model step has no modelId.")
        return cls(str(payload["modelId"]), str(payload.get("instanceId") or ""))


@dataclass(frozen=True)
class FailRequest:
    """The input of mark-failed: the model, and the coded reason."""

    step: ModelStep
    code: str
    message: str

    def to_dict(self) -> JSONObject:
        """``{"modelId", "instanceId", "code", "message"}``."""
        return {**self.step.to_dict(), "code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, document: object) -> FailRequest:
        """Read :meth:`to_dict` output.

        Raises:
            PayloadError: ``modelId`` or ``code`` is missing.
        """
        payload = as_object(document, "fail request")
        if "code" not in payload:
            raise PayloadError("The fail request has no code.")
        return cls(
            ModelStep.from_dict(payload), str(payload["code"]), str(payload.get("message", ""))
        )


@dataclass(frozen=True)
class ModelOutcome:
    """What prepare, train, status and mark-failed return: the model's status and errors.

    Attributes:
        model_id: The model.
        status: ``CREATED``, ``RUNNING``, ``READY`` or ``FAILED``.
        errors: The model's coded errors.
        stale: Only from status: RUNNING under an expired lease (its worker is gone).
    """

    model_id: str
    status: str
    errors: tuple[ErrorBody, ...] = ()
    stale: bool | None = None

    def to_dict(self) -> JSONObject:
        """``{"modelId", "status", "errors"}`` (and ``stale`` from status)."""
        document: JSONObject = {
            "modelId": self.model_id,
            "status": self.status,
            "errors": [dict(error) for error in self.errors],
        }
        if self.stale is not None:
            document["stale"] = self.stale
        return document

    @classmethod
    def from_dict(cls, document: object) -> ModelOutcome:
        """Read :meth:`to_dict` output.

        Raises:
            PayloadError: ``status`` is missing.
        """
        payload = as_object(document, "model outcome")
        if "status" not in payload:
            raise PayloadError("The model outcome has no status.")
        stale = payload.get("stale")
        return cls(
            model_id=str(payload.get("modelId", "")),
            status=str(payload["status"]),
            errors=_errors(payload.get("errors")),
            stale=None if stale is None else bool(stale),
        )


@dataclass(frozen=True)
class DetectionSummary:
    """What the training's detect step returns (the stored result holds the details)."""

    result_id: str
    status: str
    errors: tuple[ErrorBody, ...] = ()
    anomalies: int = 0
    timestamps: int = 0
    top_anomalies: tuple[JSONObject, ...] = ()

    def to_dict(self) -> JSONObject:
        """``{"resultId", "status", "errors", "anomalies", "timestamps", "topAnomalies"}``."""
        return {
            "resultId": self.result_id,
            "status": self.status,
            "errors": [dict(error) for error in self.errors],
            "anomalies": self.anomalies,
            "timestamps": self.timestamps,
            "topAnomalies": [dict(item) for item in self.top_anomalies],
        }

    @classmethod
    def from_dict(cls, document: object) -> DetectionSummary:
        """Read :meth:`to_dict` output.

        Raises:
            PayloadError: Not an object, or no ``resultId``/``status``.
        """
        payload = as_object(document, "detection summary")
        try:
            return cls(
                result_id=str(payload["resultId"]),
                status=str(payload["status"]),
                errors=_errors(payload.get("errors")),
                anomalies=int(payload.get("anomalies") or 0),
                timestamps=int(payload.get("timestamps") or 0),
                top_anomalies=tuple(dict(item) for item in payload.get("topAnomalies") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"Not a detection summary: {exc!r}") from exc


@dataclass(frozen=True)
class ExportOutcome:
    """Where the export step wrote the portable model zip."""

    container: str
    name: str
    bytes: int

    @property
    def location(self) -> str:
        """``container/name``."""
        return f"{self.container}/{self.name}"

    def to_dict(self) -> JSONObject:
        """``{"container", "name", "bytes"}``."""
        return {"container": self.container, "name": self.name, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, document: object) -> ExportOutcome:
        """Read :meth:`to_dict` output.

        Raises:
            PayloadError: A field is missing.
        """
        payload = as_object(document, "export outcome")
        try:
            return cls(str(payload["container"]), str(payload["name"]), int(payload["bytes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"Not an export outcome: {exc!r}") from exc


@dataclass(frozen=True)
class SummaryRequest:
    """The input of the summary step: the run, and what detect and export returned."""

    step: ModelStep
    detection: DetectionSummary | None = None
    export: ExportOutcome | None = None

    def to_dict(self) -> JSONObject:
        """``{"modelId", "instanceId", "detection", "export"}``."""
        return {
            **self.step.to_dict(),
            "detection": None if self.detection is None else self.detection.to_dict(),
            "export": None if self.export is None else self.export.to_dict(),
        }

    @classmethod
    def from_dict(cls, document: object) -> SummaryRequest:
        """Read :meth:`to_dict` output."""
        payload = as_object(document, "summary request")
        detection = payload.get("detection")
        export = payload.get("export")
        return cls(
            ModelStep.from_dict(payload),
            None if not detection else DetectionSummary.from_dict(detection),
            None if not export else ExportOutcome.from_dict(export),
        )


@dataclass(frozen=True)
class RunSummary:
    """What a training run did (the summary step's output, stored beside the model)."""

    instance_id: str
    model_id: str
    status: str
    errors: tuple[ErrorBody, ...]
    data_source: str | None
    display_name: str
    variables: tuple[str, ...]
    windows: dict[str, str] | None
    detection: DetectionSummary | None
    export: ExportOutcome | None

    def to_dict(self) -> JSONObject:
        """The summary document (v1.1-style names)."""
        detection = self.detection
        return {
            "instanceId": self.instance_id,
            "modelId": self.model_id,
            "status": self.status,
            "errors": [dict(error) for error in self.errors],
            "dataSource": self.data_source,
            "displayName": self.display_name,
            "variables": list(self.variables),
            "windows": self.windows,
            "resultId": None if detection is None else detection.result_id,
            "detectionStatus": None if detection is None else detection.status,
            "detectionErrors": [] if detection is None else [dict(e) for e in detection.errors],
            "anomalies": None if detection is None else detection.anomalies,
            "topAnomalies": [] if detection is None else [dict(t) for t in detection.top_anomalies],
            "export": None if self.export is None else self.export.location,
        }


# --------------------------------------------------------------------------------------------
# Batch detection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionJob:
    """One batch detection requested through the API (the detection orchestration's input).

    Attributes:
        model_id: The READY model.
        result_id: The deterministic ``resultId``.
        container: Container of the data blob.
        name: Name of the data blob (``.zip`` MultiTable or ``.csv`` OneTable).
        sha256: Content hash seen when the request was accepted (a changed blob is refused).
        data_source: The request's ``dataSource``, echoed in ``setupInfo``.
        start_time: First timestamp to judge (ISO 8601 ``Z``).
        end_time: Last timestamp to judge.
        top_contributor_count: Contributors listed per anomaly.
    """

    model_id: str
    result_id: str
    container: str
    name: str
    sha256: str
    data_source: str
    start_time: str
    end_time: str
    top_contributor_count: int

    @property
    def instance_id(self) -> str:
        """The orchestration instance id of this detection."""
        return detection_instance_id(self.result_id)

    def to_dict(self) -> JSONObject:
        """The orchestration input (field names as the runtime has carried them since v1)."""
        return {
            "model_id": self.model_id,
            "result_id": self.result_id,
            "container": self.container,
            "name": self.name,
            "sha256": self.sha256,
            "data_source": self.data_source,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "top_contributor_count": self.top_contributor_count,
        }

    @classmethod
    def from_dict(cls, document: object) -> DetectionJob:
        """Read :meth:`to_dict` output (as JSON text or decoded).

        Raises:
            PayloadError: Not a detection job.
        """
        payload = as_object(document, "detection job")
        try:
            return cls(
                model_id=str(payload["model_id"]),
                result_id=str(payload["result_id"]),
                container=str(payload["container"]),
                name=str(payload["name"]),
                sha256=str(payload["sha256"]),
                data_source=str(payload["data_source"]),
                start_time=str(payload["start_time"]),
                end_time=str(payload["end_time"]),
                top_contributor_count=int(payload["top_contributor_count"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"Not a detection job: {exc!r}") from exc


@dataclass(frozen=True)
class DetectionFailure:
    """The input of the detection's fail step: the job, and why its retries were spent."""

    job: DetectionJob
    message: str = ""

    def to_dict(self) -> JSONObject:
        """The job's fields and ``message``."""
        return {**self.job.to_dict(), "message": self.message}

    @classmethod
    def from_dict(cls, document: object) -> DetectionFailure:
        """Read :meth:`to_dict` output."""
        payload = as_object(document, "detection failure")
        return cls(DetectionJob.from_dict(payload), str(payload.get("message", "")))


@dataclass(frozen=True)
class BatchOutcome:
    """What the detection orchestration's activities return."""

    result_id: str
    status: str
    anomalies: int = 0

    def to_dict(self) -> JSONObject:
        """``{"resultId", "status", "anomalies"}``."""
        return {"resultId": self.result_id, "status": self.status, "anomalies": self.anomalies}
