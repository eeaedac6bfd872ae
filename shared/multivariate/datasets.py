"""Multivariate datasets: safe parsing of v1.1 uploads and alignment on one time grid.

Two layouts of the Multivariate Anomaly Detector v1.1 are read, always from bytes in memory
(nothing is ever extracted to disk):

* **MultiTable**: a zip holding one ``timestamp,value`` CSV per variable at its root; the file
  name without ``.csv`` is the variable name (``power.csv`` → ``power``).
* **OneTable**: one CSV with a ``timestamp`` column and one column per variable.

Uploads are untrusted. A zip is checked before anything is decompressed (member count, declared
sizes and compression ratios against :class:`DatasetLimits`, names that escape the root
(zip-slip), members in sub-folders) and decompression is then capped while streaming, because
headers can lie. Every refusal is a :class:`~shared.errors.DatasetError` whose ``code`` says
what is wrong and whose message names the file, row or field and what was expected.

:func:`align` then puts the variables on one sampling grid per the v1.1 ``alignPolicy``: the
grid step is the median step between readings of the most finely sampled variable (snapped to a
usual meter interval when within 10 %), timestamps are rounded to it, readings that land on one
slot are averaged, the variables are joined (``Inner``: slots where every variable has a
reading; ``Outer``: slots where any has one) and the holes are filled (``Previous``,
``Subsequent``, ``Linear``, ``Zero`` or ``Fixed``). Slots where no variable reported are not
invented: the gap stays visible in :attr:`Dataset.timestamps` and the engine treats it as a
break in the series.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import DatasetError
from shared.timefmt import bound_datetime64, date_order, iso_or_open, parse_dataset_timestamps

logger = logging.getLogger(__name__)

MIB = 1024 * 1024

#: The five v1.1 ``fillNAMethod`` values and the two ``alignMode`` values (canonical spelling).
FILL_NA_METHODS = ("Previous", "Subsequent", "Linear", "Zero", "Fixed")
ALIGN_MODES = ("Inner", "Outer")

#: Bytes added to every member's compressed size before its ratio is taken: a small CSV of
#: repeated values compresses very well and cannot hurt, so a few KiB never trip the check,
#: while every member is checked whatever its size (300 members of 1 MB each, deflated to
#: 2.7 KB, were once waved through one by one: 806 KB inflating to 300 MiB).
RATIO_SLACK_BYTES = 1024

#: Cells read as a missing reading (to be filled per ``fillNAMethod``), compared in lower case.
MISSING_TOKENS = frozenset({"", "nan", "null", "na", "n/a", "none"})

#: Sampling steps meters use; an inferred step within 10 % of one of them snaps to it.
USUAL_STEPS_SECONDS = (
    1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800
)  # fmt: skip

_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 * MIB


def _canonical(value: Any, allowed: tuple[str, ...], field_name: str) -> str:
    if isinstance(value, str):
        for option in allowed:
            if value.strip().lower() == option.lower():
                return option
    raise DatasetError(
        f"{field_name} {value!r} is not valid; use one of {', '.join(allowed)}.",
        "InvalidAlignPolicy",
    )


def _finite_float(value: Any, field_name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise DatasetError(f"{field_name} {value!r} must be a finite number.", "InvalidAlignPolicy")
    return number


@dataclass(frozen=True)
class DatasetLimits:
    """Limits on an uploaded dataset; anything beyond them is refused before it costs memory.

    Attributes:
        max_zip_bytes: Largest accepted zip (compressed) or one-table CSV.
        max_uncompressed_bytes: Largest total of all members once decompressed.
        max_members: Most entries in a zip (folders and ignored files included).
        max_ratio: Largest decompressed/compressed ratio of any member (its compressed size
            plus :data:`RATIO_SLACK_BYTES`) and of the whole zip.
        max_variables: Most variables in a dataset (v1.1: 300).
        min_variables: Fewest variables in a dataset (a multivariate model needs two).
    """

    max_zip_bytes: int = 200 * MIB
    max_uncompressed_bytes: int = 1024 * MIB
    max_members: int = 301
    max_ratio: float = 200.0
    max_variables: int = 300
    min_variables: int = 2


@dataclass(frozen=True)
class AlignPolicy:
    """The v1.1 ``alignPolicy``: how variables are joined on one grid and holes filled.

    Attributes:
        align_mode: ``Inner`` (slots where every variable has a reading) or ``Outer`` (slots
            where any variable has one).
        fill_na_method: ``Previous``, ``Subsequent``, ``Linear``, ``Zero`` or ``Fixed``.
        padding_value: The value ``Fixed`` fills with.
    """

    align_mode: str = "Outer"
    fill_na_method: str = "Linear"
    padding_value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "align_mode", _canonical(self.align_mode, ALIGN_MODES, "alignMode")
        )
        object.__setattr__(
            self,
            "fill_na_method",
            _canonical(self.fill_na_method, FILL_NA_METHODS, "fillNAMethod"),
        )
        padding = _finite_float(self.padding_value, "paddingValue")
        object.__setattr__(self, "padding_value", padding)

    @classmethod
    def from_v11(cls, obj: Mapping[str, Any] | None) -> AlignPolicy:
        """Build a policy from the v1.1 JSON object (missing fields take the defaults).

        Args:
            obj: ``{"alignMode": ..., "fillNAMethod": ..., "paddingValue": ...}`` or ``None``;
                values are case-insensitive.

        Returns:
            The policy.

        Raises:
            DatasetError: ``InvalidAlignPolicy`` for an unknown field or a value out of range.
        """
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise DatasetError(
                f"alignPolicy must be a JSON object, not {type(obj).__name__}.",
                "InvalidAlignPolicy",
            )
        known = {"alignmode": "alignMode", "fillnamethod": "fillNAMethod", "paddingvalue": ""}
        unknown = [str(key) for key in obj if str(key).lower() not in known]
        if unknown:
            raise DatasetError(
                f"alignPolicy has unknown field(s) {', '.join(sorted(unknown))}: "
                "use alignMode, fillNAMethod and paddingValue.",
                "InvalidAlignPolicy",
            )
        lowered = {str(key).lower(): value for key, value in obj.items()}
        defaults = cls()
        padding = lowered.get("paddingvalue", defaults.padding_value)
        if padding is None:
            padding = defaults.padding_value
        return cls(
            align_mode=lowered.get("alignmode") or defaults.align_mode,
            fill_na_method=lowered.get("fillnamethod") or defaults.fill_na_method,
            padding_value=padding,
        )

    def to_v11(self) -> dict[str, Any]:
        """Return the policy as the v1.1 JSON object."""
        return {
            "alignMode": self.align_mode,
            "fillNAMethod": self.fill_na_method,
            "paddingValue": self.padding_value,
        }


@dataclass(frozen=True)
class Dataset:
    """Variables aligned on one grid, ready for the multivariate engine.

    Attributes:
        variables: Variable names, in column order.
        timestamps: ``datetime64[s]`` (UTC), strictly increasing, on the sampling grid; slots
            where no variable reported are absent (a gap), not invented.
        values: ``float64`` array of shape ``(len(timestamps), len(variables))``, no NaN.
        filled_na_ratio: Per variable, the share of its values that were filled, not read.
        granularity_seconds: The grid step.
    """

    variables: tuple[str, ...]
    timestamps: np.ndarray
    values: np.ndarray
    filled_na_ratio: dict[str, float] = field(default_factory=dict)
    granularity_seconds: int = 60

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape != (
            self.timestamps.shape[0],
            len(self.variables),
        ):
            raise DatasetError(
                f"values must have shape (timestamps, variables) = "
                f"({self.timestamps.shape[0]}, {len(self.variables)}), got {self.values.shape}.",
                "InvalidDataset",
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """Return the values as a DataFrame indexed by timestamp, one column per variable."""
        index = pd.DatetimeIndex(self.timestamps.astype("datetime64[ns]"), name="timestamp")
        return pd.DataFrame(self.values, index=index, columns=list(self.variables))

    def slice(self, start: Any = None, end: Any = None) -> Dataset:
        """Return the rows with ``start <= timestamp <= end`` (either bound may be ``None``)."""
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.timestamps >= bound_datetime64(start, "start")
        if end is not None:
            keep &= self.timestamps <= bound_datetime64(end, "end")
        return Dataset(
            variables=self.variables,
            timestamps=self.timestamps[keep],
            values=self.values[keep],
            filled_na_ratio=dict(self.filled_na_ratio),
            granularity_seconds=self.granularity_seconds,
        )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def load_dataset(
    data: bytes, name: str, limits: DatasetLimits = DatasetLimits(), date_format: str = "auto"
) -> dict[str, pd.Series]:
    """Read an uploaded dataset, choosing the layout from the file name.

    Args:
        data: The uploaded bytes.
        name: The upload's name; ``.zip`` means MultiTable, ``.csv`` OneTable.
        limits: Size and count limits.
        date_format: How numeric dates read (``auto``: decided from every timestamp of the
            dataset; ``day-first``, ``month-first`` or a strftime pattern), see
            :func:`shared.timefmt.date_order`.

    Returns:
        Variable name → raw series (timestamps as index, possibly unsorted or duplicated).

    Raises:
        DatasetError: ``UnsupportedFormat`` for another extension, or any reader error.
    """
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "zip":
        return read_multitable_zip(data, limits, date_format)
    if suffix == "csv":
        return read_onetable_csv(data, limits, date_format)
    raise DatasetError(
        f"{name}: unsupported dataset type; upload a .zip (one timestamp,value CSV per variable) "
        "or a .csv (a timestamp column and one column per variable).",
        "UnsupportedFormat",
    )


def read_multitable_zip(
    data: bytes, limits: DatasetLimits = DatasetLimits(), date_format: str = "auto"
) -> dict[str, pd.Series]:
    """Read a MultiTable zip: one ``timestamp,value`` CSV per variable at the zip's root.

    ``__MACOSX/`` entries, folder entries, dotfiles and non-CSV files are ignored (the last
    with a warning in the log).

    Args:
        data: The zip's bytes.
        limits: Size and count limits (zip-bomb protection).

    Returns:
        Variable name (file name without ``.csv``) → series of float values indexed by
        timestamp (naive UTC), in file order; empty cells are NaN.

    Raises:
        DatasetError: ``TooLarge``, ``InvalidZip``, ``UnsafePath``, ``NestedFolder``,
            ``EmptyDataset``, ``DuplicateVariable``, ``TooFewVariables``, ``TooManyVariables``
            or a CSV error (``InvalidHeader``, ``InvalidValue``, ``InvalidTimestamp``, ...).
    """
    if len(data) > limits.max_zip_bytes:
        raise DatasetError(
            f"The zip is {len(data):,} bytes; the limit is {limits.max_zip_bytes:,}.",
            "TooLarge",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise DatasetError(f"The upload is not a readable zip file ({exc}).", "InvalidZip") from exc
    if sum(info.compress_size for info in infos) > len(data):
        raise DatasetError(
            "The zip's directory declares more compressed bytes than the file holds; the zip "
            "is corrupt or forged. Zip the CSV files again.",
            "InvalidZip",
        )
    with archive:
        members = _select_members(infos, limits)
        names = [variable for _, variable in members]
        for info, variable in members:
            if names.count(variable) > 1:
                raise DatasetError(
                    f"{info.filename}: the variable {variable!r} appears twice in the zip.",
                    "DuplicateVariable",
                )
        # Counted before anything is decompressed.
        _check_variable_count(names, limits, "the zip")
        frames: list[tuple[str, pd.DataFrame]] = []
        budget = limits.max_uncompressed_bytes
        for info, _variable in members:
            content = _read_member(archive, info, budget)
            budget -= len(content)
            frames.append((info.filename, _timestamp_value_frame(content, info.filename)))
    # One convention for the whole dataset: a day above 12 in any member settles them all.
    order = date_order(
        [frame.iloc[:, 0] for _, frame in frames], date_format, "the zip", DatasetError
    )
    return {
        variable: _timestamp_value_series(frame, filename, order)
        for (filename, frame), (_, variable) in zip(frames, members, strict=True)
    }


def read_onetable_csv(
    data: bytes, limits: DatasetLimits = DatasetLimits(), date_format: str = "auto"
) -> dict[str, pd.Series]:
    """Read a OneTable CSV: a ``timestamp`` column and one column per variable.

    Args:
        data: The CSV's bytes (UTF-8, optional BOM, CRLF or LF).
        limits: Size and count limits.

    Returns:
        Variable name (column header) → series of float values indexed by timestamp (naive UTC).

    Raises:
        DatasetError: ``TooLarge``, ``EmptyDataset``, ``InvalidHeader``, ``InvalidValue``,
            ``InvalidTimestamp``, ``TooFewVariables`` or ``TooManyVariables``.
    """
    source = "the CSV"
    if len(data) > min(limits.max_zip_bytes, limits.max_uncompressed_bytes):
        raise DatasetError(
            f"{source} is {len(data):,} bytes; the limit is "
            f"{min(limits.max_zip_bytes, limits.max_uncompressed_bytes):,}.",
            "TooLarge",
        )
    text = _decode(data, source)
    header = _header_fields(text, source)
    lowered = [column.lower() for column in header]
    if "timestamp" not in lowered:
        raise DatasetError(
            f"{source}: no 'timestamp' column in the header {','.join(header)!r}; expected "
            "'timestamp,<variable 1>,<variable 2>,...'.",
            "InvalidHeader",
        )
    if lowered.count("timestamp") > 1:
        raise DatasetError(
            f"{source}: the header has more than one 'timestamp' column.", "InvalidHeader"
        )
    variables = [column for column in header if column.lower() != "timestamp"]
    for position, column in enumerate(header, start=1):
        if not column:
            raise DatasetError(
                f"{source}: column {position} of the header has no name; every column needs "
                "a variable name.",
                "InvalidHeader",
            )
    duplicated = sorted({column for column in variables if variables.count(column) > 1})
    if duplicated:
        raise DatasetError(
            f"{source}: the header repeats the column(s) {', '.join(duplicated)}.",
            "DuplicateVariable",
        )
    _check_variable_count(variables, limits, source)
    frame = _read_text_frame(text, source, len(header))
    frame.columns = pd.Index(header)
    time_column = header[lowered.index("timestamp")]
    stamps = parse_dataset_timestamps(frame[time_column], source, date_format)
    return {
        variable: pd.Series(
            _parse_values(frame[variable], f"{source}, column {variable!r}"),
            index=stamps,
            name=variable,
        )
        for variable in variables
    }


def _select_members(
    infos: list[zipfile.ZipInfo], limits: DatasetLimits
) -> list[tuple[zipfile.ZipInfo, str]]:
    """Check every entry's name and declared size; return the CSV members and their variables."""
    if len(infos) > limits.max_members:
        raise DatasetError(
            f"The zip holds {len(infos):,} entries; the limit is {limits.max_members:,} "
            f"(one CSV per variable, at most {limits.max_variables} variables).",
            "TooLarge",
        )
    declared = 0
    compressed = 0
    selected: list[tuple[zipfile.ZipInfo, str]] = []
    ignored: list[str] = []
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = [part for part in name.split("/") if part]
        if (
            name.startswith("/")
            or _DRIVE.match(name)
            or ".." in parts
            or "\x00" in name
            or not parts
        ):
            raise DatasetError(
                f"The zip entry {info.filename!r} has an unsafe path (absolute, a drive letter "
                "or '..'); put the CSV files at the root of the zip.",
                "UnsafePath",
            )
        declared += info.file_size
        if declared > limits.max_uncompressed_bytes:
            raise DatasetError(
                f"The zip declares more than {limits.max_uncompressed_bytes:,} bytes once "
                "decompressed; split the dataset or shorten it.",
                "TooLarge",
            )
        compressed += info.compress_size
        ratio = info.file_size / (info.compress_size + RATIO_SLACK_BYTES)
        if ratio > limits.max_ratio:
            raise DatasetError(
                f"{info.filename}: compression ratio {ratio:,.0f} exceeds "
                f"{limits.max_ratio:,.0f}; the zip looks like a zip bomb.",
                "TooLarge",
            )
        if info.is_dir() or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue
        if len(parts) > 1:
            raise DatasetError(
                f"The zip entry {info.filename!r} is inside the folder {parts[0]!r}; put the "
                "CSV files at the root of the zip (zip the files, not their folder).",
                "NestedFolder",
            )
        if not parts[0].lower().endswith(".csv"):
            ignored.append(info.filename)
            continue
        variable = parts[0][: -len(".csv")]
        if not variable:
            raise DatasetError(
                f"The zip entry {info.filename!r} has no variable name before '.csv'.",
                "InvalidHeader",
            )
        selected.append((info, variable))
    # Many members each just under the ratio still add up: the whole zip is checked too.
    if declared > limits.max_ratio * (compressed + RATIO_SLACK_BYTES):
        raise DatasetError(
            f"The zip declares {declared:,} bytes once decompressed from {compressed:,}: a "
            f"ratio above {limits.max_ratio:,.0f}; the zip looks like a zip bomb.",
            "TooLarge",
        )
    if ignored:
        logger.warning("Ignoring %s non-CSV zip member(s): %s", len(ignored), ", ".join(ignored))
    if not selected:
        raise DatasetError(
            "The zip holds no CSV file; put one 'timestamp,value' CSV per variable at its root "
            "(power.csv, voltage.csv, ...).",
            "EmptyDataset",
        )
    return selected


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """Decompress one member in chunks, never beyond its declared size or the byte budget."""
    cap = min(info.file_size, budget)
    chunks: list[bytes] = []
    total = 0
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(min(_CHUNK, cap - total + 1))
                if not chunk:
                    break
                total += len(chunk)
                if total > cap:
                    raise DatasetError(
                        f"{info.filename}: decompresses beyond "
                        f"{'its declared size' if cap == info.file_size else 'the size limit'} "
                        f"({cap:,} bytes); the zip looks like a zip bomb.",
                        "TooLarge",
                    )
                chunks.append(chunk)
    except DatasetError:
        raise
    except (
        zipfile.BadZipFile,
        RuntimeError,
        NotImplementedError,
        ValueError,
        EOFError,
        OSError,
    ) as exc:
        # RuntimeError: encrypted member; NotImplementedError: unknown compression method.
        raise DatasetError(
            f"{info.filename}: cannot be read from the zip ({exc}); the zip is corrupt, "
            "encrypted or uses an unsupported compression. Zip the CSV files again.",
            "InvalidZip",
        ) from exc
    return b"".join(chunks)


