"""Helpers of the history tests: raw batches written by the one writer, and a request counter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from azure.storage.blob import BlobServiceClient

from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import raw_batch_v2_name
from shared.telemetry.rawbatch import encode_raw_batch
from shared.timefmt import canonical_timestamp, format_timestamp, parse_timestamp


def put_raw_batch(
    store: BlobStore,
    settings: Settings,
    partition: str,
    first: int,
    last: int,
    enqueued: str,
    rows: Mapping[tuple[str, str], Sequence[tuple[float, float]]],
) -> str:
    """Write a raw batch v2 (``rows[(device, metric)] = [(epoch, value)]``); return its name."""
    data = encode_raw_batch(
        {key: {format_timestamp(t): v for t, v in points} for key, points in rows.items()},
        partition=partition,
        first_sequence=first,
        last_sequence=last,
        enqueued_time=canonical_timestamp(enqueued),
    )
    name = raw_batch_v2_name(parse_timestamp(enqueued), partition, first, last)
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
