"""Event Hub trigger: a delivered batch in, ONE raw batch blob (v2) and dead letters out.

The trigger decodes the binding's ``EventHubEvent`` objects (partition, sequence numbers,
enqueued times, properties, IoT Hub system properties) into
:class:`shared.telemetry.events.RawEvent` values and hands the batch to
:func:`shared.telemetry.ingest.ingest_batch`. Bad events are dead-lettered there, one by one,
and never stop the batch; storage failures raise, so the retry policy below re-runs the batch
before the checkpoint moves (deterministic names and create-only writes make the re-run write
only what is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import azure.functions as func

from shared.settings import get_settings
from shared.storage.client import BlobStore
from shared.telemetry.events import IOTHUB_DEVICE_PROPERTY, RawEvent
from shared.telemetry.ingest import ingest_batch

logger = logging.getLogger(__name__)

bp = func.Blueprint()

#: Name of the Event Hubs connection setting prefix (EventHubConnection__fullyQualifiedNamespace
#: in the cloud, a connection string locally if you must).
CONNECTION = "EventHubConnection"


def to_raw_events(events: Sequence[func.EventHubEvent]) -> list[RawEvent]:
    """Decode the binding's events, with partition, properties and IoT Hub device id."""
    if not events:
        return []
    # Any: the binding's own type (azure.functions declares EventHubEvent.metadata so).
    metadata: Mapping[str, Any] = events[0].metadata or {}
    context = metadata.get("PartitionContext") or {}
    partition = str(context.get("PartitionId", "")) if isinstance(context, Mapping) else ""
    properties = metadata.get("PropertiesArray") or []
    system = metadata.get("SystemPropertiesArray") or []
    raw: list[RawEvent] = []
    for i, event in enumerate(events):
        sys_props: dict[str | bytes, object] = dict(system[i]) if i < len(system) else {}
        for key, value in (event.iothub_metadata or {}).items():
            sys_props.setdefault(f"iothub-{key}", value)
        sequence = event.sequence_number
        if sequence is None:
            stamped = sys_props.get("SequenceNumber", i)
            sequence = int(stamped) if isinstance(stamped, int | float | str) else int(str(stamped))
        raw.append(
            RawEvent(
                body=event.get_body(),
                partition_id=partition or str(sys_props.get("PartitionId", "0")),
                sequence_number=int(sequence),
                offset=None if event.offset is None else str(event.offset),
                enqueued_time=event.enqueued_time,
                properties=dict(properties[i]) if i < len(properties) and properties[i] else {},
                system_properties=sys_props,
            )
        )
    return raw


@bp.function_name("eventhub_ingest")
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="5",
    minimum_interval="00:00:02",
    maximum_interval="00:01:00",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    connection=CONNECTION,
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
)
def event_hub_message_trigger(events: list[func.EventHubEvent]) -> None:
    """Validate, group and persist one delivered batch of telemetry."""
    settings = get_settings()
    report = ingest_batch(to_raw_events(events), BlobStore.from_settings(settings), settings)
    logger.info(
        "Batch of %s events: %s raw batches, %s dead letters",
        report.events,
        len(report.raw_blobs),
        len(report.dead_letters),
    )


__all__ = ["IOTHUB_DEVICE_PROPERTY", "bp", "event_hub_message_trigger", "to_raw_events"]
