"""The meterwatch CLI: detect on CSV files, clear errors, and Event Hubs batching."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from azure.eventhub import EventDataBatch

from shared.cli.main import event_batches, main


def write_csv(path: Path, values: np.ndarray, *, bom: bool = True, crlf: bool = True) -> Path:
    newline = "\r\n" if crlf else "\n"
    lines = ["timestamp,value"] + [
        f"12/{16 + (i // 1440)}/2006 {(i // 60) % 24}:{i % 60:02d},{v:.3f}"
        for i, v in enumerate(values)
    ]
    path.write_bytes((("\ufeff" if bom else "") + newline.join(lines) + newline).encode())
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def series_with_spike(n: int = 600, at: int = 500) -> np.ndarray:
    rng = np.random.default_rng(0)
    values = 5 + np.sin(np.arange(n) * 2 * np.pi / 120) + 0.1 * rng.standard_normal(n)
    values[at] += 6
    return values


def test_detect_entire_writes_one_row_per_input(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", series_with_spike())
    out = tmp_path / "out.csv"
    assert main(["detect", str(source), "--mode", "entire", "--output", str(out)]) == 0
    rows = read_rows(out)
    assert ",".join(rows[0]) == (
        "timestamp,value,isAnomaly,severity,expectedValue,lowerMargin,upperMargin"
    )
    assert len(rows) == 600
    flagged = [i for i, row in enumerate(rows) if row["isAnomaly"] == "true"]
    assert 500 in flagged
    assert rows[0]["timestamp"] == "2006-12-16T00:00:00Z"


def test_detect_changepoint_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = np.r_[np.zeros(300), np.full(300, 4.0)] + 0.2 * rng.standard_normal(600)
    source = write_csv(tmp_path / "in.csv", values, bom=False, crlf=False)
    out = tmp_path / "cp.csv"
    assert main(["detect", str(source), "--mode", "changepoint", "--output", str(out)]) == 0
    rows = read_rows(out)
    assert list(rows[0]) == ["timestamp", "value", "isChangePoint", "confidenceScore"]
    changes = [i for i, row in enumerate(rows) if row["isChangePoint"] == "true"]
    assert any(abs(i - 300) <= 3 for i in changes)


@pytest.mark.parametrize("mode", ["last", "stream"])
def test_detect_last_and_stream(tmp_path: Path, mode: str) -> None:
    values = series_with_spike(600, at=599)
    source = write_csv(tmp_path / "in.csv", values)
    out = tmp_path / f"{mode}.csv"
    assert main(["detect", str(source), "--mode", mode, "--output", str(out)]) == 0
    rows = read_rows(out)
    assert rows[-1]["isAnomaly"] == "true"
    if mode == "last":
        assert all(row["isAnomaly"] == "false" for row in rows[:-1])


def test_detect_tutorial_power_csv_longer_than_one_window(tmp_path: Path, power_csv: Path) -> None:
    out = tmp_path / "power.csv"
    assert main(["detect", str(power_csv), "--output", str(out)]) == 0
    rows = read_rows(out)
    assert len(rows) == 9999  # more than 8,640: worked in windows
    assert all(row["expectedValue"] != "" for row in rows)
    assert rows[-1]["timestamp"] == "2006-12-23T16:02:00Z"
    flagged = sum(row["isAnomaly"] == "true" for row in rows)
    assert 0 < flagged <= 0.25 * len(rows)


def test_bad_csv_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n1,2\n")
    assert main(["detect", str(bad)]) == 2
    assert "timestamp,value" in capsys.readouterr().err


def test_too_short_series_is_a_coded_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "short.csv", np.arange(11.0))
    assert main(["detect", str(source)]) == 2
    assert "InvalidSeries" in capsys.readouterr().err


def test_event_batches_use_real_event_data_batches() -> None:
    bodies = [
        json.dumps({"deviceId": "m1", "value": i, "pad": "x" * 200}).encode() for i in range(50)
    ]
    batches = list(event_batches(bodies, "m1", lambda: EventDataBatch(max_size_in_bytes=4096)))
    assert len(batches) > 1  # the SDK's size limit split them
    assert sum(len(b) for b in batches) == 50
    assert all(b.size_in_bytes <= 4096 for b in batches)
    paced = list(event_batches(bodies, "m1", lambda: EventDataBatch(max_size_in_bytes=65536), 10))
    assert [len(b) for b in paced] == [10] * 5
