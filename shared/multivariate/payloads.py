"""The typed payloads of the multivariate orchestrations: inputs and outputs of every activity.

Each payload is a frozen dataclass with ``to_dict`` (the JSON the Durable runtime carries,
v1.1-style camelCase names) and ``from_dict`` (its reader). The flat ones go through one codec:
each field names its JSON key and how it reads (:func:`_wire`), and :func:`_encode` /
:func:`_decode` do the rest; the nested ones compose them. The orchestrations
(:mod:`shared.multivariate.workflow`) and the activities (:mod:`shared.multivariate.activities`)
exchange only these; a payload of the wrong shape raises :class:`~shared.errors.PayloadError`.

Standard library only: the function app imports it when it is indexed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar, cast

from shared.errors import PayloadError
from shared.jsontypes import JSONObject, JSONValue
from shared.multivariate.ids import detection_instance_id, model_id_for, training_instance_id

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: A v1.1 error body ``{"code", "message"}``.
ErrorBody = dict[str, str]


def as_object(value: object, what: str) -> Mapping[str, JSONValue]:
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


def _mapping(value: JSONValue) -> Mapping[str, JSONValue]:
    """A nested JSON object, or ``TypeError`` (the reader turns it into a PayloadError)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, not {type(value).__name__}")
    return value


def _int(value: JSONValue) -> int:
    """``int(value)`` for a JSON number or string; ``TypeError`` for anything else."""
    if not isinstance(value, str | int | float):
        raise TypeError(f"expected a number, not {type(value).__name__}")
    return int(value)


def _object_tuple(value: JSONValue) -> tuple[JSONObject, ...]:
    """A JSON array of objects (absent or empty: none), or ``TypeError``."""
    if not value:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"expected an array of objects, not {type(value).__name__}")
    return tuple(dict(_mapping(item)) for item in value)


def _objects(items: Sequence[Mapping[str, JSONValue]]) -> list[JSONObject]:
    return [dict(item) for item in items]


# --------------------------------------------------------------------------------------------
# The one codec of the flat payloads: each field names its JSON key and how it reads
# --------------------------------------------------------------------------------------------

_T = TypeVar("_T")
_P = TypeVar("_P", bound="DataclassInstance")


def _wire(
    key: str,
    read: Callable[[JSONValue], _T],
    *,
    write: Callable[[_T], object] | None = None,
    default: object = MISSING,
    absent: object = MISSING,
    omit_none: bool = False,
) -> _T:
    """A payload field: its JSON ``key``, its reader, its writer (default: as it is).

    ``default`` is the dataclass default; ``absent`` what a document without the key reads as
    (default: ``default``; neither: the key is required). ``omit_none`` leaves ``None`` out.
    """
    metadata = {
        "key": key,
        "read": read,
        "write": write,
        "absent": default if absent is MISSING else absent,
        "omit_none": omit_none,
    }
    if default is MISSING:
        return cast(_T, field(metadata=metadata))
    return cast(_T, field(default=default, metadata=metadata))


def _encode(payload: DataclassInstance) -> JSONObject:
    """The JSON object of a payload whose fields are :func:`_wire` fields."""
    document: JSONObject = {}
    for item in fields(payload):
        value = getattr(payload, item.name)
        if value is None and item.metadata["omit_none"]:
            continue
        write = item.metadata["write"]
        document[item.metadata["key"]] = value if write is None else write(value)
    return document


def _decode(cls: type[_P], document: object, what: str) -> _P:
    """Read :func:`_encode` output back (extra keys are ignored; absent ones take the default).

    Raises:
        PayloadError: Not a JSON object, a required key is absent, or a value does not read.
    """
    payload = as_object(document, what)
    article = "an" if what[0] in "aeiou" else "a"
    values: dict[str, object] = {}
    try:
        for item in fields(cls):
            key = item.metadata["key"]
            if key in payload:
                values[item.name] = item.metadata["read"](payload[key])
            elif item.metadata["absent"] is MISSING:
                raise PayloadError(f"Not {article} {what}: the key {key!r} is missing")
            else:
                values[item.name] = item.metadata["absent"]
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"Not {article} {what}: {exc!r}") from exc
    return cls(**values)


