"""Live judgement of one raw batch: every series judged once, state in shards, alerts out.

:func:`judge_raw_batch` is what the raw-container blob trigger does with a decoded raw batch
(:class:`shared.telemetry.rawbatch.RawBatch`, all devices and metrics of one delivered Event Hub
batch). Each (device, metric) series runs the causal :class:`~shared.engine.streaming.
StreamDetector` over its points newer than the last it judged; the work per reading is constant
and no history is re-read.

State. The series' states live in ``LIVE_STATE_SHARDS`` shard documents, chosen by a stable
hash of the device id (all metrics of a meter share a shard). A shard entry holds the detector's
last snapshot (``to_state``) and the points learned since (``pending``): restoring is
``from_state(snapshot)`` then ``update_many(pending)``, exactly the detector that judged them
(the engine is chunk-invariant), and a snapshot is taken every ``LIVE_SNAPSHOT_POINTS`` points,
so its cost is shared by that many readings. A process keeps the shards it wrote and their
decoded detectors: a conditional read (``If-None-Match``) answers 304 when nobody else wrote the
shard, and nothing is parsed or decoded again. Each shard is read and written at most once per
batch attempt, the write conditional on the ETag read.

Exactly-once effect. The batch's result document (create-only, named after the batch) and the
anomaly log are written *before* the shard states that record the points as judged. A failure
in between leaves the points unjudged in state; the retry judges them from the same state,
finds the stored result and re-emits its alerts (same ids). A retry after the states were saved
finds no new point and re-emits the stored result's alerts rather than nothing. Points at or
before a series' last judged timestamp are never learned again (redelivered, re-split or late
batches), so no point is counted twice.

Bad input. Readings the detector cannot take (magnitude above :data:`MAX_MAGNITUDE`) and series
whose judgement fails or is not finite are refused, dead-lettered with a coded reason, and leave
that series' state as it was; the rest of the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared.alerts import Alert, append_anomalies
from shared.engine.streaming import StreamConfig, StreamDetector
from shared.errors import RawBatchError
from shared.settings import Settings
from shared.storage.client import JSON_CONTENT, BlobRef, BlobStore
from shared.storage.names import (
    RAW_HISTORY_PREFIX,
    live_dead_letter_name,
    live_result_name,
    live_state_shard_name,
)
from shared.telemetry.rawbatch import RawBatch, read_raw_batch
from shared.timefmt import format_timestamp

logger = logging.getLogger(__name__)

#: Result and state document formats.
RESULT_FORMAT = "meterwatch.liveresult"
STATE_FORMAT = "meterwatch.livestate"
LIVE_VERSION = 1
#: Readings beyond this magnitude are refused: no meter reads 10^15 of anything, and beyond
#: ~10^150 the detector's squares overflow (issue 11, defect 4: alternating +-1e308).
MAX_MAGNITUDE = 1e15
#: Decoded detectors a process keeps (about 30-200 KB each, depending on the engine).
CACHE_SERIES = 4096
#: Shards a process keeps parsed (their entries' JSON text is reused for the next write).
CACHE_SHARDS = 512
#: Attempts when another invocation writes the same shard meanwhile.
MAX_CONFLICTS = 8
#: The v1.1 last-point fields of each judged point, in the result document.
POINT_FIELDS = (
    "expectedValue",
    "upperMargin",
    "lowerMargin",
    "isAnomaly",
    "isPositiveAnomaly",
    "isNegativeAnomaly",
    "severity",
)


class SeriesReadings(Protocol):
    """One (device, metric) series of a raw batch (``shared.telemetry.rawbatch.SeriesBatch``)."""

    @property
    def device_id(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def timestamps(self) -> tuple[str, ...]: ...
    @property
    def epochs(self) -> np.ndarray: ...
    @property
    def values(self) -> np.ndarray: ...


class BatchReadings(Protocol):
    """A decoded raw batch (``shared.telemetry.rawbatch.RawBatch``)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def partition(self) -> str: ...
    @property
    def series(self) -> Sequence[SeriesReadings]: ...


