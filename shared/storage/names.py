"""Every blob name the app writes, in one place (containers come from the settings).

Raw container (ingest)::

    batches/{YYYY}/{MM}/{DD}/{HH}/p{partition}-{first:020d}-{last:020d}.jsonl.gz  raw batch v2
    {device}/{metric}/{YYYY-MM-DD}/p{partition}-{first:020d}-{last:020d}.json   raw batch v1 (read)

A v2 raw batch holds every valid reading of one delivered batch (all devices and metrics); its
hour is the enqueued time (UTC) of the batch's lowest-sequence event, so a reading with a stray
timestamp cannot move the batch out of sight. v1 blobs are still read (``read_raw_batch``).

Dead-letter container::

    ingest/p{partition}/{sequence:020d}.json                                      bad event

Results container::

    {device}/{metric}/{YYYY-MM-DD}/{batch}/request.json|entire.json|last.json|
                                           changepoint.json|stream.json|summary.json
    {device}/{metric}/stream-state.json                                           stream state
    multivariate/{resultId}.json|.csv                                             mv results
    anomalies/{YYYY-MM-DD}/{HH}/{writer}.jsonl                    anomaly log (append blobs)
    live/{raw batch name}.result.json                             live judgement of one batch
    live-state/{shards:04d}/{shard:04d}.json                      stream states, one shard (head)
    live-state/{shards:04d}/{shard:04d}/snapshot-{digest}.jsonl   its detectors' snapshot

Dead-letter container, live detection::

    live/{raw batch name}.json                                    unreadable blob / rejected

Models container::

    {modelId}/model.json|model.mvm|export.zip|summary.json

Names are deterministic, so a redelivered batch or a retried activity rewrites the same blobs.
Ids arrive from URLs: the registry checks them before they are joined into a name.
"""

from __future__ import annotations

from shared.timefmt import format_timestamp

#: Folder of the multivariate batch results in the results container.
MULTIVARIATE_RESULTS_PREFIX = "multivariate/"

#: The blobs of one model in the models container (v1.1 model object, engine bytes, ...).
MODEL_OBJECT = "model.json"
MODEL_ARTIFACT = "model.mvm"
MODEL_EXPORT = "export.zip"
MODEL_SUMMARY = "summary.json"


#: Folder of the compacted per-device history in the raw container (not raw batches: the blob
#: trigger skips it).
RAW_HISTORY_PREFIX = "history/"
#: Folder of the v2 raw batches in the raw container.
RAW_BATCHES_PREFIX = "batches/"
#: File suffix of a v2 raw batch (gzip of JSON lines).
RAW_BATCH_SUFFIX = ".jsonl.gz"


def raw_batch_v2_name(enqueued_time: float, partition_id: str, first: int, last: int) -> str:
    """Return the deterministic v2 raw batch blob name (one blob per delivered batch).

    ``batches/{YYYY}/{MM}/{DD}/{HH}/p{partition}-{first:020d}-{last:020d}.jsonl.gz``.

    Args:
        enqueued_time: Epoch seconds (UTC) at which the batch's lowest-sequence event was enqueued.
        partition_id: The Event Hub partition.
        first: The lowest sequence number of the delivered batch (bad events included).
        last: The highest sequence number of the delivered batch.
    """
    return (
        raw_hour_prefix(enqueued_time)
        + raw_batch_stem(partition_id, first, last)
        + RAW_BATCH_SUFFIX
    )


def raw_hour_prefix(enqueued_time: float) -> str:
    """The folder of the v2 raw batches enqueued in one UTC hour (``batches/YYYY/MM/DD/HH/``)."""
    text = format_timestamp(enqueued_time)
    return f"{RAW_BATCHES_PREFIX}{text[0:4]}/{text[5:7]}/{text[8:10]}/{text[11:13]}/"


def raw_batch_stem(partition_id: str, first: int, last: int) -> str:
    """The file stem of a raw batch: its partition and sequence-number range."""
    return f"p{partition_id}-{first:020d}-{last:020d}"


def dead_letter_name(partition_id: str, sequence_number: int) -> str:
    """Return the deterministic dead-letter blob name of an event."""
    return f"ingest/p{partition_id}/{sequence_number:020d}.json"


def batch_result_prefix(device_id: str, metric: str, day: str, stem: str) -> str:
    """Where one raw batch's request and results are stored in the results container."""
    return f"{device_id}/{metric}/{day}/{stem}/"


def stream_state_name(device_id: str, metric: str) -> str:
    """The streaming detector's state of one device's metric (results container)."""
    return f"{device_id}/{metric}/stream-state.json"


def model_blob_name(model_id: str, blob: str) -> str:
    """A model's blob (``MODEL_OBJECT``, ``MODEL_ARTIFACT``, ...) in the models container."""
    return f"{model_id}/{blob}"


def model_prefix(model_id: str) -> str:
    """The folder of every blob of one model in the models container."""
    return f"{model_id}/"


