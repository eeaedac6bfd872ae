"""The main job (meterwatch demo) on a short synthetic household, over the test Azurite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.cli.main import main

pytestmark = pytest.mark.slow


def test_demo_writes_results_pictures_and_scores(
    tmp_path: Path, azurite: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    code = main(
        ["demo", "--output", str(out), "--days", "2", "--connection", azurite, "--no-multivariate"]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    metrics = {row["metric"] for row in summary["univariate"]}
    assert metrics == {"power", "voltage", "kitchen", "laundry"}
    for metric in metrics:
        png = out / f"{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        header = (out / f"{metric}.csv").read_text().splitlines()[0]
        assert header.startswith("timestamp,value,isAnomaly,severity,expectedValue")
    # The detector finds most labelled anomalies overall (the demo's whole point).
    detected = sum(row["entire"]["true_positives"] for row in summary["univariate"])
    labelled = sum(row["events"] for row in summary["univariate"])
    assert labelled > 0 and detected / labelled >= 0.5
    captured = capsys.readouterr()
    assert "| series |" in captured.out
    assert "ingest + detect" in captured.err  # progress was shown
