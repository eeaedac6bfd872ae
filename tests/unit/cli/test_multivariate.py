"""``meterwatch train`` and ``meterwatch detect-mv`` on files, no storage."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.cli.main import main
from shared.multivariate.export import load_export

TRAIN = ["--start", "2006-12-16T17:24:00Z", "--end", "2006-12-18T02:43:00Z"]
DETECT = ["--start", "2006-12-19T00:00:00Z", "--end", "2006-12-19T20:26:00Z"]


def as_obj(value: object) -> dict[str, Any]:
    """A JSON object of a free-form document (the export's model object), for deep reads."""
    assert isinstance(value, dict), value
    return value


@pytest.fixture
def model_zip(tmp_path: Path, energy_zip: Path) -> Path:
    path = tmp_path / "trained" / "model.zip"
    assert main(["train", str(energy_zip), *TRAIN, "--output", str(path)]) == 0
    return path


def test_train_writes_a_model_zip_with_its_v11_object(
    tmp_path: Path, energy_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nested" / "model.zip"
    assert (
        main(["train", str(energy_zip), *TRAIN, "--display-name", "t", "--output", str(out)]) == 0
    )
    err = capsys.readouterr().err
    assert "training [" in err and "100%" in err  # the progress bar
    assert "2000 timestamps x 4 variables" in err
    exported = load_export(out.read_bytes())
    assert exported.model.variables == ("kitchen", "laundryRoom", "power", "voltage")
    info = as_obj(exported.model_object["modelInfo"])
    assert info["status"] == "READY" and info["displayName"] == "t"
    assert (info["startTime"], info["endTime"]) == ("2006-12-16T17:24:00Z", "2006-12-18T02:43:00Z")
    assert info["slidingWindow"] == 300
    assert len(info["diagnosticsInfo"]["variableStates"]) == 4


def test_detect_mv_writes_the_v11_result_and_names_the_kitchen(
    tmp_path: Path, model_zip: Path, energy_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    picture = tmp_path / "results.png"
    args = ["detect-mv", "--model", str(model_zip), str(energy_zip), *DETECT]
    assert main([*args, "--output", str(out), "--picture", str(picture)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"resultId", "summary", "results"}
    assert result["summary"]["status"] == "READY"
    assert len(result["results"]) == 1227
    by_time = {item["timestamp"]: item["value"] for item in result["results"]}
    episode = [f"2006-12-19T08:{m}:00Z" for m in ("39", "40", "41")]
    flagged = [t for t in episode if by_time[t]["isAnomaly"]]
    assert flagged and all(
        by_time[t]["interpretation"][0]["variable"] == "kitchen" for t in flagged
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "timestamps anomalous" in capsys.readouterr().err


def test_detect_mv_writes_csv_with_fewer_contributors(
    tmp_path: Path, model_zip: Path, energy_zip: Path
) -> None:
    out = tmp_path / "results.csv"
    args = ["detect-mv", "--model", str(model_zip), str(energy_zip), *DETECT]
    assert main([*args, "--top-contributors", "2", "--output", str(out)]) == 0
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1227
    flagged = [row for row in rows if row["isAnomaly"] == "true"]
    assert flagged and all(1 <= len(row["topContributors"].split(";")) <= 2 for row in flagged)
    assert all(row["topContributors"] == "" for row in rows if row["isAnomaly"] == "false")


def one_table(path: Path, columns: int, rows: int = 400) -> Path:
    rng = np.random.default_rng(0)
    load = 2 + np.sin(np.arange(rows) / 15) + 0.1 * rng.standard_normal(rows)
    lines = ["timestamp," + ",".join(f"m{j}" for j in range(columns))]
    for i in range(rows):
        values = ",".join(
            f"{(j + 1) * load[i] + 0.05 * rng.standard_normal():.4f}" for j in range(columns)
        )
        lines.append(f"2026-11-02T{i // 60:02d}:{i % 60:02d}:00Z,{values}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_on_a_one_table_csv_with_an_align_policy(tmp_path: Path) -> None:
    source = one_table(tmp_path / "meters.csv", 3)
    out = tmp_path / "model.zip"
    args = ["train", str(source), "--sliding-window", "60", "--align-mode", "Inner"]
    args += ["--fill-na-method", "Fixed", "--padding-value", "1.5", "--output", str(out)]
    assert main(args) == 0
    exported = load_export(out.read_bytes())
    assert exported.align_policy.align_mode == "Inner"
    assert exported.align_policy.fill_na_method == "Fixed"
    assert exported.align_policy.padding_value == 1.5
    assert as_obj(exported.model_object["modelInfo"])["dataSchema"] == "OneTable"
    assert exported.model.config.sliding_window == 60


def error_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_clear_errors(tmp_path: Path, model_zip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.zip"
    err = error_of(["train", str(missing), "--output", str(tmp_path / "m.zip")], capsys)
    assert "does not exist" in err and "[FileNotFound]" in err

    single = one_table(tmp_path / "single.csv", 1)
    err = error_of(["train", str(single), "--output", str(tmp_path / "m.zip")], capsys)
    assert "[TooFewVariables]" in err

    short = one_table(tmp_path / "short.csv", 2, rows=50)
    err = error_of(["train", str(short), "--output", str(tmp_path / "m.zip")], capsys)
    assert "[NotEnoughData]" in err and "slidingWindow" in err

    others = one_table(tmp_path / "others.csv", 4)
    args = ["detect-mv", "--model", str(model_zip), str(others)]
    err = error_of([*args, "--output", str(tmp_path / "r.json")], capsys)
    assert "[VariableMismatch]" in err and "kitchen" in err
    err = error_of([*args, "--output", str(tmp_path / "r.txt")], capsys)
    assert "[InvalidOutput]" in err

    fake = tmp_path / "fake.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    fake.write_bytes(buffer.getvalue())
    err = error_of(["detect-mv", "--model", str(fake), str(others), "--output", "r.json"], capsys)
    assert "[InvalidModel]" in err
