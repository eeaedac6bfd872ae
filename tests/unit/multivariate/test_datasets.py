"""Dataset parsing and alignment: the v1.1 layouts, the bad-dataset corpus and the alignPolicy."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.errors import DatasetError
from shared.multivariate.datasets import (
    AlignPolicy,
    Dataset,
    DatasetLimits,
    align,
    dataset_from_frame,
)
from shared.multivariate.uploads import load_dataset, read_multitable_zip, read_onetable_csv


def make_zip(members: Sequence[tuple[str, str | bytes]]) -> bytes:
    """A zip of ``(name, content)`` members, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def series_csv(values: list[float | str], start: str = "2024-01-01T00:00:00Z") -> str:
    """A ``timestamp,value`` CSV with one-minute ISO timestamps."""
    first = pd.Timestamp(start)
    lines = ["timestamp,value"]
    for i, value in enumerate(values):
        stamp = (first + pd.Timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{stamp},{value}")
    return "\n".join(lines) + "\n"


def two_variable_zip() -> bytes:
    return make_zip([("a.csv", series_csv([1, 2, 3])), ("b.csv", series_csv([4, 5, 6]))])


def error_of(call: object, *args: object, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# ---------------------------------------------------------------------------------------------
# MultiTable zips
# ---------------------------------------------------------------------------------------------


def test_reads_tutorial_zip(energy_zip: Path) -> None:
    series = read_multitable_zip(energy_zip.read_bytes())
    assert sorted(series) == ["kitchen", "laundryRoom", "power", "voltage"]
    for values in series.values():
        assert len(values) == 9_999
    power = series["power"]
    # BOM, CRLF and the unpadded `M/D/YYYY H:MM` format are all handled.
    assert power.index[0] == pd.Timestamp("2006-12-16 17:24:00")
    assert power.index[-1] == pd.Timestamp("2006-12-23 16:02:00")
    assert series["kitchen"].loc["2006-12-19 08:39:00"] == 34.0


def test_bom_crlf_and_us_timestamps() -> None:
    member = (
        "\ufefftimestamp,value\r\n"
        "12/16/2006 17:24,0.418\r\n12/16/2006 17:25,\r\n12/17/2006 0:00,2\r\n"
    )
    data = make_zip([("p.csv", member.encode("utf-8")), ("q.csv", series_csv([1, 2]))])
    series = read_multitable_zip(data)
    assert list(series["p"].index) == [
        pd.Timestamp("2006-12-16 17:24"),
        pd.Timestamp("2006-12-16 17:25"),
        pd.Timestamp("2006-12-17 00:00"),
    ]
    values = series["p"].to_numpy()
    assert values[0] == 0.418 and np.isnan(values[1]) and values[2] == 2.0


def test_offsets_are_converted_to_utc() -> None:
    member = "timestamp,value\n2024-01-01T01:00:00+01:00,1\n2024-01-01T00:01:00Z,2\n"
    series = read_multitable_zip(make_zip([("a.csv", member), ("b.csv", series_csv([1, 2]))]))
    assert list(series["a"].index) == [
        pd.Timestamp("2024-01-01 00:00"),
        pd.Timestamp("2024-01-01 00:01"),
    ]


def test_macosx_folders_and_dotfiles_are_ignored() -> None:
    data = make_zip(
        [
            ("a.csv", series_csv([1, 2])),
            ("b.csv", series_csv([3, 4])),
            ("__MACOSX/._a.csv", b"\x00\x05junk"),
            (".DS_Store", b"\x00junk"),
            ("notes.txt", "not data"),
        ]
    )
    assert sorted(read_multitable_zip(data)) == ["a", "b"]


def test_not_a_zip() -> None:
    assert error_of(read_multitable_zip, b"this is not a zip").code == "InvalidZip"


def test_empty_zip() -> None:
    error = error_of(read_multitable_zip, make_zip([]))
    assert error.code == "EmptyDataset"
    assert "no CSV" in error.message


def test_zip_without_csv_files() -> None:
    error = error_of(read_multitable_zip, make_zip([("readme.txt", "hello")]))
    assert error.code == "EmptyDataset"


def test_wrong_header_names_the_file() -> None:
    data = make_zip([("a.csv", "time,val\n2024-01-01,1\n"), ("b.csv", series_csv([1]))])
    error = error_of(read_multitable_zip, data)
    assert error.code == "InvalidHeader"
    assert "a.csv" in error.message and "timestamp,value" in error.message


def test_missing_header() -> None:
    data = make_zip(
        [("a.csv", "12/16/2006 17:24,0.4\n12/16/2006 17:25,0.5\n"), ("b.csv", series_csv([1]))]
    )
    error = error_of(read_multitable_zip, data)
    assert error.code == "InvalidHeader"
    assert "a.csv" in error.message


def test_non_numeric_value_names_file_and_row() -> None:
    data = make_zip([("a.csv", series_csv([1, "abc", 3])), ("b.csv", series_csv([1, 2, 3]))])
    error = error_of(read_multitable_zip, data)
    assert error.code == "InvalidValue"
    assert "a.csv" in error.message and "row 3" in error.message
    assert "abc" not in error.message  # an upload's content is never echoed


def test_infinite_value_is_refused() -> None:
    data = make_zip([("a.csv", series_csv([1, "inf"])), ("b.csv", series_csv([1, 2]))])
    assert error_of(read_multitable_zip, data).code == "InvalidValue"


def test_bad_timestamp_names_file_and_row() -> None:
    member = "timestamp,value\n2024-01-01T00:00:00Z,1\nyesterday,2\n"
    error = error_of(read_multitable_zip, make_zip([("a.csv", member), ("b.csv", series_csv([1]))]))
    assert error.code == "InvalidTimestamp"
    assert "a.csv" in error.message and "row 3" in error.message


def test_header_without_rows() -> None:
    data = make_zip([("a.csv", "timestamp,value\n"), ("b.csv", series_csv([1]))])
    error = error_of(read_multitable_zip, data)
    assert error.code == "EmptyDataset" and "a.csv" in error.message


def test_extra_column_in_a_member() -> None:
    data = make_zip(
        [("a.csv", "timestamp,value,extra\n2024-01-01,1,2\n"), ("b.csv", series_csv([1]))]
    )
    assert error_of(read_multitable_zip, data).code == "InvalidHeader"


def test_not_utf8() -> None:
    member = b"timestamp,value\n2024-01-01,1\n" + "caf\u00e9".encode("latin-1")
    data = make_zip([("a.csv", member), ("b.csv", series_csv([1]))])
    assert error_of(read_multitable_zip, data).code == "InvalidEncoding"


@pytest.mark.parametrize(
    "name",
    [
        "../evil.csv",
        "/etc/evil.csv",
        "C:/evil.csv",
        "C:\\evil.csv",
        "a/../../evil.csv",
        "..\\evil.csv",
    ],
)
def test_zip_slip_names_are_refused(name: str) -> None:
    data = make_zip(
        [(name, series_csv([1])), ("b.csv", series_csv([1])), ("c.csv", series_csv([2]))]
    )
    error = error_of(read_multitable_zip, data)
    assert error.code == "UnsafePath"
    assert repr(name) in error.message


def test_nested_folder_is_refused_with_advice() -> None:
    data = make_zip([("data/a.csv", series_csv([1])), ("data/b.csv", series_csv([2]))])
    error = error_of(read_multitable_zip, data)
    assert error.code == "NestedFolder"
    assert "data" in error.message and "root" in error.message


def test_zip_bomb_by_ratio() -> None:
    bomb = "timestamp,value\n" + "2024-01-01T00:00:00Z,0\n" * 60_000  # ~1.3 MB, deflates ~400x
    data = make_zip([("a.csv", bomb), ("b.csv", series_csv([1]))])
    error = error_of(read_multitable_zip, data)
    assert error.code == "TooLarge" and "a.csv" in error.message


def test_many_small_members_are_ratio_checked_too() -> None:
    """300 members under 1 MiB each (806 KB zipped, 300 MiB inflated) are refused unread."""
    member = "timestamp,value\n" + "2024-01-01T00:00:00Z,0\n" * 43_000  # ~0.99 MB, ~2.7 KB zipped
    data = make_zip([(f"v{i}.csv", member) for i in range(300)])
    assert len(data) < 1_000_000
    started = time.process_time()
    error = error_of(read_multitable_zip, data)
    assert error.code == "TooLarge" and "zip bomb" in error.message
    assert time.process_time() - started < 1.0  # refused from the directory, nothing inflated


def test_a_small_repetitive_member_is_not_a_bomb() -> None:
    flat = "timestamp,value\n" + "".join(f"2024-01-01T00:{m:02d}:00Z,0\n" for m in range(60))
    series = read_multitable_zip(make_zip([("a.csv", flat), ("b.csv", flat)]))
    assert sorted(series) == ["a", "b"]


def test_forged_compressed_sizes_are_refused() -> None:
    data = bytearray(two_variable_zip())
    central = data.rfind(b"PK\x01\x02")  # the last member's central directory entry
    struct.pack_into("<I", data, central + 20, 10**9)  # its compressed size
    error = error_of(read_multitable_zip, bytes(data))
    assert error.code == "InvalidZip"


def test_zip_bomb_by_declared_total() -> None:
    limits = DatasetLimits(max_uncompressed_bytes=100)
    error = error_of(read_multitable_zip, two_variable_zip(), limits)
    assert error.code == "TooLarge"


def test_too_many_members() -> None:
    members = [(f"v{i}.csv", series_csv([i])) for i in range(6)]
    error = error_of(read_multitable_zip, make_zip(members), DatasetLimits(max_members=5))
    assert error.code == "TooLarge"


def test_zip_larger_than_the_upload_limit() -> None:
    error = error_of(read_multitable_zip, two_variable_zip(), DatasetLimits(max_zip_bytes=10))
    assert error.code == "TooLarge"


def test_member_that_lies_about_its_size_is_not_read_beyond_it() -> None:
    data = bytearray(make_zip([("a.csv", series_csv(list(range(60)))), ("b.csv", series_csv([1]))]))
    # Declare 50 bytes for a.csv in its local and central headers: decompression must stop there.
    struct.pack_into("<I", data, 22, 50)
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 50)
    error = error_of(read_multitable_zip, bytes(data))
    assert error.code == "InvalidZip" and "a.csv" in error.message


def test_one_variable_only() -> None:
    error = error_of(read_multitable_zip, make_zip([("a.csv", series_csv([1, 2]))]))
    assert error.code == "TooFewVariables"
    assert "univariate" in error.message


def test_too_many_variables() -> None:
    members = [(f"v{i}.csv", series_csv([i])) for i in range(4)]
    error = error_of(read_multitable_zip, make_zip(members), DatasetLimits(max_variables=3))
    assert error.code == "TooManyVariables"


def test_duplicate_member_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("a.csv", series_csv([1]))
        archive.writestr("a.csv", series_csv([2]))
        archive.writestr("b.csv", series_csv([3]))
    assert error_of(read_multitable_zip, buffer.getvalue()).code == "DuplicateVariable"


# ---------------------------------------------------------------------------------------------
# OneTable CSVs and dispatch
# ---------------------------------------------------------------------------------------------


def test_onetable_csv() -> None:
    data = (
        b"\xef\xbb\xbftimestamp,power,voltage\r\n"
        b"12/16/2006 17:24,1.5,240\r\n12/16/2006 17:25,,241\r\n"
    )
    series = read_onetable_csv(data)
    assert sorted(series) == ["power", "voltage"]
    assert series["voltage"].tolist() == [240.0, 241.0]
    assert np.isnan(series["power"].iloc[1])


def test_onetable_timestamp_column_may_be_anywhere() -> None:
    series = read_onetable_csv(b"a,Timestamp,b\n1,2024-01-01T00:00:00Z,2\n")
    assert sorted(series) == ["a", "b"]
    assert series["a"].index[0] == pd.Timestamp("2024-01-01")


def test_onetable_without_timestamp_column() -> None:
    error = error_of(read_onetable_csv, b"time,a,b\n2024-01-01,1,2\n")
    assert error.code == "InvalidHeader" and "timestamp" in error.message


def test_onetable_duplicate_columns() -> None:
    error = error_of(read_onetable_csv, b"timestamp,a,a\n2024-01-01,1,2\n")
    assert error.code == "DuplicateVariable" and "a" in error.message


def test_onetable_unnamed_column() -> None:
    assert error_of(read_onetable_csv, b"timestamp,a,\n2024-01-01,1,2\n").code == "InvalidHeader"


def test_onetable_one_variable() -> None:
    assert error_of(read_onetable_csv, b"timestamp,a\n2024-01-01,1\n").code == "TooFewVariables"


def test_onetable_non_numeric_names_column_and_row() -> None:
    error = error_of(read_onetable_csv, b"timestamp,a,b\n2024-01-01,1,2\n2024-01-02,x,3\n")
    assert error.code == "InvalidValue"
    assert "'a'" in error.message and "row 3" in error.message


def test_onetable_empty() -> None:
    assert error_of(read_onetable_csv, b"").code == "EmptyDataset"


def test_onetable_row_with_too_many_fields() -> None:
    error = error_of(read_onetable_csv, b"timestamp,a,b\n2024-01-01,1,2,3\n")
    assert error.code == "InvalidValue"


def test_load_dataset_dispatches_on_extension() -> None:
    assert sorted(load_dataset(two_variable_zip(), "upload.ZIP")) == ["a", "b"]
    assert sorted(load_dataset(b"timestamp,a,b\n2024-01-01,1,2\n", "x.csv")) == ["a", "b"]
    assert error_of(load_dataset, b"{}", "x.json").code == "UnsupportedFormat"


# ---------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------


def raw(stamps: list[str], values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.DatetimeIndex(pd.to_datetime(stamps)), dtype=float)


def test_align_rounds_jitter_and_averages_duplicates() -> None:
    series = {
        "a": raw(
            [
                "2024-01-01 00:00:02",
                "2024-01-01 00:00:58",
                "2024-01-01 00:01:01",
                "2024-01-01 00:02:00",
            ],
            [1, 3, 5, 7],
        ),
        "b": raw(
            ["2024-01-01 00:00:00", "2024-01-01 00:01:00", "2024-01-01 00:02:00"], [10, 20, 30]
        ),
    }
    dataset = align(series, AlignPolicy())
    assert dataset.granularity_seconds == 60
    assert [str(t) for t in dataset.timestamps] == [
        "2024-01-01T00:00:00",
        "2024-01-01T00:01:00",
        "2024-01-01T00:02:00",
    ]
    # 00:00:58 and 00:01:01 both round to 00:01 and are averaged.
    assert dataset.values[:, 0].tolist() == [1.0, 4.0, 7.0]
    assert dataset.values.dtype == np.float64 and dataset.timestamps.dtype == "datetime64[s]"


def coverage() -> dict[str, pd.Series]:
    minutes = [f"2024-01-01 00:0{i}:00" for i in range(6)]
    return {
        "a": raw(minutes[0:5], [0, 1, 2, 3, 4]),  # 00:00 .. 00:04
        "b": raw([minutes[1], minutes[3], minutes[5]], [10, 30, 50]),  # 00:01, 00:03, 00:05
    }


def test_inner_keeps_common_timestamps() -> None:
    dataset = align(coverage(), AlignPolicy("Inner", "Linear"))
    assert [str(t)[-8:] for t in dataset.timestamps] == ["00:01:00", "00:03:00"]
    assert dataset.values.tolist() == [[1.0, 10.0], [3.0, 30.0]]
    assert dataset.filled_na_ratio == {"a": 0.0, "b": 0.0}


@pytest.mark.parametrize(
    ("method", "a", "b"),
    [
        ("Previous", [0, 1, 2, 3, 4, 4], [10, 10, 10, 30, 30, 50]),
        ("Subsequent", [0, 1, 2, 3, 4, 4], [10, 10, 30, 30, 50, 50]),
        ("Linear", [0, 1, 2, 3, 4, 4], [10, 10, 20, 30, 40, 50]),
        ("Zero", [0, 1, 2, 3, 4, 0], [0, 10, 0, 30, 0, 50]),
        ("Fixed", [0, 1, 2, 3, 4, -1], [-1, 10, -1, 30, -1, 50]),
    ],
)
def test_outer_fill_methods(method: str, a: list[float], b: list[float]) -> None:
    dataset = align(coverage(), AlignPolicy("Outer", method, padding_value=-1.0))
    assert len(dataset) == 6
    assert dataset.values[:, 0].tolist() == a
    assert dataset.values[:, 1].tolist() == b
    assert dataset.filled_na_ratio == {"a": pytest.approx(1 / 6), "b": pytest.approx(3 / 6)}


def test_outer_does_not_invent_slots_nobody_reported() -> None:
    series = {
        "a": raw(
            ["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:05", "2024-01-01 00:06"],
            [1, 2, 3, 4],
        ),
        "b": raw(
            ["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:05", "2024-01-01 00:06"],
            [1, 2, 3, 4],
        ),
    }
    dataset = align(series, AlignPolicy())
    assert len(dataset) == 4
    assert dataset.granularity_seconds == 60


def test_window_is_inclusive_and_accepts_aware_bounds() -> None:
    start = datetime(2024, 1, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # 00:01 UTC
    dataset = align(
        coverage(), AlignPolicy(), start=start, end=datetime(2024, 1, 1, 0, 3, tzinfo=UTC)
    )
    assert [str(t)[-8:] for t in dataset.timestamps] == ["00:01:00", "00:02:00", "00:03:00"]
    # Linear fill used the readings outside the window.
    assert dataset.values[:, 1].tolist() == [10.0, 20.0, 30.0]


def test_empty_window() -> None:
    error = error_of(align, coverage(), AlignPolicy(), start=datetime(2030, 1, 1))
    assert error.code == "NotEnoughData" and "2024-01-01T00:00:00Z" in error.message


def test_align_refuses_one_variable_and_empty_variables() -> None:
    assert error_of(align, {"a": coverage()["a"]}).code == "TooFewVariables"
    empty = {"a": coverage()["a"], "b": raw(["2024-01-01"], [np.nan])}
    error = error_of(align, empty)
    assert error.code == "NotEnoughData" and "'b'" in error.message


def test_inner_without_common_timestamps() -> None:
    series = {
        "a": raw(["2024-01-01 00:00", "2024-01-01 00:01"], [1, 2]),
        "b": raw(["2024-01-02 00:00", "2024-01-02 00:01"], [1, 2]),
    }
    assert error_of(align, series, AlignPolicy("Inner")).code == "NotEnoughData"


def test_tutorial_windows(energy_zip: Path) -> None:
    series = load_dataset(energy_zip.read_bytes(), energy_zip.name)
    train = align(
        series, AlignPolicy(), datetime(2006, 12, 16, 17, 24), datetime(2006, 12, 18, 2, 43)
    )
    detect = align(series, AlignPolicy(), datetime(2006, 12, 19), datetime(2006, 12, 19, 20, 26))
    assert len(train) == 2_000 and len(detect) == 1_227
    assert train.variables == ("kitchen", "laundryRoom", "power", "voltage")
    assert train.filled_na_ratio == dict.fromkeys(train.variables, 0.0)


def test_dataset_from_frame_and_back() -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="5min", tz="UTC")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [4.0, 3.0, 2.0, 1.0]}, index=index)
    dataset = dataset_from_frame(frame)
    assert dataset.granularity_seconds == 300
    assert dataset.to_frame().to_numpy().tolist() == frame.to_numpy().tolist()
    assert len(dataset.slice(start="2024-01-01T00:05:00", end="2024-01-01T00:10:00")) == 2