@dataclass(frozen=True)
class Rejection:
    """Readings of one series that live detection refused, with the coded reason."""

    device_id: str
    metric: str
    code: str
    reason: str
    timestamps: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The dead-letter entry."""
        return {
            "deviceId": self.device_id,
            "metric": self.metric,
            "code": self.code,
            "reason": self.reason,
            "timestamps": list(self.timestamps),
        }


@dataclass(frozen=True)
class LiveReport:
    """What :func:`judge_raw_batch` did with one raw batch."""

    batch: str
    points: int
    series: int
    alerts: tuple[Alert, ...]
    result: str | None
    replayed: bool
    rejected: tuple[Rejection, ...]
    shards: int

    def alert_messages(self) -> list[str]:
        """The alerts as Event Hub message bodies (JSON text, schema ``meterwatch.alert/1``)."""
        return [alert.to_json() for alert in self.alerts]


# --------------------------------------------------------------------------- state shards


@dataclass
class _Entry:
    """One series in a shard: last judged moment, detector snapshot, points since."""

    device_id: str
    metric: str
    last: float
    last_text: str
    snapshot: dict[str, Any] | None
    pending: list[list[float]]
    text: str | None = None  # cached JSON of this entry, reused while it does not change
    snapshot_text: str | None = None  # cached JSON of the snapshot (the bulk of the entry)

    def to_json(self) -> str:
        if self.text is None:
            if self.snapshot_text is None:
                self.snapshot_text = json.dumps(
                    self.snapshot, separators=(",", ":"), allow_nan=False
                )
            head = json.dumps(
                {
                    "deviceId": self.device_id,
                    "metric": self.metric,
                    "last": self.last,
                    "lastTimestamp": self.last_text,
                },
                separators=(",", ":"),
            )
            pending = json.dumps(self.pending, separators=(",", ":"), allow_nan=False)
            self.text = f'{head[:-1]},"snapshot":{self.snapshot_text},"pending":{pending}}}'
        return self.text

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> _Entry:
        return cls(
            device_id=str(document["deviceId"]),
            metric=str(document["metric"]),
            last=float(document["last"]),
            last_text=str(document["lastTimestamp"]),
            snapshot=document["snapshot"],
            pending=[[float(t), float(v)] for t, v in document["pending"]],
        )


@dataclass
class _Shard:
    """A parsed shard document and the ETag it was read or written with."""

    ref: BlobRef
    index: int
    count: int
    etag: str | None
    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    dirty: bool = False

    def to_bytes(self) -> bytes:
        head = json.dumps(
            {"format": STATE_FORMAT, "version": LIVE_VERSION, "shard": self.index},
            separators=(",", ":"),
        )
        body = ",".join(self.entries[key].to_json() for key in sorted(self.entries))
        return f'{head[:-1]},"series":[{body}]}}'.encode()


@dataclass
class _CachedDetector:
    detector: StreamDetector
    snapshot: dict[str, Any] | None
    pending: int
    last: float


class _Conflict(Exception):
    """Another invocation wrote a shard between our read and our write."""


class LiveState:
    """The process's view of the state shards: parsed shards and decoded detectors (bounded).

    Args:
        store: Blob storage.
        settings: App settings (results container, shard count, snapshot cadence).
    """

    def __init__(self) -> None:
        self._shards: OrderedDict[BlobRef, _Shard] = OrderedDict()
        self._detectors: OrderedDict[tuple[str, str, str], _CachedDetector] = OrderedDict()
        self._clients: dict[tuple[int, BlobRef], BlobClient] = {}
        self.decoded = 0  # detectors rebuilt from a snapshot (a measure of cache misses)

    def clear(self) -> None:
        """Forget everything cached (a cold process)."""
        self._shards.clear()
        self._detectors.clear()

    def shard(self, store: BlobStore, container: str, index: int, count: int) -> _Shard:
        """Read a shard, conditionally on the cached ETag (304: reuse the parsed copy)."""
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
            shard = _Shard(ref, index, count, None)
            self._remember(shard)
            return shard
        except ResourceModifiedError:  # 304 Not Modified: our copy is the stored one
            assert cached is not None
            cached.dirty = False
            self._shards.move_to_end(ref)
            return cached
        data = downloader.readall()
        document = json.loads(data)
        shard = _Shard(ref, index, count, str(downloader.properties.etag))
        for item in document["series"]:
            entry = _Entry.from_dict(item)
            shard.entries[(entry.device_id, entry.metric)] = entry
        self._remember(shard)
        return shard

    def _client(self, store: BlobStore, ref: BlobRef) -> BlobClient:
        """A blob client per shard (building one costs about 0.5 ms: kept, like the shard)."""
        key = (id(store.service), ref)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) > 4 * CACHE_SHARDS:
                self._clients.clear()
            client = self._clients[key] = store.container(ref.container).get_blob_client(ref.name)
        return client

    def forget_unsaved(self) -> None:
        """Drop every cached shard with changes that were not saved."""
        for ref in [ref for ref, shard in self._shards.items() if shard.dirty]:
            del self._shards[ref]

    def _remember(self, shard: _Shard) -> None:
        self._shards[shard.ref] = shard
        self._shards.move_to_end(shard.ref)
        while len(self._shards) > CACHE_SHARDS:
            self._shards.popitem(last=False)

    def save(self, store: BlobStore, shard: _Shard) -> None:
        """Write a changed shard, conditional on the ETag it was read with.

        Raises:
            _Conflict: Someone else wrote it meanwhile (the cached copy is dropped).
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
            raise _Conflict(str(shard.ref)) from exc
        except Exception:
            # The write may or may not have landed: never trust this copy again.
            self._shards.pop(shard.ref, None)
            raise
        shard.etag = str(response["etag"])
        shard.dirty = False

    def detector(
        self, container: str, entry: _Entry, config: StreamConfig
    ) -> tuple[StreamDetector, bool]:
        """The entry's detector: cached when it matches the entry, else rebuilt from it.

        Returns:
            The detector and whether it came from the cache.
        """
        key = (container, entry.device_id, entry.metric)
        cached = self._detectors.pop(key, None)
        if (
            cached is not None
            and cached.last == entry.last
            and cached.pending == len(entry.pending)
            and cached.snapshot == entry.snapshot
        ):
            return cached.detector, True
        if entry.snapshot is None:
            detector = StreamDetector(config)
        else:
            detector = StreamDetector.from_state(entry.snapshot)
        if entry.pending:
            detector.update_many(np.array([v for _, v in entry.pending], dtype=np.float64))
        self.decoded += 1
        return detector, False

    def keep(self, container: str, entry: _Entry, detector: StreamDetector) -> None:
        """Cache the detector that now matches ``entry``."""
        key = (container, entry.device_id, entry.metric)
        self._detectors[key] = _CachedDetector(
            detector, entry.snapshot, len(entry.pending), entry.last
        )
        while len(self._detectors) > CACHE_SERIES:
            self._detectors.popitem(last=False)