def multivariate_result_name(result_id: str, suffix: str = "json") -> str:
    """A multivariate batch result (``json`` or ``csv``) in the results container."""
    return f"{MULTIVARIATE_RESULTS_PREFIX}{result_id}.{suffix}"


# --------------------------------------------------------------------------- history container
#
#     series/{device}/{YYYY-MM-DD}.jsonl.gz              compacted history of one device and day
#     journal/raw/{YYYY}/{MM}/{DD}/{HH}/{M0}.txt          raw-batch manifest (append blobs, by the
#                                                         hour and ten minutes they were recorded)
#     journal/active/{YYYY}/{MM}/{DD}/{HH}/{M0}.txt       series the compaction touched (same)
#     cursors/{job}.json                                  how far a job has read a journal
#
# Results container (scheduled detection)::
#
#     scheduled/{device}/{metric}/{YYYY-MM-DDTHH}/request.json|entire.json|changepoint.json

#: Folder of the compacted history in the history container.
HISTORY_SERIES_PREFIX = "series/"
#: Journals in the history container: new raw batches, and series with new readings.
RAW_JOURNAL_PREFIX = "journal/raw/"
ACTIVE_JOURNAL_PREFIX = "journal/active/"
#: Folder of the scheduled detection results in the results container.
SCHEDULED_RESULTS_PREFIX = "scheduled/"


def history_day_name(device_id: str, day: str) -> str:
    """The compacted history of one device on one UTC day (``YYYY-MM-DD``), all metrics."""
    return f"{HISTORY_SERIES_PREFIX}{device_id}/{day}.jsonl.gz"


def journal_hour_prefix(journal: str, hour: str) -> str:
    """The folder of one UTC hour (``YYYY/MM/DD/HH``) of a journal (``RAW_JOURNAL_PREFIX``...)."""
    return f"{journal}{hour}/"


def journal_blob_name(journal: str, hour: str, tens_of_minutes: int) -> str:
    """One append blob of a journal: the entries recorded in ten minutes of an hour.

    Ten-minute blobs keep each far below the 50,000 blocks an append blob may hold, at one
    block per raw batch, up to 300,000 batches an hour.
    """
    return f"{journal_hour_prefix(journal, hour)}{tens_of_minutes}0.txt"


def cursor_name(job: str) -> str:
    """The cursor document of a job (``compaction``, ``detection``) in the history container."""
    return f"cursors/{job}.json"


def scheduled_result_prefix(device_id: str, metric: str, run: str) -> str:
    """Where one scheduled run's request and v1.1 responses of a series are stored."""
    return f"{SCHEDULED_RESULTS_PREFIX}{device_id}/{metric}/{run}/"


#: Folder of the anomaly log in the results container (one folder per UTC day of the anomaly).
ANOMALY_LOG_PREFIX = "anomalies/"


def anomaly_log_day_prefix(day: str) -> str:
    """The anomaly log's folder of one UTC day (``YYYY-MM-DD``) of anomalies."""
    return f"{ANOMALY_LOG_PREFIX}{day}/"


def anomaly_log_name(day: str, hour: str, writer: str) -> str:
    """One append blob of the anomaly log: a day and hour of anomalies, from one writer.

    Writers (``live-p0``, ``entire``, ``multivariate``) append to blobs of their own, and an
    hour per blob keeps each blob far below the 50,000 blocks an append blob may hold.
    """
    return f"{anomaly_log_day_prefix(day)}{hour}/{writer}.jsonl"


def live_result_name(raw_name: str) -> str:
    """The live judgement of one raw batch (results container), named after the batch."""
    return f"live/{raw_name}.result.json"


def live_state_shard_name(shard: int, shards: int) -> str:
    """One shard of the stream states (results container).

    The shard count is in the path: changing ``LIVE_STATE_SHARDS`` starts new shards instead of
    mixing two layouts in one document.
    """
    return f"live-state/{shards:04d}/{shard:04d}.json"


def live_state_snapshot_name(shard: int, shards: int, digest: str) -> str:
    """The detector snapshot of one state shard, named after its bytes (immutable).

    With ``digest=""`` this is the prefix of every snapshot of the shard.
    """
    suffix = f"{digest}.jsonl" if digest else ""
    return f"live-state/{shards:04d}/{shard:04d}/snapshot-{suffix}"


def live_dead_letter_name(raw_name: str) -> str:
    """What live detection refused of one raw batch (dead-letter container)."""
    return f"live/{raw_name}.json"


#: Where the API stores datasets given as a local path or a blob folder (training container).
MATERIALIZED_PREFIX = "api-datasets/"


def materialized_dataset_name(sha256: str, name: str) -> str:
    """Blob name of a dataset the API packed or copied: keyed by its content, so one copy each."""
    return f"{MATERIALIZED_PREFIX}{sha256[:32]}/{name}"
