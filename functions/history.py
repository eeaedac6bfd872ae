"""Timer triggers of the history jobs: compaction, and scheduled entire / change-point detection.

* ``history_compaction`` (``HISTORY_COMPACTION_SCHEDULE``, hourly on the hour by default) folds
  the raw batches recorded since its last run into the per-device-day history
  (:func:`shared.history.compaction.compact`).
* ``scheduled_detection`` (``SCHEDULED_DETECTION_SCHEDULE``, hourly at minute 10 by default) judges
  each series that got readings since its last run over its retained history and publishes
  what the live judge missed on the ``anomalies`` Event Hub output binding
  (:func:`shared.history.detection.run_scheduled_detection`). The host sends the messages when
  the invocation succeeds; the run has logged them and saved its cursor by then.

Schedules are ``%SETTING%`` expressions, resolved by the host from app settings. Timer triggers
run as singletons across instances (the host's blob lease), so two runs of one job never overlap;
the jobs' conditional writes keep them correct if one ever did.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.settings import get_settings
from shared.storage.client import BlobStore

logger = logging.getLogger(__name__)

bp = func.Blueprint()

#: Function names (as the host indexes them).
COMPACTION_FUNCTION = "history_compaction"
DETECTION_FUNCTION = "scheduled_detection"
#: Connection setting prefix of the ``anomalies`` Event Hub (identity-based, as the live path).
ANOMALIES_CONNECTION = "AnomaliesConnection"


@bp.function_name(COMPACTION_FUNCTION)
@bp.timer_trigger(arg_name="timer", schedule="%HISTORY_COMPACTION_SCHEDULE%", use_monitor=True)
def history_compaction(timer: func.TimerRequest) -> None:
    """Fold newly recorded raw batches into the history by device and day."""
    from shared.history.compaction import compact  # heavy imports only when the timer fires

    settings = get_settings()
    report = compact(BlobStore.from_settings(settings), settings)
    logger.info(
        "History compaction%s: %s batches, %s readings, %s device-days, %s written, %s skipped",
        " (past due)" if timer.past_due else "",
        report.batches,
        report.readings,
        report.device_days,
        report.written,
        len(report.unreadable),
    )


@bp.function_name(DETECTION_FUNCTION)
@bp.timer_trigger(arg_name="timer", schedule="%SCHEDULED_DETECTION_SCHEDULE%", use_monitor=True)
@bp.event_hub_output(
    arg_name="anomalies",
    event_hub_name="%ANOMALIES_EVENTHUB_NAME%",
    connection=ANOMALIES_CONNECTION,
)
def scheduled_detection(timer: func.TimerRequest, anomalies: func.Out[list[str]]) -> None:
    """Entire and change-point detection over active series; publish the missed anomalies."""
    from shared.history.detection import run_scheduled_detection

    settings = get_settings()
    report = run_scheduled_detection(BlobStore.from_settings(settings), settings)
    if report.alerts:
        anomalies.set([alert.to_json() for alert in report.alerts])
    logger.info(
        "Scheduled detection %s%s: %s series, %s judged, %s skipped, %s alerts",
        report.run,
        " (past due)" if timer.past_due else "",
        report.series,
        report.judged,
        len(report.skipped),
        len(report.alerts),
    )
