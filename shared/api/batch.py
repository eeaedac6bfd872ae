"""Batch detection requested through the API, as a Durable orchestration.

``POST .../multivariate/models/{modelId}:detect-batch`` answers 202 at once with a CREATED
result; the detection itself runs in an orchestration (one activity, retried on transient
failures; when the retries are spent, a second activity records the result as FAILED so a
client polling ``detect-batch/{resultId}`` always gets an answer). The Durable host runs it in
the function app (``functions/api.py``), the in-process runner under ``meterwatch serve``.

This module is light on purpose (standard library only): the function app imports it when it
is indexed. The activities live in :class:`shared.api.multivariate.BatchDetectionActivities`.

Result and instance ids are deterministic (model, window, top contributors and the data's
hash): the same request twice finds the same result and never runs a second detection.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Orchestrator and activity names (the functions in ``functions/api.py`` carry them).
DETECTION_ORCHESTRATOR = "mv_api_detection_orchestrator"
DETECT_ACTIVITY = "mv_api_detect"
DETECT_FAILED_ACTIVITY = "mv_api_detect_failed"
_INSTANCE_PREFIX = "mvdetect-"


@dataclass(frozen=True)
class DetectionJob:
    """One batch detection (the orchestration's JSON input).

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
        return _INSTANCE_PREFIX + self.result_id

    def to_dict(self) -> dict[str, Any]:
        """The orchestration input."""
        return asdict(self)

    @classmethod
    def from_dict(cls, document: Any) -> DetectionJob:
        """Read :meth:`to_dict` output (as JSON text or decoded).

        Raises:
            ValueError: Not a detection job (a programming error: inputs come from ``to_dict``).
        """
        if isinstance(document, str):
            document = json.loads(document)
        if not isinstance(document, Mapping):
            raise ValueError(f"Not a detection job: {type(document).__name__}")
        try:
            return cls(
                model_id=str(document["model_id"]),
                result_id=str(document["result_id"]),
                container=str(document["container"]),
                name=str(document["name"]),
                sha256=str(document["sha256"]),
                data_source=str(document["data_source"]),
                start_time=str(document["start_time"]),
                end_time=str(document["end_time"]),
                top_contributor_count=int(document["top_contributor_count"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"Not a detection job: {exc}") from exc


def pending_result(job: DetectionJob) -> dict[str, Any]:
    """The v1.1 batch result of an accepted detection that has not run yet (status CREATED)."""
    return {
        "resultId": job.result_id,
        "summary": {
            "status": "CREATED",
            "errors": [],
            "variableStates": [],
            "setupInfo": {
                "dataSource": job.data_source,
                "topContributorCount": job.top_contributor_count,
                "startTime": job.start_time,
                "endTime": job.end_time,
            },
        },
        "results": [],
    }


def detection_orchestration(
    context: Any, retry_options: Any
) -> Generator[Any, Any, dict[str, Any]]:
    """Detect, or record the failure once the retries are spent. Deterministic, no I/O.

    Args:
        context: The Durable orchestration context (or the local runner's).
        retry_options: The SDK's ``RetryOptions`` (or the local runner's equivalent).

    Returns:
        ``{"resultId", "status", ...}`` from the activity that ran last.
    """
    job = DetectionJob.from_dict(context.get_input())
    try:
        outcome: dict[str, Any] = yield context.call_activity_with_retry(
            DETECT_ACTIVITY, retry_options, job.to_dict()
        )
    except Exception as exc:  # the runtime's retries are spent: the result must say so
        outcome = yield context.call_activity_with_retry(
            DETECT_FAILED_ACTIVITY,
            retry_options,
            {**job.to_dict(), "message": (str(exc).strip() or type(exc).__name__)[:1000]},
        )
    return outcome
