"""IoT Hub message routing blobs: JSON lines (here) and Avro (:mod:`shared.telemetry.avro`).

IoT Hub routing to a storage endpoint writes one message per record: ``EnqueuedTimeUtc``,
``Properties``, ``SystemProperties`` (``connectionDeviceId``) and ``Body`` (embedded JSON, or
base64). Each body goes through the same event validation as an Event Hub event
(:func:`shared.telemetry.events.parse_event_rows`); a message that fails it is returned in
:attr:`~shared.telemetry.rawbatch.RawBatch.rejected` with its code, the good ones are kept.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from shared.errors import InputError, RawBatchError
from shared.jsontypes import JSONValue
from shared.telemetry.events import IOTHUB_DEVICE_PROPERTY, RawEvent, parse_event_rows
from shared.telemetry.rawbatch.model import (
    CANONICAL_EPOCH,
    RawBatch,
    RejectedRecord,
    collect_series,
)
from shared.telemetry.validation import checked_timestamp
from shared.timefmt import chronological, iso_epoch


@dataclass(frozen=True)
class RoutedMessage:
    """One message of an IoT Hub routing blob, whichever the encoding (JSON or Avro)."""

    enqueued_time_utc: str
    properties: Mapping[str, object]
    system_properties: Mapping[str, object]
    body: bytes


def read_iothub_json(name: str, lines: Sequence[str]) -> RawBatch:
    """A raw batch from the lines of a JSON-encoded routing blob (one message a line)."""
    messages: list[RoutedMessage | RejectedRecord] = []
    for index, line in enumerate(lines):
        try:
            document = json.loads(line)
        except (ValueError, RecursionError) as exc:
            messages.append(RejectedRecord(index, "InvalidJson", f"line {index + 1}: {exc}", line))
            continue
        messages.append(_routed_json_message(index, document, line))
    return routed_batch(name, messages, "JSON")


def read_iothub_avro(name: str, data: bytes) -> RawBatch:
    """A raw batch from an Avro-encoded routing blob (the decoder is imported only here)."""
    from shared.telemetry.avro import read_routed_avro

    return routed_batch(name, read_routed_avro(name, data), "Avro")


def _routed_json_message(
    index: int, document: JSONValue, line: str
) -> RoutedMessage | RejectedRecord:
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
    a repeated timestamp keeps the reading written last. A blob whose every message is bad is
    still a batch (empty), so the caller dead-letters each one.

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
    stamp_cache: dict[object, str] = {}
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
    first_enqueued = min(enqueued, key=chronological) if enqueued else CANONICAL_EPOCH
    return RawBatch(
        name,
        "iothub",
        partition,
        0,
        max(len(messages) - 1, 0),
        first_enqueued,
        collect_series(groups),
        tuple(rejected),
    )


def _routed_event(message: RoutedMessage, partition: str, index: int, enqueued: str) -> RawEvent:
    system: dict[str | bytes, object] = {}
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
