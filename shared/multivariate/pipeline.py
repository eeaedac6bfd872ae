"""Multivariate use cases: training spec, train, detect, export, and the orchestration's activities.

Two layers, one implementation:

* **Pure use cases** (no storage) that the CLI calls on files and the activities call on blobs:
  :func:`parse_training_spec` / :func:`spec_from_metadata` (the training spec with its
  defaults), :func:`train_model` (align, resolve the windows, fit), :func:`detect_batch` (align
  with history, detect, the v1.1 batch result as JSON and CSV), :func:`export_model` /
  :func:`load_export` (the portable model zip that ``meterwatch detect-mv --model`` loads).
* **Activities** (:class:`TrainingActivities`): what each step of the training orchestration
  does with storage: prepare/validate, train (under a lease, idempotent), report status, mark
  failed, detect, export, summarise. Each takes and returns JSON-ready dicts; a bad dataset or
  spec is recorded on the model as FAILED with its coded error and returned as an outcome (no
  retry helps), while storage errors propagate so the Durable runtime retries.

Training spec (sidecar ``NAME.json`` next to the upload, or blob metadata; v1.1 field names,
case-insensitive): ``startTime``/``endTime`` (training window; default: all data, or the data
before ``detectStartTime``), ``slidingWindow`` (28-2,880, default 300), ``alignPolicy``
(``alignMode`` Inner|Outer, ``fillNAMethod`` Previous|Subsequent|Linear|Zero|Fixed,
``paddingValue``), ``detectStartTime``/``detectEndTime`` (detection window; default: the data
after the training window, or the training window itself when nothing follows it),
``topContributorCount`` (default 10), ``displayName`` (at most 24 characters).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pandas as pd
from azure.core.exceptions import ResourceNotFoundError

from shared.engine.multivariate import (
    SLIDING_WINDOW_RANGE,
    MultivariateConfig,
    MultivariateModel,
    MultivariatePoint,
)
from shared.errors import DatasetError, InputError, ModelError
from shared.multivariate.datasets import (
    MIB,
    AlignPolicy,
    Dataset,
    DatasetLimits,
    align,
    load_dataset,
)
from shared.multivariate.registry import ModelRecord, ModelRegistry
from shared.multivariate.statuses import CREATED, FAILED, READY, RUNNING
from shared.multivariate.workflow import (
    DETECT_ACTIVITY,
    EXPORT_ACTIVITY,
    FAIL_ACTIVITY,
    PREPARE_ACTIVITY,
    STATUS_ACTIVITY,
    SUMMARY_ACTIVITY,
    TRAIN_ACTIVITY,
    TrainingRequest,
    content_hash,
    is_dataset_name,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import as_datetime, format_time, iso, optional_time, to_datetime64, utc_now

logger = logging.getLogger(__name__)

DEFAULT_SLIDING_WINDOW = 300
DEFAULT_TOP_CONTRIBUTORS = 10
MAX_TOP_CONTRIBUTORS = 300
MAX_DISPLAY_NAME = 24
#: How long a training lease holds. An activity cannot outlive the function timeout
#: (host.json: 10 minutes), so a RUNNING model whose lease is older belongs to a dead worker.
TRAINING_LEASE = timedelta(minutes=15)
EXPORT_FORMAT = "meterwatch-multivariate-export"
EXPORT_VERSION = 1
_EXPORT_MODEL = "model.mvm"
_EXPORT_INFO = "model.json"
_MAX_EXPORT_INFO_BYTES = 16 * MIB
_MAX_EXPORT_MODEL_BYTES = 512 * MIB

_SPEC_FIELDS = {
    "starttime": "startTime",
    "endtime": "endTime",
    "slidingwindow": "slidingWindow",
    "alignpolicy": "alignPolicy",
    "detectstarttime": "detectStartTime",
    "detectendtime": "detectEndTime",
    "topcontributorcount": "topContributorCount",
    "displayname": "displayName",
}
#: v1.1 training-request fields that name the data; the data is the upload itself.
_DATA_FIELDS = {"datasource": "dataSource", "dataschema": "dataSchema"}
_ALIGN_FIELDS = {"alignmode": "alignMode", "fillnamethod": "fillNAMethod", "paddingvalue": ""}


# --------------------------------------------------------------------------------------------
# Training spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSpec:
    """How to train on an upload, and which window to detect on afterwards.

    Attributes:
        start_time: First training timestamp (UTC); ``None``: the first timestamp.
        end_time: Last training timestamp; ``None``: see the module docstring.
        sliding_window: v1.1 ``slidingWindow`` (28-2,880).
        align_policy: v1.1 ``alignPolicy``.
        detect_start_time: First timestamp to detect on; ``None``: see the module docstring.
        detect_end_time: Last timestamp to detect on; ``None``: the last timestamp.
        top_contributor_count: Contributors listed per anomaly.
        display_name: v1.1 ``displayName``.
        data_schema: ``MultiTable`` or ``OneTable`` when the request named one.
    """

    start_time: datetime | None = None
    end_time: datetime | None = None
    sliding_window: int = DEFAULT_SLIDING_WINDOW
    align_policy: AlignPolicy = field(default_factory=AlignPolicy)
    detect_start_time: datetime | None = None
    detect_end_time: datetime | None = None
    top_contributor_count: int = DEFAULT_TOP_CONTRIBUTORS
    display_name: str = ""
    data_schema: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec with v1.1 field names (times as ISO 8601 ``Z``; unset times left out)."""
        document: dict[str, Any] = {
            "slidingWindow": self.sliding_window,
            "alignPolicy": self.align_policy.to_v11(),
            "topContributorCount": self.top_contributor_count,
            "displayName": self.display_name,
        }
        for name, value in (
            ("startTime", self.start_time),
            ("endTime", self.end_time),
            ("detectStartTime", self.detect_start_time),
            ("detectEndTime", self.detect_end_time),
        ):
            if value is not None:
                document[name] = iso(value)
        if self.data_schema is not None:
            document["dataSchema"] = self.data_schema
        return document


