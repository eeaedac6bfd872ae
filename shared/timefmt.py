"""Time parsing and formatting: the one module for every timestamp the app reads or writes.

* Telemetry and the v1.1 univariate contract: :func:`parse_timestamp` (epoch seconds),
  :func:`canonical_timestamp` and :func:`format_timestamp` (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``),
  :func:`chronological` (sort key of canonical text), :func:`iso_epoch`.
* Multivariate requests and records: :func:`parse_time`, :func:`optional_time`,
  :func:`to_datetime64`, :func:`as_datetime`, :func:`iso`, :func:`bound_datetime64`,
  :func:`iso_or_open`, and the registry's clock and format (:func:`utc_now`,
  :func:`format_time`).
* History keys: :func:`utc_day` (``YYYY-MM-DD``), :func:`hour_key` / :func:`hour_start` (the
  journals' ``YYYY/MM/DD/HH``), :func:`hour_label` (``YYYY-MM-DDTHH``, a scheduled run).
* CSV columns: :func:`parse_csv_timestamps` (the CLI's time/value files, epoch seconds) and
  :func:`parse_dataset_timestamps` (multivariate datasets, naive UTC); numeric dates in them are
  day-first or month-first as :func:`date_order` decides from the whole column, or as
  ``--date-format`` / ``dateFormat`` (:func:`check_date_format`) says.

Errors keep the type their callers documented: telemetry raises
:class:`~shared.errors.TelemetryError`, multivariate :class:`~shared.errors.DatasetError`, CSV
:class:`~shared.errors.CsvFormatError`.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from dateutil import parser as date_parser

from shared.errors import CsvFormatError, DatasetError, InputError, TelemetryError

if TYPE_CHECKING:  # pandas is imported where a column is parsed, never at app import
    import pandas as pd

#: Readings more than this far from the Unix epoch range are rejected (year 1970..2200).
_MIN_EPOCH, _MAX_EPOCH = 0.0, 7_258_118_400.0


def parse_timestamp(raw: object) -> float:
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
            # An unknown zone name ("ZZ", "XYZ") would be dropped with a warning and the time
            # read as UTC: a guess about a reading's moment is refused instead.
            with warnings.catch_warnings():
                warnings.simplefilter("error", date_parser.UnknownTimezoneWarning)
                parsed = date_parser.parse(text)
        except (ValueError, OverflowError, date_parser.UnknownTimezoneWarning) as exc:
            raise TelemetryError(
                f"Unparseable timestamp {text[:80]!r}: use ISO 8601 such as 2006-12-16T17:24:00Z.",
                code="InvalidTimestamp",
            ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_MINUTE_PREFIX: dict[int, str] = {}


def canonical_timestamp(raw: object) -> str:
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


#: The journals' hour: ``YYYY/MM/DD/HH`` (UTC).
HOUR_KEY_FORMAT = "%Y/%m/%d/%H"


def utc_day(seconds: float) -> str:
    """The UTC day (``YYYY-MM-DD``) of epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d")


def hour_key(moment: datetime) -> str:
    """The journal hour (``YYYY/MM/DD/HH``, UTC) of a moment."""
    return moment.astimezone(UTC).strftime(HOUR_KEY_FORMAT)


def hour_start(key: str) -> datetime:
    """The first moment (UTC) of a journal hour :func:`hour_key` wrote."""
    return datetime.strptime(key, HOUR_KEY_FORMAT).replace(tzinfo=UTC)


