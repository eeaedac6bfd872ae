"""The training spec (v1.1 field names, sidecar or metadata) and the windows it resolves to.

Training spec (sidecar ``NAME.json`` next to the upload, or blob metadata; v1.1 field names,
case-insensitive): ``startTime``/``endTime`` (training window; default: all data, or the data
before ``detectStartTime``), ``slidingWindow`` (28-2,880, default 300), ``alignPolicy``
(``alignMode`` Inner|Outer, ``fillNAMethod`` Previous|Subsequent|Linear|Zero|Fixed,
``paddingValue``), ``detectStartTime``/``detectEndTime`` (detection window; default: the data
after the training window, or the training window itself when nothing follows it),
``topContributorCount`` (default 10), ``displayName`` (at most 24 characters).

Pure: no storage. The CLI calls it on files, the activities on blobs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

import numpy as np

from shared.engine.multivariate import (
    SLIDING_WINDOW_RANGE,
)
from shared.errors import DatasetError
from shared.jsontypes import JSONObject
from shared.multivariate.datasets import AlignPolicy
from shared.timefmt import check_date_format, iso, optional_time, to_datetime64

logger = logging.getLogger(__name__)

DEFAULT_SLIDING_WINDOW = 300
DEFAULT_TOP_CONTRIBUTORS = 10
MAX_TOP_CONTRIBUTORS = 300
MAX_DISPLAY_NAME = 24

_SPEC_FIELDS = {
    "starttime": "startTime",
    "endtime": "endTime",
    "slidingwindow": "slidingWindow",
    "alignpolicy": "alignPolicy",
    "detectstarttime": "detectStartTime",
    "detectendtime": "detectEndTime",
    "topcontributorcount": "topContributorCount",
    "displayname": "displayName",
    "dateformat": "dateFormat",
}
#: v1.1 training-request fields that name the data; the data is the upload itself.
_DATA_FIELDS = {"datasource": "dataSource", "dataschema": "dataSchema"}
_ALIGN_FIELDS = {"alignmode": "alignMode", "fillnamethod": "fillNAMethod", "paddingvalue": ""}


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
        date_format: How numeric dates in the upload read: ``auto`` (decided from the whole
            dataset, an ambiguous one is an error), ``day-first``, ``month-first`` or a
            strftime pattern (:func:`shared.timefmt.date_order`).
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
    date_format: str = "auto"

    def to_dict(self) -> JSONObject:
        """The spec with v1.1 field names (times as ISO 8601 ``Z``; unset times left out)."""
        document: JSONObject = {
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
        if self.date_format != "auto":  # left out by default: existing ids stay the same
            document["dateFormat"] = self.date_format
        return document


def parse_training_spec(document: object) -> TrainingSpec:
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
            ``InvalidDisplayName``, ``InvalidDataSchema`` or ``InvalidDateFormat``; each
            message names the field and what is expected.
    """
    if document is None:
        return TrainingSpec()
    if not isinstance(document, Mapping):
        raise DatasetError(
            f"The training spec must be a JSON object, not {type(document).__name__}.",
            "InvalidSpec",
        )
    fields: dict[str, object] = {}
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
    sliding = whole_number(
        fields.get("slidingWindow", DEFAULT_SLIDING_WINDOW),
        "slidingWindow",
        low,
        high,
        "InvalidSlidingWindow",
    )
    top = whole_number(
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
    date_format = check_date_format(fields.get("dateFormat"), "dateFormat", DatasetError)
    return TrainingSpec(
        date_format=date_format,
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


def spec_from_metadata(metadata: Mapping[str, str]) -> JSONObject:
    """Turn blob metadata into a training-spec object (v1.1 names).

    Metadata values are text and cannot nest, so the align policy comes as the flat keys
    ``alignMode``, ``fillNAMethod`` and ``paddingValue``; numbers are converted. Keys other than
    the spec's are ignored (tools add their own metadata).

    Raises:
        DatasetError: ``InvalidSlidingWindow``, ``InvalidTopContributorCount`` or
            ``InvalidAlignPolicy`` for a number that does not parse.
    """
    spec: JSONObject = {}
    policy: JSONObject = {}
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


def merge_specs(metadata: Mapping[str, object] | None, sidecar: object) -> dict[str, object] | None:
    """Combine the metadata spec and the sidecar spec; the sidecar's fields win."""
    if metadata is None and sidecar is None:
        return None
    merged: dict[str, object] = {}
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


def whole_number(value: object, field_name: str, low: int, high: int, code: str) -> int:
    """``value`` as a whole number in ``[low, high]``, or a DatasetError with ``code``."""
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