def parse_training_spec(document: Mapping[str, Any] | None) -> TrainingSpec:
    """Read a training spec (v1.1 names, case-insensitive); missing fields take the defaults.

    Args:
        document: The sidecar's JSON object, the merged metadata, or the HTTP request body;
            ``None`` for all defaults. ``dataSource`` is accepted and ignored (the upload is
            the data).

    Returns:
        The spec.

    Raises:
        DatasetError: ``InvalidSpec`` (not an object, unknown field), ``InvalidStartTime`` /
            ``InvalidEndTime`` (not a time, or a window that ends before it starts),
            ``InvalidSlidingWindow``, ``InvalidAlignPolicy``, ``InvalidTopContributorCount``,
            ``InvalidDisplayName`` or ``InvalidDataSchema``; each message names the field and
            what is expected.
    """
    if document is None:
        return TrainingSpec()
    if not isinstance(document, Mapping):
        raise DatasetError(
            f"The training spec must be a JSON object, not {type(document).__name__}.",
            "InvalidSpec",
        )
    fields: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in document.items():
        lowered = str(key).lower()
        if lowered in _SPEC_FIELDS:
            fields[_SPEC_FIELDS[lowered]] = value
        elif lowered in _DATA_FIELDS:
            fields[_DATA_FIELDS[lowered]] = value
        else:
            unknown.append(str(key))
    if unknown:
        known = ", ".join(sorted(_SPEC_FIELDS.values()))
        raise DatasetError(
            f"The training spec has unknown field(s) {', '.join(sorted(unknown))}; the fields "
            f"are {known}.",
            "InvalidSpec",
        )
    start = optional_time(fields.get("startTime"), "startTime", "InvalidStartTime")
    end = optional_time(fields.get("endTime"), "endTime", "InvalidEndTime")
    detect_start = optional_time(
        fields.get("detectStartTime"), "detectStartTime", "InvalidStartTime"
    )
    detect_end = optional_time(fields.get("detectEndTime"), "detectEndTime", "InvalidEndTime")
    if start is not None and end is not None and end <= start:
        raise DatasetError(
            f"endTime {iso(end)} is not after startTime {iso(start)}; the training window must "
            "end after it starts.",
            "InvalidEndTime",
        )
    if detect_start is not None and detect_end is not None and detect_end < detect_start:
        raise DatasetError(
            f"detectEndTime {iso(detect_end)} is before detectStartTime {iso(detect_start)}.",
            "InvalidEndTime",
        )
    low, high = SLIDING_WINDOW_RANGE
    sliding = _whole_number(
        fields.get("slidingWindow", DEFAULT_SLIDING_WINDOW),
        "slidingWindow",
        low,
        high,
        "InvalidSlidingWindow",
    )
    top = _whole_number(
        fields.get("topContributorCount", DEFAULT_TOP_CONTRIBUTORS),
        "topContributorCount",
        1,
        MAX_TOP_CONTRIBUTORS,
        "InvalidTopContributorCount",
    )
    policy = AlignPolicy.from_v11(fields.get("alignPolicy"))
    name = fields.get("displayName") or ""
    if not isinstance(name, str) or len(name) > MAX_DISPLAY_NAME:
        raise DatasetError(
            f"displayName {name!r} must be text of at most {MAX_DISPLAY_NAME} characters.",
            "InvalidDisplayName",
        )
    schema = fields.get("dataSchema")
    if schema is not None:
        if not isinstance(schema, str) or schema.lower() not in ("multitable", "onetable"):
            raise DatasetError(
                f"dataSchema {schema!r} is not valid; use MultiTable (a zip of one CSV per "
                "variable) or OneTable (one CSV with a column per variable).",
                "InvalidDataSchema",
            )
        schema = "MultiTable" if schema.lower() == "multitable" else "OneTable"
    return TrainingSpec(
        start_time=start,
        end_time=end,
        sliding_window=sliding,
        align_policy=policy,
        detect_start_time=detect_start,
        detect_end_time=detect_end,
        top_contributor_count=top,
        display_name=name,
        data_schema=schema,
    )


