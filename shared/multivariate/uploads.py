"""Reading multivariate uploads safely: the v1.1 MultiTable zip and the OneTable CSV.

Two layouts of the Multivariate Anomaly Detector v1.1 are read, always from bytes in memory
(nothing is ever extracted to disk):

* **MultiTable**: a zip holding one ``timestamp,value`` CSV per variable at its root; the file
  name without ``.csv`` is the variable name (``power.csv`` → ``power``).
* **OneTable**: one CSV with a ``timestamp`` column and one column per variable.

Uploads are untrusted. A zip is checked before anything is decompressed (member count, declared
sizes and compression ratios against :class:`~shared.multivariate.datasets.DatasetLimits`,
names that escape the root (zip-slip), members in sub-folders) and decompression is then capped
while streaming, because headers can lie. Every refusal is a :class:`~shared.errors.DatasetError`
whose ``code`` says what is wrong and whose message names the file, row or field and what was
expected. The series it returns are aligned by :func:`shared.multivariate.datasets.align`.
"""

import csv
import io
import logging
import re
import warnings
import zipfile

import numpy as np
import pandas as pd

from shared.errors import DatasetError
from shared.multivariate.datasets import DEFAULT_LIMITS, MIB, DatasetLimits, check_variable_count
from shared.timefmt import date_order, parse_dataset_timestamps

logger = logging.getLogger(__name__)

#: Bytes added to every member's compressed size before its ratio is taken: a small CSV of
#: repeated values compresses very well and cannot hurt, so a few KiB never trip the check,
#: while every member is checked whatever its size (300 members of 1 MB each, deflated to
#: 2.7 KB, were once waved through one by one: 806 KB inflating to 300 MiB).
RATIO_SLACK_BYTES = 1024
#: Cells read as a missing reading (to be filled per ``fillNAMethod``), compared in lower case.
MISSING_TOKENS = frozenset({"", "nan", "null", "na", "n/a", "none"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 * MIB


def load_dataset(
    data: bytes, name: str, limits: DatasetLimits = DEFAULT_LIMITS, date_format: str = "auto"
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
    data: bytes, limits: DatasetLimits = DEFAULT_LIMITS, date_format: str = "auto"
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
        check_variable_count(names, limits, "the zip")
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
    data: bytes, limits: DatasetLimits = DEFAULT_LIMITS, date_format: str = "auto"
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
            f"{source}: no 'timestamp' column in the header ({len(header)} columns); expected "
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
    check_variable_count(variables, limits, source)
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
            f"{source}: the header has {len(header)} field(s) but not 'timestamp,value'; expected "
            "exactly 'timestamp,value' "
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
            f"{source}, row {first + 2}: the value is not a finite number "
            f"({rows.size} such row(s)); expected a number such as 1.5 (empty cells are missing "
            "readings).",
            "InvalidValue",
        )
    if missing.all():
        raise DatasetError(f"{source} has no values, only empty cells.", "EmptyDataset")
    return values
