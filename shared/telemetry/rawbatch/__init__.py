"""The raw-batch blob format: the ONE writer (:func:`encode_raw_batch`) and ONE reader.

Raw batch v2 is one blob per delivered Event Hub batch, holding every valid reading of it (all
devices and metrics), named by :func:`shared.storage.names.raw_batch_v2_name`::

    batches/{YYYY}/{MM}/{DD}/{HH}/p{partition}-{first:020d}-{last:020d}.jsonl.gz

The hour is the enqueued time (UTC) of the batch's lowest-sequence event; partition and sequence
range are the whole delivered batch's (bad events included), so a redelivered batch overwrites
itself and a reading with a stray timestamp cannot hide the batch. The content is gzip (mtime 0,
no file name: the same readings give the same bytes) of UTF-8 JSON lines::

    {"format":"meterwatch.rawbatch","version":2,"source":"eventhub","partition":"0",
     "firstSequence":10,"lastSequence":42,"enqueuedTime":"2026-11-01T10:00:03.120000Z",
     "readings":3}
    {"deviceId":"m1","metric":"power","timestamps":["2026-11-01T10:00:00Z",...],"values":[1.5,...]}
    ...

Series lines are sorted by ``(deviceId, metric)``; timestamps are canonical text
(:func:`shared.timefmt.canonical_timestamp`), ascending and unique; values are finite floats
within the validation range (:mod:`shared.telemetry.validation`). Which reading a repeated
timestamp keeps (the highest sequence number and position in the event) is the ingest's rule
(:mod:`shared.telemetry.ingest`); the writer only sorts.

:func:`read_raw_batch` reads, from the bytes alone (the name only labels the result and gives an
IoT Hub blob its partition):

* raw batch v2 (gzip or plain JSON lines);
* raw batch v1, the old one-series-per-blob JSON documents still in the archive;
* blobs written by IoT Hub message routing to a storage endpoint with **JSON** encoding (one
  message object per line: ``EnqueuedTimeUtc``, ``Properties``,
  ``SystemProperties.connectionDeviceId``, ``Body`` as embedded JSON or base64), and with
  **Avro** encoding (:mod:`shared.telemetry.avro`, imported only when an Avro blob arrives). A
  routed message that is not valid telemetry is returned in :attr:`RawBatch.rejected` with its
  code, for the caller to dead-letter; the good ones are kept.

Anything else raises :class:`~shared.errors.RawBatchError` with a code and a reason, so the blob
trigger dead-letters the blob instead of retrying it.

The package, by subject: :mod:`.model` (constants and types), :mod:`.writer`, :mod:`.reader`
(tells the layout from the bytes) and the layouts' readers :mod:`.v2`, :mod:`.v1` and
:mod:`.routing`. Import from here.
"""

from __future__ import annotations

from shared.telemetry.rawbatch.model import (
    MAX_RAW_BATCH_BYTES,
    RAW_BATCH_FORMAT,
    RAW_BATCH_VERSION,
    BatchBlob,
    RawBatch,
    RejectedRecord,
    SeriesBatch,
)
from shared.telemetry.rawbatch.reader import read_raw_batch
from shared.telemetry.rawbatch.routing import RoutedMessage, routed_batch
from shared.telemetry.rawbatch.writer import encode_raw_batch

__all__ = [
    "MAX_RAW_BATCH_BYTES",
    "RAW_BATCH_FORMAT",
    "RAW_BATCH_VERSION",
    "BatchBlob",
    "RawBatch",
    "RejectedRecord",
    "RoutedMessage",
    "SeriesBatch",
    "encode_raw_batch",
    "read_raw_batch",
    "routed_batch",
]