def test_dataset_shape_is_checked() -> None:
    stamps = np.array(["2024-01-01T00:00"], dtype="datetime64[s]")
    error = error_of(Dataset, ("a", "b"), stamps, np.zeros((1, 3)))
    assert error.code == "InvalidDataset"


# ---------------------------------------------------------------------------------------------
# alignPolicy
# ---------------------------------------------------------------------------------------------


def test_align_policy_from_v11_is_case_insensitive() -> None:
    policy = AlignPolicy.from_v11(
        {"alignMode": "inner", "fillNAMethod": "FIXED", "paddingValue": 3}
    )
    assert policy == AlignPolicy("Inner", "Fixed", 3.0)
    assert policy.to_v11() == {"alignMode": "Inner", "fillNAMethod": "Fixed", "paddingValue": 3.0}
    assert AlignPolicy.from_v11(None) == AlignPolicy()
    assert AlignPolicy.from_v11({}) == AlignPolicy("Outer", "Linear", 0.0)


@pytest.mark.parametrize(
    "obj",
    [
        {"alignMode": "Sideways"},
        {"fillNAMethod": "Mean"},
        {"paddingValue": "zero"},
        {"paddingValue": float("nan")},
        {"alignmode": "Inner", "colour": "red"},
        ["Inner"],
    ],
)
def test_align_policy_refuses_bad_values(obj: object) -> None:
    error = error_of(AlignPolicy.from_v11, obj)
    assert error.code == "InvalidAlignPolicy"


