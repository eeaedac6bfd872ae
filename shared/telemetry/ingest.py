"""Ingest use case: a delivered batch of events in, ONE raw batch blob and dead letters out.

:func:`prepare_batch` is pure (parse, validate, de-duplicate, group, serialise) so that it can be
benchmarked alone; :func:`ingest_batch` writes its output. Names are deterministic: the raw batch
(:mod:`shared.telemetry.rawbatch`, v2) is named by the partition, the sequence range of the whole
delivered batch and the enqueued hour of its lowest-sequence event; a dead letter by partition
and sequence number. So a redelivered batch lands on the same names, and with create-only writes
it costs one refused request per blob and fires no second blob trigger.

Which reading a repeated timestamp keeps: events are taken in sequence-number order and
an event's readings in their position order, later ones winning, so the reading with the highest
(sequence number, position) stays, whatever order the batch was delivered in.

Per-event guard: one event can never take the batch down. Bad input is a coded
:class:`~shared.errors.TelemetryError`; anything else one event's parse raises (a case the
validation missed) is dead-lettered too, as ``UnreadableEvent``, and logged with its traceback.
Storage errors are not caught: the invocation raises and the runtime retries the batch.
"""

from __future__ import annotations

import base64
import json
import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.errors import TelemetryError
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import dead_letter_name, raw_batch_v2_name
from shared.telemetry.events import RawEvent, parse_event_rows
from shared.telemetry.rawbatch import BatchBlob, encode_raw_batch
from shared.timefmt import chronological, format_timestamp, iso_epoch

logger = logging.getLogger(__name__)

#: Content type of a raw batch blob (gzip of JSON lines).
RAW_BATCH_CONTENT_TYPE = "application/gzip"


@dataclass(frozen=True)
class PreparedBatch:
    """What one delivered batch turns into (one raw blob per partition: normally one)."""

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
    already_written: int = 0


#: Events in sequence order (a C-level key; a sequence number is one event, so ties are copies).
_delivery_order = operator.attrgetter("sequence_number")


def prepare_batch(events: Sequence[RawEvent]) -> PreparedBatch:
    """Parse, validate, de-duplicate, group and serialise a delivered batch.

    Args:
        events: The events of one trigger invocation, in any order.

    Returns:
        One raw batch v2 blob per partition in the batch (a trigger invocation reads one
        partition, so one blob) holding every valid reading, and one dead letter per bad event.
        A batch with no valid reading writes no raw blob (its dead letters keep everything).
    """
    if not events:
        return PreparedBatch()
    partitions: dict[str, list[RawEvent]] = {}
    for event in events:
        partitions.setdefault(event.partition_id, []).append(event)
    blobs: list[BatchBlob] = []
    dead: list[BatchBlob] = []
    readings = 0
    parsed_stamps: dict[object, str] = {}
    for partition in sorted(partitions):
        # Timsort is linear on the usual, already ordered delivery.
        ordered = sorted(partitions[partition], key=_delivery_order)
        groups: dict[tuple[str, str], dict[str, float]] = {}
        for event in ordered:
            try:
                rows = parse_event_rows(event, parsed_stamps)
            except TelemetryError as exc:
                dead.append(_dead_letter(event, exc.code, exc.message))
                continue
            except Exception as exc:  # noqa: BLE001 - the per-event guard (module docstring)
                logger.exception(
                    "Unexpected error parsing event %s of partition %s",
                    event.sequence_number,
                    event.partition_id,
                )
                reason = f"{type(exc).__name__}: {exc}"[:500]
                dead.append(_dead_letter(event, "UnreadableEvent", reason))
                continue
            for key, timestamp, value in rows:
                series = groups.get(key)
                if series is None:
                    groups[key] = {timestamp: value}
                else:
                    series[timestamp] = value
        if not groups:
            continue
        enqueued = _batch_enqueued_time(ordered, groups)
        first, last = ordered[0].sequence_number, ordered[-1].sequence_number
        data = encode_raw_batch(
            groups,
            partition=partition,
            first_sequence=first,
            last_sequence=last,
            enqueued_time=enqueued,
        )
        blobs.append(
            BatchBlob(raw_batch_v2_name(iso_epoch(enqueued), partition, first, last), data)
        )
        readings += sum(map(len, groups.values()))
    return PreparedBatch(blobs=blobs, dead_letters=dead, readings=readings, events=len(events))


