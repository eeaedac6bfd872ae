"""Compaction: fold new raw batches into one history blob per device and day.

Raw batches (one per delivered Event Hub batch, every device mixed) are the archive; reading one
device from them would mean reading every batch. The compaction job (a timer, hourly by
default) turns them into ``series/{device}/{YYYY-MM-DD}.jsonl.gz`` in the history container
(:mod:`shared.history.daily`), which :func:`shared.history.reader.read_history` reads by range.

It finds new batches without listing the raw container: whoever handles a raw batch records its
name with :func:`record_raw_batches` in the raw journal (:mod:`shared.history.journal`, one append
per batch, in the hour it is *recorded*, so a late or redelivered batch is never missed), and the
job reads the journal from its cursor. Per run:

1. read the journal entries since the cursor (one list per open hour, one ranged read per blob
   that grew);
2. read each new batch once and group its readings by device and UTC day of the reading;
3. per device and day touched: read the history blob with its ETag, merge (newest delivery wins
   per timestamp, :func:`shared.history.daily.merge_points`), write it back on that ETag (on a
   conflict: re-read and merge again), or not at all when nothing changed;
4. append the series that got readings to the active journal (the scheduled detection's input);
5. save the cursor (on its ETag).

A crash anywhere repeats steps 1-4 on the next run: merging is idempotent, so re-runs and
redeliveries change nothing. Work per run is bounded: batches are taken in chunks of at most
``max_points`` readings, each chunk committed (history, activity, cursor) before the next.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContentSettings

from shared.errors import ConflictError, InputError
from shared.history.daily import (
    DayHistory,
    RankedPoints,
    decode_day,
    encode_day,
    merge_day,
    merge_points,
)
from shared.history.journal import JournalCursor, append_entries, read_journal
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import (
    ACTIVE_JOURNAL_PREFIX,
    RAW_JOURNAL_PREFIX,
    cursor_name,
    history_day_name,
    raw_hour_prefix,
)
from shared.timefmt import format_timestamp, hour_key, parse_timestamp

if TYPE_CHECKING:
    from shared.telemetry.rawbatch import RawBatch

logger = logging.getLogger(__name__)

#: A raw-batch reader: ``(name, bytes) -> RawBatch`` (``shared.telemetry.rawbatch``'s).
RawBatchReader = Callable[[str, bytes], "RawBatch"]

#: The compaction's cursor name (``cursors/compaction.json``).
COMPACTION_JOB = "compaction"
#: Where a job without a cursor starts reading its journal.
INITIAL_LOOKBACK = timedelta(days=1)
#: Readings held in memory per chunk of a run (about 100 MB with the grouping).
MAX_POINTS_PER_CHUNK = 2_000_000
#: Conditional-write attempts on one history blob before the run gives up (and retries later).
MAX_ATTEMPTS = 5
_GZIP = ContentSettings(content_type="application/gzip")
_JSON = ContentSettings(content_type="application/json")


def default_reader() -> RawBatchReader:
    """The raw-batch reader of ``shared.telemetry.rawbatch`` (the one reader of raw blobs)."""
    from shared.telemetry.rawbatch import read_raw_batch

    return read_raw_batch


def record_raw_batches(
    store: BlobStore, settings: Settings, names: Iterable[str], now: datetime | None = None
) -> int:
    """Record raw batch names in the raw journal, so the compaction folds them into history.

    The hook for whoever handles raw batches (the raw blob trigger): one append request per
    call. Recording a name twice is harmless.

    Args:
        store: Blob storage.
        settings: App settings (the history container).
        names: Raw batch blob names in ``settings.raw_container``.
        now: The clock (default: now, UTC).

    Returns:
        The number of append requests made.
    """
    lines = [name for name in names if name]
    if not lines:
        return 0
    return append_entries(
        store, settings.history_container, RAW_JOURNAL_PREFIX, lines, now or datetime.now(UTC)
    )


@dataclass(frozen=True)
class ActiveSeries:
    """A series that received readings, and the range of the readings it received."""

    device_id: str
    metric: str
    first: float  # epoch seconds of the earliest new reading
    last: float  # epoch seconds of the latest new reading

    def line(self) -> str:
        """The journal line (tab-separated; ids never contain tabs)."""
        return f"{self.device_id}\t{self.metric}\t{self.first!r}\t{self.last!r}"

    @classmethod
    def parse(cls, line: str) -> ActiveSeries:
        """Read a journal line back."""
        device_id, metric, first, last = line.split("\t")
        return cls(device_id, metric, float(first), float(last))


@dataclass
class CompactionReport:
    """What one compaction run did."""

    batches: int = 0  # raw batches folded
    readings: int = 0  # readings read from them
    device_days: int = 0  # history blobs merged
    written: int = 0  # history blobs written (unchanged ones are not rewritten)
    conflicts: int = 0  # conditional writes that lost to a concurrent writer (and were redone)
    unreadable: list[str] = field(default_factory=list)  # batches skipped, with their reason
    active: list[ActiveSeries] = field(default_factory=list)
    cursor: JournalCursor | None = None


def compact(
    store: BlobStore,
    settings: Settings,
    now: datetime | None = None,
    *,
    reader: RawBatchReader | None = None,
    max_points: int = MAX_POINTS_PER_CHUNK,
) -> CompactionReport:
    """Fold the raw batches recorded since the last run into the per-device-day history.

    Args:
        store: Blob storage.
        settings: App settings (raw and history containers).
        now: The clock (default: now, UTC).
        reader: The raw-batch reader (default: :func:`default_reader`).
        max_points: Readings per chunk (memory bound of one run).

    Returns:
        What was folded and written.

    Raises:
        azure.core.exceptions.AzureError: Storage failed (the next run repeats the work).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    read_batch = reader or default_reader()
    report = CompactionReport()
    cursor_ref = BlobRef(settings.history_container, cursor_name(COMPACTION_JOB))
    cursor, etag = read_cursor(store, settings, COMPACTION_JOB, moment)
    journal = read_journal(store, settings.history_container, RAW_JOURNAL_PREFIX, cursor, moment)
    entries = journal.entries
    seen: set[str] = set()
    done = 0
    while True:
        groups: dict[tuple[str, str], dict[str, list[RankedPoints]]] = defaultdict(
            lambda: defaultdict(list)
        )
        points = 0
        end = done
        while end < len(entries) and points < max_points:
            name = entries[end].line
            end += 1
            if name in seen:
                continue
            seen.add(name)
            points += _group_batch(store, settings, name, read_batch, groups, report)
        active = _fold(store, settings, groups, report)
        if active:
            append_entries(
                store,
                settings.history_container,
                ACTIVE_JOURNAL_PREFIX,
                [a.line() for a in active],
                moment,
            )
            report.active.extend(active)
        cursor = journal.cursor(end)
        etag = _save_cursor(store, cursor_ref, cursor, etag)
        report.cursor = cursor
        if etag is None:
            logger.warning("Compaction cursor changed meanwhile (another run?): stopping here")
            break
        done = end
        if done >= len(entries):
            break
    logger.info(
        "Compaction: %s batches, %s readings, %s device-days (%s written), hour %s",
        report.batches,
        report.readings,
        report.device_days,
        report.written,
        hour_key(moment),
    )
    return report


