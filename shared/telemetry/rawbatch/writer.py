"""The one writer of raw batch v2: :func:`encode_raw_batch` (the ingest's hot path)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping

from shared.telemetry.rawbatch.model import GZIP_LEVEL, RAW_BATCH_FORMAT, RAW_BATCH_VERSION
from shared.timefmt import chronological


def encode_raw_batch(
    series: Mapping[tuple[str, str], Mapping[str, float]],
    *,
    partition: str,
    first_sequence: int,
    last_sequence: int,
    enqueued_time: str,
    source: str = "eventhub",
) -> bytes:
    """Serialise the readings of one delivered batch as raw batch v2 bytes (gzip JSON lines).

    Args:
        series: ``(device_id, metric)`` → ``{canonical timestamp: value}``, already validated
            (names by :func:`~shared.telemetry.validation.checked_name`, values finite and in
            range) and de-duplicated.
        partition: The batch's partition.
        first_sequence: The lowest sequence number delivered (bad events included).
        last_sequence: The highest.
        enqueued_time: Canonical text of the lowest-sequence event's enqueued time.
        source: Where the batch came from.

    Returns:
        Deterministic bytes: the same readings give the same bytes, whatever order they came in.
    """
    lines: list[str] = []
    count = 0
    # Hand-built JSON (the hot path): names are validated to a JSON-safe alphabet, timestamps are
    # canonical text and values finite floats, whose repr is valid JSON (tests read it back with
    # json.loads and read_raw_batch).
    for (device_id, metric), readings in series.items():
        if len(readings) == 1:  # the usual case: one reading of a meter per batch
            ((stamp, value),) = readings.items()
            count += 1
            lines.append(
                f'{{"deviceId":"{device_id}","metric":"{metric}","timestamps":["{stamp}"],'
                f'"values":[{value!r}]}}'
            )
            continue
        if not readings:
            continue
        stamps = sorted(readings)  # text order is time order while all have the same form
        if any(len(stamp) != len(stamps[0]) for stamp in stamps):
            stamps.sort(key=chronological)  # whole seconds mixed with fractions
        count += len(stamps)
        lines.append(
            f'{{"deviceId":"{device_id}","metric":"{metric}","timestamps":["'
            + '","'.join(stamps)
            + '"],"values":['
            + ",".join([repr(readings[stamp]) for stamp in stamps])
            + "]}"
        )
    # Sorting the lines as text sorts them by (deviceId, metric), at half the cost of sorting
    # the key tuples: each name ends with '"', which sorts below every character a name may hold.
    lines.sort()
    header = json.dumps(
        {
            "format": RAW_BATCH_FORMAT,
            "version": RAW_BATCH_VERSION,
            "source": source,
            "partition": partition,
            "firstSequence": first_sequence,
            "lastSequence": last_sequence,
            "enqueuedTime": enqueued_time,
            "readings": count,
        },
        separators=(",", ":"),
    )
    text = "\n".join([header, *lines]) + "\n"
    return gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL, mtime=0)
