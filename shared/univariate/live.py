"""Live judgement of one raw batch: every series judged once, state in shards, alerts out.

:func:`judge_raw_batch` is what the raw-container blob trigger does with a decoded raw batch
(:class:`shared.telemetry.rawbatch.RawBatch`, all devices and metrics of one delivered Event Hub
batch). Each (device, metric) series runs the causal :class:`~shared.engine.streaming.
StreamDetector` over its points newer than the last it judged; the work per reading is constant
and no history is re-read.

State (:mod:`shared.univariate.live_state`). The series' states live in ``LIVE_STATE_SHARDS``
shards, chosen by a stable hash of the device id. Each batch reads (conditionally: 304 when the
process wrote it last) and writes (ETag-conditional) one small head per shard touched: the
points learned since the shard's detector snapshot. The snapshot, the bulk of a state, is
written only every ``LIVE_SNAPSHOT_POINTS`` points, so its cost is shared by that many
readings, and a warm process never reads one.

Exactly-once effect. The batch's result document (create-only, named after the batch;
:mod:`shared.univariate.live_results`) and the anomaly log are written *before* the shard heads
that record the points as judged. A failure in between leaves the points unjudged in state; the
retry judges them from the same state, finds the stored result and re-emits its alerts (same
ids). A retry after the heads were saved finds no new point and re-emits the stored result's
alerts rather than nothing. Points at or before a series' last judged timestamp are never
learned again (redelivered, re-split or late batches), so no point is counted twice.

Bad input. Readings the detector cannot take (magnitude above :data:`MAX_MAGNITUDE`) and series
whose judgement fails or is not finite are refused, dead-lettered with a coded reason, and leave
that series' state as it was; the rest of the batch goes on.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shared.alerts import Alert, append_anomalies
from shared.engine.streaming import StreamConfig, StreamDetector, StreamPoint
from shared.errors import ConflictError, EngineError, RawBatchError, StateError
from shared.jsontypes import JSONObject
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import RAW_HISTORY_PREFIX, live_result_name
from shared.telemetry.rawbatch import read_raw_batch
from shared.timefmt import format_timestamp
from shared.univariate.live_results import (
    POINT_FIELDS,
    RESULT_FORMAT,
    BatchIdentity,
    Rejection,
    SeriesJudgement,
    create_result,
    dead_letter_raw_blob,
    dead_letter_rejections,
    log_writer,
    reader_rejections,
    result_document,
)
from shared.univariate.live_state import (
    PROCESS_STATE,
    LiveState,
    SeriesEntry,
    Shard,
    StateConflict,
    shard_of,
)

__all__ = [
    "MAX_MAGNITUDE",
    "POINT_FIELDS",
    "PROCESS_STATE",
    "RESULT_FORMAT",
    "LiveReport",
    "LiveState",
    "Rejection",
    "bootstrap_from_history",
    "dead_letter_raw_blob",
    "judge_raw_batch",
    "judge_raw_blob",
    "shard_of",
]

logger = logging.getLogger(__name__)

#: Readings beyond this magnitude are refused: no meter reads 10^15 of anything, and beyond
#: ~10^150 the detector's squares overflow (issue 11, defect 4: alternating +-1e308).
MAX_MAGNITUDE = 1e15
#: Attempts when another invocation writes the same shard meanwhile.
MAX_CONFLICTS = 8


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


class BatchReadings(BatchIdentity, Protocol):
    """A decoded raw batch (``shared.telemetry.rawbatch.RawBatch``): its identity and series."""

    @property
    def series(self) -> Sequence[SeriesReadings]: ...


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
        ConflictError: Every attempt lost the state shards to other writers (retried too).
    """
    for _attempt in range(MAX_CONFLICTS):
        try:
            return _judge_once(batch, store, settings, state)
        except StateConflict as conflict:
            logger.info("State shard %s changed meanwhile; judging again", conflict)
        finally:
            # Shards judged but not saved (a conflict, a storage failure) hold entries that
            # storage does not: the next attempt reads them again.
            state.forget_unsaved()
    raise ConflictError(
        f"Could not save the state of {batch.name} after {MAX_CONFLICTS} attempts: too many "
        "invocations write the same shards (raise LIVE_STATE_SHARDS)."
    )