def test_align_on_a_given_grid() -> None:
    minutes = [f"2024-01-01 00:{i:02d}:00" for i in range(10)]
    series = {"a": raw(minutes, list(range(10))), "b": raw(minutes, [1.0] * 10)}
    dataset = align(series, AlignPolicy(), granularity_seconds=300)
    assert dataset.granularity_seconds == 300
    # 00:00-00:02 round to 00:00, 00:03-00:07 to 00:05, 00:08-00:09 to 00:10.
    assert dataset.values[:, 0].tolist() == [1.0, 5.0, 8.5]
    assert error_of(align, series, granularity_seconds=0).code == "InvalidParameter"


def _day_first_zip(days: int) -> bytes:
    """A MultiTable zip whose dates are day-first; only ``power`` reaches past the 12th."""

    def member(last_day: int) -> str:
        rows = [f"{day:02d}/01/2007 {hour:02d}:00,{day + hour / 10}"
                for day in range(1, last_day + 1) for hour in (0, 12)]  # fmt: skip
        return "timestamp,value\n" + "\n".join(rows) + "\n"

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("power.csv", member(days))
        archive.writestr("kitchen.csv", member(min(days, 10)))
    return buffer.getvalue()


def test_a_zip_decides_day_first_across_its_members() -> None:
    series = load_dataset(_day_first_zip(14), "meters.zip")
    # kitchen.csv alone is ambiguous; power.csv's 13/01 settles the dataset day-first.
    assert series["kitchen"].index[-1] == pd.Timestamp("2007-01-10 12:00")
    assert series["power"].index[-1] == pd.Timestamp("2007-01-14 12:00")


def test_an_ambiguous_zip_is_an_error_unless_date_format_says() -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset(_day_first_zip(10), "meters.zip")
    assert caught.value.code == "AmbiguousDateFormat"
    assert "dateFormat" in caught.value.message
    series = load_dataset(_day_first_zip(10), "meters.zip", date_format="day-first")
    assert series["power"].index[2] == pd.Timestamp("2007-01-02 00:00")
