"""The compacted history blob: every reading of one device on one UTC day, all metrics.

Name: :func:`shared.storage.names.history_day_name` (``series/{device}/{YYYY-MM-DD}.jsonl.gz`` in
the history container). Content: gzip (level 1, mtime 0, so equal content gives equal bytes) of
UTF-8 JSON lines. Line 1 is the header, then one line per metric, sorted by metric::

    {"format": "meterwatch.history", "version": 1, "deviceId": "m1", "day": "2026-11-02",
     "points": 2880}
    {"metric": "power", "points": 1440, "epochs": "<base64>", "values": "<base64>",
     "enqueued": "<base64>", "sequences": "<base64>"}

Each column is the base64 of little-endian bytes. ``values``: float64. ``epochs``: the readings'
times (ascending, unique) as int64 microseconds since the Unix epoch, delta-encoded (each entry
is the difference to the previous one, the first to 0). ``enqueued`` (int64 milliseconds) and
``sequences`` (int64), delta-encoded the same way, say which delivery each value came from: the
enqueued time and last sequence number of its raw batch. Binary, delta-encoded columns because
the compaction rewrites a device's day at every run: 2,880 points as JSON numbers cost about
30 ms to decode, merge and encode again; as these columns about 4 ms, and a third of the bytes.

The two delivery columns are the *rank* of a value: when two deliveries carry the same
timestamp, the newest delivery (highest ``(enqueued, sequence)``, then the higher value, so that
even a tie is independent of the order of arrival) wins. Merging is therefore commutative and
idempotent: folding a batch twice, or two batches in either order, gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from shared.errors import HistoryError
from shared.jsontypes import JSONValue

FORMAT = "meterwatch.history"
VERSION = 1


@dataclass(frozen=True)
class RankedPoints:
    """Readings of one series with the rank of each (see the module docstring).

    All four arrays have the same length; after :func:`merge_points` the epochs are ascending
    and unique.
    """

    epochs: np.ndarray  # float64 seconds
    values: np.ndarray  # float64
    enqueued: np.ndarray  # int64 milliseconds of the delivering batch's enqueued time
    sequences: np.ndarray  # int64 last sequence number of the delivering batch

    @property
    def size(self) -> int:
        """Number of points."""
        return int(self.epochs.size)

    @classmethod
    def empty(cls) -> RankedPoints:
        """No points."""
        return cls(
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
        )

    @classmethod
    def of_delivery(
        cls, epochs: np.ndarray, values: np.ndarray, enqueued_ms: int, sequence: int
    ) -> RankedPoints:
        """Points that all came in one delivery (one raw batch)."""
        n = int(np.asarray(epochs).size)
        return cls(
            np.asarray(epochs, dtype=np.float64),
            np.asarray(values, dtype=np.float64),
            np.full(n, enqueued_ms, dtype=np.int64),
            np.full(n, sequence, dtype=np.int64),
        )

    def between(self, start: float, end: float) -> RankedPoints:
        """The points with ``start <= epoch <= end``."""
        keep = (self.epochs >= start) & (self.epochs <= end)
        return RankedPoints(
            self.epochs[keep], self.values[keep], self.enqueued[keep], self.sequences[keep]
        )


def merge_points(parts: Iterable[RankedPoints]) -> RankedPoints:
    """Merge points of one series: one point per epoch, the highest-ranked value wins.

    The result is sorted by epoch and does not depend on the order of ``parts``.
    """
    chunks = [p for p in parts if p.size]
    if not chunks:
        return RankedPoints.empty()
    epochs = np.concatenate([p.epochs for p in chunks])
    values = np.concatenate([p.values for p in chunks])
    enqueued = np.concatenate([p.enqueued for p in chunks])
    sequences = np.concatenate([p.sequences for p in chunks])
    # Primary key epoch, then rank (enqueued, sequence, value): the last of each epoch wins.
    order = np.lexsort((values, sequences, enqueued, epochs))
    epochs, values = epochs[order], values[order]
    enqueued, sequences = enqueued[order], sequences[order]
    last = np.ones(epochs.size, dtype=bool)
    last[:-1] = epochs[1:] != epochs[:-1]
    return RankedPoints(epochs[last], values[last], enqueued[last], sequences[last])


@dataclass(frozen=True)
class DayHistory:
    """The compacted history of one device on one UTC day."""

    device_id: str
    day: str  # YYYY-MM-DD
    series: Mapping[str, RankedPoints]  # by metric

    @property
    def points(self) -> int:
        """Readings held, all metrics."""
        return sum(p.size for p in self.series.values())


def merge_day(
    base: DayHistory | None, device_id: str, day: str, new: Mapping[str, RankedPoints]
) -> DayHistory:
    """Fold new points into a day's history (``base`` may be ``None``: a day not seen yet)."""
    old = base.series if base is not None else {}
    merged = {
        metric: merge_points([p for p in (old.get(metric), new.get(metric)) if p is not None])
        for metric in sorted(set(old) | set(new))
    }
    return DayHistory(device_id, day, merged)


