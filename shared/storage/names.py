"""Every blob name the app writes, in one place (containers come from the settings).

Raw container (ingest)::

    {device}/{metric}/{YYYY-MM-DD}/p{partition}-{first:020d}-{last:020d}.json   raw batch

Dead-letter container::

    ingest/p{partition}/{sequence:020d}.json                                      bad event

Results container::

    {device}/{metric}/{YYYY-MM-DD}/{batch}/request.json|entire.json|last.json|
                                           changepoint.json|stream.json|summary.json
    {device}/{metric}/stream-state.json                                           stream state
    multivariate/{resultId}.json|.csv                                             mv results

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


def raw_batch_name(
    device_id: str, metric: str, first_timestamp: float, partition_id: str, first: int, last: int
) -> str:
    """Return the deterministic raw batch blob name.

    ``{device}/{metric}/{YYYY-MM-DD}/p{partition}-{first:020d}-{last:020d}.json``: the day of the
    batch's first reading lets detection list only recent days.
    """
    day = format_timestamp(first_timestamp)[:10]
    return (
        raw_day_prefix(device_id, metric, day) + raw_batch_stem(partition_id, first, last) + ".json"
    )


def raw_batch_stem(partition_id: str, first: int, last: int) -> str:
    """The file stem of a raw batch: its partition and sequence-number range."""
    return f"p{partition_id}-{first:020d}-{last:020d}"


def raw_day_prefix(device_id: str, metric: str, day: str) -> str:
    """The folder of one device's metric on one day (``YYYY-MM-DD``) in the raw container."""
    return f"{device_id}/{metric}/{day}/"


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


#: Where the API stores datasets given as a local path or a blob folder (training container).
MATERIALIZED_PREFIX = "api-datasets/"


def materialized_dataset_name(sha256: str, name: str) -> str:
    """Blob name of a dataset the API packed or copied: keyed by its content, so one copy each."""
    return f"{MATERIALIZED_PREFIX}{sha256[:32]}/{name}"
