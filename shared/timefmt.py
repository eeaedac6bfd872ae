"""Time parsing and formatting: the one module for every timestamp the app reads or writes.

* Telemetry and the v1.1 univariate contract: :func:`parse_timestamp` (epoch seconds),
  :func:`canonical_timestamp` and :func:`format_timestamp` (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``),
  :func:`chronological` (sort key of canonical text), :func:`iso_epoch`.
* Multivariate requests and records: :func:`parse_time`, :func:`optional_time`,
  :func:`to_datetime64`, :func:`as_datetime`, :func:`iso`, :func:`bound_datetime64`,
  :func:`iso_or_open`, and the registry's clock and format (:func:`utc_now`,
  :func:`format_time`).
* CSV columns: :func:`parse_csv_timestamps` (the CLI's time/value files, epoch seconds) and
  :func:`parse_dataset_timestamps` (multivariate datasets, naive UTC).

Errors keep the type their callers documented: telemetry raises
:class:`~shared.errors.TelemetryError`, multivariate :class:`~shared.errors.DatasetError`, CSV
:class:`~shared.errors.CsvFormatError`.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from dateutil import parser as date_parser

from shared.errors import CsvFormatError, DatasetError, TelemetryError

#: Readings more than this far from the Unix epoch range are rejected (year 1970..2200).
_MIN_EPOCH, _MAX_EPOCH = 0.0, 7_258_118_400.0


def parse_timestamp(raw: Any) -> float:
    """Parse a telemetry timestamp into epoch seconds (UTC).

    Accepts ISO 8601 (``2006-12-16T17:24:00Z``, offsets, fractions), the tutorial's
    ``12/16/2006 17:24`` (read as UTC), and epoch numbers (seconds, or milliseconds when larger
    than 10^11).

    Raises:
        TelemetryError: The value is not a timestamp, or lies outside 1970-2200.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw) / 1000.0 if abs(raw) > 1e11 else float(raw)
    elif isinstance(raw, str):
        seconds = _parse_text_timestamp(raw)
    else:
        raise TelemetryError(
            f"Field 'timestamp' must be ISO 8601 text or epoch seconds, got {raw!r}.",
            code="InvalidTimestamp",
        )
    if not (_MIN_EPOCH <= seconds <= _MAX_EPOCH) or not math.isfinite(seconds):
        raise TelemetryError(f"Timestamp {raw!r} is outside 1970-2200.", code="InvalidTimestamp")
    return seconds


