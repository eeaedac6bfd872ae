"""The raw batch v2 reader: a header line, then one series per line (see the package docs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.errors import RawBatchError
from shared.jsontypes import JSONValue
from shared.telemetry.rawbatch.model import (
    RAW_BATCH_FORMAT,
    RAW_BATCH_VERSION,
    RawBatch,
    SeriesBatch,
    header_count,
    header_text,
    json_line,
    series_batch,
)
from shared.telemetry.validation import checked_name, checked_timestamp, checked_value
from shared.timefmt import chronological

_HEADER_KEYS = (
    "format",
    "version",
    "source",
    "partition",
    "firstSequence",
    "lastSequence",
    "enqueuedTime",
    "readings",
)


def read_v2(name: str, header: Mapping[str, JSONValue], lines: Sequence[str]) -> RawBatch:
    """A raw batch v2 from its parsed header and its series lines.

    Raises:
        RawBatchError: Another format or version, a missing or bad header field, a bad series
            line, series out of order, or a reading count other than the header's.
    """
    if header.get("format") != RAW_BATCH_FORMAT:
        raise RawBatchError(
            f"{name}: header format {str(header.get('format'))[:80]!r} is not "
            f"{RAW_BATCH_FORMAT!r}.",
            "InvalidSchema",
        )
    version = header.get("version")
    if version != RAW_BATCH_VERSION or type(version) is not int:
        raise RawBatchError(
            f"{name}: raw batch version {str(version)[:40]!r}; this reader reads version "
            f"{RAW_BATCH_VERSION} (and v1 documents).",
            "UnsupportedVersion",
        )
    missing = [key for key in _HEADER_KEYS if key not in header]
    if missing:
        raise RawBatchError(f"{name}: header lacks {', '.join(missing)}.", "InvalidSchema")
    source = header_text(name, header, "source")
    partition = header_text(name, header, "partition")
    first = header_count(name, header, "firstSequence")
    last = header_count(name, header, "lastSequence")
    if last < first:
        raise RawBatchError(
            f"{name}: lastSequence {last} < firstSequence {first}.", "InvalidSchema"
        )
    enqueued = header_text(name, header, "enqueuedTime")
    if checked_timestamp(enqueued, RawBatchError) != enqueued:
        raise RawBatchError(
            f"{name}: enqueuedTime {enqueued[:40]!r} is not canonical UTC text.",
            "InvalidTimestamp",
        )
    declared = header_count(name, header, "readings")
    series: list[SeriesBatch] = []
    previous: tuple[str, str] | None = None
    for number, line in enumerate(lines, start=2):
        document = json_line(name, line, number)
        if not isinstance(document, dict):
            raise RawBatchError(f"{name}, line {number}: not a series object.", "InvalidSchema")
        one = _series_line(f"{name}, line {number}", document)
        key = (one.device_id, one.metric)
        if previous is not None and key <= previous:
            raise RawBatchError(
                f"{name}, line {number}: series not sorted and unique by (deviceId, metric).",
                "InvalidSchema",
            )
        previous = key
        series.append(one)
    total = sum(len(one) for one in series)
    if total != declared:
        raise RawBatchError(
            f"{name}: header says {declared} readings, the series hold {total} (truncated?).",
            "InvalidSchema",
        )
    return RawBatch(name, source, partition, first, last, enqueued, tuple(series))


def _series_line(where: str, document: Mapping[str, JSONValue]) -> SeriesBatch:
    device_id = checked_name(document.get("deviceId"), "deviceId", RawBatchError)
    metric = checked_name(document.get("metric"), "metric", RawBatchError)
    stamps = document.get("timestamps")
    values = document.get("values")
    if not isinstance(stamps, list) or not isinstance(values, list):
        raise RawBatchError(f"{where}: 'timestamps' and 'values' must be lists.", "InvalidSchema")
    if len(stamps) != len(values) or not stamps:
        raise RawBatchError(
            f"{where}: {len(stamps)} timestamps and {len(values)} values (need as many, ≥ 1).",
            "InvalidSchema",
        )
    previous = ""
    for stamp in stamps:
        if type(stamp) is not str or checked_timestamp(stamp, RawBatchError) != stamp:
            raise RawBatchError(
                f"{where}: timestamp {str(stamp)[:40]!r} is not canonical UTC text "
                "(YYYY-MM-DDTHH:MM:SS[.ffffff]Z).",
                "InvalidTimestamp",
            )
        key = chronological(stamp)
        if key <= previous:
            raise RawBatchError(
                f"{where}: timestamps not ascending and unique at {stamp}.", "InvalidSchema"
            )
        previous = key
    numbers: list[float] = []
    for value in values:
        if type(value) is not float and type(value) is not int:  # JSON numbers only, no bools
            raise RawBatchError(
                f"{where}: value {str(value)[:40]!r} is not a JSON number.", "InvalidValue"
            )
        numbers.append(checked_value(value, "values", RawBatchError))
    return series_batch(device_id, metric, stamps, numbers)