def _group_batch(
    store: BlobStore,
    settings: Settings,
    name: str,
    read_batch: RawBatchReader,
    groups: dict[tuple[str, str], dict[str, list[RankedPoints]]],
    report: CompactionReport,
) -> int:
    try:
        data = store.get_bytes(BlobRef(settings.raw_container, name))
    except ResourceNotFoundError:
        report.unreadable.append(f"{name}: not found (deleted?)")
        logger.warning("Compaction: raw batch %s is gone; skipped", name)
        return 0
    try:
        batch = read_batch(name, data)
    except InputError as exc:  # RawBatchError: the blob trigger dead-letters it
        report.unreadable.append(f"{name}: {exc.code}: {exc.message}")
        logger.warning("Compaction: raw batch %s unreadable (%s); skipped", name, exc.code)
        return 0
    enqueued_ms = _enqueued_ms(batch.enqueued_time)
    sequence = int(batch.last_sequence)
    count = 0
    for series in batch.series:
        epochs = np.asarray(series.epochs, dtype=np.float64)
        values = np.asarray(series.values, dtype=np.float64)
        days = np.floor(epochs / 86_400).astype(np.int64)
        for day_number in np.unique(days):
            pick = days == day_number
            day = format_timestamp(float(day_number) * 86_400)[:10]
            groups[(series.device_id, day)][series.metric].append(
                RankedPoints.of_delivery(epochs[pick], values[pick], enqueued_ms, sequence)
            )
        count += int(epochs.size)
    report.batches += 1
    report.readings += count
    return count