def _parse_text_timestamp(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = date_parser.parse(text)
        except (ValueError, OverflowError) as exc:
            raise TelemetryError(
                f"Unparseable timestamp {text[:80]!r}: use ISO 8601 such as 2006-12-16T17:24:00Z.",
                code="InvalidTimestamp",
            ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_MINUTE_PREFIX: dict[int, str] = {}


def canonical_timestamp(raw: Any) -> str:
    """Validate a telemetry timestamp and return it as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC).

    Text already in that form is only validated (the ingest hot path); anything else is parsed
    by :func:`parse_timestamp` and formatted.

    Raises:
        TelemetryError: As :func:`parse_timestamp`.
    """
    if (
        type(raw) is str
        and 20 <= len(raw) <= 27
        and raw[-1] == "Z"
        and raw[10] == "T"
        and raw[4] == "-"
        and raw[7] == "-"
        and raw[13] == ":"
        and raw[16] == ":"
        and "1970" <= raw[:4] < "2200"
    ):
        try:
            datetime.fromisoformat(raw)
        except ValueError:
            pass  # not a real date (month 13...): the slow path explains why
        else:
            if len(raw) == 20:
                return str(raw)
            fraction = raw[20:-1]
            if raw[19] == "." and fraction.isdigit():  # ISO fractions: 1 to 6 digits
                fraction = fraction.ljust(6, "0")
                return raw[:19] + ("Z" if fraction == "000000" else f".{fraction}Z")
    return format_timestamp(parse_timestamp(raw))


def chronological(text: str) -> str:
    """Sort key for canonical timestamp text (whole seconds sort before their fractions)."""
    return text[:19] if len(text) == 20 else text[:19] + text[19:26]


def format_timestamp(seconds: float) -> str:
    """Format epoch seconds as the v1.1 timestamp text ``YYYY-MM-DDTHH:MM:SSZ``.

    Fractions of a second are kept (``...SS.ffffffZ``). The ``YYYY-MM-DDTHH:MM:`` prefix is cached
    per minute: ingest formats every reading, and meters share minutes.
    """
    whole = int(seconds // 60)
    prefix = _MINUTE_PREFIX.get(whole)
    if prefix is None:
        if len(_MINUTE_PREFIX) > 200_000:  # bounded: a few months of minutes
            _MINUTE_PREFIX.clear()
        prefix = _MINUTE_PREFIX[whole] = datetime.fromtimestamp(whole * 60, tz=UTC).strftime(
            "%Y-%m-%dT%H:%M:"
        )
    rest = seconds - whole * 60
    second = int(rest)
    micro = round((rest - second) * 1_000_000)
    if micro == 1_000_000:  # rounding carried into the next second
        return format_timestamp(float(whole * 60 + second + 1))
    if micro:
        return f"{prefix}{second:02d}.{micro:06d}Z"
    return f"{prefix}{second:02d}Z"


def utc_now() -> datetime:
    """The current time in UTC (the registry's default clock)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as the v1.1 service wrote times."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso(value: Any) -> str:
    """A time as ISO 8601 UTC with a ``Z`` (seconds precision)."""
    stamp = to_datetime64(value)
    return str(np.datetime_as_string(stamp, unit="s")) + "Z"


def to_datetime64(value: Any, field_name: str = "timestamp") -> np.datetime64:
    """A time (text, ``datetime``, ``datetime64``) as naive UTC ``datetime64[s]``.

    Raises:
        DatasetError: ``InvalidTimestamp`` when the value is not a time.
    """
    if isinstance(value, np.datetime64):
        converted: np.datetime64 = value.astype("datetime64[s]")
        return converted
    if isinstance(value, datetime):
        moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return np.datetime64(moment.replace(microsecond=0), "s")
    if isinstance(value, str):
        return to_datetime64(parse_time(value, field_name, "InvalidTimestamp"), field_name)
    raise DatasetError(f"{field_name} {value!r} is not a time.", "InvalidTimestamp")


def as_datetime(stamp: np.datetime64) -> datetime:
    """A ``datetime64`` as an aware UTC ``datetime`` (what ``datasets.align`` takes)."""
    seconds = int(stamp.astype("datetime64[s]").astype(np.int64))
    return datetime.fromtimestamp(seconds, UTC)


def plot_moments(stamps: np.ndarray) -> np.ndarray:
    """``datetime64`` stamps as naive UTC ``datetime`` objects, millisecond precision (plots)."""
    moments: np.ndarray = np.asarray(stamps).astype("datetime64[ms]").astype(object)
    return moments


def regular_timestamps(start: str, count: int, step_seconds: int) -> np.ndarray:
    """``count`` stamps (``datetime64[s]``) from ``start``, ``step_seconds`` apart."""
    first = np.datetime64(start, "s")
    grid: np.ndarray = first + np.arange(count, dtype=np.int64) * np.timedelta64(step_seconds, "s")
    return grid


def isoformat_or_none(moment: datetime | None) -> str | None:
    """``moment.isoformat()`` (offset kept, as the Durable status query reports it), or None."""
    return None if moment is None else moment.isoformat()


def parse_time(text: str, field_name: str, code: str) -> datetime:
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned.replace("z", "Z"))
    except ValueError:
        try:
            moment = date_parser.parse(cleaned)
        except (ValueError, OverflowError) as exc:
            raise DatasetError(
                f"{field_name} {text!r} is not a date and time; use ISO 8601 such as "
                "2006-12-16T17:24:00Z.",
                code,
            ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def optional_time(value: Any, field_name: str, code: str) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise DatasetError(
            f"{field_name} {value!r} must be an ISO 8601 text such as 2006-12-16T17:24:00Z.",
            code,
        )
    return parse_time(value, field_name, code)


def iso_epoch(text: str) -> float:
    """Epoch seconds of ISO 8601 text written by this app (e.g. a v1.1 series timestamp)."""
    return datetime.fromisoformat(text).timestamp()


def bound_datetime64(value: Any, field_name: str) -> np.datetime64:
    """A window bound as naive UTC ``datetime64[s]``; aware times are converted to UTC."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DatasetError(
            f"{field_name} {value!r} is not a date and time (use ISO 8601).", "InvalidTimestamp"
        ) from exc
    if pd.isna(stamp):
        raise DatasetError(f"{field_name} is not a date and time.", "InvalidTimestamp")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    seconds: np.datetime64 = np.datetime64(stamp.to_datetime64()).astype("datetime64[s]")
    return seconds


def iso_or_open(value: Any) -> str:
    if value is None:
        return "(open)"
    return str(np.datetime_as_string(bound_datetime64(value, "timestamp"), unit="s")) + "Z"


def parse_dataset_timestamps(column: pd.Series, source: str) -> pd.DatetimeIndex:
    """Parse timestamp text (ISO 8601 or e.g. ``12/16/2006 17:24``) to naive UTC.

    Naive times are taken as UTC, as the Learn module did; times with an offset are converted.
    """
    text = column.fillna("").str.strip()
    parsed: pd.Series | None = None
    for fmt in ("ISO8601", None):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.to_datetime(text, utc=True, format=fmt)
            break
        except (ValueError, TypeError, OverflowError):
            parsed = None
    if parsed is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(text, utc=True, format="mixed", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{source}, row {first + 2}: timestamp {column.iloc[first]!r} is not a date and time "
            "(use ISO 8601 such as 2006-12-16T17:24:00Z, or 12/16/2006 17:24).",
            "InvalidTimestamp",
        )
    return pd.DatetimeIndex(parsed).tz_convert(None)


CSV_TIMESTAMP_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "ISO8601")


def parse_csv_timestamps(column: pd.Series, label: str) -> np.ndarray:
    """Parse a column of timestamp text into epoch seconds (naive times are UTC).

    Raises:
        CsvFormatError: A value is not a timestamp (names the row, counting the header as 1).
    """
    text = column.astype(str).str.strip()
    for fmt in CSV_TIMESTAMP_FORMATS:
        try:
            parsed = pd.to_datetime(text, format=fmt, utc=True)
        except (ValueError, TypeError):
            continue
        return _epoch_seconds(parsed)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CsvFormatError(
            f"{label}, row {row + 2}: timestamp {text.iloc[row]!r} is not a date and time "
            "(use ISO 8601 such as 2006-12-16T17:24:00Z, or 12/16/2006 17:24).",
            "InvalidTimestamp",
        )
    return _epoch_seconds(parsed)


def _epoch_seconds(parsed: pd.Series) -> np.ndarray:
    nanos = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return nanos.astype(np.float64) / 1e9
