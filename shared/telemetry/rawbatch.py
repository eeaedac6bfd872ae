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

:class:`RawBatchName`, :func:`batch_rows` and :func:`readings_of_batch` read the v1 layout for the
v1 detector until the per-batch judge replaces it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import numpy as np

from shared.errors import InputError, RawBatchError
from shared.storage.names import batch_result_prefix, raw_batch_stem
from shared.telemetry.events import IOTHUB_DEVICE_PROPERTY, RawEvent, Reading, parse_event_rows
from shared.telemetry.validation import checked_name, checked_timestamp, checked_value
from shared.timefmt import chronological, iso_epoch, parse_timestamp

#: The ``format`` of a raw batch header.
RAW_BATCH_FORMAT = "meterwatch.rawbatch"
#: The raw batch version this module writes.
RAW_BATCH_VERSION = 2
#: v1, the one-series-per-blob layout (read only).
RAW_BATCH_V1 = 1
#: Largest decompressed raw blob read (a delivered batch of readings is far smaller; a bigger one
#: is a decompression bomb or not ours).
MAX_RAW_BATCH_BYTES = 256 * 1024 * 1024
#: gzip compression level (see bench/README.md: 1 costs a third of 6's CPU for ~15 % more bytes).
GZIP_LEVEL = 1

_GZIP_MAGIC = b"\x1f\x8b"
_AVRO_MAGIC = b"Obj\x01"
_HEADER_KEYS = (
    "format",
    "version",
    "source",
    "partition",
    "firstSequence",
    "lastSequence",
    "enqueuedTime",
    "readings",
)


class BatchBlob(NamedTuple):
    """One serialised blob to write: a raw batch or a dead letter."""

    name: str
    data: bytes


@dataclass(frozen=True, eq=False)
class SeriesBatch:
    """The readings of one (device, metric) series in a raw batch, ascending and unique."""

    device_id: str
    metric: str
    timestamps: tuple[str, ...]
    epochs: np.ndarray  # float64 seconds since the Unix epoch, UTC
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class RejectedRecord:
    """A message of an IoT Hub routing blob that is not valid telemetry (to dead-letter)."""

    index: int
    code: str
    reason: str
    payload: str


@dataclass(frozen=True, eq=False)
class RawBatch:
    """A raw blob read back: the batch's provenance and its series."""

    name: str
    source: str  # "eventhub" or "iothub"
    partition: str
    first_sequence: int
    last_sequence: int
    enqueued_time: str  # canonical ISO text, UTC
    series: tuple[SeriesBatch, ...]
    rejected: tuple[RejectedRecord, ...] = ()

    @property
    def readings(self) -> int:
        """How many readings the batch holds."""
        return sum(len(series) for series in self.series)


# --------------------------------------------------------------------------------------- writer


def encode_raw_batch(
    series: Mapping[tuple[str, str], Mapping[str, float]],
    *,
    partition: str,
    first_sequence: int,
    last_sequence: int,
    enqueued_time: str,
    source: str = "eventhub",
) -> bytes:
    """Serialise the readings of one delivered batch as raw batch v2 bytes (gzip JSON lines).

    Args:
        series: ``(device_id, metric)`` → ``{canonical timestamp: value}``, already validated
            (names by :func:`~shared.telemetry.validation.checked_name`, values finite and in
            range) and de-duplicated.
        partition: The batch's partition.
        first_sequence: The lowest sequence number delivered (bad events included).
        last_sequence: The highest.
        enqueued_time: Canonical text of the lowest-sequence event's enqueued time.
        source: Where the batch came from.

    Returns:
        Deterministic bytes: the same readings give the same bytes, whatever order they came in.
    """
    lines: list[str] = []
    count = 0
    # Hand-built JSON (the hot path): names are validated to a JSON-safe alphabet, timestamps are
    # canonical text and values finite floats, whose repr is valid JSON (tests read it back with
    # json.loads and read_raw_batch).
    for (device_id, metric), readings in series.items():
        if len(readings) == 1:  # the usual case: one reading of a meter per batch
            ((stamp, value),) = readings.items()
            count += 1
            lines.append(
                f'{{"deviceId":"{device_id}","metric":"{metric}","timestamps":["{stamp}"],'
                f'"values":[{value!r}]}}'
            )
            continue
        if not readings:
            continue
        stamps = sorted(readings, key=chronological)
        count += len(stamps)
        lines.append(
            f'{{"deviceId":"{device_id}","metric":"{metric}","timestamps":["'
            + '","'.join(stamps)
            + '"],"values":['
            + ",".join([repr(readings[stamp]) for stamp in stamps])
            + "]}"
        )
    # Sorting the lines as text sorts them by (deviceId, metric), at half the cost of sorting
    # the key tuples: each name ends with '"', which sorts below every character a name may hold.
    lines.sort()
    header = json.dumps(
        {
            "format": RAW_BATCH_FORMAT,
            "version": RAW_BATCH_VERSION,
            "source": source,
            "partition": partition,
            "firstSequence": first_sequence,
            "lastSequence": last_sequence,
            "enqueuedTime": enqueued_time,
            "readings": count,
        },
        separators=(",", ":"),
    )
    text = "\n".join([header, *lines]) + "\n"
    return gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL, mtime=0)


