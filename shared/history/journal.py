"""Journals: append-only lines in append blobs, read incrementally with a cursor.

A job that must see every new item exactly once (the compaction sees every raw batch; the
scheduled detection every series with new readings) reads a journal instead of listing what it
works on. Writers append one block per call to the blob of the UTC hour and ten minutes *when
they write* (:func:`shared.storage.names.journal_blob_name`), so a late or redelivered raw batch
is recorded when it arrives, not when its readings were taken, and cannot be missed. A block is
atomic: readers never see half a line.

A reader keeps a :class:`JournalCursor`: the first hour not yet settled, and for each blob of the
open hours how many bytes it has read. One read lists each open hour (one request per hour) and
downloads only the bytes appended since (one ranged request per blob that grew). An hour settles
once it is ten minutes over (writers' clocks may be a little behind) and read to its end.

Entries can repeat (an invocation retried after it appended): readers deduplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from shared.errors import HistoryError
from shared.jsontypes import JSONObject, JSONValue
from shared.storage.client import MAX_APPEND_BLOCK_BYTES, BlobStore, line_blocks
from shared.storage.names import journal_blob_name, journal_hour_prefix
from shared.timefmt import hour_key, hour_start

logger = logging.getLogger(__name__)

#: How long after its end an hour's blobs may still receive appends (clock skew of writers).
SETTLE = timedelta(minutes=10)
#: Largest block an append blob takes (4 MiB); longer appends are split at line boundaries.
MAX_BLOCK_BYTES = MAX_APPEND_BLOCK_BYTES
_TEXT = ContentSettings(content_type="text/plain; charset=utf-8")


def append_entries(
    store: BlobStore, container: str, journal: str, lines: Iterable[str], now: datetime
) -> int:
    """Append lines (no newlines inside) to a journal; one request per call in steady state.

    Args:
        store: Blob storage.
        container: The journal's container.
        journal: The journal's prefix (:data:`shared.storage.names.RAW_JOURNAL_PREFIX`, ...).
        lines: The entries.
        now: The writer's clock (picks the blob).

    Returns:
        The number of append requests made (blocks written).
    """
    moment = now.astimezone(UTC)
    name = journal_blob_name(journal, hour_key(moment), moment.minute // 10)
    blob = store.container(container).get_blob_client(name)
    blocks = 0
    for block in line_blocks(lines, MAX_BLOCK_BYTES):
        try:
            blob.append_block(block)
        except ResourceNotFoundError:  # the first append of these ten minutes: create the blob
            try:
                blob.create_append_blob(
                    content_settings=_TEXT, match_condition=MatchConditions.IfMissing
                )
            except ResourceExistsError:
                pass  # a concurrent writer created it
            blob.append_block(block)
        blocks += 1
    return blocks


@dataclass(frozen=True)
class JournalCursor:
    """How far a reader has read a journal (stored as JSON by its job)."""

    settled: str  # every hour before this one (YYYY/MM/DD/HH) has been read to its end
    offsets: dict[str, int] = field(default_factory=dict)  # bytes read, per blob of open hours

    @classmethod
    def starting(cls, now: datetime, lookback: timedelta) -> JournalCursor:
        """A fresh cursor that reads what was recorded since ``now - lookback``."""
        return cls(hour_key(now - lookback))

    def to_dict(self) -> JSONObject:
        """The cursor's JSON document."""
        return {"settled": self.settled, "offsets": dict(sorted(self.offsets.items()))}

    @classmethod
    def from_dict(cls, document: JSONValue) -> JournalCursor:
        """Read a cursor document back.

        Raises:
            HistoryError: Not a cursor document (an object with ``settled`` and ``offsets``).
        """
        offsets = document.get("offsets") if isinstance(document, Mapping) else None
        if not isinstance(document, Mapping) or not isinstance(offsets, Mapping):
            raise HistoryError(f"Not a journal cursor: {document!r}", "CorruptHistory")
        return cls(str(document["settled"]), {str(k): _offset(v) for k, v in offsets.items()})


