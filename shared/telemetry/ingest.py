"""Ingest use case: a delivered batch of events in, raw batch blobs and dead letters out.

:func:`prepare_batch` is pure (parse, validate, de-duplicate, group, serialise) so that it can be
benchmarked alone; :func:`ingest_batch` writes its output. Names are deterministic: a raw batch
is named by device, metric, day and the partition and sequence numbers of the delivered batch,
and a dead letter by partition and sequence number, so a redelivered batch overwrites itself.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from shared.errors import TelemetryError
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.telemetry.events import (
    RawEvent,
    Reading,
    chronological,
    format_timestamp,
    parse_event_rows,
    parse_timestamp,
)

logger = logging.getLogger(__name__)

#: Raw batch blob schema version (bump when the layout changes).
RAW_BATCH_VERSION = 1


class BatchBlob(NamedTuple):
    """One serialised blob to write: a raw batch or a dead letter."""

    name: str
    data: bytes


@dataclass(frozen=True)
class PreparedBatch:
    """What one delivered batch turns into."""

    blobs: list[BatchBlob] = field(default_factory=list)
    dead_letters: list[BatchBlob] = field(default_factory=list)
    readings: int = 0
    events: int = 0


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest_batch` wrote."""

    events: int
    readings: int
    raw_blobs: list[str]
    dead_letters: list[str]


def raw_batch_name(
    device_id: str, metric: str, first_timestamp: float, partition_id: str, first: int, last: int
) -> str:
    """Return the deterministic raw batch blob name.

    ``{device}/{metric}/{YYYY-MM-DD}/p{partition}-{first:020d}-{last:020d}.json``: the day of the
    batch's first reading lets detection list only recent days.
    """
    day = format_timestamp(first_timestamp)[:10]
    return f"{device_id}/{metric}/{day}/p{partition_id}-{first:020d}-{last:020d}.json"


def dead_letter_name(event: RawEvent) -> str:
    """Return the deterministic dead-letter blob name of an event."""
    return f"ingest/p{event.partition_id}/{event.sequence_number:020d}.json"


def prepare_batch(events: Sequence[RawEvent]) -> PreparedBatch:
    """Parse, validate, de-duplicate, group and serialise a delivered batch.

    Args:
        events: The events of one trigger invocation, in delivery order.

    Returns:
        One raw batch blob per (device, metric) and one dead letter per bad event. A reading
        repeated in the batch (same device, metric and timestamp) keeps its latest value.
    """
    if not events:
        return PreparedBatch()
    # Most groups hold one reading (many meters, one message each per batch): they stay a
    # (timestamp, value) tuple, and become a dict only when a second reading arrives.
    groups: dict[tuple[str, str], tuple[str, float] | dict[str, float]] = {}
    dead: list[BatchBlob] = []
    partitions = {event.partition_id for event in events}
    parsed_stamps: dict[Any, str] = {}
    for event in events:
        try:
            rows = parse_event_rows(event, parsed_stamps)
        except TelemetryError as exc:
            dead.append(_dead_letter(event, exc))
            continue
        for key, timestamp, value in rows:
            current = groups.get(key)
            if current is None or (isinstance(current, tuple) and current[0] == timestamp):
                groups[key] = (timestamp, value)
            elif isinstance(current, tuple):
                groups[key] = {current[0]: current[1], timestamp: value}
            else:
                current[timestamp] = value
    partition = "+".join(sorted(partitions))
    first = min(event.sequence_number for event in events)
    last = max(event.sequence_number for event in events)
    blobs: list[BatchBlob] = []
    count = 0
    header_tail = (
        f'"partitionId":"{partition}","firstSequenceNumber":{first},'
        f'"lastSequenceNumber":{last},"readings":['
    )
    name_tail = f"/p{partition}-{first:020d}-{last:020d}.json"
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
    return PreparedBatch(blobs=blobs, dead_letters=dead, readings=count, events=len(events))


def _dead_letter(event: RawEvent, error: TelemetryError) -> BatchBlob:
    try:
        payload: object = event.body.decode("utf-8")
    except UnicodeDecodeError:
        payload = {"base64": base64.b64encode(event.body).decode("ascii")}
    document = {
        "source": "eventhub",
        "code": error.code,
        "reason": error.message,
        "payload": payload,
        "metadata": event.metadata(),
    }
    return BatchBlob(dead_letter_name(event), json.dumps(document, indent=1).encode())


def ingest_batch(events: Sequence[RawEvent], store: BlobStore, settings: Settings) -> IngestReport:
    """Prepare a delivered batch and write its raw batches and dead letters.

    Raises:
        azure.core.exceptions.AzureError: A storage write failed; the runtime retries the batch,
            and the deterministic names make the retry overwrite what was already written.
    """
    prepared = prepare_batch(events)
    for blob in prepared.dead_letters:
        store.put_bytes(
            BlobRef(settings.deadletter_container, blob.name),
            blob.data,
            content_type="application/json",
        )
    for blob in prepared.blobs:
        store.put_bytes(
            BlobRef(settings.raw_container, blob.name), blob.data, content_type="application/json"
        )
    if prepared.dead_letters:
        logger.warning(
            "Dead-lettered %s of %s events into %s",
            len(prepared.dead_letters),
            prepared.events,
            settings.deadletter_container,
        )
    logger.info(
        "Ingested %s readings from %s events into %s raw batches",
        prepared.readings,
        prepared.events,
        len(prepared.blobs),
    )
    return IngestReport(
        events=prepared.events,
        readings=prepared.readings,
        raw_blobs=[blob.name for blob in prepared.blobs],
        dead_letters=[blob.name for blob in prepared.dead_letters],
    )


def readings_of_batch(document: dict[str, object]) -> list[Reading]:
    """Decode a raw batch blob document back into readings (used by detection)."""
    device_id = str(document["deviceId"])
    metric = str(document["metric"])
    rows = document["readings"]
    assert isinstance(rows, list)
    return [Reading(device_id, metric, parse_timestamp(text), float(value)) for text, value in rows]