def spec_from_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Turn blob metadata into a training-spec object (v1.1 names).

    Metadata values are text and cannot nest, so the align policy comes as the flat keys
    ``alignMode``, ``fillNAMethod`` and ``paddingValue``; numbers are converted. Keys other than
    the spec's are ignored (tools add their own metadata).

    Raises:
        DatasetError: ``InvalidSlidingWindow``, ``InvalidTopContributorCount`` or
            ``InvalidAlignPolicy`` for a number that does not parse.
    """
    spec: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    for key, raw in metadata.items():
        lowered = key.lower()
        value = raw.strip()
        if lowered in ("slidingwindow", "topcontributorcount"):
            name = _SPEC_FIELDS[lowered]
            code = (
                "InvalidSlidingWindow" if name == "slidingWindow" else "InvalidTopContributorCount"
            )
            spec[name] = _int_text(value, name, code)
        elif lowered in _SPEC_FIELDS and lowered != "alignpolicy":
            spec[_SPEC_FIELDS[lowered]] = value
        elif lowered == "paddingvalue":
            try:
                policy["paddingValue"] = float(value)
            except ValueError as exc:
                raise DatasetError(
                    f"Blob metadata paddingValue {value!r} is not a number.", "InvalidAlignPolicy"
                ) from exc
        elif lowered in _ALIGN_FIELDS:
            policy[_ALIGN_FIELDS[lowered]] = value
    if policy:
        spec["alignPolicy"] = policy
    return spec


def merge_specs(
    metadata: Mapping[str, Any] | None, sidecar: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Combine the metadata spec and the sidecar spec; the sidecar's fields win."""
    if metadata is None and sidecar is None:
        return None
    merged: dict[str, Any] = {}
    for source in (metadata or {}, sidecar or {}):
        if not isinstance(source, Mapping):
            raise DatasetError(
                f"The training spec must be a JSON object, not {type(source).__name__}.",
                "InvalidSpec",
            )
        for key, value in source.items():
            for existing in [k for k in merged if k.lower() == str(key).lower()]:
                del merged[existing]
            merged[str(key)] = value
    return merged


def sidecar_names(name: str) -> list[str]:
    """Where the sidecar spec of a dataset blob may be: ``NAME.json``, then ``NAME.zip.json``."""
    path = PurePosixPath(name)
    return [str(path.with_suffix(".json")), f"{name}.json"]


def data_schema_of(name: str) -> str:
    """``MultiTable`` for a ``.zip``, ``OneTable`` for a ``.csv``."""
    return "MultiTable" if name.lower().endswith(".zip") else "OneTable"


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    """The resolved training and detection windows (inclusive, ``datetime64[s]`` UTC)."""

    train_start: np.datetime64
    train_end: np.datetime64
    detect_start: np.datetime64
    detect_end: np.datetime64

    def to_dict(self) -> dict[str, str]:
        """ISO 8601 ``Z`` strings."""
        return {
            "trainStart": iso(self.train_start),
            "trainEnd": iso(self.train_end),
            "detectStart": iso(self.detect_start),
            "detectEnd": iso(self.detect_end),
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, str]) -> Windows:
        """Read :meth:`to_dict` output."""
        return cls(
            train_start=to_datetime64(document["trainStart"]),
            train_end=to_datetime64(document["trainEnd"]),
            detect_start=to_datetime64(document["detectStart"]),
            detect_end=to_datetime64(document["detectEnd"]),
        )


def resolve_windows(spec: TrainingSpec, timestamps: np.ndarray) -> Windows:
    """Fill in the windows the spec leaves open, from the data's timestamps.

    Args:
        spec: The training spec.
        timestamps: The aligned data's timestamps (sorted ``datetime64[s]``).

    Returns:
        The windows.

    Raises:
        DatasetError: ``NotEnoughData`` when the data is empty or a window holds no timestamp.
    """
    stamps = np.asarray(timestamps).astype("datetime64[s]")
    if stamps.size == 0:
        raise DatasetError("The dataset has no timestamps.", "NotEnoughData")
    first: np.datetime64 = stamps[0]
    last: np.datetime64 = stamps[-1]
    train_start = first if spec.start_time is None else to_datetime64(spec.start_time)
    if spec.end_time is not None:
        train_end = to_datetime64(spec.end_time)
    elif spec.detect_start_time is not None:
        before = stamps[stamps < to_datetime64(spec.detect_start_time)]
        if before.size == 0:
            raise DatasetError(
                f"No data before detectStartTime {iso(spec.detect_start_time)} to train on; set "
                "startTime and endTime, or an earlier detectStartTime.",
                "NotEnoughData",
            )
        train_end = before[-1]
    else:
        train_end = last
    if spec.detect_start_time is not None:
        detect_start = to_datetime64(spec.detect_start_time)
    else:
        after = stamps[stamps > train_end]
        detect_start = after[0] if after.size else train_start
    detect_end = last if spec.detect_end_time is None else to_datetime64(spec.detect_end_time)
    if detect_end < detect_start:
        raise DatasetError(
            f"The detection window {iso(detect_start)} to {iso(detect_end)} is empty; set "
            "detectStartTime and detectEndTime inside the data "
            f"({iso(first)} to {iso(last)}).",
            "NotEnoughData",
        )
    return Windows(train_start, train_end, detect_start, detect_end)


# --------------------------------------------------------------------------------------------
# Train
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedModel:
    """A freshly trained model and what training saw.

    Attributes:
        model: The trained engine model.
        spec: The spec it was trained with.
        windows: The resolved windows.
        training: The aligned training window.
        seconds: Wall time of the fit.
    """

    model: MultivariateModel
    spec: TrainingSpec
    windows: Windows
    training: Dataset
    seconds: float