def _batch_enqueued_time(
    ordered: Sequence[RawEvent], groups: dict[tuple[str, str], dict[str, float]]
) -> str:
    """Canonical enqueued time of the lowest-sequence event.

    Event Hubs always sets it; events built without one (the CLI's ``send``, tests) fall back to
    the newest enqueued time of the batch, else its newest reading: deterministic, and recent.
    """
    moment = ordered[0].enqueued_time
    if moment is None:
        known = [event.enqueued_time for event in ordered if event.enqueued_time is not None]
        if not known:
            newest = max(
                (stamp for series in groups.values() for stamp in series), key=chronological
            )
            return newest
        moment = max(known)
    return format_timestamp(moment.timestamp())


def _dead_letter(event: RawEvent, code: str, reason: str) -> BatchBlob:
    """The dead letter of one event: its payload, code, reason and metadata, named by sequence."""
    body: object = event.body
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        try:
            payload: object = raw.decode("utf-8")
        except UnicodeDecodeError:
            payload = {"base64": base64.b64encode(raw).decode("ascii")}
    else:  # not bytes at all (a broken caller): keep what it was, never fail here
        payload = {"repr": repr(body)[:10_000]}
    try:
        metadata = event.metadata()
    except Exception:  # noqa: BLE001 - properties of a broken caller must not lose the letter
        metadata = {"partitionId": event.partition_id, "sequenceNumber": event.sequence_number}
    document = {
        "source": "eventhub",
        "code": code,
        "reason": reason,
        "payload": payload,
        "metadata": metadata,
    }
    return BatchBlob(
        dead_letter_name(event.partition_id, event.sequence_number),
        json.dumps(document, indent=1, default=str).encode(),
    )


def ingest_batch(events: Sequence[RawEvent], store: BlobStore, settings: Settings) -> IngestReport:
    """Prepare a delivered batch and write its dead letters, then its raw batch.

    Dead letters go first, so that once the raw blob exists (and fires detection) everything of
    the batch is stored. Writes are create-only: a redelivered batch finds its blobs already
    there (same names, same bytes) and changes nothing.

    Raises:
        azure.core.exceptions.AzureError: A storage write failed; the runtime retries the batch,
            and the retry writes what is missing under the same names.
    """
    prepared = prepare_batch(events)
    existing = 0
    for blob in prepared.dead_letters:
        if not store.put_bytes_if_absent(
            BlobRef(settings.deadletter_container, blob.name),
            blob.data,
            content_type="application/json",
        ):
            existing += 1
    for blob in prepared.blobs:
        if not store.put_bytes_if_absent(
            BlobRef(settings.raw_container, blob.name),
            blob.data,
            content_type=RAW_BATCH_CONTENT_TYPE,
        ):
            existing += 1
    if prepared.dead_letters:
        logger.warning(
            "Dead-lettered %s of %s events into %s",
            len(prepared.dead_letters),
            prepared.events,
            settings.deadletter_container,
        )
    logger.info(
        "Ingested %s readings from %s events into %s (%s blobs already there)",
        prepared.readings,
        prepared.events,
        ", ".join(blob.name for blob in prepared.blobs) or "no raw batch",
        existing,
    )
    return IngestReport(
        events=prepared.events,
        readings=prepared.readings,
        raw_blobs=[blob.name for blob in prepared.blobs],
        dead_letters=[blob.name for blob in prepared.dead_letters],
        already_written=existing,
    )