# --------------------------------------------------------------------------------------- reader


def read_raw_batch(name: str, data: bytes) -> RawBatch:
    """Read a raw blob: raw batch v2 or v1, or an IoT Hub routing blob (JSON or Avro).

    Args:
        name: The blob's name in the raw container (labels the result; gives an IoT Hub
            routing blob its partition, ``{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}``).
        data: The blob's bytes.

    Returns:
        The batch.

    Raises:
        RawBatchError: The blob is empty, truncated, not JSON, not one of the layouts above, of
            another version, or holds an invalid name, value or timestamp.
    """
    if not data:
        raise RawBatchError(f"{name}: the blob is empty.", "EmptyBlob")
    try:
        if data[:4] == _AVRO_MAGIC:
            return _read_avro(name, data)
        if data[:2] == _GZIP_MAGIC:
            data = _gunzip(name, data)
            if data[:4] == _AVRO_MAGIC:
                return _read_avro(name, data)
        if len(data) > MAX_RAW_BATCH_BYTES:
            raise RawBatchError(
                f"{name}: {len(data)} bytes is more than a raw batch may hold "
                f"({MAX_RAW_BATCH_BYTES}).",
                "TooLarge",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RawBatchError(
                f"{name}: not UTF-8 text at byte {exc.start}.", "InvalidEncoding"
            ) from exc
        return _read_json_text(name, text.removeprefix("\ufeff"))
    except RawBatchError:
        raise
    except InputError as exc:
        raise RawBatchError(f"{name}: {exc.message}", exc.code) from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # The layouts are validated field by field above; this is the guard that keeps the
        # contract (a RawBatch or a RawBatchError, never another exception) for shapes nobody
        # thought of.
        raise RawBatchError(
            f"{name}: not a readable raw batch ({type(exc).__name__}: {str(exc)[:200]}).",
            "InvalidSchema",
        ) from exc
    except RecursionError as exc:
        raise RawBatchError(f"{name}: JSON nested too deeply.", "InvalidJson") from exc


def _gunzip(name: str, data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_RAW_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise RawBatchError(f"{name}: not valid gzip ({exc}).", "InvalidGzip") from exc
    if len(out) > MAX_RAW_BATCH_BYTES or inflater.unconsumed_tail:
        raise RawBatchError(
            f"{name}: inflates to more than {MAX_RAW_BATCH_BYTES} bytes.", "TooLarge"
        )
    if not inflater.eof:
        raise RawBatchError(f"{name}: the gzip stream is truncated.", "InvalidGzip")
    if inflater.unused_data:
        raise RawBatchError(f"{name}: data after the end of the gzip stream.", "InvalidGzip")
    return out


def _read_json_text(name: str, text: str) -> RawBatch:
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise RawBatchError(f"{name}: no JSON in the blob.", "EmptyBlob")
    first = _json_line(name, lines[0], 1)
    if isinstance(first, dict) and "format" in first:
        return _read_v2(name, first, lines[1:])
    if isinstance(first, dict) and "EnqueuedTimeUtc" in first:
        return _read_iothub(name, lines)
    if isinstance(first, dict) and "readings" in first and "deviceId" in first:
        if len(lines) != 1:
            raise RawBatchError(f"{name}: a v1 raw batch is one JSON document.", "InvalidSchema")
        return _read_v1(name, first)
    raise RawBatchError(
        f'{name}: line 1 is neither a raw batch header ({{"format": '
        f'"{RAW_BATCH_FORMAT}", ...}}) nor an IoT Hub routing message '
        '({"EnqueuedTimeUtc": ..., "Body": ...}).',
        "InvalidSchema",
    )


def _json_line(name: str, line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except RecursionError as exc:
        raise RawBatchError(
            f"{name}, line {number}: JSON nested too deeply.", "InvalidJson"
        ) from exc
    except ValueError as exc:
        raise RawBatchError(f"{name}, line {number}: not JSON ({exc}).", "InvalidJson") from exc


def _read_v2(name: str, header: dict[str, Any], lines: Sequence[str]) -> RawBatch:
    if header.get("format") != RAW_BATCH_FORMAT:
        raise RawBatchError(
            f"{name}: header format {str(header.get('format'))[:80]!r} is not "
            f"{RAW_BATCH_FORMAT!r}.",
            "InvalidSchema",
        )
    version = header.get("version")
    if version != RAW_BATCH_VERSION or type(version) is not int:
        raise RawBatchError(
            f"{name}: raw batch version {str(version)[:40]!r}; this reader reads version "
            f"{RAW_BATCH_VERSION} (and v1 documents).",
            "UnsupportedVersion",
        )
    missing = [key for key in _HEADER_KEYS if key not in header]
    if missing:
        raise RawBatchError(f"{name}: header lacks {', '.join(missing)}.", "InvalidSchema")
    source = _text(name, header, "source")
    partition = _text(name, header, "partition")
    first = _count(name, header, "firstSequence")
    last = _count(name, header, "lastSequence")
    if last < first:
        raise RawBatchError(
            f"{name}: lastSequence {last} < firstSequence {first}.", "InvalidSchema"
        )
    enqueued = _text(name, header, "enqueuedTime")
    if checked_timestamp(enqueued, RawBatchError) != enqueued:
        raise RawBatchError(
            f"{name}: enqueuedTime {enqueued[:40]!r} is not canonical UTC text.",
            "InvalidTimestamp",
        )
    declared = _count(name, header, "readings")
    series: list[SeriesBatch] = []
    previous: tuple[str, str] | None = None
    for number, line in enumerate(lines, start=2):
        document = _json_line(name, line, number)
        if not isinstance(document, dict):
            raise RawBatchError(f"{name}, line {number}: not a series object.", "InvalidSchema")
        one = _series_line(f"{name}, line {number}", document)
        key = (one.device_id, one.metric)
        if previous is not None and key <= previous:
            raise RawBatchError(
                f"{name}, line {number}: series not sorted and unique by (deviceId, metric).",
                "InvalidSchema",
            )
        previous = key
        series.append(one)
    total = sum(len(one) for one in series)
    if total != declared:
        raise RawBatchError(
            f"{name}: header says {declared} readings, the series hold {total} (truncated?).",
            "InvalidSchema",
        )
    return RawBatch(name, source, partition, first, last, enqueued, tuple(series))


def _series_line(where: str, document: Mapping[str, Any]) -> SeriesBatch:
    device_id = checked_name(document.get("deviceId"), "deviceId", RawBatchError)
    metric = checked_name(document.get("metric"), "metric", RawBatchError)
    stamps = document.get("timestamps")
    values = document.get("values")
    if not isinstance(stamps, list) or not isinstance(values, list):
        raise RawBatchError(f"{where}: 'timestamps' and 'values' must be lists.", "InvalidSchema")
    if len(stamps) != len(values) or not stamps:
        raise RawBatchError(
            f"{where}: {len(stamps)} timestamps and {len(values)} values (need as many, ≥ 1).",
            "InvalidSchema",
        )
    previous = ""
    for stamp in stamps:
        if type(stamp) is not str or checked_timestamp(stamp, RawBatchError) != stamp:
            raise RawBatchError(
                f"{where}: timestamp {str(stamp)[:40]!r} is not canonical UTC text "
                "(YYYY-MM-DDTHH:MM:SS[.ffffff]Z).",
                "InvalidTimestamp",
            )
        key = chronological(stamp)
        if key <= previous:
            raise RawBatchError(
                f"{where}: timestamps not ascending and unique at {stamp}.", "InvalidSchema"
            )
        previous = key
    numbers: list[float] = []
    for value in values:
        if type(value) is not float and type(value) is not int:  # JSON numbers only, no bools
            raise RawBatchError(
                f"{where}: value {str(value)[:40]!r} is not a JSON number.", "InvalidValue"
            )
        numbers.append(checked_value(value, "values", RawBatchError))
    return _series(device_id, metric, stamps, numbers)


def _series(device_id: str, metric: str, stamps: list[str], values: list[float]) -> SeriesBatch:
    return SeriesBatch(
        device_id,
        metric,
        tuple(stamps),
        _epochs(stamps),
        np.asarray(values, dtype=np.float64),
    )


def _epochs(stamps: Sequence[str]) -> np.ndarray:
    """Epoch seconds of canonical timestamps (vectorised: numpy parses the text without the Z)."""
    micros = np.array([stamp[:-1] for stamp in stamps], dtype="datetime64[us]").astype(np.int64)
    epochs: np.ndarray = micros.astype(np.float64) / 1e6
    return epochs


def _text(name: str, header: Mapping[str, Any], key: str) -> str:
    value = header[key]
    if type(value) is not str or not value or len(value) > 256:
        raise RawBatchError(f"{name}: header {key!r} must be non-empty text.", "InvalidSchema")
    return value


def _count(name: str, header: Mapping[str, Any], key: str) -> int:
    value = header[key]
    if type(value) is not int or value < 0 or value >= 2**63:
        raise RawBatchError(
            f"{name}: header {key!r} must be a non-negative 64-bit integer.", "InvalidSchema"
        )
    return value


# ------------------------------------------------------------------------------ v1 (the archive)


def _read_v1(name: str, document: Mapping[str, Any]) -> RawBatch:
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
    first = _count(name, document, "firstSequenceNumber")
    last = _count(name, document, "lastSequenceNumber")
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
    series = _collect({(device_id, metric): {k: v[1] for k, v in readings.items()}})
    enqueued = series[0].timestamps[0] if series else _CANONICAL_EPOCH
    return RawBatch(name, "eventhub", partition, first, last, enqueued, series)


_CANONICAL_EPOCH = "1970-01-01T00:00:00Z"


def _collect(groups: Mapping[tuple[str, str], Mapping[str, float]]) -> tuple[SeriesBatch, ...]:
    out: list[SeriesBatch] = []
    for device_id, metric in sorted(groups):
        readings = groups[(device_id, metric)]
        if readings:
            stamps = sorted(readings, key=chronological)
            out.append(_series(device_id, metric, stamps, [readings[s] for s in stamps]))
    return tuple(out)


# --------------------------------------------------------------------------- IoT Hub routing


@dataclass(frozen=True)
class RoutedMessage:
    """One message of an IoT Hub routing blob, whichever the encoding (JSON or Avro)."""

    enqueued_time_utc: str
    properties: Mapping[str, Any]
    system_properties: Mapping[str, Any]
    body: bytes


def _read_iothub(name: str, lines: Sequence[str]) -> RawBatch:
    messages: list[RoutedMessage | RejectedRecord] = []
    for index, line in enumerate(lines):
        try:
            document = json.loads(line)
        except (ValueError, RecursionError) as exc:
            messages.append(RejectedRecord(index, "InvalidJson", f"line {index + 1}: {exc}", line))
            continue
        messages.append(_routed_json_message(index, document, line))
    return routed_batch(name, messages, "JSON")


def _routed_json_message(index: int, document: Any, line: str) -> RoutedMessage | RejectedRecord:
    if not isinstance(document, dict):
        return RejectedRecord(index, "InvalidSchema", "not a routed message object", line)
    enqueued = document.get("EnqueuedTimeUtc")
    properties = document.get("Properties") or {}
    system = document.get("SystemProperties") or {}
    body = document.get("Body")
    if (
        type(enqueued) is not str
        or not isinstance(properties, dict)
        or not isinstance(system, dict)
    ):
        return RejectedRecord(
            index,
            "InvalidSchema",
            "a routed message needs EnqueuedTimeUtc text and Properties/SystemProperties objects",
            line,
        )
    if isinstance(body, dict | list):
        # contentType application/json + contentEncoding UTF-8: IoT Hub embeds the body as JSON.
        raw = json.dumps(body, separators=(",", ":")).encode()
    elif isinstance(body, str):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raw = body.encode("utf-8")  # a body that was already text
    else:
        return RejectedRecord(index, "MissingField", "the routed message has no Body", line)
    return RoutedMessage(enqueued, properties, system, raw)


def routed_batch(
    name: str, messages: Sequence[RoutedMessage | RejectedRecord], encoding: str
) -> RawBatch:
    """Turn the messages of an IoT Hub routing blob into a raw batch (used by both encodings).

    Each message body goes through the same event validation as an Event Hub event; a message
    that fails it is returned in ``rejected``. Sequence numbers are the message positions, so
    a repeated timestamp keeps the reading written last.

    Raises:
        RawBatchError: No message of the blob is a routed message at all.
    """
    if not any(isinstance(message, RoutedMessage) for message in messages):
        raise RawBatchError(
            f"{name}: no IoT Hub routing message in this {encoding} blob.", "InvalidSchema"
        )
    partition = _routing_partition(name)
    groups: dict[tuple[str, str], dict[str, float]] = {}
    rejected: list[RejectedRecord] = []
    enqueued: list[str] = []
    stamp_cache: dict[Any, str] = {}
    for index, message in enumerate(messages):
        if isinstance(message, RejectedRecord):
            rejected.append(message)
            continue
        try:
            enqueued_text = checked_timestamp(message.enqueued_time_utc)
            event = _routed_event(message, partition, index, enqueued_text)
            rows = parse_event_rows(event, stamp_cache)
        except InputError as exc:
            rejected.append(RejectedRecord(index, exc.code, exc.message, _payload(message)))
            continue
        except Exception as exc:  # noqa: BLE001 - one message never takes the blob down
            rejected.append(
                RejectedRecord(
                    index,
                    "UnreadableEvent",
                    f"{type(exc).__name__}: {exc}"[:300],
                    _payload(message),
                )
            )
            continue
        enqueued.append(enqueued_text)
        for key, timestamp, value in rows:
            groups.setdefault(key, {})[timestamp] = value
    if rejected and not enqueued:
        # Every message was bad: still a batch (empty), so the caller dead-letters each one.
        pass
    first_enqueued = min(enqueued, key=chronological) if enqueued else _CANONICAL_EPOCH
    return RawBatch(
        name,
        "iothub",
        partition,
        0,
        max(len(messages) - 1, 0),
        first_enqueued,
        _collect(groups),
        tuple(rejected),
    )


def _routed_event(message: RoutedMessage, partition: str, index: int, enqueued: str) -> RawEvent:
    system: dict[str, Any] = {}
    for key, value in message.system_properties.items():
        system[f"iothub-{key}" if not str(key).startswith("iothub-") else str(key)] = value
    device = message.system_properties.get("connectionDeviceId")
    if device is not None:
        system[IOTHUB_DEVICE_PROPERTY] = device
    return RawEvent(
        body=message.body,
        partition_id=partition,
        sequence_number=index,
        enqueued_time=datetime.fromtimestamp(iso_epoch(enqueued), UTC),
        properties=dict(message.properties),
        system_properties=system,
    )


def _payload(message: RoutedMessage) -> str:
    try:
        return message.body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(message.body).decode("ascii")


def _routing_partition(name: str) -> str:
    # IoT Hub's default blob name: {iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}.
    parts = PurePosixPath(name).parts
    if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) <= 4:
        return parts[1]
    return "0"


def _read_avro(name: str, data: bytes) -> RawBatch:
    # Imported only here: an Avro routing blob is the only thing that needs the decoder.
    from shared.telemetry.avro import read_routed_avro

    return routed_batch(name, read_routed_avro(name, data), "Avro")


# ---------------------------------------------------------------- v1 helpers (the v1 detector)


def batch_rows(document: Mapping[str, Any]) -> tuple[int, list[tuple[str, float]]]:
    """The delivery order (last sequence) and ``(timestamp, value)`` rows of a v1 batch."""
    order = int(document.get("lastSequenceNumber", 0))
    return order, [(text, float(value)) for text, value in document["readings"]]


def readings_of_batch(document: dict[str, object]) -> list[Reading]:
    """Decode a v1 raw batch document back into readings (the v1 detector)."""
    device_id = str(document["deviceId"])
    metric = str(document["metric"])
    rows = document["readings"]
    assert isinstance(rows, list)
    return [Reading(device_id, metric, parse_timestamp(text), float(value)) for text, value in rows]


@dataclass(frozen=True)
class RawBatchName:
    """The parts of a v1 raw batch blob name (see :func:`shared.storage.names.raw_batch_name`)."""

    device_id: str
    metric: str
    day: str
    stem: str

    @classmethod
    def parse(cls, name: str) -> RawBatchName:
        """Parse ``{device}/{metric}/{YYYY-MM-DD}/{stem}.json``.

        Raises:
            InputError: The name is not a v1 raw batch name.
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


def iter_readings(batch: RawBatch) -> Iterable[Reading]:
    """Every reading of a batch, series by series (for callers that want rows)."""
    for one in batch.series:
        for epoch, value in zip(one.epochs.tolist(), one.values.tolist(), strict=True):
            yield Reading(one.device_id, one.metric, epoch, value)


__all__ = [
    "MAX_RAW_BATCH_BYTES",
    "RAW_BATCH_FORMAT",
    "RAW_BATCH_VERSION",
    "BatchBlob",
    "RawBatch",
    "RawBatchName",
    "RejectedRecord",
    "RoutedMessage",
    "SeriesBatch",
    "batch_rows",
    "encode_raw_batch",
    "iter_readings",
    "raw_batch_stem",
    "read_raw_batch",
    "readings_of_batch",
    "routed_batch",
]