def _enqueued_ms(value: object) -> int:
    if isinstance(value, datetime):
        seconds = value.timestamp()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        seconds = parse_timestamp(value)
    return int(round(seconds * 1000))


def _fold(
    store: BlobStore,
    settings: Settings,
    groups: Mapping[tuple[str, str], Mapping[str, list[RankedPoints]]],
    report: CompactionReport,
) -> list[ActiveSeries]:
    span: dict[tuple[str, str], tuple[float, float]] = {}
    for (device_id, day), by_metric in sorted(groups.items()):
        new = {
            metric: merge_points(parts)
            for metric, parts in by_metric.items()
            if any(p.size for p in parts)
        }
        if not new:
            continue
        fold_day(store, settings, device_id, day, new, report)
        for metric, points in new.items():
            low, high = float(points.epochs.min()), float(points.epochs.max())
            old = span.get((device_id, metric))
            span[(device_id, metric)] = (
                (min(low, old[0]), max(high, old[1])) if old else (low, high)
            )
    return [ActiveSeries(d, m, lo, hi) for (d, m), (lo, hi) in sorted(span.items())]


def fold_day(
    store: BlobStore,
    settings: Settings,
    device_id: str,
    day: str,
    new: Mapping[str, RankedPoints],
    report: CompactionReport | None = None,
) -> DayHistory:
    """Merge points into one device-day history blob (ETag-conditional; retried on conflict).

    Returns:
        The merged day as stored.

    Raises:
        ConflictError: Lost the race :data:`MAX_ATTEMPTS` times (the next run tries again).
    """
    ref = BlobRef(settings.history_container, history_day_name(device_id, day))
    for _attempt in range(MAX_ATTEMPTS):
        data, etag = store.get_bytes_with_etag(ref)
        base = None if data is None else decode_day(ref.name, data)
        merged = merge_day(base, device_id, day, new)
        encoded = encode_day(merged)
        if report is not None and _attempt == 0:
            report.device_days += 1
        if encoded == (data or b""):
            return merged  # a re-run or a redelivery: nothing new
        if store.put_bytes_if_unchanged(ref, encoded, etag, content_settings=_GZIP) is None:
            if report is not None:
                report.conflicts += 1
            logger.info("History %s changed meanwhile; merging again", ref)
            continue
        if report is not None:
            report.written += 1
        return merged
    raise ConflictError(
        f"Could not update {ref} after {MAX_ATTEMPTS} attempts (contention); the next run "
        "merges it."
    )


def _save_cursor(
    store: BlobStore, ref: BlobRef, cursor: JournalCursor, etag: str | None
) -> str | None:
    """Write the cursor on its ETag; return the new ETag, or ``None`` when another run won."""
    data = json.dumps(cursor.to_dict(), separators=(",", ":")).encode()
    return store.put_bytes_if_unchanged(ref, data, etag, content_settings=_JSON)


def read_cursor(
    store: BlobStore, settings: Settings, job: str, now: datetime
) -> tuple[JournalCursor, str | None]:
    """A job's saved cursor and its ETag, or a fresh cursor (from :data:`INITIAL_LOOKBACK` ago)
    and ``None``."""
    ref = BlobRef(settings.history_container, cursor_name(job))
    document, etag = store.get_json_with_etag(ref)
    if document is None:
        return JournalCursor.starting(now, INITIAL_LOOKBACK), None
    return JournalCursor.from_dict(document), etag


def save_cursor(
    store: BlobStore, settings: Settings, job: str, cursor: JournalCursor, etag: str | None
) -> str | None:
    """Save a job's cursor on its ETag (see :func:`_save_cursor`)."""
    return _save_cursor(store, BlobRef(settings.history_container, cursor_name(job)), cursor, etag)


def backfill(
    store: BlobStore,
    settings: Settings,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> int:
    """Record every raw batch v2 of the enqueued hours ``start`` to ``end`` in the raw journal.

    For raw batches that were never recorded (written before the journal existed, or restored
    from an archive): lists ``batches/{YYYY}/{MM}/{DD}/{HH}/`` of the raw container, one list
    request per hour. The next compaction folds them.

    Returns:
        The number of batch names recorded.
    """
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    names: list[str] = []
    while hour <= end:
        names.extend(store.list_names(settings.raw_container, raw_hour_prefix(hour.timestamp())))
        hour += timedelta(hours=1)
    record_raw_batches(store, settings, names, now)
    return len(names)
