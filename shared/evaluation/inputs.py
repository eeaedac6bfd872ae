"""Reading what ``meterwatch evaluate`` scores: detector outputs and labels, from files.

A **detector output** is a CSV (``,`` or ``;``) with a timestamp column and an ``isAnomaly``
column, a score column (``severity`` by default, any name), or both: meterwatch's own
``detect`` output, or anyone's. **Labels** come in three forms:

* NAB-style windows, a JSON file: ``{"<file>": [[start, end], ...], ...}`` (keys matched to the
  output files by relative path or file name; a single output takes the only key there is) or
  a plain list ``[[start, end], ...]`` for a single output. A window covers the output rows
  from the first stamped ``start`` to the first after it stamped ``end`` (NAB's rule), or, when
  those are not timestamps of the output, the rows with ``start <= timestamp <= end``.
* Point labels, a CSV listing the anomalous timestamps (a ``timestamp`` column, else the first
  one); every listed timestamp must be a row of the output.
* A label column of a CSV (``label_column``, e.g. SKAB's ``anomaly``, values 0/1 or
  true/false), matched to the output rows by timestamp; output rows the file does not cover
  are normal.

Point and column labels become windows made of their runs of consecutive anomalous rows. A
folder of label CSVs holds ``<dir>/<file>.csv`` per output, or SKAB's ``<group>/<n>.csv`` for an
output named ``<group>_<n>.csv``. Bad input raises :class:`~shared.errors.CsvFormatError` (a
CSV) or :class:`~shared.errors.InputError` with code ``InvalidLabels``, naming the file and the
row or window.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.errors import CsvFormatError, InputError
from shared.evaluation import runs
from shared.timefmt import parse_csv_timestamps

logger = logging.getLogger(__name__)

TIMESTAMP_NAMES = ("timestamp", "datetime", "time", "date")
_TRUE = frozenset({"1", "1.0", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "0.0", "false", "f", "no", "n"})


@dataclass(frozen=True)
class OutputColumns:
    """Which columns of a detector output hold what (names are matched case-insensitively).

    ``timestamp`` ``None`` takes the first of ``timestamp``, ``datetime``, ``time``, ``date``,
    else the first column.
    """

    timestamp: str | None = None
    score: str = "severity"
    flag: str = "isAnomaly"
    flag_threshold: float = 0.5


@dataclass(frozen=True)
class DetectorOutput:
    """One detector output file, read.

    Attributes:
        name: Its path relative to the output folder (or its file name).
        timestamps: Epoch seconds per row.
        scores: Score per row (the flag where the score is empty); NaN: no score.
        flags: The detector's decision per row.
        values: The series' values when the file has a ``value`` column (for the picture).
    """

    name: str
    timestamps: np.ndarray
    scores: np.ndarray
    flags: np.ndarray
    values: np.ndarray | None


# --------------------------------------------------------------------------- reading CSVs


def _read_frame(path: Path) -> pd.DataFrame:
    """A CSV as text columns (delimiter ``,`` or ``;``, BOM accepted, names stripped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvFormatError(f"{path}: cannot be read ({exc.strerror}).", "InvalidCsv") from exc
    if not data.strip():
        raise CsvFormatError(f"{path}: the file is empty.", "InvalidCsv")
    head = data[:4096].decode("utf-8", errors="replace").splitlines()[0]
    separator = ";" if head.count(";") > head.count(",") else ","
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=separator,
            encoding="utf-8-sig",
            dtype=str,
            keep_default_na=False,
        )
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CsvFormatError(f"{path}: not a readable UTF-8 CSV ({exc}).", "InvalidCsv") from exc
    frame.columns = pd.Index([str(c).strip() for c in frame.columns])
    if frame.empty:
        raise CsvFormatError(f"{path}: the file has a header but no rows.", "InvalidCsv")
    return frame


def _column(frame: pd.DataFrame, wanted: str) -> str | None:
    lowered = {c.lower(): c for c in frame.columns}
    return lowered.get(wanted.lower())


def _timestamp_column(frame: pd.DataFrame, path: Path, wanted: str | None) -> str:
    if wanted:
        found = _column(frame, wanted)
        if found is None:
            raise CsvFormatError(
                f"{path}: no timestamp column {wanted!r} (columns: {', '.join(frame.columns)}).",
                "MissingColumn",
            )
        return found
    for name in TIMESTAMP_NAMES:
        found = _column(frame, name)
        if found is not None:
            return found
    return str(frame.columns[0])


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A score column as floats: empty is NaN, true/false are 1/0, anything else is an error.

    Python's ``float`` reads the text (correctly rounded, unlike pandas' fast parser), so
    scores that differ in the last digit stay apart and ties stay ties.
    """
    text = frame[column].str.strip()
    lowered = text.str.lower()
    words = {**dict.fromkeys(_TRUE, "1"), **dict.fromkeys(_FALSE, "0"), "": "nan"}
    cells = [words.get(low, raw) for low, raw in zip(lowered, text, strict=True)]
    try:
        return np.array(cells, dtype=object).astype(np.float64)
    except ValueError:
        for row, cell in enumerate(cells):
            try:
                float(cell)
            except ValueError:
                raise CsvFormatError(
                    f"{path}, row {row + 2}: {column} {frame[column].iloc[row]!r} is not a number.",
                    "InvalidValue",
                ) from None
        raise


def _booleans(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A 0/1 or true/false column as booleans (empty is false)."""
    lowered = frame[column].str.strip().str.lower()
    known = lowered.isin(_TRUE | _FALSE | {""})
    if not known.all():
        row = int(np.flatnonzero(~known.to_numpy())[0])
        raise CsvFormatError(
            f"{path}, row {row + 2}: {column} {frame[column].iloc[row]!r} is not true/false "
            "or 0/1.",
            "InvalidValue",
        )
    return lowered.isin(_TRUE).to_numpy()