def _check_variable_count(variables: list[str], limits: DatasetLimits, source: str) -> None:
    if len(variables) < limits.min_variables:
        found = ", ".join(variables) or "none"
        raise DatasetError(
            f"{source} has {len(variables)} variable(s) ({found}); a multivariate model needs "
            f"at least {limits.min_variables}. Use univariate detection for a single meter.",
            "TooFewVariables",
        )
    if len(variables) > limits.max_variables:
        raise DatasetError(
            f"{source} has {len(variables)} variables; the limit is {limits.max_variables}.",
            "TooManyVariables",
        )


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV.",
            "InvalidEncoding",
        ) from exc


def _header_fields(text: str, source: str) -> list[str]:
    first_line = text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
    if not first_line.strip():
        raise DatasetError(
            f"{source} is empty; expected a header line and one row per timestamp.",
            "EmptyDataset",
        )
    return [column.strip() for column in next(csv.reader([first_line]))]


def _read_text_frame(text: str, source: str, columns: int) -> pd.DataFrame:
    """Read the rows after the header as text (no type guessing), checking the field count."""
    try:
        with warnings.catch_warnings():
            # A row longer than the header would otherwise be cut silently.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text.lstrip("\r\n")),
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=True,
                index_col=False,
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DatasetError(
            f"{source}: a row does not have the header's {columns} fields ({exc}).",
            "InvalidValue",
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(f"{source} is empty.", "EmptyDataset") from exc
    if frame.shape[1] != columns:
        raise DatasetError(
            f"{source}: rows have {frame.shape[1]} fields but the header has {columns}.",
            "InvalidValue",
        )
    if frame.empty:
        raise DatasetError(f"{source} has a header but no rows.", "EmptyDataset")
    return frame


def _timestamp_value_frame(data: bytes, source: str) -> pd.DataFrame:
    """Read one MultiTable member (``timestamp,value``) as text columns."""
    text = _decode(data, source)
    header = _header_fields(text, source)
    if [column.lower() for column in header] != ["timestamp", "value"]:
        raise DatasetError(
            f"{source}: the header is {','.join(header)!r}; expected exactly 'timestamp,value' "
            "on the first line.",
            "InvalidHeader",
        )
    return _read_text_frame(text, source, 2)


def _timestamp_value_series(frame: pd.DataFrame, source: str, date_format: str) -> pd.Series:
    """Parse one MultiTable member's columns into a float series."""
    stamps = parse_dataset_timestamps(frame.iloc[:, 0], source, date_format)
    values = _parse_values(frame.iloc[:, 1], source)
    return pd.Series(values, index=stamps, name=source.rsplit(".", 1)[0])


def _parse_values(column: pd.Series, source: str) -> np.ndarray:
    """Parse value text to float64: missing tokens become NaN; anything else must be finite."""
    text = column.fillna("").str.strip()
    missing = text.str.lower().isin(MISSING_TOKENS)
    numbers = pd.to_numeric(text.where(~missing, "nan"), errors="coerce")
    values: np.ndarray = np.asarray(numbers, dtype=np.float64)
    bad = (~missing.to_numpy()) & ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        first = int(rows[0])
        raise DatasetError(
            f"{source}, row {first + 2}: value {column.iloc[first]!r} is not a finite number "
            f"({rows.size} such row(s)); expected a number such as 1.5 (empty cells are missing "
            "readings).",
            "InvalidValue",
        )
    if missing.all():
        raise DatasetError(f"{source} has no values, only empty cells.", "EmptyDataset")
    return values


# --------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------


def align(
    series: Mapping[str, pd.Series],
    policy: AlignPolicy = AlignPolicy(),
    start: datetime | None = None,
    end: datetime | None = None,
    limits: DatasetLimits = DatasetLimits(),
    granularity_seconds: int | None = None,
) -> Dataset:
    """Put the variables on one sampling grid, join and fill them, and keep ``[start, end]``.

    The grid step is the smallest of the variables' median steps; its phase is the circular mean
    of the readings' phases, so minute data stays on whole minutes. Readings that round to the
    same slot are averaged. Filling uses the data on both sides of the window before slicing;
    leading or trailing holes that a method cannot fill take the nearest value.

    Args:
        series: Variable name → values indexed by timestamp (as the readers return them).
        policy: Join and fill rules.
        start: First timestamp kept (inclusive); naive means UTC.
        end: Last timestamp kept (inclusive).
        limits: Variable count limits.
        granularity_seconds: Use this grid step instead of inferring it (detection data is
            aligned on its model's grid this way).

    Returns:
        The aligned dataset (variables in the order given).

    Raises:
        DatasetError: ``TooFewVariables``/``TooManyVariables``, ``NotEnoughData`` (a variable
            without readings, no timestamps in the window, or too few to infer a grid),
            ``InvalidTimestamp`` for an unusable window.
    """
    names = [str(name) for name in series]
    _check_variable_count(names, limits, "the dataset")
    observed: dict[str, pd.Series] = {}
    for name, values in series.items():
        clean = pd.Series(
            np.asarray(values, dtype=np.float64), index=pd.DatetimeIndex(values.index)
        ).dropna()
        if clean.empty:
            raise DatasetError(f"The variable {name!r} has no values.", "NotEnoughData")
        observed[str(name)] = clean
    if granularity_seconds is None:
        step_ns = _infer_step_ns(observed)
    elif isinstance(granularity_seconds, int) and granularity_seconds >= 1:
        step_ns = granularity_seconds * 1_000_000_000
    else:
        raise DatasetError(
            f"granularity_seconds {granularity_seconds!r} must be a whole number of seconds >= 1.",
            "InvalidParameter",
        )
    phase_ns = _infer_phase_ns(observed, step_ns)
    gridded = {name: _to_slots(values, step_ns, phase_ns) for name, values in observed.items()}
    slots = [frame.index for frame in gridded.values()]
    if policy.align_mode == "Inner":
        joined = slots[0]
        for index in slots[1:]:
            joined = joined.intersection(index)
    else:
        joined = slots[0]
        for index in slots[1:]:
            joined = joined.union(index)
    joined = joined.sort_values()
    if joined.empty:
        raise DatasetError(
            "The variables share no timestamp (alignMode Inner); use Outer or check that the "
            "files cover the same period.",
            "NotEnoughData",
        )
    matrix = np.column_stack([gridded[name].reindex(joined).to_numpy() for name in names])
    missing = np.isnan(matrix)
    filled = _fill(matrix, joined.to_numpy(dtype=np.int64), policy)
    stamps = (joined.to_numpy(dtype=np.int64) * step_ns + phase_ns).astype("datetime64[ns]")
    keep = np.ones(stamps.shape[0], dtype=bool)
    if start is not None:
        keep &= stamps >= bound_datetime64(start, "start").astype("datetime64[ns]")
    if end is not None:
        keep &= stamps <= bound_datetime64(end, "end").astype("datetime64[ns]")
    if not keep.any():
        raise DatasetError(
            f"No timestamps between {iso_or_open(start)} and {iso_or_open(end)}; the data covers "
            f"{iso_or_open(stamps[0])} to {iso_or_open(stamps[-1])}.",
            "NotEnoughData",
        )
    kept_missing = missing[keep]
    ratios = {name: float(kept_missing[:, j].mean()) for j, name in enumerate(names)}
    return Dataset(
        variables=tuple(names),
        timestamps=stamps[keep].astype("datetime64[s]"),
        values=np.ascontiguousarray(filled[keep]),
        filled_na_ratio=ratios,
        granularity_seconds=int(step_ns // 1_000_000_000),
    )


def dataset_from_frame(frame: pd.DataFrame, policy: AlignPolicy = AlignPolicy()) -> Dataset:
    """Align a DataFrame indexed by timestamp with one column per variable.

    Args:
        frame: Values; the index must be timestamps (naive = UTC).
        policy: Join and fill rules.

    Returns:
        The aligned dataset.

    Raises:
        DatasetError: As :func:`align`.
    """
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_convert(None)
    return align(
        {str(column): pd.Series(frame[column].to_numpy(), index=index) for column in frame.columns},
        policy,
    )


def _infer_step_ns(observed: Mapping[str, pd.Series]) -> int:
    steps: list[float] = []
    for values in observed.values():
        distinct = np.unique(values.index.to_numpy(dtype=np.int64))
        if distinct.size >= 2:
            steps.append(float(np.median(np.diff(distinct))))
    if not steps:
        raise DatasetError(
            "Cannot infer the sampling step: every variable has a single timestamp.",
            "NotEnoughData",
        )
    # The finest variable sets the grid; coarser ones are filled per fillNAMethod. Jittered
    # clocks are snapped to the usual meter interval within 10 %.
    seconds = min(steps) / 1e9
    for usual in USUAL_STEPS_SECONDS:
        if abs(seconds - usual) <= 0.1 * usual:
            return usual * 1_000_000_000
    return max(1, round(seconds)) * 1_000_000_000


def _infer_phase_ns(observed: Mapping[str, pd.Series], step_ns: int) -> int:
    """Grid phase within one step: the circular mean of the readings' phases, in whole seconds.

    When the phases spread over the whole step (data finer than the grid) there is no common
    phase and the grid starts at whole steps since the epoch.
    """
    stamps = np.concatenate([values.index.to_numpy(dtype=np.int64) for values in observed.values()])
    angles = (stamps % step_ns).astype(np.float64) / step_ns * 2.0 * math.pi
    sine, cosine = float(np.sin(angles).mean()), float(np.cos(angles).mean())
    if math.hypot(sine, cosine) < 0.5:
        return 0  # readings spread over the step (finer than the grid): whole steps since 1970
    mean_angle = math.atan2(sine, cosine)
    phase = (mean_angle / (2.0 * math.pi)) % 1.0 * step_ns
    phase_s = round(phase / 1e9) % max(1, step_ns // 1_000_000_000)
    return int(phase_s) * 1_000_000_000


def _to_slots(values: pd.Series, step_ns: int, phase_ns: int) -> pd.Series:
    """Round to grid slots (integers) and average the readings that share a slot."""
    stamps = values.index.to_numpy(dtype=np.int64)
    slots = (stamps - phase_ns + step_ns // 2) // step_ns
    merged = pd.Series(values.to_numpy(), index=slots).groupby(level=0).mean()
    merged.index = pd.Index(merged.index.to_numpy(dtype=np.int64))
    return merged


def _fill(matrix: np.ndarray, slots: np.ndarray, policy: AlignPolicy) -> np.ndarray:
    """Fill NaN per the policy, column by column; edges a method cannot fill take the nearest."""
    missing = np.isnan(matrix)
    if not missing.any():
        return matrix
    method = policy.fill_na_method
    if method == "Zero":
        return np.where(missing, 0.0, matrix)
    if method == "Fixed":
        return np.where(missing, policy.padding_value, matrix)
    frame = pd.DataFrame(matrix, index=pd.Index(slots.astype(np.float64)))
    if method == "Previous":
        frame = frame.ffill().bfill()
    elif method == "Subsequent":
        frame = frame.bfill().ffill()
    else:  # Linear in time (slot numbers), nearest value beyond the ends
        frame = frame.interpolate(method="index", limit_area="inside").ffill().bfill()
    return frame.to_numpy(dtype=np.float64)