def encode_day(history: DayHistory) -> bytes:
    """Serialise a day's history (deterministic bytes, see the module docstring)."""
    lines = [
        json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "deviceId": history.device_id,
                "day": history.day,
                "points": history.points,
            },
            separators=(",", ":"),
        )
    ]
    for metric in sorted(history.series):
        points = history.series[metric]
        lines.append(
            json.dumps(
                {
                    "metric": metric,
                    "points": points.size,
                    "epochs": _deltas(np.round(points.epochs * 1e6).astype(np.int64)),
                    "values": _column(points.values, "<f8"),
                    "enqueued": _deltas(points.enqueued),
                    "sequences": _deltas(points.sequences),
                },
                separators=(",", ":"),
            )
        )
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1, mtime=0)


def _column(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _deltas(array: np.ndarray) -> str:
    return _column(np.diff(array.astype(np.int64), prepend=np.int64(0)), "<i8")


def _undelta(text: JSONValue, points: int) -> np.ndarray:
    return np.cumsum(_array(text, "<i8", points))


def _array(text: JSONValue, dtype: str, points: int) -> np.ndarray:
    if not isinstance(text, str):
        raise HistoryError(f"an array is {type(text).__name__}, not base64 text", "CorruptHistory")
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    native = np.float64 if dtype == "<f8" else np.int64
    array: np.ndarray = np.frombuffer(raw, dtype=dtype).astype(native)  # a writable copy
    if array.size != points:
        raise HistoryError(f"{array.size} values for {points} points", "CorruptHistory")
    return array


def decode_day(name: str, data: bytes, metrics: frozenset[str] | None = None) -> DayHistory:
    """Read a compacted day back.

    Args:
        name: The blob's name (for error messages).
        data: Its bytes.
        metrics: Decode only these metrics (``None``: all); the others are skipped unparsed.

    Raises:
        HistoryError: The blob is not a meterwatch history blob of this version (code
            ``CorruptHistory``).
    """
    try:
        text = gzip.decompress(data).decode()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise HistoryError(
            f"History blob {name} is not gzip UTF-8 text: {exc}", "CorruptHistory"
        ) from exc
    lines = text.splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError as exc:
        raise HistoryError(
            f"History blob {name}: the header is not JSON.", "CorruptHistory"
        ) from exc
    if (
        not isinstance(header, dict)
        or header.get("format") != FORMAT
        or header.get("version") != VERSION
    ):
        raise HistoryError(
            f"History blob {name} is not a {FORMAT} version {VERSION} document.", "CorruptHistory"
        )
    series: dict[str, RankedPoints] = {}
    for number, line in enumerate(lines[1:], start=2):
        if metrics is not None and not any(
            f'"metric":{json.dumps(m)},' in line[:200] for m in metrics
        ):
            continue
        try:
            row = json.loads(line)
            count = int(row["points"])
            points = RankedPoints(
                _undelta(row["epochs"], count) / 1e6,
                _array(row["values"], "<f8", count),
                _undelta(row["enqueued"], count),
                _undelta(row["sequences"], count),
            )
            metric = str(row["metric"])
        except (
            HistoryError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            binascii.Error,
        ) as exc:
            raise HistoryError(
                f"History blob {name}, line {number}: not a series line ({exc}).", "CorruptHistory"
            ) from exc
        if (
            not points.epochs.size
            == points.values.size
            == points.enqueued.size
            == points.sequences.size
        ):
            raise HistoryError(
                f"History blob {name}, line {number}: arrays of different lengths.",
                "CorruptHistory",
            )
        series[metric] = points
    return DayHistory(str(header.get("deviceId")), str(header.get("day")), series)
