"""The stream states of live detection: shard heads written per batch, snapshots written rarely.

A fleet's series are hashed by device (:func:`shard_of`) into ``LIVE_STATE_SHARDS`` shards; all
metrics of a meter share one. A shard is two kinds of blob (results container):

* the **head** (``live-state/{shards}/{shard}.json``), read and written once per batch, ETag
  conditional: for each series its last judged moment and the points it learned since the
  shard's snapshot (``pending``, ``[epoch, value]`` pairs, at most ``LIVE_SNAPSHOT_POINTS``),
  and the name of that snapshot. It is small (about 1 KB a series), so a batch writes little
  whatever the detector's state weighs;
* the **snapshot** (``live-state/{shards}/{shard}/snapshot-{digest}.jsonl``), immutable and
  named after its bytes: one line naming the series, then one line per series with its
  detector's ``to_state``. It is written, create-only, before the head that names it, when a
  series judged in the batch has ``LIVE_SNAPSHOT_POINTS`` pending points (or starts from its
  history); the series judged in that batch are snapshotted afresh, the others keep their line
  and their pending points. The previous snapshots of the shard are deleted after the head is
  saved (a failure in between leaves one that the next snapshot deletes).

A series' detector is ``from_state(snapshot line)`` then ``update_many(pending)``: exactly the
detector that judged them (the engine is chunk-invariant). The process keeps the heads it read
or wrote and the decoded detectors: a conditional read (``If-None-Match``) answers 304 when
nobody else wrote the head, so a warm process parses and decodes nothing and never reads a
snapshot.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared.engine.streaming import StreamConfig, StreamDetector
from shared.errors import StateError
from shared.jsontypes import JSONObject, JSONValue
from shared.storage.client import JSON_CONTENT, BlobRef, BlobStore, release_error
from shared.storage.names import live_state_shard_name, live_state_snapshot_name

logger = logging.getLogger(__name__)

#: Head and snapshot document formats.
STATE_FORMAT = "meterwatch.livestate"
STATE_VERSION = 2
SNAPSHOT_FORMAT = "meterwatch.livesnapshot"
SNAPSHOT_VERSION = 1
#: Decoded detectors a process keeps (about 30-200 KB each, depending on the engine).
CACHE_SERIES = 4096
#: Shard heads a process keeps parsed (their entries' JSON text is reused for the next write).
CACHE_SHARDS = 512
#: Snapshots a process keeps read (only a cold process, or a snapshot of silent series, needs one).
CACHE_SNAPSHOTS = 8

SeriesKey = tuple[str, str]


class StateConflict(Exception):
    """Another invocation wrote a shard between our read and our write (judge again)."""


def shard_of(device_id: str, shards: int) -> int:
    """The state shard of a device: a stable hash (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclass
class SeriesEntry:
    """One series in a shard head: last judged moment, points since the shard's snapshot.

    ``in_snapshot`` says whether the shard's snapshot holds this series' detector; when it does
    not, the detector is a fresh one fed ``pending``. ``state`` is a detector state not stored
    yet (a series started from its history): it forces a snapshot at the next save.
    """

    device_id: str
    metric: str
    last: float
    last_text: str
    pending: list[tuple[float, float]]
    in_snapshot: bool = False
    state: str | None = None
    text: str | None = None  # cached JSON of this entry, reused while it does not change
    #: ``pending`` as JSON (without the brackets), kept in step by :meth:`learn`: a batch
    #: encodes its new points only, not every pending point again.
    pending_text: str | None = None

    def learn(self, points: list[tuple[float, float]]) -> None:
        """Add judged ``(epoch, value)`` points (finite floats) to ``pending``.

        In place, and as tuples of floats (which the cyclic GC stops tracking): a batch leaves
        no new container per point or per series for the old generations to sweep.
        """
        if self.pending_text is None:
            self.pending_text = json.dumps(self.pending, separators=(",", ":"))[1:-1]
        # float repr is what json.dumps writes for a finite float: the same bytes, cheaper.
        added = ",".join(f"[{t!r},{v!r}]" for t, v in points)
        self.pending_text = f"{self.pending_text},{added}" if self.pending_text else added
        self.pending.extend(points)
        self.text = None

    def to_json(self) -> str:
        if self.text is None:
            if self.pending_text is None:
                self.pending_text = json.dumps(
                    self.pending, separators=(",", ":"), allow_nan=False
                )[1:-1]
            head = orjson.dumps(  # a tenth of json.dumps's time, once per series and batch
                {
                    "deviceId": self.device_id,
                    "metric": self.metric,
                    "last": self.last,
                    "lastTimestamp": self.last_text,
                    "inSnapshot": self.in_snapshot,
                }
            ).decode()
            self.text = f'{head[:-1]},"pending":[{self.pending_text}]}}'
        return self.text

    @classmethod
    def from_dict(cls, document: JSONObject) -> SeriesEntry:
        """Read an entry of a shard head back.

        Raises:
            StateError: ``last`` is not a number or ``pending`` not a list of pairs of numbers.
        """
        last, pending = document["last"], document["pending"]
        if not isinstance(last, int | float) or not isinstance(pending, list):
            raise StateError(f"A live-state entry of {document.get('deviceId')!r} is malformed.")
        return cls(
            device_id=str(document["deviceId"]),
            metric=str(document["metric"]),
            last=float(last),
            last_text=str(document["lastTimestamp"]),
            pending=[_pair(point) for point in pending],
            in_snapshot=bool(document["inSnapshot"]),
        )


def _pair(point: JSONValue) -> tuple[float, float]:
    if isinstance(point, Sequence) and len(point) == 2:
        t, v = point
        if isinstance(t, int | float) and isinstance(v, int | float):
            return (float(t), float(v))
    raise StateError(f"A pending point of a live-state entry is {point!r}, not [epoch, value].")


@dataclass
class Shard:
    """A parsed shard head and the ETag it was read or written with."""

    ref: BlobRef
    index: int
    count: int
    etag: str | None
    snapshot: str | None = None
    entries: dict[SeriesKey, SeriesEntry] = field(default_factory=dict)
    dirty: bool = False
    #: Snapshot lines of a version-1 head (states inline), stored at the next save.
    inline: dict[SeriesKey, str] | None = None

    def to_bytes(self) -> bytes:
        head = json.dumps(
            {
                "format": STATE_FORMAT,
                "version": STATE_VERSION,
                "shard": self.index,
                "snapshot": self.snapshot,
            },
            separators=(",", ":"),
        )
        body = ",".join(self.entries[key].to_json() for key in sorted(self.entries))
        return f'{head[:-1]},"series":[{body}]}}'.encode()


@dataclass(slots=True)
class _CachedDetector:
    detector: StreamDetector
    snapshot: str | None
    pending: int
    last: float


def _encode_snapshot(index: int, lines: dict[SeriesKey, str]) -> bytes:
    keys = sorted(lines)
    header = json.dumps(
        {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "shard": index,
            "series": [list(key) for key in keys],
        },
        separators=(",", ":"),
    )
    return "\n".join([header, *(lines[key] for key in keys)]).encode()


def _decode_snapshot(data: bytes) -> dict[SeriesKey, str]:
    header, *lines = data.decode("utf-8").split("\n")
    document = json.loads(header)
    if document.get("format") != SNAPSHOT_FORMAT or document.get("version") != SNAPSHOT_VERSION:
        raise StateError(f"not a {SNAPSHOT_FORMAT}/{SNAPSHOT_VERSION} document")
    keys = [(str(device), str(metric)) for device, metric in document["series"]]
    if len(keys) != len(lines):
        raise StateError(f"{len(keys)} series named, {len(lines)} states")
    return dict(zip(keys, lines, strict=True))


class LiveState:
    """The process's view of the state shards: parsed heads, snapshots and detectors (bounded)."""

    def __init__(self) -> None:
        self._shards: OrderedDict[BlobRef, Shard] = OrderedDict()
        self._snapshots: OrderedDict[BlobRef, dict[SeriesKey, str]] = OrderedDict()
        self._detectors: OrderedDict[tuple[str, str, str], _CachedDetector] = OrderedDict()
        #: Cache records taken out by :meth:`detector`, for :meth:`keep` to refill (no new
        #: object per series and batch for the GC's old generations).
        self._spare: dict[tuple[str, str, str], _CachedDetector] = {}
        self._clients: dict[tuple[int, BlobRef], BlobClient] = {}
        self.decoded = 0  # detectors rebuilt from storage (a measure of cache misses)

    def clear(self) -> None:
        """Forget everything cached (a cold process)."""
        self._shards.clear()
        self._snapshots.clear()
        self._detectors.clear()
        self._spare.clear()

    # ------------------------------------------------------------------------------ reading

    def shard(self, store: BlobStore, container: str, index: int, count: int) -> Shard:
        """Read a shard head, conditionally on the cached ETag (304: reuse the parsed copy)."""
        ref = BlobRef(container, live_state_shard_name(index, count))
        cached = self._shards.get(ref)
        blob = self._client(store, ref)
        try:
            if cached is not None and cached.etag is not None:
                downloader = blob.download_blob(
                    etag=cached.etag, match_condition=MatchConditions.IfModified
                )
            else:
                downloader = blob.download_blob()
        except ResourceNotFoundError:
            shard = Shard(ref, index, count, None)
            self._remember(shard)
            return shard
        except ResourceModifiedError as exc:  # 304 Not Modified: our copy is the stored one
            if cached is None:  # only a conditional read (of a cached copy) answers 304
                raise
            release_error(exc)
            cached.dirty = False
            self._shards.move_to_end(ref)
            return cached
        document = json.loads(downloader.readall())
        shard = Shard(ref, index, count, str(downloader.properties.etag))
        if document.get("version") == 1:  # states inline (the first layout): moved out on save
            shard.inline = {}
            for item in document["series"]:
                key = (str(item["deviceId"]), str(item["metric"]))
                item["inSnapshot"] = item["snapshot"] is not None
                shard.entries[key] = SeriesEntry.from_dict(item)
                if item["snapshot"] is not None:
                    shard.inline[key] = json.dumps(
                        item["snapshot"], separators=(",", ":"), allow_nan=False
                    )
        else:
            shard.snapshot = document["snapshot"]
            for item in document["series"]:
                entry = SeriesEntry.from_dict(item)
                shard.entries[(entry.device_id, entry.metric)] = entry
        self._remember(shard)
        return shard

    def _snapshot_lines(self, store: BlobStore, shard: Shard) -> dict[SeriesKey, str]:
        """The detector states of the shard's snapshot (read once, immutable)."""
        if shard.inline is not None:
            return shard.inline
        if shard.snapshot is None:
            return {}
        ref = BlobRef(shard.ref.container, shard.snapshot)
        lines = self._snapshots.get(ref)
        if lines is None:
            try:
                data = self._client(store, ref).download_blob().readall()
            except ResourceNotFoundError as exc:
                # A newer head replaced it and its writer deleted it: read the head again.
                self._shards.pop(shard.ref, None)
                raise StateConflict(str(ref)) from exc
            lines = self._snapshots[ref] = _decode_snapshot(data)
            while len(self._snapshots) > CACHE_SNAPSHOTS:
                self._snapshots.popitem(last=False)
        self._snapshots.move_to_end(ref)
        return lines

    def detector(
        self, store: BlobStore, shard: Shard, entry: SeriesEntry, config: StreamConfig
    ) -> StreamDetector:
        """The entry's detector: cached when it matches the entry, else rebuilt from storage."""
        key = (shard.ref.container, entry.device_id, entry.metric)
        cached = self._detectors.pop(key, None)
        base = shard.snapshot if entry.in_snapshot else None
        if (
            cached is not None
            and cached.last == entry.last
            and cached.pending == len(entry.pending)
            and cached.snapshot == base
        ):
            if len(self._spare) >= CACHE_SERIES:
                self._spare.clear()
            self._spare[key] = cached
            return cached.detector
        elif entry.in_snapshot:
            line = self._snapshot_lines(store, shard)[(entry.device_id, entry.metric)]
            detector = StreamDetector.from_state(json.loads(line))
        else:
            detector = StreamDetector(config)
        if entry.pending:
            detector.update_many(np.array([v for _, v in entry.pending], dtype=np.float64))
        self.decoded += 1
        return detector

    def keep(self, shard: Shard, entry: SeriesEntry, detector: StreamDetector) -> None:
        """Cache the detector that now matches ``entry`` (after the shard was saved)."""
        key = (shard.ref.container, entry.device_id, entry.metric)
        base = shard.snapshot if entry.in_snapshot else None
        cached = self._spare.pop(key, None)
        if cached is None:
            cached = _CachedDetector(detector, base, len(entry.pending), entry.last)
        else:
            cached.detector, cached.snapshot = detector, base
            cached.pending, cached.last = len(entry.pending), entry.last
        self._detectors[key] = cached
        while len(self._detectors) > CACHE_SERIES:
            self._detectors.popitem(last=False)

    # ------------------------------------------------------------------------------ writing

    def snapshot_due(
        self, shard: Shard, judged: dict[SeriesKey, StreamDetector], points: int
    ) -> bool:
        """Whether this save writes a new snapshot of the shard.

        Args:
            shard: The shard, its entries updated by the batch.
            judged: The detectors of the series judged in this batch.
            points: ``LIVE_SNAPSHOT_POINTS``.
        """
        if shard.inline is not None:
            return True
        for key in judged:
            entry = shard.entries[key]
            if entry.state is not None or len(entry.pending) >= points:
                return True
        return False

    def write_snapshot(
        self, store: BlobStore, shard: Shard, judged: dict[SeriesKey, StreamDetector]
    ) -> str:
        """Write the shard's next snapshot (create-only) and point the entries at it.

        The series judged in this batch are snapshotted afresh (their pending points cleared);
        the others keep their stored line and pending points.

        Returns:
            The snapshot's blob name (the head must still be saved).

        """
        lines: dict[SeriesKey, str] = {}
        fresh: set[SeriesKey] = set()
        for key in judged:
            try:
                lines[key] = json.dumps(
                    judged[key].to_state(), separators=(",", ":"), allow_nan=False
                )
            except ValueError:
                # Not storable (not finite): the series keeps its stored line and replays its
                # pending points; nothing it judged is lost.
                logger.error("%s/%s: detector state is not finite; not snapshotted", *key)
            else:
                fresh.add(key)
        kept = []
        for key, entry in shard.entries.items():
            if key in fresh:
                continue
            if entry.state is not None:  # started from its history: that state, then pending
                lines[key] = entry.state
            elif entry.in_snapshot:
                kept.append(key)
        old = self._snapshot_lines(store, shard) if kept else {}
        for key in kept:
            lines[key] = old[key]
        data = _encode_snapshot(shard.index, lines)
        digest = hashlib.blake2b(data, digest_size=10).hexdigest()
        name = live_state_snapshot_name(shard.index, shard.count, digest)
        ref = BlobRef(shard.ref.container, name)
        try:
            self._client(store, ref).upload_blob(data, overwrite=False)
        except ResourceExistsError:
            pass  # the same bytes, written by an attempt that did not save its head
        for key, entry in shard.entries.items():
            if key in fresh:
                entry.pending = []
                entry.pending_text = None
            if key in lines:
                entry.in_snapshot = True
                entry.state = None
            entry.text = None
        shard.snapshot = name
        shard.inline = None
        self._snapshots[ref] = lines
        while len(self._snapshots) > CACHE_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return name

    def save(self, store: BlobStore, shard: Shard) -> None:
        """Write a changed shard head, conditional on the ETag it was read with.

        Raises:
            StateConflict: Someone else wrote it meanwhile (the cached copy is dropped).
        """
        blob = self._client(store, shard.ref)
        try:
            if shard.etag is None:
                response = blob.upload_blob(
                    shard.to_bytes(), overwrite=False, content_settings=JSON_CONTENT
                )
            else:
                response = blob.upload_blob(
                    shard.to_bytes(),
                    overwrite=True,
                    content_settings=JSON_CONTENT,
                    etag=shard.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            self._shards.pop(shard.ref, None)
            raise StateConflict(str(shard.ref)) from exc
        except Exception:
            # The write may or may not have landed: never trust this copy again.
            self._shards.pop(shard.ref, None)
            raise
        shard.etag = str(response["etag"])
        shard.dirty = False

    def delete_old_snapshots(self, store: BlobStore, shard: Shard) -> None:
        """Delete the shard's snapshots other than the one its saved head names."""
        prefix = live_state_snapshot_name(shard.index, shard.count, "")
        container = store.container(shard.ref.container)
        for name in store.list_names(shard.ref.container, prefix):
            if name != shard.snapshot:
                try:
                    container.delete_blob(name)
                except ResourceNotFoundError:
                    pass
                self._snapshots.pop(BlobRef(shard.ref.container, name), None)

    def forget_unsaved(self) -> None:
        """Drop every cached shard with changes that were not saved."""
        for ref in [ref for ref, shard in self._shards.items() if shard.dirty]:
            del self._shards[ref]

    def _remember(self, shard: Shard) -> None:
        self._shards[shard.ref] = shard
        self._shards.move_to_end(shard.ref)
        while len(self._shards) > CACHE_SHARDS:
            self._shards.popitem(last=False)

    def _client(self, store: BlobStore, ref: BlobRef) -> BlobClient:
        """A blob client per blob (building one costs about 0.5 ms: kept, like the shard)."""
        key = (id(store.service), ref)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) > 4 * CACHE_SHARDS:
                self._clients.clear()
            client = self._clients[key] = store.container(ref.container).get_blob_client(ref.name)
        return client


#: The process's live state (the blob trigger's invocations share it).
PROCESS_STATE = LiveState()
