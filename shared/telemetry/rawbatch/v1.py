"""The raw batch v1 reader: the old one-series-per-blob JSON documents still in the archive."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import RawBatchError
from shared.jsontypes import JSONValue
from shared.telemetry.rawbatch.model import (
    CANONICAL_EPOCH,
    RAW_BATCH_V1,
    RAW_BATCH_VERSION,
    RawBatch,
    collect_series,
    header_count,
)
from shared.telemetry.validation import checked_name, checked_timestamp, checked_value


def read_v1(name: str, document: Mapping[str, JSONValue]) -> RawBatch:
    """A raw batch from a v1 document (``deviceId``, ``metric``, ``readings`` as [time, value]).

    Raises:
        RawBatchError: Another version, a bad field, or a reading that is not [time, value].
    """
    if document.get("version") != RAW_BATCH_V1 or type(document.get("version")) is not int:
        raise RawBatchError(
            f"{name}: raw batch version {str(document.get('version'))[:40]!r}; this reader "
            f"reads version {RAW_BATCH_VERSION} and v1 documents.",
            "UnsupportedVersion",
        )
    device_id = checked_name(document.get("deviceId"), "deviceId", RawBatchError)
    metric = checked_name(document.get("metric"), "metric", RawBatchError)
    partition = document.get("partitionId", "0")
    if type(partition) is not str or not partition:
        raise RawBatchError(f"{name}: partitionId must be text.", "InvalidSchema")
    first = header_count(name, document, "firstSequenceNumber")
    last = header_count(name, document, "lastSequenceNumber")
    rows = document["readings"]
    if not isinstance(rows, list):
        raise RawBatchError(f"{name}: 'readings' must be a list of [time, value].", "InvalidSchema")
    readings: dict[str, tuple[int, float]] = {}
    for position, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 2 or type(row[1]) is bool:
            raise RawBatchError(
                f"{name}: reading {position} must be [timestamp, value].", "InvalidSchema"
            )
        readings[checked_timestamp(row[0], RawBatchError)] = (
            position,
            checked_value(row[1], "value", RawBatchError),
        )
    series = collect_series({(device_id, metric): {k: v[1] for k, v in readings.items()}})
    enqueued = series[0].timestamps[0] if series else CANONICAL_EPOCH
    return RawBatch(name, "eventhub", partition, first, last, enqueued, series)
