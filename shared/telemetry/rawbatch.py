"""The raw-batch blob format: one writer (:func:`encode_raw_batches`) and one reader.

A raw batch is the readings of one device's metric in one delivered Event Hub batch::

    {"version": 1, "deviceId": "m1", "metric": "power", "partitionId": "0",
     "firstSequenceNumber": 10, "lastSequenceNumber": 42,
     "readings": [["2006-12-16T17:24:00Z", 4.216], ...]}

Its name (:func:`shared.storage.names.raw_batch_name`) carries device, metric, day and the
sequence-number range; :class:`RawBatchName` parses it back. Readers use :func:`batch_rows`
(canonical text and value, with the delivery order) or :func:`readings_of_batch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from shared.errors import InputError
from shared.storage.names import batch_result_prefix, raw_batch_stem
from shared.telemetry.events import Reading
from shared.timefmt import chronological, parse_timestamp

#: Raw batch blob schema version (bump when the layout changes).
RAW_BATCH_VERSION = 1


class BatchBlob(NamedTuple):
    """One serialised blob to write: a raw batch or a dead letter."""

    name: str
    data: bytes


def encode_raw_batches(
    groups: Mapping[tuple[str, str], tuple[str, float] | dict[str, float]],
    partition: str,
    first: int,
    last: int,
) -> tuple[list[BatchBlob], int]:
    """Serialise the grouped readings of one delivered batch, one blob per (device, metric).

    Args:
        groups: ``(device, metric)`` → one ``(timestamp, value)`` or ``{timestamp: value}``, with
            canonical timestamp text (:func:`shared.timefmt.canonical_timestamp`).
        partition: The partition id(s) of the batch (``+``-joined).
        first: The batch's first sequence number.
        last: The batch's last sequence number.

    Returns:
        The blobs and the number of readings in them.
    """
    blobs: list[BatchBlob] = []
    count = 0
    header_tail = (
        f'"partitionId":"{partition}","firstSequenceNumber":{first},'
        f'"lastSequenceNumber":{last},"readings":['
    )
    name_tail = f"/{raw_batch_stem(partition, first, last)}.json"
    append = blobs.append
    new_blob = tuple.__new__
    # Hand-built JSON (the hot path): ids and metric names are validated to a safe alphabet,
    # timestamps are canonical text and values finite floats, whose repr is valid JSON (tests
    # check json.loads). The name is raw_batch_name()'s, from the first timestamp's day.
    head = f'{{"version":{RAW_BATCH_VERSION},"deviceId":"'
    for (device_id, metric), series in groups.items():
        if isinstance(series, tuple):
            first_stamp = series[0]
            readings = f'["{first_stamp}",{series[1]!r}]'
            count += 1
        else:
            stamps = sorted(series, key=chronological)
            first_stamp = stamps[0]
            readings = ",".join([f'["{stamp}",{series[stamp]!r}]' for stamp in stamps])
            count += len(stamps)
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (one call per blob saved).
        append(
            new_blob(
                BatchBlob,
                (
                    f"{device_id}/{metric}/{first_stamp[:10]}{name_tail}",
                    f'{head}{device_id}","metric":"{metric}",{header_tail}{readings}]}}'.encode(),
                ),
            )
        )
    return blobs, count


def batch_rows(document: Mapping[str, Any]) -> tuple[int, list[tuple[str, float]]]:
    """The delivery order (last sequence number) and ``(timestamp text, value)`` rows of a batch."""
    order = int(document.get("lastSequenceNumber", 0))
    return order, [(text, float(value)) for text, value in document["readings"]]


def readings_of_batch(document: dict[str, object]) -> list[Reading]:
    """Decode a raw batch blob document back into readings (used by detection)."""
    device_id = str(document["deviceId"])
    metric = str(document["metric"])
    rows = document["readings"]
    assert isinstance(rows, list)
    return [Reading(device_id, metric, parse_timestamp(text), float(value)) for text, value in rows]


@dataclass(frozen=True)
class RawBatchName:
    """The parts of a raw batch blob name (see :func:`shared.storage.names.raw_batch_name`)."""

    device_id: str
    metric: str
    day: str
    stem: str

    @classmethod
    def parse(cls, name: str) -> RawBatchName:
        """Parse ``{device}/{metric}/{YYYY-MM-DD}/{stem}.json``.

        Raises:
            InputError: The name is not a raw batch name.
        """
        parts = PurePosixPath(name).parts
        if len(parts) != 4 or not parts[3].endswith(".json"):
            raise InputError(
                f"{name!r} is not a raw batch blob ({{device}}/{{metric}}/{{day}}/{{batch}}.json).",
                "InvalidBlobName",
            )
        try:
            datetime.strptime(parts[2], "%Y-%m-%d")
        except ValueError as exc:
            raise InputError(f"{name!r}: {parts[2]!r} is not a day.", "InvalidBlobName") from exc
        return cls(parts[0], parts[1], parts[2], parts[3][: -len(".json")])

    def result_prefix(self) -> str:
        """Where this batch's request and results are stored in the results container."""
        return batch_result_prefix(self.device_id, self.metric, self.day, self.stem)