@dataclass
class _ShardWork:
    shard: Shard
    judged: dict[tuple[str, str], StreamDetector]


def _judge_once(
    batch: BatchReadings, store: BlobStore, settings: Settings, state: LiveState
) -> LiveReport:
    results = settings.results_container
    config = StreamConfig(sensitivity=settings.detect_sensitivity, period=settings.detect_period)
    count = settings.live_state_shards
    by_shard: dict[int, list[SeriesReadings]] = {}
    for series in batch.series:
        by_shard.setdefault(shard_of(series.device_id, count), []).append(series)
    work = {
        index: _ShardWork(state.shard(store, results, index, count), {})
        for index in sorted(by_shard)
    }
    judged: list[SeriesJudgement] = []
    rejected: list[Rejection] = []
    for index in sorted(by_shard):
        item = work[index]
        for series in by_shard[index]:
            outcome = _judge_series(series, item.shard, store, settings, config, state, rejected)
            if outcome is not None:
                judgement, detector = outcome
                judged.append(judgement)
                item.judged[(series.device_id, series.metric)] = detector
    result_ref = BlobRef(results, live_result_name(batch.name))
    if rejected or reader_rejections(batch):
        dead_letter_rejections(store, settings, batch, rejected)
    stored: JSONObject | None
    if judged:
        document = result_document(batch, judged, rejected)
        stored = create_result(store, result_ref, document)
        replayed = stored is not document
    else:
        stored = store.get_json_object_or_none(result_ref)
        replayed = stored is not None
    anomalies = stored["anomalies"] if stored else ()
    if not isinstance(anomalies, Sequence):
        raise StateError(f"The result of {batch.name} holds no list of anomalies.")
    alerts = tuple(Alert.from_dict(a) for a in anomalies)
    if alerts:
        append_anomalies(store, alerts, log_writer(batch), settings=settings)
    # Last: the states that record the points as judged (a failure before this line is retried
    # from the same states and finds the stored result).
    for index in sorted(work):
        _save_shard(store, settings, state, work[index])
    if replayed and not judged:
        logger.info("%s was judged before: re-emitting %s alerts", batch.name, len(alerts))
    return LiveReport(
        batch=batch.name,
        points=sum(len(j.timestamps) for j in judged),
        series=len(judged),
        alerts=alerts,
        result=result_ref.name if stored else None,
        replayed=replayed,
        rejected=tuple(rejected),
        shards=len(work),
    )


def _save_shard(store: BlobStore, settings: Settings, state: LiveState, work: _ShardWork) -> None:
    """Snapshot when due, save the head, then cache the detectors that match it."""
    shard = work.shard
    if not shard.dirty:
        return
    snapshotted = state.snapshot_due(shard, work.judged, settings.live_snapshot_points)
    if snapshotted:
        state.write_snapshot(store, shard, work.judged)
    state.save(store, shard)
    if snapshotted:
        state.delete_old_snapshots(store, shard)
    for (device_id, metric), detector in work.judged.items():
        state.keep(shard, shard.entries[(device_id, metric)], detector)


