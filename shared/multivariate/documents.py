"""The v1.1 documents of the multivariate API whose shape is fixed, as TypedDicts.

The model object (with its ``modelInfo``), the model list, the batch detection result (its
``summary`` and per-timestamp ``results`` with ``value`` and ``interpretation``) and the
detect-last response. Readers index them with known keys and get precise types; the parts
that are free-form (``alignPolicy``) are
:data:`~shared.jsontypes.JSONObject`. The registry writes these documents and reads them back
from blobs it wrote; nothing here validates a document from outside.

Standard library only.
"""

from __future__ import annotations

from typing import TypedDict

from shared.jsontypes import JSONObject

__all__ = [
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
    "TopAnomaly",
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
