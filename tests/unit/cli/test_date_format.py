"""``--date-format`` on the CLI commands that read CSV (05/01/2007 as 5 January or 1 May)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from shared.cli.main import main


def day_first_csv(path: Path, days: int) -> Path:
    """Six-hourly readings from 1 January 2007, dates written day-first (dd/mm/yyyy)."""
    lines = ["timestamp,value"]
    for day in range(1, days + 1):
        for hour in (0, 6, 12, 18):
            lines.append(f"{day:02d}/01/2007 {hour:02d}:00,{(day * 4 + hour // 6) % 5 + 1.5}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timestamps(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [row["timestamp"] for row in csv.DictReader(handle)]


def test_a_day_first_file_crossing_the_12th_is_read_day_first(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert main(["detect", str(day_first_csv(tmp_path / "in.csv", 20)), "--output", str(out)]) == 0
    stamps = timestamps(out)
    assert stamps[16] == "2007-01-05T00:00:00Z"  # 05/01/2007: 5 January, not 1 May
    assert stamps[-1] == "2007-01-20T18:00:00Z" and len(stamps) == 80


def test_an_ambiguous_file_fails_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = day_first_csv(tmp_path / "in.csv", 10)
    assert main(["detect", str(source), "--output", str(tmp_path / "out.csv")]) != 0
    error = capsys.readouterr().err
    assert "AmbiguousDateFormat" in error and "--date-format" in error
    assert "grid points" not in error


@pytest.mark.parametrize("option", ["day-first", "%d/%m/%Y %H:%M"])
def test_date_format_settles_an_ambiguous_file(tmp_path: Path, option: str) -> None:
    out = tmp_path / "out.csv"
    source = day_first_csv(tmp_path / "in.csv", 10)
    assert main(["detect", str(source), "--date-format", option, "--output", str(out)]) == 0
    assert timestamps(out)[-1] == "2007-01-10T18:00:00Z"


def test_every_csv_command_takes_date_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = day_first_csv(tmp_path / "in.csv", 3)
    with pytest.raises(SystemExit) as caught:
        main(["simulate", str(source), "--date-format", "bogus"])
    assert caught.value.code == 2
    for command in (["detect"], ["simulate"]):
        with pytest.raises(SystemExit) as shown:
            main([*command, "--help"])
        assert shown.value.code == 0
        assert "--date-format" in capsys.readouterr().out
