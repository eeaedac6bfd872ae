"""Batch detection, pure (no storage): align with history, detect, the v1.1 result as JSON and CSV.

The one place that spells the v1.1 batch result (``resultId``, ``summary``, ``results``), its
CREATED and FAILED forms and its CSV; the service (:mod:`shared.multivariate.service`) stores it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from shared.engine.multivariate import (
    MultivariateModel,
    MultivariatePoint,
)
from shared.errors import DatasetError, json_type
from shared.jsontypes import JSONObject
from shared.multivariate.datasets import AlignPolicy, Dataset, align
from shared.multivariate.documents import (
    DetectionResult,
    PointResult,
    SetupInfo,
    TopAnomaly,
    VariableState,
)
from shared.multivariate.payloads import DetectionJob
from shared.multivariate.spec import MAX_TOP_CONTRIBUTORS, whole_number
from shared.multivariate.statuses import FAILED, READY
from shared.numbers import lenient_number
from shared.timefmt import as_datetime, iso, to_datetime64

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchDetection:
    """Batch detection on a window: the points and the data they judged.

    Attributes:
        result_id: The v1.1 ``resultId``.
        data_source: Where the data came from (URL, blob or file name).
        start: First timestamp of the window.
        end: Last timestamp of the window.
        top_contributor_count: Contributors listed per anomaly.
        window: The aligned data of the window (history excluded).
        points: One verdict per timestamp of the window.
    """

    result_id: str
    data_source: str
    start: np.datetime64
    end: np.datetime64
    top_contributor_count: int
    window: Dataset
    points: list[MultivariatePoint]

    @property
    def anomalies(self) -> list[MultivariatePoint]:
        """The anomalous points, in time order."""
        return [point for point in self.points if point.is_anomaly]

    def to_v11(self) -> DetectionResult:
        """The v1.1 batch result (``resultId``, ``summary``, ``results``)."""
        return {
            "resultId": self.result_id,
            "summary": {
                "status": READY,
                "errors": [],
                "variableStates": variable_states(self.window),
                "setupInfo": setup_info(
                    self.data_source, self.top_contributor_count, self.start, self.end
                ),
            },
            "results": [_point_v11(point) for point in self.points],
        }


def setup_info(
    data_source: str, top_contributor_count: int, start: object, end: object
) -> SetupInfo:
    """The v1.1 ``setupInfo`` of a batch detection."""
    return {
        "dataSource": data_source,
        "topContributorCount": top_contributor_count,
        "startTime": iso(start),
        "endTime": iso(end),
    }


def variable_states(window: Dataset) -> list[VariableState]:
    """v1.1 ``variableStates`` of the data a detection judged."""
    if len(window) == 0:
        return []
    return [
        {
            "variable": name,
            "filledNARatio": float(window.filled_na_ratio.get(name, 0.0)),
            "effectiveCount": len(window),
            "firstTimestamp": iso(window.timestamps[0]),
            "lastTimestamp": iso(window.timestamps[-1]),
        }
        for name in window.variables
    ]


def pending_result(job: DetectionJob) -> DetectionResult:
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


def failed_result(
    result_id: str, setup: SetupInfo, errors: Sequence[Mapping[str, str]]
) -> DetectionResult:
    """A v1.1 batch result whose detection failed (``summary.status`` FAILED, no results)."""
    return {
        "resultId": result_id,
        "summary": {
            "status": FAILED,
            "errors": [dict(error) for error in errors],
            "variableStates": [],
            "setupInfo": setup.copy(),
        },
        "results": [],
    }


def result_id_for(model_id: str, start: object, end: object, top: int, sha256: str = "") -> str:
    """A deterministic ``resultId``: the same model, window and data give the same id."""
    key = f"{model_id}\n{iso(start)}\n{iso(end)}\n{top}\n{sha256}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "meterwatch:mv-result:" + key))


def detect_batch(
    model: MultivariateModel,
    series: Mapping[str, pd.Series],
    policy: AlignPolicy,
    *,
    start: object = None,
    end: object = None,
    top_contributor_count: int | None = None,
    data_source: str = "",
    result_id: str | None = None,
) -> BatchDetection:
    """Detect anomalies on ``[start, end]`` with up to ``slidingWindow`` rows of history before it.

    Args:
        model: A trained model.
        series: Raw series per variable; must hold exactly the model's variables.
        policy: The align policy the model was trained with.
        start: First timestamp to judge (default: the first of the data).
        end: Last timestamp to judge (default: the last of the data).
        top_contributor_count: Contributors per anomaly (default: the model's).
        data_source: Recorded in ``setupInfo``.
        result_id: The ``resultId`` (default: derived from the window).

    Returns:
        The detection.

    Raises:
        DatasetError: ``VariableMismatch`` (the variables differ from training),
            ``NotEnoughData`` (nothing in the window), ``InvalidTopContributorCount``, or an
            alignment error.
    """
    top = model.config.top_contributor_count
    if top_contributor_count is not None:
        top = whole_number(
            top_contributor_count,
            "topContributorCount",
            1,
            MAX_TOP_CONTRIBUTORS,
            "InvalidTopContributorCount",
        )
    _check_variables(model, list(series))
    everything = align(series, policy)
    stamps = everything.timestamps
    first = to_datetime64(start, "startTime") if start is not None else stamps[0]
    last = to_datetime64(end, "endTime") if end is not None else stamps[-1]
    if last < first:
        raise DatasetError(
            f"endTime {iso(last)} is before startTime {iso(first)}.", "InvalidEndTime"
        )
    begin = int(np.searchsorted(stamps, first, side="left"))
    stop = int(np.searchsorted(stamps, last, side="right"))
    if stop <= begin:
        raise DatasetError(
            f"No data between {iso(first)} and {iso(last)}; the data covers {iso(stamps[0])} to "
            f"{iso(stamps[-1])}.",
            "NotEnoughData",
        )
    history_start = stamps[max(0, begin - model.config.sliding_window)]
    data = align(series, policy, as_datetime(history_start), as_datetime(last))
    scorer = model
    if top != model.config.top_contributor_count:
        scorer = MultivariateModel.from_bytes(model.to_bytes())
        scorer.config = replace(model.config, top_contributor_count=top)
    points = scorer.detect(data, start=as_datetime(first))
    window = data.slice(as_datetime(first), as_datetime(last))
    return BatchDetection(
        result_id=result_id or result_id_for("", first, last, top),
        data_source=data_source,
        start=first,
        end=last,
        top_contributor_count=top,
        window=window,
        points=points,
    )


RESULT_CSV_COLUMNS = (
    "timestamp",
    "isAnomaly",
    "severity",
    "score",
    "topContributors",
    "changedVariables",
)


def result_csv(result: DetectionResult) -> str:
    """A v1.1 batch result as CSV, one row per timestamp.

    ``topContributors`` reads ``kitchen:0.52;voltage:0.29`` (variable and contribution score,
    highest first); ``changedVariables`` lists the variables whose correlations changed.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_CSV_COLUMNS)
    for item in result.get("results", []):
        value = item.get("value") or {}
        interpretation = value.get("interpretation") or []
        changed: list[str] = []
        for contributor in interpretation:
            for name in (contributor.get("correlationChanges") or {}).get("changedVariables", []):
                if name not in changed:
                    changed.append(name)
        writer.writerow(
            [
                item["timestamp"],
                "true" if value.get("isAnomaly") else "false",
                f"{float(value.get('severity', 0.0)):.6g}",
                f"{float(value.get('score', 0.0)):.6g}",
                ";".join(
                    f"{c['variable']}:{float(c['contributionScore']):.4g}" for c in interpretation
                ),
                ";".join(changed),
            ]
        )
    return buffer.getvalue()


