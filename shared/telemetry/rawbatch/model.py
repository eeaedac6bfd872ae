"""The raw-batch format's constants and types, and the pieces its readers share.

What a raw blob reads back as (:class:`RawBatch` of :class:`SeriesBatch`, with the
:class:`RejectedRecord` of an IoT Hub routing blob) and what the ingest writes
(:class:`BatchBlob`). The helpers below the types are the package's own (the v2, v1 and routing
readers build their series and check their header fields with them); callers use
:mod:`shared.telemetry.rawbatch`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import orjson

from shared.errors import RawBatchError
from shared.timefmt import chronological

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
#: The enqueued time of a batch that holds no reading to take one from.
CANONICAL_EPOCH = "1970-01-01T00:00:00Z"


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


# ------------------------------------------------------------------- shared by the readers


def series_batch(
    device_id: str, metric: str, stamps: list[str], values: list[float]
) -> SeriesBatch:
    """One series from canonical, ascending, unique timestamps and their values."""
    return SeriesBatch(
        device_id,
        metric,
        tuple(stamps),
        _epochs(stamps),
        np.asarray(values, dtype=np.float64),
    )


def _epochs(stamps: Sequence[str]) -> np.ndarray:
    """Epoch seconds of canonical timestamps (vectorised: numpy parses the text without the Z).

    A raw batch repeats the same minute in every series: the epochs of stamps already parsed
    come from a bounded cache (the same floats), one lookup each.
    """
    known = _EPOCH_CACHE
    try:
        return np.array([known[stamp] for stamp in stamps], dtype=np.float64)
    except KeyError:
        pass
    micros = np.array([stamp[:-1] for stamp in stamps], dtype="datetime64[us]").astype(np.int64)
    epochs: np.ndarray = micros.astype(np.float64) / 1e6
    if len(known) < _EPOCH_CACHE_LIMIT:
        known.update(zip(stamps, epochs.tolist(), strict=True))
    return epochs


#: Canonical timestamp -> epoch seconds, for :func:`_epochs` (a few days of minutes).
_EPOCH_CACHE: dict[str, float] = {}
_EPOCH_CACHE_LIMIT = 20_000


def collect_series(
    groups: Mapping[tuple[str, str], Mapping[str, float]],
) -> tuple[SeriesBatch, ...]:
    """Series sorted by ``(device, metric)``, each in time order, from grouped readings."""
    out: list[SeriesBatch] = []
    for device_id, metric in sorted(groups):
        readings = groups[(device_id, metric)]
        if readings:
            stamps = sorted(readings, key=chronological)
            out.append(series_batch(device_id, metric, stamps, [readings[s] for s in stamps]))
    return tuple(out)


def json_line(name: str, line: str, number: int) -> object:
    """One line of a JSON-lines blob, parsed.

    Raises:
        RawBatchError: ``InvalidJson``: the line is not JSON, or nested too deeply.
    """
    try:
        parsed: object = orjson.loads(line)  # the hot path; what it refuses, json decides
    except orjson.JSONDecodeError:
        parsed = _standard_line(name, line, number)
    return parsed


def _standard_line(name: str, line: str, number: int) -> object:
    try:
        parsed: object = json.loads(line)
    except RecursionError as exc:
        raise RawBatchError(
            f"{name}, line {number}: JSON nested too deeply.", "InvalidJson"
        ) from exc
    except ValueError as exc:
        raise RawBatchError(f"{name}, line {number}: not JSON ({exc}).", "InvalidJson") from exc
    return parsed


def header_text(name: str, header: Mapping[str, object], key: str) -> str:
    """A header field that must be non-empty text (at most 256 characters).

    Raises:
        RawBatchError: ``InvalidSchema``.
    """
    value = header[key]
    if type(value) is not str or not value or len(value) > 256:
        raise RawBatchError(f"{name}: header {key!r} must be non-empty text.", "InvalidSchema")
    return value


def header_count(name: str, header: Mapping[str, object], key: str) -> int:
    """A header field that must be a non-negative 64-bit integer.

    Raises:
        RawBatchError: ``InvalidSchema``.
    """
    value = header[key]
    if type(value) is not int or value < 0 or value >= 2**63:
        raise RawBatchError(
            f"{name}: header {key!r} must be a non-negative 64-bit integer.", "InvalidSchema"
        )
    return value