def read_detector_output(
    path: Path,
    columns: OutputColumns = OutputColumns(),
    name: str | None = None,
    date_format: str = "auto",
) -> DetectorOutput:
    """Read one detector output CSV.

    Args:
        path: The file.
        columns: Which columns hold the timestamp, the score and the flag.
        name: Name in reports (default: the file name).
        date_format: How numeric dates read (``auto``, ``day-first``, ``month-first``, a
            strftime pattern).

    Raises:
        CsvFormatError: No timestamp column, neither a score nor a flag column, or a timestamp
            or value that does not read (naming the row).
    """
    frame = _read_frame(path)
    stamp_column = _timestamp_column(frame, path, columns.timestamp)
    score_column = _column(frame, columns.score) if columns.score else None
    flag_column = _column(frame, columns.flag) if columns.flag else None
    if score_column is None:
        if flag_column is None:
            raise CsvFormatError(
                f"{path}: neither a score column {columns.score!r} nor a flag column "
                f"{columns.flag!r} (columns: {', '.join(frame.columns)}); name them with "
                "--score-column / --flag-column.",
                "MissingColumn",
            )
        stamps = parse_csv_timestamps(frame[stamp_column], str(path), date_format)
        flags = _booleans(frame, flag_column, path)
        scores = flags.astype(np.float64)
    else:
        stamps = parse_csv_timestamps(frame[stamp_column], str(path), date_format)
        given = _booleans(frame, flag_column, path) if flag_column else None
        scores = _numbers(frame, score_column, path)
        if given is None:
            flags = ~np.isnan(scores) & (scores >= columns.flag_threshold)
        else:
            flags = given
            scores = np.where(np.isnan(scores), flags.astype(np.float64), scores)
    value_column = _column(frame, "value")
    values = _numbers(frame, value_column, path) if value_column else None
    return DetectorOutput(name or path.name, stamps, scores, flags, values)


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Labels:
    """Labels as read, before they meet an output.

    Exactly one of ``windows`` (key -> ``(start, end)`` epoch seconds; key ``""`` for a plain
    list), ``points`` (anomalous timestamps) or ``column`` (timestamps and a flag each) is set;
    ``folder`` instead holds label CSVs, one per output file.
    """

    source: Path
    windows: dict[str, list[tuple[float, float]]] | None = None
    points: np.ndarray | None = None
    column: tuple[np.ndarray, np.ndarray] | None = None
    folder: Path | None = None


def _window_stamp(text: object, where: str) -> float:
    if not isinstance(text, str):
        raise InputError(f"{where}: {text!r} is not a timestamp string.", "InvalidLabels")
    try:
        stamp = pd.to_datetime(text.strip(), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{where}: {text!r} is not an ISO 8601 timestamp.", "InvalidLabels"
        ) from exc
    return float(stamp.value) / 1e9


def _parse_windows(raw: object, where: str) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise InputError(f"{where}: expected a list of [start, end] windows.", "InvalidLabels")
    windows: list[tuple[float, float]] = []
    for number, item in enumerate(raw):
        at = f"{where}, window {number}"
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise InputError(f"{at}: expected [start, end], found {item!r}.", "InvalidLabels")
        start, end = _window_stamp(item[0], at), _window_stamp(item[1], at)
        if end < start:
            raise InputError(f"{at}: the end {item[1]!r} is before the start.", "InvalidLabels")
        windows.append((start, end))
    windows.sort()
    for number in range(1, len(windows)):
        if windows[number][0] <= windows[number - 1][1]:
            raise InputError(
                f"{where}: windows {number - 1} and {number} overlap.", "InvalidLabels"
            )
    return windows