#: The process's live state (the blob trigger's invocations share it).
PROCESS_STATE = LiveState()


def shard_of(device_id: str, shards: int) -> int:
    """The state shard of a device: a stable hash (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def bootstrap_from_history(
    store: BlobStore, settings: Settings, device_id: str, metric: str, before: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """HOOK(history): the retained readings a series without state starts from.

    Returns ``(epochs, values)`` of the last ``LIVE_BOOTSTRAP_DAYS`` days before ``before``
    (ascending, unique), read once with ``shared.history.read_history`` (a bounded range read,
    never years back), or ``None`` to start from nothing (no history, or
    ``LIVE_BOOTSTRAP_DAYS=0``). Cost: one GET per day of the range, once per series; the tail of
    not-yet-compacted batches is not read (it would be a scan of the fleet's last hour).
    """
    if settings.live_bootstrap_days <= 0:
        return None
    from shared.history.reader import read_history  # only series without state need it

    history = read_history(
        store,
        settings,
        device_id,
        metric,
        before - settings.live_bootstrap_days * 86_400.0,
        before,
        tail=False,
    )
    keep = history.epochs < before
    if not keep.any():
        return None
    return history.epochs[keep], history.values[keep]


# --------------------------------------------------------------------------- the use case


@dataclass
class _SeriesJudgement:
    device_id: str
    metric: str
    timestamps: list[str]
    values: list[float]
    fields: dict[str, list[Any]]


def judge_raw_batch(
    batch: BatchReadings,
    store: BlobStore,
    settings: Settings,
    state: LiveState = PROCESS_STATE,
) -> LiveReport:
    """Judge every series of one raw batch; store the result, log and publish its anomalies.

    Args:
        batch: The decoded raw batch.
        store: Blob storage.
        settings: App settings.
        state: The process's shard and detector cache (a fresh one simulates a cold process).

    Returns:
        The report; ``alerts`` are what the trigger publishes on the ``anomalies`` hub.

    Raises:
        azure.core.exceptions.AzureError: Storage failed (the runtime retries the invocation;
            nothing is judged twice, nothing is lost).
    """
    for _attempt in range(MAX_CONFLICTS):
        try:
            return _judge_once(batch, store, settings, state)
        except _Conflict as conflict:
            logger.info("State shard %s changed meanwhile; judging again", conflict)
        finally:
            # Shards judged but not saved (a conflict, a storage failure) hold entries that
            # storage does not: the next attempt reads them again.
            state.forget_unsaved()
    raise RuntimeError(
        f"Could not save the state of {batch.name} after {MAX_CONFLICTS} attempts: too many "
        "invocations write the same shards (raise LIVE_STATE_SHARDS)."
    )


def _judge_once(
    batch: BatchReadings, store: BlobStore, settings: Settings, state: LiveState
) -> LiveReport:
    results = settings.results_container
    config = StreamConfig(sensitivity=settings.detect_sensitivity, period=settings.detect_period)
    count = settings.live_state_shards
    by_shard: dict[int, list[SeriesReadings]] = {}
    for series in batch.series:
        by_shard.setdefault(shard_of(series.device_id, count), []).append(series)
    shards = {index: state.shard(store, results, index, count) for index in sorted(by_shard)}
    judged: list[_SeriesJudgement] = []
    rejected: list[Rejection] = []
    to_keep: list[tuple[_Entry, StreamDetector]] = []
    for index in sorted(by_shard):
        shard = shards[index]
        for series in by_shard[index]:
            outcome = _judge_series(series, shard, store, settings, config, state, rejected)
            if outcome is not None:
                judgement, entry, detector = outcome
                judged.append(judgement)
                to_keep.append((entry, detector))
    result_ref = BlobRef(results, live_result_name(batch.name))
    points = sum(len(j.timestamps) for j in judged)
    if rejected or _reader_rejections(batch):
        _dead_letter(store, settings, batch, rejected)
    stored: dict[str, Any] | None
    if judged:
        document = _result_document(batch, judged, rejected)
        stored = _create_result(store, result_ref, document)
        replayed = stored is not document
    else:
        stored = store.get_json_or_none(result_ref)
        replayed = stored is not None
    alerts = tuple(Alert.from_dict(a) for a in stored["anomalies"]) if stored else ()
    if alerts:
        append_anomalies(store, alerts, _writer(batch), settings=settings)
    # Last: the states that record the points as judged (a failure before this line is retried
    # from the same states and finds the stored result).
    for index in sorted(shards):
        if shards[index].dirty:
            state.save(store, shards[index])
    for entry, detector in to_keep:
        state.keep(results, entry, detector)
    if replayed and not judged:
        logger.info("%s was judged before: re-emitting %s alerts", batch.name, len(alerts))
    return LiveReport(
        batch=batch.name,
        points=points,
        series=len(judged),
        alerts=alerts,
        result=result_ref.name if stored else None,
        replayed=replayed,
        rejected=tuple(rejected),
        shards=len(shards),
    )


def _judge_series(
    series: SeriesReadings,
    shard: _Shard,
    store: BlobStore,
    settings: Settings,
    config: StreamConfig,
    state: LiveState,
    rejected: list[Rejection],
) -> tuple[_SeriesJudgement, _Entry, StreamDetector] | None:
    key = (series.device_id, series.metric)
    entry = shard.entries.get(key)
    epochs = np.asarray(series.epochs, dtype=np.float64)
    values = np.asarray(series.values, dtype=np.float64)
    last = entry.last if entry is not None else -math.inf
    new = epochs > last
    if not new.any():
        return None
    out_of_range = new & ~(np.abs(values) <= MAX_MAGNITUDE)  # NaN is out of range too
    if out_of_range.any():
        rejected.append(
            Rejection(
                series.device_id,
                series.metric,
                "ValueOutOfRange",
                f"{int(out_of_range.sum())} readings beyond +-{MAX_MAGNITUDE:g}: the detector "
                "cannot judge them; fix the meter's scaling.",
                tuple(series.timestamps[i] for i in np.flatnonzero(out_of_range)),
            )
        )
        new &= ~out_of_range
        if not new.any():
            return None
    if entry is None:
        entry = _new_entry(series, store, settings, config, float(epochs[new][0]))
    detector, _cached = state.detector(settings.results_container, entry, config)
    picked = np.flatnonzero(new)
    try:
        outcome = detector.update_many(values[picked])
        columns = {
            "expectedValue": outcome.expected_values,
            "upperMargin": outcome.upper_margins,
            "lowerMargin": outcome.lower_margins,
            "severity": outcome.severity,
        }
        broken = [name for name, column in columns.items() if not np.isfinite(column).all()]
        if broken:
            raise ValueError(f"the detector gave non-finite {', '.join(broken)}")
        pending = entry.pending + [[float(epochs[i]), float(values[i])] for i in picked.tolist()]
        snapshot = entry.snapshot
        if len(pending) >= settings.live_snapshot_points:
            snapshot = detector.to_state()
            json.dumps(snapshot, allow_nan=False)  # a state that cannot be stored is refused
            pending = []
    except (ValueError, ArithmeticError, TypeError) as exc:
        # The series is refused for this batch; its stored state is untouched (the cached
        # detector was advanced, so it is dropped: the next batch rebuilds it from the entry).
        rejected.append(
            Rejection(
                series.device_id,
                series.metric,
                "DetectorFailed",
                f"the streaming detector could not judge these readings: {exc}",
                tuple(series.timestamps[i] for i in picked.tolist()),
            )
        )
        return None
    stamps = [series.timestamps[i] for i in picked.tolist()]
    entry.pending = pending
    if snapshot is not entry.snapshot:
        entry.snapshot = snapshot
        entry.snapshot_text = None
    entry.last = float(epochs[picked[-1]])
    entry.last_text = stamps[-1]
    entry.text = None
    shard.entries[key] = entry
    shard.dirty = True
    fields: dict[str, list[Any]] = {
        "expectedValue": outcome.expected_values.tolist(),
        "upperMargin": outcome.upper_margins.tolist(),
        "lowerMargin": outcome.lower_margins.tolist(),
        "isAnomaly": outcome.is_anomaly.tolist(),
        "isPositiveAnomaly": outcome.is_positive_anomaly.tolist(),
        "isNegativeAnomaly": outcome.is_negative_anomaly.tolist(),
        "severity": outcome.severity.tolist(),
    }
    judgement = _SeriesJudgement(
        series.device_id, series.metric, stamps, values[picked].tolist(), fields
    )
    return judgement, entry, detector


def _new_entry(
    series: SeriesReadings,
    store: BlobStore,
    settings: Settings,
    config: StreamConfig,
    first_new: float,
) -> _Entry:
    """A series seen for the first time: start from its retained history (once, bounded)."""
    entry = _Entry(series.device_id, series.metric, -math.inf, "", None, [])
    history = bootstrap_from_history(store, settings, series.device_id, series.metric, first_new)
    if history is not None:
        epochs, values = history
        keep = (epochs < first_new) & (np.abs(values) <= MAX_MAGNITUDE)
        if keep.any():
            detector = StreamDetector(config)
            detector.update_many(values[keep])
            entry.snapshot = detector.to_state()
            entry.last = float(epochs[keep][-1])
            entry.last_text = format_timestamp(entry.last)
    return entry


def _result_document(
    batch: BatchReadings, judged: list[_SeriesJudgement], rejected: list[Rejection]
) -> dict[str, Any]:
    anomalies: list[dict[str, Any]] = []
    series_docs: list[dict[str, Any]] = []
    for item in sorted(judged, key=lambda j: (j.device_id, j.metric)):
        f = item.fields
        series_docs.append(
            {
                "deviceId": item.device_id,
                "metric": item.metric,
                "timestamps": item.timestamps,
                "values": item.values,
                **{name: f[name] for name in POINT_FIELDS},
            }
        )
        for i in np.flatnonzero(np.asarray(f["isAnomaly"], dtype=bool)).tolist():
            alert = Alert.create(
                device_id=item.device_id,
                metric=item.metric,
                timestamp=item.timestamps[i],
                value=item.values[i],
                expected_value=f["expectedValue"][i],
                lower_margin=max(0.0, f["lowerMargin"][i]),
                upper_margin=max(0.0, f["upperMargin"][i]),
                severity=min(1.0, max(0.0, f["severity"][i])),
                direction="up" if f["isPositiveAnomaly"][i] else "down",
                detector="stream",
                source=batch.name,
            )
            anomalies.append(alert.to_dict())
    return {
        "format": RESULT_FORMAT,
        "version": LIVE_VERSION,
        "batch": batch.name,
        "source": batch.source,
        "partition": batch.partition,
        "points": sum(len(j.timestamps) for j in judged),
        "series": series_docs,
        "anomalies": anomalies,
        "rejected": [r.to_dict() for r in rejected],
    }


def _create_result(store: BlobStore, ref: BlobRef, document: dict[str, Any]) -> dict[str, Any]:
    """Create the batch's result; when a previous attempt stored one, that one is returned."""
    data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    blob = store.container(ref.container).get_blob_client(ref.name)
    try:
        blob.upload_blob(data, overwrite=False, content_settings=JSON_CONTENT)
    except ResourceExistsError:
        stored: dict[str, Any] = store.get_json(ref)
        return stored
    return document


def _reader_rejections(batch: BatchReadings) -> list[dict[str, Any]]:
    """Records the reader refused inside a readable blob (IoT Hub routing messages)."""
    if not isinstance(batch, RawBatch):
        return []
    return [
        {"index": r.index, "code": r.code, "reason": r.reason, "payload": r.payload}
        for r in batch.rejected
    ]


def _dead_letter(
    store: BlobStore, settings: Settings, batch: BatchReadings, rejected: list[Rejection]
) -> None:
    store.put_json(
        BlobRef(settings.deadletter_container, live_dead_letter_name(batch.name)),
        {
            "blob": batch.name,
            "stage": "live-detection",
            "whole": False,
            "rejected": [r.to_dict() for r in rejected],
            "records": _reader_rejections(batch),
        },
    )
    logger.warning("%s: %s series refused by live detection", batch.name, len(rejected))


def judge_raw_blob(
    name: str,
    data: bytes,
    store: BlobStore,
    settings: Settings,
    state: LiveState = PROCESS_STATE,
) -> LiveReport:
    """What the raw-container blob trigger does: read the blob, judge it, or dead-letter it.

    A blob the reader refuses (:class:`~shared.errors.RawBatchError`: empty, truncated,
    non-JSON, wrong schema) is dead-lettered whole with its code and reason and the call
    returns normally, so the trigger never loops on it. Compacted history blobs
    (``history/...``, written by the history job) are not raw batches and are skipped.

    Raises:
        azure.core.exceptions.AzureError: Storage failed (the invocation is retried).
    """
    if name.startswith(RAW_HISTORY_PREFIX):
        return LiveReport(name, 0, 0, (), None, False, (), 0)
    try:
        batch = read_raw_batch(name, data)
    except RawBatchError as exc:
        dead_letter_raw_blob(store, settings, name, exc.code, exc.message)
        return LiveReport(
            name, 0, 0, (), None, False, (Rejection("", "", exc.code, exc.message, ()),), 0
        )
    return judge_raw_batch(batch, store, settings, state)


def dead_letter_raw_blob(
    store: BlobStore, settings: Settings, name: str, code: str, reason: str
) -> BlobRef:
    """Dead-letter a whole raw blob that cannot be read (the trigger then returns, no retry)."""
    ref = BlobRef(settings.deadletter_container, live_dead_letter_name(name))
    store.put_json(
        ref,
        {"blob": name, "stage": "live-detection", "whole": True, "code": code, "reason": reason},
    )
    logger.error("Raw blob %s dead-lettered: %s (%s)", name, reason, code)
    return ref


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _writer(batch: BatchReadings) -> str:
    """The anomaly log writer of a batch: live detection, per partition (or source)."""
    label = _UNSAFE.sub("_", batch.partition or batch.source or "x")[:50]
    return f"live-{label}"
