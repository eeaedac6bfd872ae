"""The README's configuration table is generated from the settings object and up to date."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_settings_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "readme_tables", REPO / "scripts/readme_tables.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.settings_table() in (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci/run").read_text(encoding="utf-8")


def _tables() -> Any:
    spec = importlib.util.spec_from_file_location(
        "readme_tables", REPO / "scripts/readme_tables.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tuning_table_puts_ours_beside_the_published_detectors() -> None:
    tables = _tables()
    results = {
        "tuning_date": "2026-12-02T00:00:00Z",
        "tuning_nab_standard": 47.356,
        "tuning_nab_low_fp": 33.918,
        "tuning_nab_low_fn": 54.648,
        "tuning_nab_files": 19,
        "tuning_nab_windows": 39,
        "tuning_skab_f1": 0.598,
        "tuning_skab_far": 6.97,
        "tuning_skab_mar": 54.77,
        "tuning_skab_files": 18,
        "tuning_published_nab_artime_standard": 68.9,
        "tuning_published_skab_conv_ae_f1": 0.81,
        "tuning_published_skab_conv_ae_far": 12.7,
    }
    text = tables.tuning_section(results)
    assert "| **meterwatch stream** | 47.4 | 33.9 | 54.6 |" in text
    assert "| ARTime | 68.9 | | |" in text
    assert "| HTM | not measured | | |" in text
    assert "| **meterwatch multivariate** | 0.60 | 7.0 % | 54.8 % |" in text
    assert "| Conv-AE | 0.81 | 12.7 % | |" in text
    assert "19 files, 39 labelled windows" in text
    assert tables.tuning_section({}).startswith("Run `bench/run --only tuning`")


def test_readme_no_longer_quotes_the_own_corpus_comparison() -> None:
    tables = _tables()
    shown = {key for key, *_ in tables.BENCH_ROWS}
    assert not shown & {"f1_entire", "reference_f1_entire", "f1_stream"}
    assert "<!-- tuning:start -->" in (REPO / "README.md").read_text(encoding="utf-8")