class _FlatPayload:
    """``to_dict`` / ``from_dict`` of a flat payload dataclass, by the one codec.

    ``to_dict`` gives the JSON object (the fields' keys, in field order); ``from_dict`` reads
    it back (as JSON text or decoded; extra keys ignored) and raises
    :class:`~shared.errors.PayloadError` for a document of the wrong shape.
    """

    _what: ClassVar[str]

    def to_dict(self) -> JSONObject:
        """The JSON object the runtime carries."""
        return _encode(cast("DataclassInstance", self))

    @classmethod
    def from_dict(cls, document: object) -> Self:
        """Read :meth:`to_dict` output.

        Raises:
            PayloadError: Not a JSON object, a required key is absent, or a value does not read.
        """
        return cast(Self, _decode(cast("type[DataclassInstance]", cls), document, cls._what))


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
        spec: Mapping[str, JSONValue] | None = None,
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
            source = _mapping(payload["dataSource"])
            spec = payload.get("spec")
            return cls(
                container=str(source["container"]),
                name=str(source["name"]),
                sha256=str(payload["sha256"]),
                instance_id=str(payload["instanceId"]),
                model_id=str(payload["modelId"]),
                spec=None if spec is None else dict(_mapping(spec)),
                poll_interval_seconds=_int(payload.get("pollIntervalSeconds", 10)),
                deadline_minutes=_int(payload.get("deadlineMinutes", 60)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"Not a training request: {exc!r}") from exc


@dataclass(frozen=True)
class ModelStep(_FlatPayload):
    """The input of train, status, detect and export: which model, in which run."""

    _what: ClassVar[str] = "model step"

    model_id: str = _wire("modelId", str)
    instance_id: str = _wire("instanceId", lambda value: str(value or ""), absent="")


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
class ModelOutcome(_FlatPayload):
    """What prepare, train, status and mark-failed return: the model's status and errors.

    Attributes:
        model_id: The model.
        status: ``CREATED``, ``RUNNING``, ``READY`` or ``FAILED``.
        errors: The model's coded errors.
        stale: Only from status: RUNNING under an expired lease (its worker is gone).
    """

    _what: ClassVar[str] = "model outcome"

    model_id: str = _wire("modelId", str, absent="")
    status: str = _wire("status", str)
    errors: tuple[ErrorBody, ...] = _wire("errors", _errors, write=_objects, default=())
    stale: bool | None = _wire(
        "stale", lambda value: None if value is None else bool(value), default=None, omit_none=True
    )


@dataclass(frozen=True)
class DetectionSummary(_FlatPayload):
    """What the training's detect step returns (the stored result holds the details)."""

    _what: ClassVar[str] = "detection summary"

    result_id: str = _wire("resultId", str)
    status: str = _wire("status", str)
    errors: tuple[ErrorBody, ...] = _wire("errors", _errors, write=_objects, default=())
    anomalies: int = _wire("anomalies", lambda value: _int(value or 0), default=0)
    timestamps: int = _wire("timestamps", lambda value: _int(value or 0), default=0)
    top_anomalies: tuple[JSONObject, ...] = _wire(
        "topAnomalies",
        _object_tuple,
        write=_objects,
        default=(),
    )


@dataclass(frozen=True)
class ExportOutcome(_FlatPayload):
    """Where the export step wrote the portable model zip."""

    _what: ClassVar[str] = "export outcome"

    container: str = _wire("container", str)
    name: str = _wire("name", str)
    bytes: int = _wire("bytes", _int)

    @property
    def location(self) -> str:
        """``container/name``."""
        return f"{self.container}/{self.name}"


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
class DetectionJob(_FlatPayload):
    """One batch detection requested through the API (the detection orchestration's input).

    Its JSON keys are snake_case: the field names the runtime has carried since v1.

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

    _what: ClassVar[str] = "detection job"

    model_id: str = _wire("model_id", str)
    result_id: str = _wire("result_id", str)
    container: str = _wire("container", str)
    name: str = _wire("name", str)
    sha256: str = _wire("sha256", str)
    data_source: str = _wire("data_source", str)
    start_time: str = _wire("start_time", str)
    end_time: str = _wire("end_time", str)
    top_contributor_count: int = _wire("top_contributor_count", _int)

    @property
    def instance_id(self) -> str:
        """The orchestration instance id of this detection."""
        return detection_instance_id(self.result_id)


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
class BatchOutcome(_FlatPayload):
    """What the detection orchestration's activities return."""

    _what: ClassVar[str] = "batch outcome"

    result_id: str = _wire("resultId", str)
    status: str = _wire("status", str)
    anomalies: int = _wire("anomalies", _int, default=0)
