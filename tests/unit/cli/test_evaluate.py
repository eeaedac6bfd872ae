"""``meterwatch evaluate`` on a tiny labelled output whose scores are worked out by hand.

The output has 20 one-minute rows. NAB's probationary period is floor(0.15 * 20) = 3 rows.
One window covers rows 10..13 (width 4). The detector flags row 5 (severity 0.95, a false
alarm before the window) and row 11 (severity 0.9, the window's second row); every other row
has severity 0.1.

NAB, by hand: a detection on row 11 sits at x = -(13 - 11 + 1) / 4 = -0.75 and earns
tanh(1.875) / tanh(2.5) (the sigmoid 2/(1+e^(5x)) - 1 is -tanh(2.5 x), divided by its value
on the window's first row). The false alarm before the first window costs A_fp. Thresholds
tried: above 0.95 (nothing: the null score), 0.95 (only the false alarm: worse), 0.9 (both),
0.1 (every row after probation: the window at full weight but 13 false alarms, worse). So 0.9
is best for all three profiles: raw = hit - A_fp, normalised 100 (raw - null) / (1 - null)
with null = -A_fn.

Point-wise: TP 1 (row 11), FP 1 (row 5), FN 3 (rows 10, 12, 13), TN 15; precision 1/2,
recall 1/4, F1 = 1 / (1 + (1 + 3) / 2) = 1/3, FAR = 1/16 = 6.25 %, MAR = 3/4 = 75 %.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from shared.cli.main import main

ROWS = 20
WINDOW = (10, 13)
HIT = math.tanh(1.875) / math.tanh(2.5)
EXPECTED_NAB = {
    "standard": 100 * ((HIT - 0.11) + 1) / 2,
    "low_fp": 100 * ((HIT - 0.22) + 1) / 2,
    "low_fn": 100 * ((HIT - 0.11) + 2) / 3,
}
EXPECTED_POINTWISE = {
    "tp": 1,
    "fp": 1,
    "fn": 3,
    "tn": 15,
    "precision": 0.5,
    "recall": 0.25,
    "f1": 1 / 3,
    "false_alarm_rate": 6.25,
    "missed_alarm_rate": 75.0,
}


def stamp(row: int, iso: bool = True) -> str:
    return f"2024-01-01T00:{row:02d}:00Z" if iso else f"2024-01-01 00:{row:02d}:00"


def write_output(path: Path, severities: dict[int, str] | None = None) -> Path:
    """The detector output: timestamp,value,isAnomaly,severity (meterwatch detect's columns)."""
    cells = {5: "0.95", 11: "0.9", **(severities or {})}
    lines = ["timestamp,value,isAnomaly,severity"]
    for row in range(ROWS):
        flagged = "true" if row in (5, 11) else "false"
        lines.append(f"{stamp(row)},{1.0 + row % 3},{flagged},{cells.get(row, '0.1')}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def windows_dict(tmp_path: Path, output: Path) -> Path:
    path = tmp_path / "windows.json"
    window = [stamp(WINDOW[0], iso=False) + ".000000", stamp(WINDOW[1], iso=False) + ".000000"]
    path.write_text(json.dumps({output.name: [window]}), encoding="utf-8")
    return path


def windows_list(tmp_path: Path, output: Path) -> Path:
    path = tmp_path / "windows.json"
    path.write_text(json.dumps([[stamp(WINDOW[0]), stamp(WINDOW[1])]]), encoding="utf-8")
    return path


def point_labels(tmp_path: Path, output: Path) -> Path:
    path = tmp_path / "points.csv"
    rows = "\n".join(stamp(row) for row in range(WINDOW[0], WINDOW[1] + 1))
    path.write_text(f"timestamp\n{rows}\n", encoding="utf-8")
    return path


def label_column(tmp_path: Path, output: Path) -> Path:
    """SKAB-shaped: ';'-separated, a datetime column, sensor values and the anomaly column."""
    path = tmp_path / "skab.csv"
    lines = ["datetime;Current;anomaly;changepoint"]
    for row in range(ROWS):
        label = "1.0" if WINDOW[0] <= row <= WINDOW[1] else "0.0"
        lines.append(f"{stamp(row, iso=False)};0.5;{label};0.0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


LABEL_FORMS = {
    "windows-json": (windows_dict, []),
    "windows-list": (windows_list, []),
    "point-labels": (point_labels, []),
    "label-column": (label_column, ["--label-column", "anomaly"]),
}


@pytest.mark.parametrize("form", list(LABEL_FORMS))
def test_every_label_form_gives_the_hand_computed_figures(tmp_path: Path, form: str) -> None:
    output = write_output(tmp_path / "out.csv")
    make_labels, extra = LABEL_FORMS[form]
    labels = make_labels(tmp_path, output)
    report = tmp_path / "report.json"
    code = main(["evaluate", str(output), "--labels", str(labels), "--json", str(report), *extra])
    assert code == 0
    document = json.loads(report.read_text(encoding="utf-8"))
    for profile, expected in EXPECTED_NAB.items():
        assert document["nab"][profile]["score"] == pytest.approx(expected, abs=1e-9), profile
        assert document["nab"][profile]["threshold"] == 0.9
        assert document["nab"][profile]["detected_windows"] == 1
        assert document["nab"][profile]["false_positives"] == 1
    for key, expected in EXPECTED_POINTWISE.items():
        assert document["pointwise"][key] == pytest.approx(expected), key


def test_the_summary_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = write_output(tmp_path / "out.csv")
    assert main(["evaluate", str(output), "--labels", str(windows_list(tmp_path, output))]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"standard +{EXPECTED_NAB['standard']:.2f} +0\.9 +1/1 +1\n", printed)
    assert "F1 0.333" in printed and "false-alarm rate 6.25 %" in printed
    assert "missed-alarm rate 75.00 %" in printed


def test_without_a_flag_column_the_score_threshold_flags(tmp_path: Path) -> None:
    source = write_output(tmp_path / "full.csv")
    lines = source.read_text(encoding="utf-8").splitlines()
    bare = tmp_path / "out.csv"  # timestamp and score only, and a score column of another name
    kept = [",".join(line.split(",")[i] for i in (0, 3)) for line in lines[1:]]
    bare.write_text("\n".join(["time,anomaly_score", *kept]) + "\n", encoding="utf-8")
    report = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            str(bare),
            "--labels",
            str(windows_list(tmp_path, bare)),
            "--timestamp-column",
            "time",
            "--score-column",
            "anomaly_score",
            "--flag-threshold",
            "0.5",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["nab"]["standard"]["score"] == pytest.approx(EXPECTED_NAB["standard"])
    assert document["pointwise"]["f1"] == pytest.approx(1 / 3)


def test_skip_rows_leaves_the_first_rows_out_of_the_pointwise_counts(tmp_path: Path) -> None:
    output = write_output(tmp_path / "out.csv")
    report = tmp_path / "report.json"
    labels = windows_list(tmp_path, output)
    args = ["evaluate", str(output), "--labels", str(labels), "--json", str(report)]
    assert main([*args, "--skip-rows", "8"]) == 0
    point = json.loads(report.read_text(encoding="utf-8"))["pointwise"]
    # the false alarm on row 5 is no longer counted: TN 16 - 1 - 7 rows skipped = 8
    assert (point["tp"], point["fp"], point["fn"], point["tn"]) == (1, 0, 3, 8)
    assert point["false_alarm_rate"] == 0.0


def test_the_picture_is_written(tmp_path: Path) -> None:
    output = write_output(tmp_path / "out.csv")
    picture = tmp_path / "pictures" / "out.png"
    labels = windows_list(tmp_path, output)
    assert main(["evaluate", str(output), "--labels", str(labels), "--plot", str(picture)]) == 0
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_a_folder_is_one_corpus_with_labels_by_relative_path(tmp_path: Path) -> None:
    folder = tmp_path / "outputs"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    write_output(folder / "a" / "one.csv")
    write_output(folder / "b" / "two.csv")
    window = [stamp(WINDOW[0]), stamp(WINDOW[1])]
    labels = tmp_path / "windows.json"
    labels.write_text(
        json.dumps({"a/one.csv": [window], "b/two.csv": [window], "c/absent.csv": [window]}),
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    pictures = tmp_path / "pictures"
    args = ["evaluate", str(folder), "--labels", str(labels), "--json", str(report)]
    assert main([*args, "--plot", str(pictures)]) == 0
    document = json.loads(report.read_text(encoding="utf-8"))
    # two identical files: the same normalised scores, the counts doubled
    assert document["nab"]["standard"]["score"] == pytest.approx(EXPECTED_NAB["standard"])
    assert document["nab"]["standard"]["windows"] == 2
    assert document["pointwise"]["tn"] == 30
    assert document["unmatched_labels"] == ["c/absent.csv"]
    assert (pictures / "a" / "one.png").is_file() and (pictures / "b" / "two.png").is_file()


def test_skab_layout_label_folder_matches_group_n_predictions(tmp_path: Path) -> None:
    data = tmp_path / "skab"
    (data / "valve2").mkdir(parents=True)
    label_column(tmp_path, tmp_path).rename(data / "valve2" / "3.csv")
    predictions = tmp_path / "pred"
    predictions.mkdir()
    write_output(predictions / "valve2_3.csv")
    report = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            str(predictions),
            "--labels",
            str(data),
            "--label-column",
            "anomaly",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    point = json.loads(report.read_text(encoding="utf-8"))["pointwise"]
    assert point["f1"] == pytest.approx(1 / 3)


def run_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_a_bad_score_names_the_file_and_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = write_output(tmp_path / "out.csv", {7: "high"})
    error = run_error(
        ["evaluate", str(output), "--labels", str(windows_list(tmp_path, output))], capsys
    )
    assert "out.csv, row 9: severity 'high' is not a number" in error
    assert "[InvalidValue]" in error


def test_a_bad_flag_names_the_file_and_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = write_output(tmp_path / "out.csv")
    text = output.read_text(encoding="utf-8").replace(
        f"{stamp(3)},1.0,false", f"{stamp(3)},1.0,maybe"
    )
    output.write_text(text, encoding="utf-8")
    error = run_error(
        ["evaluate", str(output), "--labels", str(windows_list(tmp_path, output))], capsys
    )
    assert "out.csv, row 5: isAnomaly 'maybe' is not true/false or 0/1" in error


def test_a_bad_timestamp_names_the_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = write_output(tmp_path / "out.csv")
    output.write_text(
        output.read_text(encoding="utf-8").replace(stamp(4), "yesterday"), encoding="utf-8"
    )
    error = run_error(
        ["evaluate", str(output), "--labels", str(windows_list(tmp_path, output))], capsys
    )
    assert "out.csv, row 6: timestamp 'yesterday'" in error and "[InvalidTimestamp]" in error


def test_missing_columns_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.csv"
    output.write_text(f"timestamp,value\n{stamp(0)},1\n", encoding="utf-8")
    labels = windows_list(tmp_path, output)
    error = run_error(["evaluate", str(output), "--labels", str(labels)], capsys)
    assert "neither a score column 'severity' nor a flag column 'isAnomaly'" in error
    assert "[MissingColumn]" in error


def test_a_bad_window_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = write_output(tmp_path / "out.csv")
    labels = tmp_path / "windows.json"
    labels.write_text(
        json.dumps({"out.csv": [[stamp(1), stamp(2)], [stamp(4), "soon"]]}), encoding="utf-8"
    )
    error = run_error(["evaluate", str(output), "--labels", str(labels)], capsys)
    assert "windows.json: 'out.csv', window 1: 'soon' is not an ISO 8601 timestamp" in error
    assert "[InvalidLabels]" in error


def test_overlapping_windows_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = write_output(tmp_path / "out.csv")
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps([[stamp(1), stamp(5)], [stamp(4), stamp(8)]]), encoding="utf-8")
    error = run_error(["evaluate", str(output), "--labels", str(labels)], capsys)
    assert "windows 0 and 1 overlap" in error


def test_a_point_label_off_the_output_names_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = write_output(tmp_path / "out.csv")
    labels = tmp_path / "points.csv"
    labels.write_text(f"timestamp\n{stamp(10)}\n2024-01-01T00:10:30Z\n", encoding="utf-8")
    error = run_error(["evaluate", str(output), "--labels", str(labels)], capsys)
    assert "points.csv, row 3: the labelled timestamp is not a row of out.csv" in error


def test_labels_for_other_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = write_output(tmp_path / "out.csv")
    labels = tmp_path / "windows.json"
    window = [[stamp(1), stamp(2)]]
    labels.write_text(json.dumps({"a.csv": window, "b.csv": window}), encoding="utf-8")
    error = run_error(["evaluate", str(output), "--labels", str(labels)], capsys)
    assert "no label matches the output (labelled: a.csv, b.csv)" in error


def test_one_output_takes_the_only_labelled_file_whatever_its_name(tmp_path: Path) -> None:
    output = write_output(tmp_path / "out.csv")
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({"data/meter.csv": [[stamp(10), stamp(13)]]}), encoding="utf-8")
    report = tmp_path / "report.json"
    assert main(["evaluate", str(output), "--labels", str(labels), "--json", str(report)]) == 0
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["nab"]["standard"]["score"] == pytest.approx(EXPECTED_NAB["standard"])


def test_date_format_reads_day_first_outputs(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    lines = ["timestamp,isAnomaly"] + [
        f"0{1 + row // 10}/02/2024 00:{row % 10:02d},{'1' if row == 3 else '0'}"
        for row in range(20)
    ]
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels = tmp_path / "points.csv"
    labels.write_text("timestamp\n2024-02-01T00:03:00Z\n", encoding="utf-8")
    report = tmp_path / "report.json"
    args = ["evaluate", str(output), "--labels", str(labels), "--json", str(report)]
    assert main([*args, "--date-format", "day-first", "--no-probation"]) == 0
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["pointwise"]["tp"] == 1 and document["pointwise"]["fp"] == 0
    assert document["nab"]["standard"]["score"] == pytest.approx(100.0)