def top_anomalies(result: DetectionResult, count: int = 5) -> list[TopAnomaly]:
    """The ``count`` most severe anomalies of a v1.1 batch result, with their top contributors."""
    flagged = [
        item for item in result.get("results", []) if (item.get("value") or {}).get("isAnomaly")
    ]
    flagged.sort(key=lambda item: (-float(item["value"]["severity"]), item["timestamp"]))
    return [
        {
            "timestamp": item["timestamp"],
            "severity": item["value"]["severity"],
            "score": item["value"]["score"],
            "topContributors": [
                {"variable": c["variable"], "contributionScore": c["contributionScore"]}
                for c in item["value"].get("interpretation", [])[:3]
            ],
        }
        for item in flagged[:count]
    ]


def anomaly_object(anomaly: TopAnomaly) -> JSONObject:
    """A top anomaly as the JSON object a detection summary carries."""
    return {
        "timestamp": anomaly["timestamp"],
        "severity": anomaly["severity"],
        "score": anomaly["score"],
        "topContributors": [
            {"variable": c["variable"], "contributionScore": c["contributionScore"]}
            for c in anomaly["topContributors"]
        ],
    }


def _point_v11(point: MultivariatePoint) -> PointResult:
    return {
        "timestamp": iso(point.timestamp),
        "value": {
            "isAnomaly": bool(point.is_anomaly),
            "severity": _rounded(point.severity),
            "score": _rounded(point.score),
            "interpretation": [
                {
                    "variable": contributor.variable,
                    "contributionScore": _rounded(contributor.contribution_score),
                    "correlationChanges": {
                        "changedVariables": list(getattr(contributor, "changed_variables", ()))
                    },
                }
                for contributor in point.interpretation
            ],
        },
        "errors": [],
    }


