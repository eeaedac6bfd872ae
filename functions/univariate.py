"""Blob trigger on the raw container: format the series window and run univariate detection.

The trigger source is ``LogsAndContainerScan`` locally (Azurite) and ``EventGrid`` in the cloud
(setting ``BLOB_TRIGGER_SOURCE``). The function reads nothing from the stream itself: it passes
the blob's name to :func:`shared.univariate.detect.detect_raw_batch`, which reads the batch and its
history through the storage client.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.bindings import STORAGE_CONNECTION, blob_name_in_container
from shared.errors import InputError
from shared.settings import get_settings, trigger_source_from_env
from shared.storage.client import BlobStore
from shared.univariate.detect import detect_raw_batch

logger = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("raw_blob_trigger")
@bp.blob_trigger(
    arg_name="blob",
    path="%RAW_CONTAINER%/{name}",
    connection=STORAGE_CONNECTION,
    source=func.BlobSource(trigger_source_from_env()),
)
def raw_blob_trigger(blob: func.InputStream) -> None:
    """Detect anomalies for a new raw batch and store request, results and summary."""
    settings = get_settings()
    name = blob_name_in_container(blob.name or "", settings.raw_container)
    try:
        report = detect_raw_batch(name, BlobStore.from_settings(settings), settings)
    except InputError as exc:
        # Not a raw batch (someone dropped a file in the container): log, do not retry forever.
        logger.error("Ignoring %s: %s (%s)", name, exc.message, exc.code)
        return
    logger.info(
        "Detection for %s: %s points, %s anomalies%s",
        name,
        report.points,
        len(report.anomalies),
        f" (skipped: {report.skipped})" if report.skipped else "",
    )
