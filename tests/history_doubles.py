"""Test doubles for the history tests: a raw batch v2 writer and reader, and a request counter.

The raw batch v2 format is ``ingest``'s (TEAM.md states it; ``shared.telemetry.rawbatch`` will hold
the one writer and reader). Until that lands, these doubles write and read exactly the stated
format (gzip JSON lines, header then one line per series) so the history code is tested against
the interface, not against itself.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from azure.storage.blob import BlobServiceClient

from shared.errors import InputError
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import format_timestamp, parse_timestamp


@dataclass(frozen=True)
class SeriesBatchDouble:
    device_id: str
    metric: str
    timestamps: tuple[str, ...]
    epochs: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class RawBatchDouble:
    name: str
    source: str
    partition: str
    first_sequence: int
    last_sequence: int
    enqueued_time: str
    series: tuple[SeriesBatchDouble, ...]


def raw_batch_name(partition: str, first: int, last: int, enqueued: str) -> str:
    moment = datetime.fromtimestamp(parse_timestamp(enqueued), tz=UTC)
    return f"batches/{moment:%Y/%m/%d/%H}/p{partition}-{first:020d}-{last:020d}.jsonl.gz"


def encode_raw_batch(
    partition: str,
    first: int,
    last: int,
    enqueued: str,
    rows: Mapping[tuple[str, str], Sequence[tuple[float, float]]],
) -> tuple[str, bytes]:
    """A raw batch v2 blob (name, bytes) holding ``rows[(device, metric)] = [(epoch, value)]``."""
    lines = [
        {
            "format": "meterwatch.rawbatch",
            "version": 2,
            "source": "eventhub",
            "partition": partition,
            "firstSequence": first,
            "lastSequence": last,
            "enqueuedTime": enqueued,
            "readings": sum(len(v) for v in rows.values()),
        }
    ]
    for (device, metric), points in sorted(rows.items()):
        ordered = sorted(dict(points).items())
        lines.append(
            {
                "deviceId": device,
                "metric": metric,
                "timestamps": [format_timestamp(t) for t, _ in ordered],
                "values": [float(v) for _, v in ordered],
            }
        )
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    return raw_batch_name(partition, first, last, enqueued), gzip.compress(text.encode(), mtime=0)


def read_raw_batch(name: str, data: bytes) -> RawBatchDouble:
    """Read a raw batch v2 blob (the double of ``shared.telemetry.rawbatch.read_raw_batch``)."""
    try:
        lines = gzip.decompress(data).decode().splitlines()
        header = json.loads(lines[0])
        assert header["format"] == "meterwatch.rawbatch" and header["version"] == 2
        series = []
        for line in lines[1:]:
            row = json.loads(line)
            series.append(
                SeriesBatchDouble(
                    row["deviceId"],
                    row["metric"],
                    tuple(row["timestamps"]),
                    np.array([parse_timestamp(t) for t in row["timestamps"]], dtype=np.float64),
                    np.array(row["values"], dtype=np.float64),
                )
            )
    except Exception as exc:
        raise InputError(f"{name} is not a raw batch: {exc!r}", "InvalidRawBatch") from exc
    return RawBatchDouble(
        name,
        header["source"],
        header["partition"],
        header["firstSequence"],
        header["lastSequence"],
        header["enqueuedTime"],
        tuple(series),
    )


def put_raw_batch(
    store: BlobStore,
    settings: Settings,
    partition: str,
    first: int,
    last: int,
    enqueued: str,
    rows: Mapping[tuple[str, str], Sequence[tuple[float, float]]],
) -> str:
    """Write a raw batch v2 blob to the raw container; return its name."""
    name, data = encode_raw_batch(partition, first, last, enqueued, rows)
    store.put_bytes(BlobRef(settings.raw_container, name), data)
    return name


class RequestCounter:
    """Counts the storage requests of a client at the HTTP layer (every try of every call)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: Any) -> None:
        self.requests.append((request.http_request.method, request.http_request.url))

    def reset(self) -> None:
        self.requests.clear()

    @property
    def count(self) -> int:
        return len(self.requests)


def counted_store(connection: str) -> tuple[BlobStore, RequestCounter]:
    """A blob store on ``connection`` whose every HTTP request is counted."""
    counter = RequestCounter()
    service = BlobServiceClient.from_connection_string(connection, raw_request_hook=counter)
    return BlobStore(service), counter