def _offset(value: JSONValue) -> int:
    if isinstance(value, int | float | str):
        return int(value)
    raise HistoryError(f"A journal offset is {value!r}, not a number.", "CorruptHistory")


@dataclass(frozen=True)
class JournalEntry:
    """One line of a journal and where it ends in its blob."""

    blob: str
    end: int  # byte offset just after the line's newline
    line: str


@dataclass(frozen=True)
class JournalRead:
    """What one read found: the new entries, and the cursor after consuming some of them."""

    before: JournalCursor
    entries: list[JournalEntry]
    sizes: dict[str, int]  # every blob of the hours read, and its size when listed
    hours: list[str]
    now: datetime
    requests: int  # storage requests this read made

    def cursor(self, consumed: int | None = None) -> JournalCursor:
        """The cursor after the first ``consumed`` entries (all by default) are done."""
        count = len(self.entries) if consumed is None else consumed
        offsets = dict(self.before.offsets)
        for entry in self.entries[:count]:
            offsets[entry.blob] = max(offsets.get(entry.blob, 0), entry.end)
        if count == len(self.entries):
            # Everything listed is read (blobs that grew by a partial line cannot exist: blocks
            # hold whole lines), so each blob's listed size is now read.
            for name, size in self.sizes.items():
                offsets[name] = max(offsets.get(name, 0), size)
        settled = self.hours[-1] if self.hours else self.before.settled
        for hour in self.hours:
            prefix_blobs = [n for n in self.sizes if n.split("/")[-5:-1] == hour.split("/")]
            done = all(offsets.get(n, 0) >= self.sizes[n] for n in prefix_blobs)
            if not done or hour_start(hour) + timedelta(hours=1) + SETTLE > self.now:
                settled = hour
                break
        else:
            if self.hours:
                settled = hour_key(hour_start(self.hours[-1]) + timedelta(hours=1))
        kept = {n: o for n, o in offsets.items() if _hour_of(n) >= settled}
        return JournalCursor(settled, kept)


def _hour_of(blob: str) -> str:
    return "/".join(blob.split("/")[-5:-1])


def read_journal(
    store: BlobStore, container: str, journal: str, cursor: JournalCursor, now: datetime
) -> JournalRead:
    """Read the entries recorded since ``cursor`` (nothing is consumed until a job saves
    :meth:`JournalRead.cursor`).

    Args:
        store: Blob storage.
        container: The journal's container.
        journal: The journal's prefix.
        cursor: Where the reader stands.
        now: The reader's clock (which hours exist, which settled).
    """
    client = store.container(container)
    hours = _hours(cursor.settled, now)
    entries: list[JournalEntry] = []
    sizes: dict[str, int] = {}
    requests = 0
    for hour in hours:
        requests += 1
        listed = [
            (str(item.name), int(item.size or 0))
            for item in client.list_blobs(name_starts_with=journal_hour_prefix(journal, hour))
        ]
        for name, size in sorted(listed):
            sizes[name] = size
            done = cursor.offsets.get(name, 0)
            if size <= done:
                continue
            requests += 1
            data = client.download_blob(name, offset=done, length=size - done).readall()
            entries.extend(_entries(name, done, bytes(data)))
    return JournalRead(cursor, entries, sizes, hours, now, requests)


def _hours(settled: str, now: datetime) -> list[str]:
    hour = hour_start(settled)
    last = hour_start(hour_key(now))
    hours = []
    while hour <= last:
        hours.append(hour_key(hour))
        hour += timedelta(hours=1)
    return hours


def _entries(blob: str, start: int, data: bytes) -> Sequence[JournalEntry]:
    found: list[JournalEntry] = []
    position = start
    for raw in data.split(b"\n")[:-1]:  # blocks end with a newline: the last piece is empty
        position += len(raw) + 1
        line = raw.decode("utf-8", errors="replace").strip()
        if line:
            found.append(JournalEntry(blob, position, line))
    return found