def read_labels(
    path: Path,
    label_column: str | None = None,
    timestamp_column: str | None = None,
    date_format: str = "auto",
) -> Labels:
    """Read labels in any of the three forms (module docstring); a folder holds label CSVs.

    Raises:
        InputError: ``InvalidLabels`` for a JSON file that is not windows (naming the window).
        CsvFormatError: A label CSV that does not read (naming the row).
    """
    if path.is_dir():
        if not label_column:
            raise InputError(
                f"{path}: a folder of labels needs --label-column (the label column of its "
                "CSV files).",
                "InvalidLabels",
            )
        return Labels(path, folder=path)
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON file ({exc}).", "InvalidLabels") from exc
        if isinstance(raw, dict):
            return Labels(
                path, windows={str(k): _parse_windows(v, f"{path}: {k!r}") for k, v in raw.items()}
            )
        return Labels(path, windows={"": _parse_windows(raw, str(path))})
    frame = _read_frame(path)
    stamp_column = _timestamp_column(frame, path, timestamp_column)
    stamps = parse_csv_timestamps(frame[stamp_column], str(path), date_format)
    if label_column:
        found = _column(frame, label_column)
        if found is None:
            raise CsvFormatError(
                f"{path}: no label column {label_column!r} (columns: {', '.join(frame.columns)}).",
                "MissingColumn",
            )
        return Labels(path, column=(stamps, _booleans(frame, found, path)))
    return Labels(path, points=stamps)


def _label_file_for(folder: Path, name: str) -> Path | None:
    direct = folder / name
    if direct.is_file():
        return direct
    stem = Path(name).stem
    group, _, number = stem.rpartition("_")
    if group and number.isdigit():  # SKAB: <group>_<n>.csv is <group>/<n>.csv
        skab = folder / Path(name).parent / group / f"{number}.csv"
        if skab.is_file():
            return skab
    return None


def _windows_key(
    windows: dict[str, list[tuple[float, float]]], name: str, single: bool
) -> str | None:
    if "" in windows:
        return "" if single else None
    if name in windows:
        return name
    base = Path(name).name
    matches = [key for key in windows if Path(key).name == base]
    if len(matches) == 1:
        return matches[0]
    if single and len(windows) == 1:  # one output, one labelled file: the data's name
        return next(iter(windows))
    return None


def window_rows(stamps: np.ndarray, start: float, end: float) -> tuple[int, int]:
    """The inclusive rows ``(first, last)`` a window covers (``last < first``: none).

    NAB's rule: the window runs from the first row stamped ``start`` to the first row from
    there stamped ``end`` (timestamps may repeat where a clock was set back). A window whose
    ends are not timestamps of the output covers the rows from the first at or after
    ``start`` up to the last before the timestamps pass ``end``.
    """
    at_start = np.flatnonzero(stamps == start)
    if at_start.size:
        at_end = np.flatnonzero(stamps[at_start[0] :] == end)
        if at_end.size:
            return int(at_start[0]), int(at_start[0] + at_end[0])
    after = np.flatnonzero(stamps >= start)
    if not after.size:
        return 0, -1
    first = int(after[0])
    beyond = np.flatnonzero(stamps[first:] > end)
    last = first + int(beyond[0]) - 1 if beyond.size else stamps.size - 1
    return first, last


def label_rows(
    output: DetectorOutput,
    labels: Labels,
    single: bool = True,
    label_column: str | None = None,
    timestamp_column: str | None = None,
    date_format: str = "auto",
) -> tuple[np.ndarray, tuple[tuple[int, int], ...]] | None:
    """The labelled rows of one output: a boolean per row and the windows (row ranges).

    Returns ``None`` when the labels say nothing about this output (no key, no file).

    Raises:
        InputError: ``InvalidLabels``: a point label that is no row of the output, or two
            windows that cover the same rows.
    """
    stamps = output.timestamps
    n = stamps.size
    if labels.windows is not None:
        key = _windows_key(labels.windows, output.name, single)
        if key is None:
            return None
        truth = np.zeros(n, dtype=bool)
        windows: list[tuple[int, int]] = []
        for start, end in labels.windows[key]:
            first, last = window_rows(stamps, start, end)
            if last < first:
                logger.warning("%s: a window holds no row of %s", labels.source, output.name)
                continue
            if windows and first <= windows[-1][1]:  # the output's clock went back
                raise InputError(
                    f"{labels.source}: two windows of {output.name} share rows "
                    f"{first}..{windows[-1][1]} of the output (its timestamps go back in time).",
                    "InvalidLabels",
                )
            truth[first : last + 1] = True
            windows.append((first, last))
        return truth, tuple(windows)
    if labels.folder is not None:
        path = _label_file_for(labels.folder, output.name)
        if path is None:
            return None
        found = read_labels(path, label_column, timestamp_column, date_format)
        return label_rows(output, found, True, label_column, timestamp_column, date_format)
    if labels.points is not None:
        missing = ~np.isin(labels.points, stamps)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise InputError(
                f"{labels.source}, row {row + 2}: the labelled timestamp is not a row of "
                f"{output.name}.",
                "InvalidLabels",
            )
        truth = np.isin(stamps, labels.points)
        return truth, tuple(runs(truth))
    if labels.column is None:
        raise InputError(f"{labels.source}: no labels were read from it.", "InvalidLabels")
    label_stamps, label_flags = labels.column
    anomalous = label_stamps[label_flags]
    truth = np.isin(stamps, anomalous)
    return truth, tuple(runs(truth))
