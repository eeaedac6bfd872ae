"""Day-first and month-first numeric dates, decided from the whole column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import CsvFormatError, DatasetError
from shared.timefmt import (
    check_date_format,
    date_order,
    parse_csv_timestamps,
    parse_dataset_timestamps,
)


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def column(*texts: str) -> pd.Series:
    return pd.Series(list(texts), dtype=str)


def test_a_day_first_file_that_crosses_the_12th_reads_day_first() -> None:
    stamps = parse_csv_timestamps(column("05/01/2007 00:00", "13/01/2007 00:00"), "f.csv")
    assert stamps.tolist() == [epoch(2007, 1, 5), epoch(2007, 1, 13)]


def test_the_tutorials_month_first_file_reads_month_first() -> None:
    stamps = parse_csv_timestamps(column("12/16/2006 17:24", "01/02/2007 00:00"), "power.csv")
    assert stamps.tolist() == [epoch(2006, 12, 16, 17, 24), epoch(2007, 1, 2)]


def test_an_ambiguous_column_is_an_error_naming_both_options() -> None:
    with pytest.raises(CsvFormatError) as caught:
        parse_csv_timestamps(column("05/01/2007 00:00", "06/01/2007 00:00"), "meter.csv")
    assert caught.value.code == "AmbiguousDateFormat"
    assert "--date-format" in caught.value.message and "dateFormat" in caught.value.message
    assert "meter.csv" in caught.value.message and "row 2" in caught.value.message


def test_an_explicit_order_settles_an_ambiguous_column() -> None:
    texts = column("05/01/2007 00:00", "06/01/2007 00:00")
    assert parse_csv_timestamps(texts, "f", "day-first").tolist() == [
        epoch(2007, 1, 5),
        epoch(2007, 1, 6),
    ]
    assert parse_csv_timestamps(texts, "f", "month-first").tolist() == [
        epoch(2007, 5, 1),
        epoch(2007, 6, 1),
    ]
    assert parse_csv_timestamps(texts, "f", "%d/%m/%Y %H:%M").tolist() == [
        epoch(2007, 1, 5),
        epoch(2007, 1, 6),
    ]


def test_mixed_conventions_are_an_error() -> None:
    with pytest.raises(DatasetError) as caught:
        parse_dataset_timestamps(column("13/01/2007", "01/13/2007"), "kitchen.csv")
    assert caught.value.code == "AmbiguousDateFormat"
    assert "row 2" in caught.value.message and "row 3" in caught.value.message


def test_a_date_wrong_for_the_given_order_names_its_row() -> None:
    with pytest.raises(CsvFormatError) as caught:
        parse_csv_timestamps(column("12/16/2006 17:24", "12/17/2006 17:24"), "f", "day-first")
    assert caught.value.code == "InvalidTimestamp"
    assert "row 2" in caught.value.message and "day-first" in caught.value.message


def test_iso_and_same_day_and_month_need_no_decision() -> None:
    assert date_order([column("2007-01-05T00:00:00Z")], "auto", "f", CsvFormatError) == "iso"
    assert (
        date_order([column("01/01/2007", "02/02/2007")], "auto", "f", CsvFormatError)
        == "month-first"
    )
    stamps = parse_dataset_timestamps(column("2007-01-05T00:00:00Z", "01/01/2007 00:00"), "f")
    assert list(stamps) == [pd.Timestamp("2007-01-05"), pd.Timestamp("2007-01-01")]


def test_one_decision_spans_several_columns() -> None:
    settled = column("13/01/2007")
    ambiguous = column("05/01/2007")
    assert date_order([ambiguous, settled], "auto", "zip", DatasetError) == "day-first"


@pytest.mark.parametrize("value", ["dmy", "", None, "%", 7])
def test_date_format_values(value: object) -> None:
    if value in ("", None):
        assert check_date_format(value, "dateFormat", DatasetError) == "auto"
    elif value == "%":
        assert check_date_format(value, "dateFormat", DatasetError) == "%"
    else:
        with pytest.raises(DatasetError) as caught:
            check_date_format(value, "dateFormat", DatasetError)
        assert caught.value.code == "InvalidDateFormat"


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)),
    count=st.integers(2, 60),
    step_hours=st.sampled_from([1, 6, 24, 48]),
    day_first=st.booleans(),
)
def test_any_numeric_column_reads_right_or_is_a_coded_error(
    start: datetime, count: int, step_hours: int, day_first: bool
) -> None:
    moments = [start.replace(second=0, microsecond=0) + timedelta(hours=step_hours * i)
               for i in range(count)]  # fmt: skip
    pattern = "%d/%m/%Y %H:%M" if day_first else "%m/%d/%Y %H:%M"
    texts = column(*(moment.strftime(pattern) for moment in moments))
    expected = [moment.replace(tzinfo=UTC).timestamp() for moment in moments]
    settles = any(m.day > 12 for m in moments)
    try:
        stamps = parse_csv_timestamps(texts, "f")
    except CsvFormatError as exc:
        assert exc.code == "AmbiguousDateFormat"
        assert not settles
        return
    if settles or all(m.day == m.month for m in moments):
        assert np.array_equal(stamps, expected)
    assert parse_csv_timestamps(
        texts, "f", "day-first" if day_first else "month-first"
    ).tolist() == pytest.approx(expected)