def dataset_limits(settings: Settings | None = None) -> DatasetLimits:
    """Upload limits: ``MV_MAX_UPLOAD_MB`` for the file, the engine's defaults otherwise."""
    defaults = DatasetLimits()
    if settings is None:
        return defaults
    upload = settings.mv_max_upload_mb * MIB
    return replace(
        defaults,
        max_zip_bytes=upload,
        max_uncompressed_bytes=max(defaults.max_uncompressed_bytes, upload),
    )


def read_dataset(
    data: bytes, name: str, limits: DatasetLimits | None = None
) -> dict[str, pd.Series]:
    """Read an upload (``.zip`` MultiTable or ``.csv`` OneTable) into raw series per variable.

    Raises:
        DatasetError: The upload cannot be used (coded; see :mod:`shared.multivariate.datasets`).
    """
    return load_dataset(data, name, limits or DatasetLimits())


def plan_training(series: Mapping[str, pd.Series], spec: TrainingSpec) -> tuple[Dataset, Windows]:
    """Align the data per the spec, resolve the windows and check there is enough to train on.

    Returns:
        The aligned training window and the resolved windows.

    Raises:
        DatasetError: ``NotEnoughData`` (fewer training timestamps than ``slidingWindow``, or an
            empty window) or an alignment error.
    """
    everything = align(series, spec.align_policy)
    windows = resolve_windows(spec, everything.timestamps)
    training = align(
        series,
        spec.align_policy,
        as_datetime(windows.train_start),
        as_datetime(windows.train_end),
    )
    if len(training) < spec.sliding_window:
        raise DatasetError(
            f"The training window {iso(windows.train_start)} to {iso(windows.train_end)} holds "
            f"{len(training)} timestamps, fewer than slidingWindow {spec.sliding_window}; widen "
            "the window (startTime/endTime) or lower slidingWindow (28 at least).",
            "NotEnoughData",
        )
    in_detection = (everything.timestamps >= windows.detect_start) & (
        everything.timestamps <= windows.detect_end
    )
    if not in_detection.any():
        raise DatasetError(
            f"No data in the detection window {iso(windows.detect_start)} to "
            f"{iso(windows.detect_end)}; the data covers {iso(everything.timestamps[0])} to "
            f"{iso(everything.timestamps[-1])}.",
            "NotEnoughData",
        )
    return training, windows


def train_model(
    series: Mapping[str, pd.Series],
    spec: TrainingSpec,
    progress: Callable[[float], None] | None = None,
) -> TrainedModel:
    """Train a multivariate model on the spec's training window.

    Args:
        series: Raw series per variable (:func:`read_dataset`).
        spec: The training spec.
        progress: Called with the share of the fit done, 0 to 1.

    Returns:
        The trained model with its windows and timing.

    Raises:
        DatasetError: The data cannot be trained on (coded).
    """
    training, windows = plan_training(series, spec)
    config = MultivariateConfig(
        sliding_window=spec.sliding_window, top_contributor_count=spec.top_contributor_count
    )
    started = time.perf_counter()
    model = MultivariateModel(config).fit(training, progress=progress)
    seconds = time.perf_counter() - started
    logger.info(
        "Trained on %s timestamps x %s variables in %.2fs",
        len(training),
        len(model.variables),
        seconds,
    )
    return TrainedModel(model, spec, windows, training, seconds)


def diagnostics_info(model: MultivariateModel, seconds: float) -> dict[str, Any]:
    """The v1.1 ``diagnosticsInfo`` of a trained model.

    The engine fits in closed form, so its "epochs" are the cross-validation folds: per fold,
    ``trainLosses`` and ``validationLosses`` both give the out-of-sample loss (the engine
    reports no separate in-sample loss) and ``latenciesInSeconds`` the fit's wall time shared
    equally among the folds.
    """
    diagnostics = model.diagnostics
    losses = [float(loss) for loss in diagnostics.losses]
    folds = max(len(losses), 1)
    return {
        "modelState": {
            "epochIds": list(range(1, len(losses) + 1)),
            "trainLosses": losses,
            "validationLosses": list(losses),
            "latenciesInSeconds": [round(seconds / folds, 6)] * len(losses),
        },
        "variableStates": [
            {
                "variable": name,
                "filledNARatio": float(diagnostics.filled_na_ratio.get(name, 0.0)),
                "effectiveCount": int(diagnostics.effective_count),
                "firstTimestamp": diagnostics.first_timestamp,
                "lastTimestamp": diagnostics.last_timestamp,
            }
            for name in model.variables
        ],
    }


def model_info(
    data_source: str, name: str, spec: TrainingSpec, windows: Windows | None = None
) -> dict[str, Any]:
    """The v1.1 ``modelInfo`` request fields of a training (status and diagnostics excluded)."""
    info: dict[str, Any] = {
        "dataSource": data_source,
        "dataSchema": spec.data_schema or data_schema_of(name),
        "displayName": spec.display_name,
        "slidingWindow": spec.sliding_window,
        "alignPolicy": spec.align_policy.to_v11(),
    }
    if windows is not None:
        info["startTime"] = iso(windows.train_start)
        info["endTime"] = iso(windows.train_end)
    else:
        if spec.start_time is not None:
            info["startTime"] = iso(spec.start_time)
        if spec.end_time is not None:
            info["endTime"] = iso(spec.end_time)
    return info


