"""The demo fleet (:mod:`shared.demo.fleet`) as raw batch v2 blobs; the blob trigger in-process.

Used by the live-detection tests: a delivered batch holds one minute (or several) of the fleet.
Blobs are written with the one raw-batch writer (:func:`shared.telemetry.rawbatch.
encode_raw_batch`) under their v2 names, as the ingest writes them.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from shared.demo.fleet import FLEET_METRICS, FLEET_START, Fleet
from shared.storage.names import raw_batch_v2_name
from shared.telemetry.rawbatch import encode_raw_batch
from shared.timefmt import format_timestamp

START = FLEET_START
METRICS = FLEET_METRICS


def raw_blob(
    readings: dict[tuple[str, str], dict[str, float]],
    first_sequence: int,
    last_sequence: int,
    enqueued: float,
    partition: str = "0",
) -> tuple[str, bytes]:
    """A v2 raw batch: its name and bytes."""
    name = raw_batch_v2_name(enqueued, partition, first_sequence, last_sequence)
    data = encode_raw_batch(
        readings,
        partition=partition,
        first_sequence=first_sequence,
        last_sequence=last_sequence,
        enqueued_time=format_timestamp(enqueued),
    )
    return name, data


def minute_batches(fleet: Fleet, minutes: range, per_batch: int = 1) -> list[tuple[str, bytes]]:
    """One raw blob per ``per_batch`` minutes of the whole fleet (sequence numbers as ingest)."""
    blobs = []
    events_per_minute = fleet.meters
    for first in range(minutes.start, minutes.stop, per_batch):
        span = range(first, min(first + per_batch, minutes.stop))
        seq = first * events_per_minute
        blobs.append(
            raw_blob(
                fleet.readings(span),
                seq,
                seq + len(span) * events_per_minute - 1,
                START + 60.0 * span[-1] + 5,
            )
        )
    return blobs


class Collected(func.Out[list[str]]):
    """The ``anomalies`` output binding as the worker hands it to the function."""

    def __init__(self) -> None:
        self.value: list[str] | None = None

    def set(self, val: list[str]) -> None:
        self.value = val

    def get(self) -> list[str]:
        return self.value or []


def trigger(function: Any, container: str, name: str, data: bytes) -> list[str]:
    """Call the blob trigger's user function with real binding objects; return its alerts."""
    out = Collected()
    function(func.blob.InputStream(data=data, name=f"{container}/{name}", length=len(data)), out)
    return out.get()


__all__ = ["METRICS", "START", "Collected", "Fleet", "minute_batches", "raw_blob", "trigger"]
