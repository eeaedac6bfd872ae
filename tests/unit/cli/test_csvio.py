"""timestamp,value CSV reading: BOM, CRLF, tutorial timestamps, clear errors with the row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.cli.csvio import read_series_csv
from shared.errors import CsvFormatError


def test_bom_crlf_and_tutorial_timestamps() -> None:
    data = "\ufefftimestamp,value\r\n12/16/2006 17:24,0.418\r\n12/16/2006 17:25,0.436\r\n"
    series = read_series_csv(data.encode(), "x.csv")
    assert series.timestamps[0] == datetime(2006, 12, 16, 17, 24, tzinfo=UTC).timestamp()
    assert series.values.tolist() == [0.418, 0.436]


def test_iso_timestamps() -> None:
    data = b"timestamp,value\n2006-12-16T17:24:00Z,1\n2006-12-16T17:25:00Z,2\n"
    series = read_series_csv(data)
    assert series.timestamps[1] - series.timestamps[0] == 60


@pytest.mark.parametrize(
    ("data", "code", "fragment"),
    [
        (b"", "InvalidCsv", "empty"),
        (b"time,val\n1,2\n", "InvalidHeader", "timestamp,value"),
        (b"timestamp,value\n", "InvalidCsv", "no rows"),
        (b"timestamp,value\n2006-12-16T17:24:00Z,abc\n", "InvalidValue", "row 2"),
        (b"timestamp,value\n2006-12-16T17:24:00Z,1\nnot a time,2\n", "InvalidTimestamp", "row 3"),
    ],
)
def test_errors_name_the_row(data: bytes, code: str, fragment: str) -> None:
    with pytest.raises(CsvFormatError) as info:
        read_series_csv(data, "bad.csv")
    assert info.value.code == code
    assert fragment in info.value.message and "bad.csv" in info.value.message


def test_tutorial_power_csv(power_csv: Path) -> None:
    series = read_series_csv(power_csv)
    assert series.values.size == 9999
    assert series.values[:3].tolist() == [0.418, 0.436, 0.498]
    assert (series.timestamps[1:] - series.timestamps[:-1] == 60).all()