def hour_label(moment: datetime) -> str:
    """``YYYY-MM-DDTHH`` of a moment (UTC), the label of an hourly run."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as the v1.1 service wrote times."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso(value: object) -> str:
    """A time as ISO 8601 UTC with a ``Z`` (seconds precision)."""
    stamp = to_datetime64(value)
    return str(np.datetime_as_string(stamp, unit="s")) + "Z"


def to_datetime64(value: object, field_name: str = "timestamp") -> np.datetime64:
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


def optional_time(value: object, field_name: str, code: str) -> datetime | None:
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


def bound_datetime64(value: object, field_name: str) -> np.datetime64:
    """A window bound as naive UTC ``datetime64[s]``; aware times are converted to UTC."""
    import pandas as pd

    refusal = f"{field_name} {value!r} is not a date and time (use ISO 8601)."
    if not isinstance(value, str | int | float | datetime | np.datetime64):
        raise DatasetError(refusal, "InvalidTimestamp")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DatasetError(refusal, "InvalidTimestamp") from exc
    if pd.isna(stamp):
        raise DatasetError(f"{field_name} is not a date and time.", "InvalidTimestamp")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    seconds: np.datetime64 = np.datetime64(stamp.to_datetime64()).astype("datetime64[s]")
    return seconds


def iso_or_open(value: object) -> str:
    if value is None:
        return "(open)"
    return str(np.datetime_as_string(bound_datetime64(value, "timestamp"), unit="s")) + "Z"


#: ``--date-format`` / ``dateFormat`` values besides a ``strftime`` pattern (one with ``%``).
DATE_FORMATS = ("auto", "day-first", "month-first")
#: A date written with its day and month as numbers before a four-digit year
#: (``16/12/2006 17:24``, ``12-16-2006``, ``16.12.2006``): the one ambiguous family.
_NUMERIC_DATE = r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(.*)$"
#: How many example rows a message names.
_EXAMPLES = 3


def check_date_format(value: object, option: str, error: type[InputError]) -> str:
    """Validate a ``--date-format`` / ``dateFormat`` value; return it (``auto`` when unset).

    Raises:
        InputError: ``error`` with code ``InvalidDateFormat`` for anything else.
    """
    if value is None or value == "":
        return "auto"
    if isinstance(value, str) and (value in DATE_FORMATS or ("%" in value and len(value) < 64)):
        return value
    raise error(
        f"{option} {value!r} is not a date format: use auto, day-first, month-first or a "
        "strftime pattern such as %d/%m/%Y %H:%M.",
        "InvalidDateFormat",
    )


def date_order(
    columns: list[pd.Series], date_format: str, where: str, error: type[InputError]
) -> str:
    """Decide how the numeric dates of timestamp columns read, from the whole columns.

    ``05/01/2007`` is 5 January in a day-first file and 1 May in a month-first one; the
    answer is read off the data, never guessed: a first field above 12 anywhere settles
    day-first, a second field above 12 month-first. A column with no such row, in which some
    date still reads differently both ways, is an error that names ``--date-format`` (CLI) and
    ``dateFormat`` (training spec). ISO 8601 text is never ambiguous and is left alone.

    Args:
        columns: The timestamp columns (text) that share one convention (e.g. every member
            of a MultiTable zip).
        date_format: ``auto``, ``day-first``, ``month-first`` or a ``strftime`` pattern; only
            ``auto`` is decided, anything else is returned as given.
        where: The file (and column) for messages.
        error: The error class of the caller (:class:`~shared.errors.CsvFormatError`,
            :class:`~shared.errors.DatasetError`).

    Returns:
        ``day-first``, ``month-first`` (also when every numeric date reads the same both
        ways), ``iso`` (no numeric dates), or ``date_format`` when it was not ``auto``.

    Raises:
        InputError: ``error`` with code ``AmbiguousDateFormat``: both conventions occur, or the
            column cannot tell them apart.
    """
    if date_format != "auto":
        return date_format
    day_first: list[tuple[int, str]] = []
    month_first: list[tuple[int, str]] = []
    ambiguous: list[tuple[int, str]] = []
    seen = False
    for column in columns:
        text = column.fillna("").astype(str).str.strip()
        parts = text.str.extract(_NUMERIC_DATE)
        has = parts[0].notna().to_numpy()
        if not has.any():
            continue
        seen = True
        first = parts[0][has].astype(int).to_numpy()
        second = parts[2][has].astype(int).to_numpy()
        rows = np.flatnonzero(has)
        values = text.to_numpy()[rows]
        for mask, bucket in (
            (first > 12, day_first),
            (second > 12, month_first),
            ((first != second) & (first <= 12) & (second <= 12), ambiguous),
        ):
            for at in np.flatnonzero(mask)[: _EXAMPLES - len(bucket)]:
                bucket.append((int(rows[at]) + 2, str(values[at])))
    if not seen:
        return "iso"
    hint = (
        "Say which it is: --date-format day-first or month-first on the command line, or "
        '"dateFormat": "day-first" / "month-first" in the training request.'
    )
    echo = not issubclass(error, DatasetError)  # CLI files are the user's own: quote them
    if day_first and month_first:
        raise error(
            f"{where}: the dates mix conventions: {_rows(day_first, echo)} put the day first, "
            f"{_rows(month_first, echo)} the month first. Write one convention (ISO 8601 such as "
            f"2007-01-05T00:00:00Z is never ambiguous). {hint}",
            "AmbiguousDateFormat",
        )
    if day_first:
        return "day-first"
    if month_first or not ambiguous:
        return "month-first"
    raise error(
        f"{where}: the dates could be day-first or month-first ({_rows(ambiguous, echo)}: no day "
        f"above 12 settles it). {hint}",
        "AmbiguousDateFormat",
    )


def _rows(examples: list[tuple[int, str]], echo: bool) -> str:
    if not echo:  # a dataset's content is never quoted back (issue 11)
        return ", ".join(f"row {row}" for row, _ in examples)
    return ", ".join(f"row {row} ({text[:40]!r})" for row, text in examples)


def _to_iso_dates(text: pd.Series, order: str) -> pd.Series:
    """Rewrite numeric dates (``dd/mm/yyyy ...`` or ``mm/dd/yyyy ...``) as ISO 8601 text."""
    parts = text.str.extract(_NUMERIC_DATE)
    has = parts[0].notna()
    if not has.any():
        return text
    day, month = (parts[0], parts[2]) if order == "day-first" else (parts[2], parts[0])
    rest = parts[4].fillna("")
    iso = parts[3] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + rest
    return text.where(~has, iso)


def _parse_column(
    column: pd.Series, date_format: str, where: str, error: type[InputError]
) -> tuple[pd.Series, pd.Series]:
    """Parse one timestamp column (UTC-aware); return the parsed values and the cleaned text."""
    import pandas as pd

    text = column.fillna("").astype(str).str.strip()
    order = date_order([text], date_format, where, error)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if "%" in order:
            return pd.to_datetime(text, format=order, utc=True, errors="coerce"), text
        if order in ("day-first", "month-first"):
            text_iso = _to_iso_dates(text, order)
        else:
            text_iso = text
        try:
            return pd.to_datetime(text_iso, utc=True, format="ISO8601"), text
        except (ValueError, TypeError, OverflowError):
            pass
        return pd.to_datetime(text_iso, utc=True, format="mixed", errors="coerce"), text


def parse_dataset_timestamps(
    column: pd.Series, source: str, date_format: str = "auto"
) -> pd.DatetimeIndex:
    """Parse timestamp text (ISO 8601, or numeric dates such as ``12/16/2006 17:24``) to naive UTC.

    Naive times are taken as UTC, as the Learn module did; times with an offset are converted.
    Numeric dates read as :func:`date_order` decides for the whole column.

    Raises:
        DatasetError: ``InvalidTimestamp`` (names the row) or ``AmbiguousDateFormat``.
    """
    import pandas as pd

    parsed, text = _parse_column(column, date_format, source, DatasetError)
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        # Uploads are not echoed: the row is named, its content is not (issue 11).
        raise DatasetError(
            f"{source}, row {first + 2}: the timestamp is not a date and time"
            f"{_as_read(date_format)} (use ISO 8601 such as 2006-12-16T17:24:00Z, or "
            "12/16/2006 17:24).",
            "InvalidTimestamp",
        )
    return pd.DatetimeIndex(parsed).tz_convert(None)


def _as_read(date_format: str) -> str:
    return "" if date_format == "auto" else f" as {date_format}"


def parse_csv_timestamps(column: pd.Series, label: str, date_format: str = "auto") -> np.ndarray:
    """Parse a column of timestamp text into epoch seconds (naive times are UTC).

    Numeric dates read as :func:`date_order` decides for the whole column (``--date-format``
    overrides it).

    Raises:
        CsvFormatError: A value is not a timestamp (names the row, counting the header as 1),
            or the column is ``AmbiguousDateFormat``.
    """
    parsed, text = _parse_column(column, date_format, label, CsvFormatError)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CsvFormatError(
            f"{label}, row {row + 2}: timestamp {text.iloc[row][:80]!r} is not a date and time"
            f"{_as_read(date_format)} (use ISO 8601 such as 2006-12-16T17:24:00Z, or "
            "12/16/2006 17:24).",
            "InvalidTimestamp",
        )
    return _epoch_seconds(parsed)


def _epoch_seconds(parsed: pd.Series) -> np.ndarray:
    nanos = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return nanos.astype(np.float64) / 1e9
