"""Blob trigger on the raw container: judge each raw batch live and publish its anomalies.

The trigger source is ``LogsAndContainerScan`` locally (Azurite) and ``EventGrid`` in the cloud
(setting ``BLOB_TRIGGER_SOURCE``). The function hands the blob's name and bytes to
:func:`shared.univariate.live.judge_raw_blob` (one judgement per series of the batch, state in
shards, result and anomaly log before state) and sets the batch's alerts on the ``anomalies``
Event Hub output binding (identity-based connection ``AnomaliesConnection``). The host sends
them when the invocation succeeds; a failed invocation sends nothing and its retry re-emits
the stored result's alerts with the same ids.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.bindings import ANOMALIES_CONNECTION, STORAGE_CONNECTION, blob_name_in_container
from shared.history.compaction import record_raw_batches
from shared.settings import get_settings, trigger_source_from_env
from shared.storage.client import BlobStore
from shared.univariate.live import judge_raw_blob

logger = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("raw_blob_trigger")
@bp.blob_trigger(
    arg_name="blob",
    path="%RAW_CONTAINER%/{name}",
    connection=STORAGE_CONNECTION,
    source=func.BlobSource(trigger_source_from_env()),
)
@bp.event_hub_output(
    arg_name="anomalies",
    event_hub_name="%ANOMALIES_EVENTHUB_NAME%",
    connection=ANOMALIES_CONNECTION,
)
def raw_blob_trigger(blob: func.InputStream, anomalies: func.Out[list[str]]) -> None:
    """Judge a new raw batch; publish its anomalies (one message per alert)."""
    settings = get_settings()
    name = blob_name_in_container(blob.name or "", settings.raw_container)
    store = BlobStore.from_settings(settings)
    # HOOK(history): one append records the batch for the compaction, before the judgement, so
    # the history does not depend on detection succeeding (a retry records it again: harmless).
    record_raw_batches(store, settings, [name])
    report = judge_raw_blob(name, blob.read(), store, settings)
    if report.alerts:
        anomalies.set(report.alert_messages())
    logger.info(
        "Live detection of %s: %s points in %s series, %s alerts%s%s",
        name,
        report.points,
        report.series,
        len(report.alerts),
        " (re-emitted from the stored result)" if report.replayed else "",
        f", {len(report.rejected)} refused" if report.rejected else "",
    )
