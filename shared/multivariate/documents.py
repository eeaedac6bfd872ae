"""The multivariate documents whose shape is fixed, as TypedDicts.

The v1.1 model object (with its ``modelInfo`` and ``diagnosticsInfo``), the model list, the
batch detection result (its ``summary`` and ``setupInfo``, and per-timestamp ``results`` with
``value`` and ``interpretation``), the detect-last response and the top anomalies; and the
model blob as stored (the object with meterwatch's bookkeeping beside it). Readers index them
with known keys and get precise types; the free-form parts (``alignPolicy``, the training
spec) are :data:`~shared.jsontypes.JSONObject`. The registry writes these documents and reads
them back from blobs it wrote; nothing here validates a document from outside.

Standard library only.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from shared.jsontypes import JSONObject

__all__ = [
    "BlobLocation",
    "Bookkeeping",
    "BookkeepingChange",
    "Contributor",
    "CorrelationChanges",
    "DetectionResult",
    "DiagnosticsInfo",
    "ErrorBody",
    "Interpretation",
    "LastDetection",
    "ModelDocument",
    "ModelInfo",
    "ModelList",
    "ModelState",
    "PointResult",
    "PointValue",
    "ResultSummary",
    "SetupInfo",
    "StoredModel",
    "TopAnomaly",
    "TrainingLease",
    "VariableState",
]

#: A v1.1 error body ``{"code", "message"}``.
ErrorBody = dict[str, str]


class VariableState(TypedDict):
    """What one variable of the data a training or detection used looked like."""

    variable: str
    filledNARatio: float
    effectiveCount: int
    firstTimestamp: str
    lastTimestamp: str


class ModelState(TypedDict):
    """Per training epoch (for the engine: per cross-validation fold), losses and latency."""

    epochIds: list[int]
    trainLosses: list[float]
    validationLosses: list[float]
    latenciesInSeconds: list[float]


class DiagnosticsInfo(TypedDict):
    """The v1.1 ``diagnosticsInfo`` of a model."""

    modelState: ModelState
    variableStates: list[VariableState]


class ModelInfo(TypedDict, total=False):
    """The v1.1 ``modelInfo``: the training request's fields, the status and diagnostics."""

    dataSource: str
    dataSchema: str
    displayName: str
    slidingWindow: int
    alignPolicy: JSONObject
    startTime: str
    endTime: str
    status: str
    errors: list[ErrorBody]
    diagnosticsInfo: DiagnosticsInfo


class ModelDocument(TypedDict):
    """The v1.1 model object."""

    modelId: str
    createdTime: str
    lastUpdatedTime: str
    modelInfo: ModelInfo


class ModelList(TypedDict):
    """The v1.1 list-models response."""

    models: list[ModelDocument]
    currentCount: int
    maxCount: int
    nextLink: str


class CorrelationChanges(TypedDict):
    """The variables whose correlation with a contributor changed."""

    changedVariables: list[str]


class Interpretation(TypedDict):
    """One contributor to an anomaly."""

    variable: str
    contributionScore: float
    correlationChanges: CorrelationChanges


class PointValue(TypedDict):
    """The judgement of one timestamp."""

    isAnomaly: bool
    severity: float
    score: float
    interpretation: list[Interpretation]


class PointResult(TypedDict):
    """One timestamp of a detection."""

    timestamp: str
    value: PointValue
    errors: list[ErrorBody]


class SetupInfo(TypedDict):
    """The ``setupInfo`` of a batch result: what the detection was asked to judge."""

    dataSource: str
    topContributorCount: int
    startTime: str
    endTime: str


class ResultSummary(TypedDict):
    """The ``summary`` of a batch result: its status, errors, the data judged and the setup."""

    status: str
    errors: list[ErrorBody]
    variableStates: list[VariableState]
    setupInfo: SetupInfo


class DetectionResult(TypedDict):
    """A v1.1 batch detection result."""

    resultId: str
    summary: ResultSummary
    results: list[PointResult]


class Contributor(TypedDict):
    """A contributor as :func:`~shared.multivariate.detection.top_anomalies` lists it."""

    variable: str
    contributionScore: float


class TopAnomaly(TypedDict):
    """One of the most severe anomalies of a result, with its top contributors."""

    timestamp: str
    severity: float
    score: float
    topContributors: list[Contributor]


class LastDetection(TypedDict):
    """The v1.1 detect-last response."""

    variableStates: list[VariableState]
    results: list[PointResult]


class BlobLocation(TypedDict):
    """A blob by container and name."""

    container: str
    name: str


class TrainingLease(TypedDict):
    """Who is training a RUNNING model, and until when (ISO 8601; none: expired)."""

    id: str
    expires: NotRequired[str]


class Bookkeeping(TypedDict, total=False):
    """What meterwatch keeps beside a v1.1 model object (not part of the contract).

    Attributes:
        dataSource: The training dataset blob.
        sha256: Its content hash when the training was accepted.
        instanceId: The training orchestration's instance id.
        spec: The canonical training spec (v1.1 field names).
        windows: The resolved training and detection windows (ISO 8601 ``Z``).
        variables: The variables the model was trained on.
        lease: The training lease of a RUNNING model.
        resultIds: The batch results stored for the model.
    """

    dataSource: BlobLocation
    sha256: str
    instanceId: str
    spec: JSONObject
    windows: dict[str, str]
    variables: list[str]
    lease: TrainingLease
    resultIds: list[str]


class BookkeepingChange(TypedDict, total=False):
    """Bookkeeping a status transition sets: a ``lease`` of ``None`` removes the lease."""

    lease: TrainingLease | None
    variables: list[str]


class StoredModel(TypedDict):
    """A model's blob: the v1.1 object and meterwatch's bookkeeping beside it."""

    model: ModelDocument
    meterwatch: Bookkeeping
