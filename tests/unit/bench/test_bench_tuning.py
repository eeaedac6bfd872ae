"""The tuning benchmark: the team's scorers and ``meterwatch evaluate`` agree on real outputs.

Reads the tuning sets and runs the scorers from the team folder ``../shared`` (never copied);
without it these tests fail, they never skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_tuning
from bench.harness import PartReport
from shared.evaluation.files import evaluate_outputs
from tests.sample_data import sample_path

NAB_FILE = "realAdExchange/exchange-3_cpc_results.csv"  # 1,538 rows, three windows
SKAB_FILE = "valve2_0"


def test_the_team_folder_is_there() -> None:
    for name in ("nab-tuning/labels/combined_windows.json", "skab-tuning/valve2/0.csv"):
        sample_path(name)
    assert (bench_tuning.TOOLS / "nab_score.py").is_file(), "../shared/tools is missing"
    bench_tuning.require_team_folder()


def test_a_missing_team_folder_fails_the_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_tuning, "TOOLS", tmp_path / "tools")
    with pytest.raises(FileNotFoundError, match="nab_score.py"):
        bench_tuning.run(PartReport("tuning"))


def test_stream_outputs_score_the_same_with_evaluate_and_nab_score(tmp_path: Path) -> None:
    out = tmp_path / "nab"
    data = sample_path("nab-tuning") / "data" / NAB_FILE
    assert bench_tuning.nab_outputs(out, [data]) == 1
    header = (out / NAB_FILE).read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"timestamp", "severity", "isAnomaly"} <= set(header)
    figures = bench_tuning.nab_figures(out, tmp_path, files_regex=NAB_FILE.split("/")[1])
    assert figures["tuning_nab_windows"] == 3
    labels = sample_path("nab-tuning") / "labels" / "combined_windows.json"
    ours = evaluate_outputs(out, labels).to_dict()["nab"]
    for short in bench_tuning.NAB_PROFILES:
        assert ours[short]["score"] == pytest.approx(figures[f"tuning_nab_{short}"], abs=1e-9)
        assert ours[short]["threshold"] == figures[f"tuning_nab_{short}_threshold"]
        assert ours[short]["false_positives"] == figures[f"tuning_nab_{short}_false_positives"]


def test_multivariate_predictions_score_the_same_with_evaluate_and_skab_score(
    tmp_path: Path,
) -> None:
    pred = tmp_path / "skab"
    assert bench_tuning.skab_predictions(pred, [SKAB_FILE]) == 1
    figures = bench_tuning.skab_figures(pred, tmp_path, [SKAB_FILE])
    assert figures["tuning_skab_files"] == 1
    ours = evaluate_outputs(
        pred,
        sample_path("skab-tuning"),
        label_column="anomaly",
        skip_rows=bench_tuning.SKAB_TRAIN_ROWS,
    ).to_dict()["pointwise"]
    assert ours["f1"] == pytest.approx(figures["tuning_skab_f1"], abs=1e-12)
    assert ours["false_alarm_rate"] == pytest.approx(figures["tuning_skab_far"], abs=1e-9)
    assert ours["missed_alarm_rate"] == pytest.approx(figures["tuning_skab_mar"], abs=1e-9)