def _check_variables(model: MultivariateModel, names: Sequence[str]) -> None:
    missing = [name for name in model.variables if name not in names]
    extra = [name for name in names if name not in model.variables]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"not in training {', '.join(extra)}")
        raise DatasetError(
            f"The detection data's variables differ from the model's ({'; '.join(parts)}). The "
            f"model was trained on {', '.join(model.variables)}; send exactly these.",
            "VariableMismatch",
        )


def _rounded(value: float) -> float:
    number = float(value)
    return round(number, 6) if math.isfinite(number) else 0.0


#: Most variables of a detect-last request (v1.1: 300), most points per variable.
MAX_LAST_VARIABLES = 300
MAX_LAST_POINTS = 2880 * 4


def detecting_points(value: object, available: int) -> int:
    """How many trailing timestamps to judge (``detectingPoints`` of the preview; v1.1: 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(
            f"detectingPoints {value!r} must be a whole number of 1 or more.", "InvalidVariables"
        )
    return min(value, available)


def required_time(value: object, field_name: str, code: str) -> np.datetime64:
    """A required ISO 8601 time of a detection request, or a DatasetError with ``code``."""
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(
            f"{field_name} is required: an ISO 8601 time such as 2006-12-19T00:00:00Z.", code
        )
    try:
        return to_datetime64(value, field_name)
    except DatasetError as exc:
        raise DatasetError(exc.message, code) from exc


def parse_variables(value: object) -> dict[str, pd.Series]:
    """The ``variables`` of a detect-last request as raw series (v1.1 and preview names)."""
    if not isinstance(value, list) or not value:
        raise DatasetError(
            "variables must be a non-empty array of {variable, timestamps, values}.",
            "InvalidVariables",
        )
    if len(value) > MAX_LAST_VARIABLES:
        raise DatasetError(
            f"variables holds {len(value)} variables; at most {MAX_LAST_VARIABLES}.",
            "TooManyVariables",
        )
    series: dict[str, pd.Series] = {}
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise DatasetError(
                f"variables[{i}] must be an object, got {json_type(item)}.", "InvalidVariables"
            )
        name = item.get("variable", item.get("name"))
        stamps = item.get("timestamps")
        values = item.get("values")
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(f"variables[{i}].variable must be a name.", "InvalidVariables")
        if name in series:
            raise DatasetError(f"The variable {name!r} appears twice.", "InvalidVariables")
        if not isinstance(stamps, list) or not isinstance(values, list):
            raise DatasetError(
                f"variables[{i}] ({name}) needs arrays 'timestamps' and 'values'.",
                "InvalidVariables",
            )
        if len(stamps) != len(values) or not stamps:
            raise DatasetError(
                f"variables[{i}] ({name}) has {len(stamps)} timestamps and {len(values)} values; "
                "send one value per timestamp (at least one).",
                "InvalidVariables",
            )
        if len(stamps) > MAX_LAST_POINTS:
            raise DatasetError(
                f"variables[{i}] ({name}) has {len(stamps)} points; send at most "
                f"{MAX_LAST_POINTS} (the sliding window plus the points to judge).",
                "InvalidVariables",
            )
        numbers = np.empty(len(values), dtype=np.float64)
        for j, number in enumerate(values):
            if isinstance(number, int | float) and not isinstance(number, bool):
                numbers[j] = float(number)  # non-finite numbers are refused just below
                continue
            # Numeric text ("0.418") as the service read it; anything else is refused.
            parsed = lenient_number(number)
            if parsed is None:
                raise DatasetError(
                    f"variables[{i}] ({name}) values[{j}] must be a number (or numeric text "
                    f'such as "0.418"), got {json_type(number)}.',
                    "InvalidVariables",
                )
            numbers[j] = parsed
        if not np.isfinite(numbers).all():
            raise DatasetError(
                f"variables[{i}] ({name}) has values that are not finite.", "InvalidVariables"
            )
        if not all(isinstance(stamp, str) for stamp in stamps):
            raise DatasetError(
                f"variables[{i}] ({name}) timestamps must be ISO 8601 texts.", "InvalidTimestamp"
            )
        try:
            index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True, format="ISO8601"))
        except (ValueError, TypeError, OverflowError) as exc:
            raise DatasetError(
                f"variables[{i}] ({name}) has a timestamp that is not ISO 8601 ({exc}).",
                "InvalidTimestamp",
            ) from exc
        series[name] = pd.Series(numbers, index=index.tz_convert(None))
    return series


def top_contributors(value: object) -> int:
    """A request's ``topContributorCount`` (1 to 300), or a DatasetError."""
    return whole_number(
        value, "topContributorCount", 1, MAX_TOP_CONTRIBUTORS, "InvalidTopContributorCount"
    )