# --------------------------------------------------------------------------------------------
# Detect
# --------------------------------------------------------------------------------------------


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

    def to_v11(self) -> dict[str, Any]:
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
    data_source: str, top_contributor_count: int, start: Any, end: Any
) -> dict[str, Any]:
    """The v1.1 ``setupInfo`` of a batch detection."""
    return {
        "dataSource": data_source,
        "topContributorCount": top_contributor_count,
        "startTime": iso(start),
        "endTime": iso(end),
    }


def variable_states(window: Dataset) -> list[dict[str, Any]]:
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


def failed_result(
    result_id: str, setup: Mapping[str, Any], errors: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """A v1.1 batch result whose detection failed (``summary.status`` FAILED, no results)."""
    return {
        "resultId": result_id,
        "summary": {
            "status": FAILED,
            "errors": [dict(error) for error in errors],
            "variableStates": [],
            "setupInfo": dict(setup),
        },
        "results": [],
    }


def result_id_for(model_id: str, start: Any, end: Any, top: int, sha256: str = "") -> str:
    """A deterministic ``resultId``: the same model, window and data give the same id."""
    key = f"{model_id}\n{iso(start)}\n{iso(end)}\n{top}\n{sha256}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "meterwatch:mv-result:" + key))


def detect_batch(
    model: MultivariateModel,
    series: Mapping[str, pd.Series],
    policy: AlignPolicy,
    *,
    start: Any = None,
    end: Any = None,
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
        top = _whole_number(
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


def result_csv(result: Mapping[str, Any]) -> str:
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


def top_anomalies(result: Mapping[str, Any], count: int = 5) -> list[dict[str, Any]]:
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


def _point_v11(point: MultivariatePoint) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedModel:
    """A model loaded from an export zip.

    Attributes:
        model: The engine model.
        model_object: The v1.1 model object it was exported with (``{}`` for a bare engine file).
        align_policy: The align policy of training (detection aligns the same way).
    """

    model: MultivariateModel
    model_object: dict[str, Any]
    align_policy: AlignPolicy


def export_model(engine_bytes: bytes, model_object: Mapping[str, Any]) -> bytes:
    """The portable model zip: ``model.json`` (the v1.1 model object) and ``model.mvm``.

    ``meterwatch detect-mv --model`` loads it with no storage account. The bytes are the same
    for the same model (fixed member order and dates).
    """
    info = {
        "format": EXPORT_FORMAT,
        "formatVersion": EXPORT_VERSION,
        "model": dict(model_object),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, payload in (
            (_EXPORT_INFO, json.dumps(info, indent=2, sort_keys=True).encode()),
            (_EXPORT_MODEL, engine_bytes),
        ):
            entry = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, payload)
    return buffer.getvalue()


def load_export(data: bytes) -> ExportedModel:
    """Load an export zip (or a bare engine file from ``MultivariateModel.to_bytes``).

    Raises:
        ModelError: ``InvalidModel`` when the bytes are neither.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {info.filename: info for info in archive.infolist()}
            if _EXPORT_MODEL not in names:
                # A bare engine file: the engine checks it; detection aligns with the defaults.
                return ExportedModel(MultivariateModel.from_bytes(data), {}, AlignPolicy())
            info_entry = names.get(_EXPORT_INFO)
            if (
                info_entry is None
                or info_entry.file_size > _MAX_EXPORT_INFO_BYTES
                or names[_EXPORT_MODEL].file_size > _MAX_EXPORT_MODEL_BYTES
            ):
                raise ModelError(
                    "The model zip lacks model.json or is too large; export it again with "
                    "'meterwatch train'.",
                    "InvalidModel",
                )
            document = json.loads(archive.read(_EXPORT_INFO).decode("utf-8"))
            engine_bytes = archive.read(_EXPORT_MODEL)
    except ModelError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as exc:
        raise ModelError(
            f"Not a meterwatch model zip ({exc}); export one with 'meterwatch train'.",
            "InvalidModel",
        ) from exc
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ModelError("model.json is not a meterwatch model export.", "InvalidModel")
    if document.get("formatVersion") != EXPORT_VERSION:
        raise ModelError(
            f"Export format version {document.get('formatVersion')!r} is not supported "
            f"(this meterwatch reads version {EXPORT_VERSION}).",
            "InvalidModel",
        )
    model_object = document.get("model") or {}
    try:
        policy = AlignPolicy.from_v11((model_object.get("modelInfo") or {}).get("alignPolicy"))
    except DatasetError as exc:
        raise ModelError(
            f"model.json has an invalid alignPolicy ({exc.message}).", "InvalidModel"
        ) from exc
    return ExportedModel(MultivariateModel.from_bytes(engine_bytes), model_object, policy)


def local_model_object(
    trained: TrainedModel, data_source: str, name: str, sha256: str, now: datetime | None = None
) -> dict[str, Any]:
    """The v1.1 model object of a model trained outside the registry (the CLI)."""
    moment = format_time(now or utc_now())
    info = model_info(data_source, name, trained.spec, trained.windows)
    info.update(
        status=READY,
        errors=[],
        diagnosticsInfo=diagnostics_info(trained.model, trained.seconds),
    )
    key = f"{sha256}\n{json.dumps(trained.spec.to_dict(), sort_keys=True)}"
    return {
        "modelId": str(uuid.uuid5(uuid.NAMESPACE_URL, "meterwatch:mv-model:" + key)),
        "createdTime": moment,
        "lastUpdatedTime": moment,
        "modelInfo": info,
    }


# --------------------------------------------------------------------------------------------
# Data sources
# --------------------------------------------------------------------------------------------


def blob_url(store: BlobStore, ref: BlobRef) -> str:
    """The URL of a blob in the store's account (the v1.1 ``dataSource``)."""
    base = str(store.service.url).rstrip("/")
    return f"{base}/{quote(ref.container)}/{quote(ref.name)}"


def parse_data_source(value: Any, store: BlobStore, default_container: str) -> BlobRef:
    """Resolve a ``dataSource``: a name in the training container or a blob URL of this account.

    Args:
        value: ``energy.zip``, or ``https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME`` (a SAS
            query is ignored: the app reads with its own identity).
        store: The app's blob store (its account is the only one read).
        default_container: Container of plain names.

    Raises:
        DatasetError: ``InvalidDataSource`` for anything else (other hosts, other schemes,
            paths that climb out of the container).
    """
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(
            "dataSource must name the dataset blob: a name in the training container or a blob "
            "URL of this storage account.",
            "InvalidDataSource",
        )
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme:
        if parts.scheme not in ("http", "https"):
            raise DatasetError(
                f"dataSource {text!r}: only blob URLs of this storage account are read.",
                "InvalidDataSource",
            )
        base = urlsplit(str(store.service.url))
        prefix = base.path.rstrip("/") + "/"
        if parts.netloc.lower() != base.netloc.lower() or not parts.path.startswith(prefix):
            raise DatasetError(
                f"dataSource {text!r} is not in this app's storage account "
                f"({base.scheme}://{base.netloc}{base.path}); upload the dataset there.",
                "InvalidDataSource",
            )
        container, _, name = unquote(parts.path[len(prefix) :]).partition("/")
    else:
        container, name = default_container, text
    segments = [segment for segment in name.split("/") if segment]
    if not container or not segments or ".." in segments or name.startswith("/"):
        raise DatasetError(
            f"dataSource {text!r} does not name a blob (CONTAINER/NAME).", "InvalidDataSource"
        )
    if not is_dataset_name(name):
        raise DatasetError(
            f"dataSource {text!r}: upload a .zip (MultiTable) or a .csv (OneTable).",
            "UnsupportedFormat",
        )
    return BlobRef(container, name)


# --------------------------------------------------------------------------------------------
# Activities
# --------------------------------------------------------------------------------------------


Activity = Callable[[Mapping[str, Any]], dict[str, Any]]


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
        self.registry = ModelRegistry.from_settings(store, settings, clock)
        self.limits = dataset_limits(settings)

    def handlers(self) -> dict[str, Activity]:
        """Activity name → function (the Functions activities and the local runner use these)."""
        return {
            PREPARE_ACTIVITY: self.prepare,
            TRAIN_ACTIVITY: self.train,
            STATUS_ACTIVITY: self.status,
            FAIL_ACTIVITY: self.mark_failed,
            DETECT_ACTIVITY: self.detect,
            EXPORT_ACTIVITY: self.export,
            SUMMARY_ACTIVITY: self.summarize,
        }

    # ------------------------------------------------------------------ prepare

    def prepare(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create the model, read the spec and validate the dataset; record a bad one as FAILED.

        Returns:
            ``{"status", "modelId", "errors"}``: CREATED when training may start; FAILED with
            the coded errors otherwise; the current status when the model was prepared before.
        """
        request = TrainingRequest.from_dict(payload)
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
            return self._outcome(record)
        try:
            spec = self._spec_for(request, ref)
            series = self._read(ref, request.sha256)
            training, windows = plan_training(series, spec)
        except InputError as exc:
            return self._fail(request.model_id, exc)
        info = model_info(blob_url(self.store, ref), request.name, spec, windows)

        def prepared(current: ModelRecord) -> bool:
            if current.status != CREATED:
                return False
            current.info.update(info)
            current.internal.update(
                spec=spec.to_dict(), windows=windows.to_dict(), variables=list(training.variables)
            )
            return True

        _, record = self.registry.update(request.model_id, prepared)
        logger.info(
            "Prepared model %s: %s variables, training %s to %s",
            request.model_id,
            len(training.variables),
            info.get("startTime"),
            info.get("endTime"),
        )
        return self._outcome(record)

    def _spec_for(self, request: TrainingRequest, ref: BlobRef) -> TrainingSpec:
        if request.spec is not None:
            return parse_training_spec(request.spec)
        sidecar: Any = None
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
            raise _missing(ref) from exc
        return parse_training_spec(merge_specs(metadata or None, sidecar))

    def _read(self, ref: BlobRef, sha256: str) -> dict[str, pd.Series]:
        blob = self.store.container(ref.container).get_blob_client(ref.name)
        try:
            size = int(blob.get_blob_properties().size)
        except ResourceNotFoundError as exc:
            raise _missing(ref) from exc
        if size > self.limits.max_zip_bytes:
            raise DatasetError(
                f"{ref} is {size:,} bytes; the limit is {self.limits.max_zip_bytes:,} "
                "(MV_MAX_UPLOAD_MB).",
                "TooLarge",
            )
        try:
            data = self.store.get_bytes(ref)
        except ResourceNotFoundError as exc:
            raise _missing(ref) from exc
        if sha256 and content_hash(data) != sha256.lower():
            raise DatasetError(
                f"{ref} changed after it was uploaded; the newer upload is trained by its own run.",
                "DataSourceChanged",
            )
        return read_dataset(data, ref.name, self.limits)

    # ------------------------------------------------------------------ train

    def train(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Train the model under a lease; idempotent.

        A READY or FAILED model is returned as it is (a duplicate never trains twice); a model
        another worker is training (live lease) is returned as RUNNING for the orchestrator to
        poll; otherwise this worker takes the lease, trains, stores the artifact and marks the
        model READY (or FAILED with the coded error of a dataset the engine refuses). On an
        unexpected error the lease is given back (status CREATED) and the error propagates, so
        the runtime's retry trains again.

        Returns:
            ``{"status", "modelId", "errors"}``.
        """
        model_id = str(payload["modelId"])
        record = self.registry.get_record(model_id)
        if record.status in (READY, FAILED) or (
            record.status == RUNNING and not self._lease_expired(record)
        ):
            return self._outcome(record)
        lease = {"id": uuid.uuid4().hex, "expires": format_time(self.clock() + TRAINING_LEASE)}
        acquired, record = self.registry.transition(
            model_id,
            RUNNING,
            internal={"lease": lease},
            when=lambda current: (
                "windows" in current.internal
                and (current.status == CREATED or self._lease_expired(current))
            ),
        )
        if not acquired:
            return self._outcome(record)

        def holds_lease(current: ModelRecord) -> bool:
            return (current.internal.get("lease") or {}).get("id") == lease["id"]

        source = record.internal["dataSource"]
        ref = BlobRef(source["container"], source["name"])
        try:
            spec = parse_training_spec(record.internal["spec"])
            series = self._read(ref, str(record.internal.get("sha256", "")))
            trained = train_model(series, spec)
        except InputError as exc:
            return self._fail(model_id, exc, when=holds_lease)
        except BaseException:
            self.registry.transition(model_id, CREATED, internal={"lease": None}, when=holds_lease)
            raise
        self.registry.put_artifact(model_id, trained.model.to_bytes())
        _, record = self.registry.transition(
            model_id,
            READY,
            errors=[],
            diagnostics=diagnostics_info(trained.model, trained.seconds),
            internal={"lease": None, "variables": list(trained.model.variables)},
            when=holds_lease,
        )
        return self._outcome(record)

    def _lease_expired(self, record: ModelRecord) -> bool:
        lease = record.internal.get("lease") or {}
        expires = lease.get("expires")
        if not expires:
            return True
        return datetime.fromisoformat(str(expires)) <= self.clock()

    # ------------------------------------------------------------------ monitor

    def status(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The model's status; ``stale`` when it is RUNNING under an expired lease."""
        record = self.registry.get_record(str(payload["modelId"]))
        outcome = self._outcome(record)
        outcome["stale"] = record.status == RUNNING and self._lease_expired(record)
        return outcome

    def mark_failed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Mark the model FAILED with ``code`` and ``message`` (a READY model stays READY)."""
        error = {"code": str(payload["code"]), "message": str(payload.get("message", ""))}
        _, record = self.registry.transition(
            str(payload["modelId"]), FAILED, errors=[error], internal={"lease": None}
        )
        return self._outcome(record)

    # ------------------------------------------------------------------ detect

    def detect(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Detect on the spec's detection window; store the v1.1 result as JSON and CSV.

        Returns:
            ``{"resultId", "status", "errors", "anomalies", "timestamps", "topAnomalies"}``.

        Raises:
            ModelNotReadyError: The model is not READY.
        """
        model_id = str(payload["modelId"])
        record = self.registry.get_record(model_id)
        spec = parse_training_spec(record.internal["spec"])
        windows = Windows.from_dict(record.internal["windows"])
        source = record.internal["dataSource"]
        result = self.detect_window(
            model_id,
            BlobRef(source["container"], source["name"]),
            windows.detect_start,
            windows.detect_end,
            spec.top_contributor_count,
            sha256=str(record.internal.get("sha256", "")),
        )
        anomalies = sum(1 for item in result["results"] if item["value"]["isAnomaly"])
        return {
            "resultId": result["resultId"],
            "status": result["summary"]["status"],
            "errors": result["summary"]["errors"],
            "anomalies": anomalies,
            "timestamps": len(result["results"]),
            "topAnomalies": top_anomalies(result),
        }

    def detect_window(
        self,
        model_id: str,
        ref: BlobRef,
        start: Any,
        end: Any,
        top_contributor_count: int,
        *,
        sha256: str = "",
        result_id: str | None = None,
    ) -> dict[str, Any]:
        """Batch-detect with a READY model on a dataset blob and store the v1.1 result.

        A dataset the model cannot judge (other variables, no data in the window, a blob that
        changed since ``sha256`` was taken) gives a stored result with ``summary.status``
        FAILED and the coded error, not an exception.

        Args:
            model_id: The model.
            ref: The dataset blob (``.zip`` MultiTable or ``.csv`` OneTable).
            start: First timestamp to judge.
            end: Last timestamp to judge.
            top_contributor_count: Contributors per anomaly.
            sha256: Expected content hash of the blob (empty: not checked).
            result_id: The ``resultId`` (default: derived from model, window and data).

        Returns:
            The stored v1.1 batch result.

        Raises:
            ModelNotFoundError: No such model.
            ModelNotReadyError: The model is not READY.
        """
        engine_bytes = self.registry.get_artifact(model_id)
        record = self.registry.get_record(model_id)
        policy = AlignPolicy.from_v11(record.info.get("alignPolicy"))
        result_id = result_id or result_id_for(model_id, start, end, top_contributor_count, sha256)
        data_source = blob_url(self.store, ref)
        try:
            detection = detect_batch(
                MultivariateModel.from_bytes(engine_bytes),
                self._read(ref, sha256),
                policy,
                start=start,
                end=end,
                top_contributor_count=top_contributor_count,
                data_source=data_source,
                result_id=result_id,
            )
            result = detection.to_v11()
        except (InputError, ModelError) as exc:
            logger.warning(
                "Detection for model %s failed: %s (%s)", model_id, exc.message, exc.code
            )
            setup = setup_info(data_source, top_contributor_count, start, end)
            result = failed_result(result_id, setup, [exc.to_dict()])
        self.registry.put_result(model_id, result, result_csv(result))
        logger.info(
            "Detection for model %s: result %s is %s",
            model_id,
            result_id,
            result["summary"]["status"],
        )
        return result

    # ------------------------------------------------------------------ export and summary

    def export(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Write the portable export zip of a READY model.

        Returns:
            ``{"container", "name", "bytes"}`` of the export.
        """
        model_id = str(payload["modelId"])
        engine_bytes = self.registry.get_artifact(model_id)
        data = export_model(engine_bytes, self.registry.get(model_id))
        ref = self.registry.put_export(model_id, data)
        return {"container": ref.container, "name": ref.name, "bytes": len(data)}

    def summarize(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Write and return the run's summary (status, errors, anomalies, where things are)."""
        model_id = str(payload["modelId"])
        record = self.registry.get_record(model_id)
        detection = payload.get("detection") or {}
        export = payload.get("export") or {}
        summary: dict[str, Any] = {
            "instanceId": payload.get("instanceId"),
            "modelId": model_id,
            "status": record.status,
            "errors": record.info.get("errors", []),
            "dataSource": record.info.get("dataSource"),
            "displayName": record.info.get("displayName", ""),
            "variables": record.internal.get("variables", []),
            "windows": record.internal.get("windows"),
            "resultId": detection.get("resultId"),
            "detectionStatus": detection.get("status"),
            "detectionErrors": detection.get("errors", []),
            "anomalies": detection.get("anomalies"),
            "topAnomalies": detection.get("topAnomalies", []),
            "export": f"{export['container']}/{export['name']}" if export else None,
        }
        self.registry.put_summary(model_id, summary)
        return summary

    # ------------------------------------------------------------------ helpers

    def _fail(
        self,
        model_id: str,
        error: InputError,
        when: Callable[[ModelRecord], bool] | None = None,
    ) -> dict[str, Any]:
        logger.warning("Model %s FAILED: %s (%s)", model_id, error.message, error.code)
        _, record = self.registry.transition(
            model_id, FAILED, errors=[error.to_dict()], internal={"lease": None}, when=when
        )
        return self._outcome(record)

    @staticmethod
    def _outcome(record: ModelRecord) -> dict[str, Any]:
        return {
            "modelId": record.model_id,
            "status": record.status,
            "errors": record.info.get("errors", []),
        }


def run_activity(
    name: str, payload: Mapping[str, Any], store: BlobStore, settings: Settings
) -> dict[str, Any]:
    """Run one activity by name (what each activity function in ``functions/`` does)."""
    handlers = TrainingActivities(store, settings).handlers()
    if name not in handlers:
        raise KeyError(f"Unknown multivariate activity {name!r}")
    return handlers[name](payload)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _whole_number(value: Any, field_name: str, low: int, high: int, code: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(
            f"{field_name} {value!r} must be a whole number from {low} to {high}.", code
        )
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise DatasetError(
            f"{field_name} {value!r} must be a whole number from {low} to {high}.", code
        )
    number = int(value)
    if not low <= number <= high:
        raise DatasetError(
            f"{field_name} {number} is out of range: use a whole number from {low} to {high}.",
            code,
        )
    return number


def _int_text(value: str, field_name: str, code: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise DatasetError(
            f"Blob metadata {field_name} {value!r} is not a whole number.", code
        ) from exc


def _rounded(value: float) -> float:
    number = float(value)
    return round(number, 6) if math.isfinite(number) else 0.0


def _missing(ref: BlobRef) -> DatasetError:
    return DatasetError(
        f"The dataset {ref} does not exist (deleted after upload?); upload it again.",
        "DataSourceNotFound",
    )