def _judge_series(
    series: SeriesReadings,
    shard: Shard,
    store: BlobStore,
    settings: Settings,
    config: StreamConfig,
    state: LiveState,
    rejected: list[Rejection],
) -> tuple[SeriesJudgement, StreamDetector] | None:
    key = (series.device_id, series.metric)
    entry = shard.entries.get(key)
    # Plain floats: a series holds a handful of points per batch, where numpy's per-call cost
    # outweighs its per-point gain.
    epochs: list[float] = series.epochs.tolist()
    values: list[float] = series.values.tolist()
    last = entry.last if entry is not None else -math.inf
    picked = [i for i, t in enumerate(epochs) if t > last]
    if not picked:
        return None
    out_of_range = [i for i in picked if not abs(values[i]) <= MAX_MAGNITUDE]  # NaN too
    if out_of_range:
        rejected.append(
            Rejection(
                series.device_id,
                series.metric,
                "ValueOutOfRange",
                f"{len(out_of_range)} readings beyond +-{MAX_MAGNITUDE:g}: the detector "
                "cannot judge them; fix the meter's scaling.",
                tuple(series.timestamps[i] for i in out_of_range),
            )
        )
        dropped = set(out_of_range)
        picked = [i for i in picked if i not in dropped]
        if not picked:
            return None
    if entry is None:
        entry, detector = _new_entry(series, store, settings, config, epochs[picked[0]])
    else:
        detector = state.detector(store, shard, entry, config)
    new_values = [values[i] for i in picked]
    try:
        points = [detector.update(v) for v in new_values]
        broken = _non_finite(points)
        if broken:
            raise EngineError(f"the detector gave non-finite {', '.join(broken)}")
    except (ValueError, ArithmeticError, TypeError) as exc:
        # The series is refused for this batch; its stored state is untouched (the cached
        # detector was advanced and is dropped: the next batch rebuilds it from the entry).
        rejected.append(
            Rejection(
                series.device_id,
                series.metric,
                "DetectorFailed",
                f"the streaming detector could not judge these readings: {exc}",
                tuple(series.timestamps[i] for i in picked),
            )
        )
        return None
    stamps = [series.timestamps[i] for i in picked]
    entry.learn([(epochs[i], values[i]) for i in picked])
    entry.last = epochs[picked[-1]]
    entry.last_text = stamps[-1]
    shard.entries[key] = entry
    shard.dirty = True
    fields: dict[str, list[float] | list[bool]] = {
        "expectedValue": [p.expected_value for p in points],
        "upperMargin": [p.upper_margin for p in points],
        "lowerMargin": [p.lower_margin for p in points],
        "isAnomaly": [p.is_anomaly for p in points],
        "isPositiveAnomaly": [p.is_positive_anomaly for p in points],
        "isNegativeAnomaly": [p.is_negative_anomaly for p in points],
        "severity": [p.severity for p in points],
    }
    return SeriesJudgement(series.device_id, series.metric, stamps, new_values, fields), detector


def _non_finite(points: list[StreamPoint]) -> list[str]:
    """The judged fields that are not finite (a state that cannot be stored)."""
    isfinite = math.isfinite
    if all(
        isfinite(p.expected_value)
        and isfinite(p.upper_margin)
        and isfinite(p.lower_margin)
        and isfinite(p.severity)
        for p in points
    ):
        return []  # the usual case, in one pass
    names = []
    for name, attr in (
        ("expectedValue", "expected_value"),
        ("upperMargin", "upper_margin"),
        ("lowerMargin", "lower_margin"),
        ("severity", "severity"),
    ):
        if not all(isfinite(getattr(p, attr)) for p in points):
            names.append(name)
    return names


def _new_entry(
    series: SeriesReadings,
    store: BlobStore,
    settings: Settings,
    config: StreamConfig,
    first_new: float,
) -> tuple[SeriesEntry, StreamDetector]:
    """A series seen for the first time: start from its retained history (once, bounded)."""
    entry = SeriesEntry(series.device_id, series.metric, -math.inf, "", [])
    detector = StreamDetector(config)
    history = bootstrap_from_history(store, settings, series.device_id, series.metric, first_new)
    if history is not None:
        epochs, values = history
        keep = (epochs < first_new) & (np.abs(values) <= MAX_MAGNITUDE)
        if keep.any():
            detector.update_many(values[keep])
            try:
                entry.state = json.dumps(
                    detector.to_state(), separators=(",", ":"), allow_nan=False
                )
            except ValueError:
                logger.warning(
                    "%s/%s: the state learned from history cannot be stored; starting afresh",
                    series.device_id,
                    series.metric,
                )
                return SeriesEntry(series.device_id, series.metric, -math.inf, "", []), (
                    StreamDetector(config)
                )
            entry.last = float(epochs[keep][-1])
            entry.last_text = format_timestamp(entry.last)
    return entry, detector


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
