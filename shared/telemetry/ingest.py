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
from typing import Any

from shared.errors import TelemetryError
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import dead_letter_name
from shared.telemetry.events import RawEvent, parse_event_rows
from shared.telemetry.rawbatch import BatchBlob, encode_raw_batches

logger = logging.getLogger(__name__)


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
    blobs, count = encode_raw_batches(groups, partition, first, last)
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
    return BatchBlob(
        dead_letter_name(event.partition_id, event.sequence_number),
        json.dumps(document, indent=1).encode(),
    )


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
