"""``timestamp,value`` CSV files, as the tutorial's samples and operators' exports write them.

Accepts a UTF-8 byte-order mark, CRLF or LF, and timestamps like ``12/16/2006 17:24`` (read as
UTC, as the Learn module did) or ISO 8601. Whether ``05/01/2007`` is 5 January or 1 May is
decided from the whole column (a first field above 12 anywhere means day-first), or said with
``--date-format`` (:func:`shared.cli.options.add_date_format_argument`, on every command
that reads CSV); an
ambiguous column is an error, never a guess. Bad rows raise
:class:`~shared.errors.CsvFormatError` naming the file, the row and what was expected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.errors import CsvFormatError
from shared.timefmt import parse_csv_timestamps


@dataclass(frozen=True)
class TimeValueSeries:
    """A ``timestamp,value`` file: epoch seconds (UTC) and values, in file order."""

    name: str
    timestamps: np.ndarray  # float64 epoch seconds
    values: np.ndarray  # float64


def read_series_csv(
    source: Path | bytes, name: str | None = None, date_format: str = "auto"
) -> TimeValueSeries:
    """Read a ``timestamp,value`` CSV.

    Args:
        source: A path, or the file's bytes.
        name: Name for messages (defaults to the file name).
        date_format: ``auto``, ``day-first``, ``month-first`` or a strftime pattern.

    Raises:
        CsvFormatError: Wrong header, unparseable timestamp or non-numeric value (with the row).
    """
    label = name or (source.name if isinstance(source, Path) else "input")
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data.strip():
        raise CsvFormatError(f"{label}: the file is empty.", "InvalidCsv")
    try:
        frame = pd.read_csv(
            io.BytesIO(data), encoding="utf-8-sig", dtype=str, skipinitialspace=True
        )
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CsvFormatError(f"{label}: not a readable UTF-8 CSV ({exc}).", "InvalidCsv") from exc
    columns = [str(c).strip().lower() for c in frame.columns]
    if columns[:2] != ["timestamp", "value"] or len(columns) != 2:
        raise CsvFormatError(
            f"{label}: expected the header 'timestamp,value', found {','.join(frame.columns)!r}.",
            "InvalidHeader",
        )
    frame.columns = pd.Index(["timestamp", "value"])
    if frame.empty:
        raise CsvFormatError(f"{label}: the file has a header but no rows.", "InvalidCsv")
    stamps = parse_csv_timestamps(frame["timestamp"], label, date_format)
    values = pd.to_numeric(frame["value"].str.strip(), errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CsvFormatError(
            f"{label}, row {row + 2}: value {frame['value'].iloc[row]!r} is not a finite number.",
            "InvalidValue",
        )
    return TimeValueSeries(label, stamps, values.to_numpy(dtype=np.float64))
