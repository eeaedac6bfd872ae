"""Reading history by series: one device's metric(s) over a time range.

Cost: one GET per UTC day of the range (``series/{device}/{YYYY-MM-DD}.jsonl.gz``, missing days
are a 404 and nothing more), whatever the size of the fleet. With ``tail=True`` (the default)
the readings not yet compacted are added: the raw batches recorded in the raw journal since the
compaction's cursor (a list per open journal hour, a ranged read per journal blob that grew, and
one GET per such batch: bounded by what arrived since the last compaction run, not by the
range; at most :data:`TAIL_MAX_AGE` back and :data:`TAIL_MAX_BATCHES` batches, else the tail is
skipped with a warning, so one read never costs a scan of a large fleet's last hour). Callers
that judge in bulk (the live bootstrap, the scheduled detection right after a compaction) pass
``tail=False``.

Points are merged by the same rank rule as the compaction (newest delivery wins per timestamp),
so a reading present both in a history blob and in the tail is counted once.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from azure.core.exceptions import ResourceNotFoundError

from shared.errors import HistoryError, InputError
from shared.history.compaction import (
    COMPACTION_JOB,
    RawBatchReader,
    _enqueued_ms,
    default_reader,
    read_cursor,
)
from shared.history.daily import RankedPoints, decode_day, merge_points
from shared.history.journal import JournalCursor, read_journal
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import RAW_JOURNAL_PREFIX, history_day_name
from shared.timefmt import hour_key, parse_timestamp, utc_day

if TYPE_CHECKING:
    from shared.telemetry.rawbatch import RawBatch

logger = logging.getLogger(__name__)

#: How far back the tail reads the raw journal at most (a compaction far behind is an outage
#: the tail does not paper over: listing every hour since would cost a request per hour).
TAIL_MAX_AGE = timedelta(hours=48)
#: Most not-yet-compacted raw batches the tail reads (one GET each); beyond, it is skipped.
TAIL_MAX_BATCHES = 200
#: Largest epoch accepted (year 9999).
MAX_EPOCH = 253_402_300_799.0
#: Longest range one read serves (one request per day: split longer ranges).
MAX_RANGE_DAYS = 400

#: A moment: epoch seconds, an aware ``datetime`` or timestamp text.
Moment = float | int | datetime | str


@dataclass(frozen=True)
class SeriesHistory:
    """The readings of one series in a range: ascending, unique epochs and their values."""

    epochs: np.ndarray  # float64 seconds
    values: np.ndarray  # float64

    @property
    def size(self) -> int:
        """Number of readings."""
        return int(self.epochs.size)


@dataclass(frozen=True)
class DeviceHistory:
    """Every metric of one device in a range, and what the read cost."""

    device_id: str
    series: dict[str, SeriesHistory]
    days_read: int  # history blobs requested (one per day of the range)
    tail_batches: int  # raw batches read for the not-yet-compacted tail


def epoch_of(moment: Moment, name: str = "time") -> float:
    """Epoch seconds of a moment (see :data:`Moment`).

    Raises:
        HistoryError: Not a time (code ``InvalidHistoryRange``).
    """
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(moment, bool):
        raise HistoryError(f"{name} must be a time, got {moment!r}.")
    if isinstance(moment, int | float):
        if not math.isfinite(float(moment)) or abs(float(moment)) > MAX_EPOCH:
            raise HistoryError(f"{name} {moment!r} is not a time (epoch seconds expected).")
        return float(moment)
    try:
        return parse_timestamp(moment)
    except InputError as exc:
        raise HistoryError(f"{name}: {exc.message}") from exc


def read_history(
    store: BlobStore,
    settings: Settings,
    device_id: str,
    metric: str,
    start: Moment,
    end: Moment,
    *,
    tail: bool = True,
    reader: RawBatchReader | None = None,
) -> SeriesHistory:
    """The readings of one device's metric with ``start <= timestamp <= end``.

    Args:
        store: Blob storage.
        settings: App settings (history and raw containers).
        device_id: The meter.
        metric: The metric.
        start: First moment of the range (inclusive).
        end: Last moment of the range (inclusive).
        tail: Add the readings not compacted yet (see the module docstring for the cost).
        reader: The raw-batch reader for the tail (default: the raw batch v2 reader).

    Returns:
        The readings, ascending and unique by timestamp (empty when there are none).

    Raises:
        HistoryError: ``start`` after ``end``, a range over :data:`MAX_RANGE_DAYS`, or a
            history blob that is not meterwatch's.
        azure.core.exceptions.AzureError: Storage failed.
    """
    found = read_device_history(
        store, settings, device_id, start, end, metrics=[metric], tail=tail, reader=reader
    )
    return found.series.get(metric, _empty())


def read_device_history(
    store: BlobStore,
    settings: Settings,
    device_id: str,
    start: Moment,
    end: Moment,
    *,
    metrics: Iterable[str] | None = None,
    tail: bool = True,
    reader: RawBatchReader | None = None,
) -> DeviceHistory:
    """Every metric (or the given ``metrics``) of one device over a range; see
    :func:`read_history`."""
    low, high = epoch_of(start, "start"), epoch_of(end, "end")
    if low > high:
        raise HistoryError(f"The range starts after it ends ({start} > {end}).")
    first_day, last_day = int(low // 86_400), int(high // 86_400)
    if last_day - first_day + 1 > MAX_RANGE_DAYS:
        raise HistoryError(
            f"The range spans {last_day - first_day + 1} days: read at most {MAX_RANGE_DAYS} "
            "days at a time."
        )
    wanted = frozenset(metrics) if metrics is not None else None
    parts: dict[str, list[RankedPoints]] = defaultdict(list)
    container = store.container(settings.history_container)
    for number in range(first_day, last_day + 1):
        day = utc_day(number * 86_400)
        name = history_day_name(device_id, day)
        try:
            data = bytes(container.download_blob(name).readall())
        except ResourceNotFoundError:
            continue
        for metric, points in decode_day(name, data, wanted).series.items():
            parts[metric].append(points.between(low, high))
    tail_batches = 0
    if tail:
        tail_batches = _add_tail(store, settings, device_id, wanted, low, high, parts, reader)
    series = {}
    for metric in sorted(parts):
        merged = merge_points(parts[metric])
        if merged.size:
            series[metric] = SeriesHistory(merged.epochs, merged.values)
    return DeviceHistory(device_id, series, last_day - first_day + 1, tail_batches)


def _add_tail(
    store: BlobStore,
    settings: Settings,
    device_id: str,
    wanted: frozenset[str] | None,
    low: float,
    high: float,
    parts: dict[str, list[RankedPoints]],
    reader: RawBatchReader | None,
) -> int:
    now = datetime.now(UTC)
    cursor, _etag = read_cursor(store, settings, COMPACTION_JOB, now)
    oldest = hour_key(now - TAIL_MAX_AGE)
    if cursor.settled < oldest:
        # The compaction is far behind (or never ran): bound the listing, say so.
        logger.warning(
            "History tail: the compaction cursor is at %s; reading the tail from %s only",
            cursor.settled,
            oldest,
        )
        cursor = JournalCursor(oldest, cursor.offsets)
    journal = read_journal(store, settings.history_container, RAW_JOURNAL_PREFIX, cursor, now)
    names = list(dict.fromkeys(entry.line for entry in journal.entries))
    if len(names) > TAIL_MAX_BATCHES:
        # A large fleet between two compactions: reading every batch of it for one series would
        # be the scan of the fleet this module exists to avoid. The compacted history is served.
        logger.warning(
            "History tail: %s raw batches not compacted yet (over %s): tail skipped",
            len(names),
            TAIL_MAX_BATCHES,
        )
        return 0
    if not names:
        return 0
    read_batch = reader or default_reader()
    for name in names:
        batch = _tail_batch(store, settings, name, read_batch)
        if batch is None:
            continue
        enqueued_ms, sequence = _enqueued_ms(batch.enqueued_time), int(batch.last_sequence)
        for series in batch.series:
            if series.device_id != device_id or (
                wanted is not None and series.metric not in wanted
            ):
                continue
            points = RankedPoints.of_delivery(series.epochs, series.values, enqueued_ms, sequence)
            parts[series.metric].append(points.between(low, high))
    return len(names)


def _tail_batch(
    store: BlobStore, settings: Settings, name: str, read_batch: RawBatchReader
) -> RawBatch | None:
    try:
        return read_batch(name, store.get_bytes(BlobRef(settings.raw_container, name)))
    except ResourceNotFoundError:
        return None
    except InputError as exc:  # unreadable: dead-lettered by the blob trigger
        logger.info("History tail: %s skipped (%s)", name, exc.code)
        return None


def _empty() -> SeriesHistory:
    return SeriesHistory(np.empty(0, np.float64), np.empty(0, np.float64))
