"""Regenerate the README's generated sections (settings, deploy, benchmark and real-telemetry
tables) from the code and ``bench/results.json``.

Usage: .venv/bin/python scripts/readme_tables.py [--demo-scores demo-output/scores.md]
(a test checks the settings table is up to date).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.settings import setting_docs  # noqa: E402


def settings_table() -> str:
    """The configuration table, one row per setting the code reads."""
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for name, (default, doc) in setting_docs().items():
        shown = "" if default is None else f"`{default}`"
        rows.append(f"| `{name}` | {shown} | {doc} |")
    return "\n".join(rows)


def load_results() -> dict[str, Any]:
    """``bench/results.json`` (empty when the benchmarks have not run)."""
    path = REPO / "bench" / "results.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


def deploy_section(results: dict[str, Any]) -> str:
    """``docs/deploy.md`` with the measured ingest throughput filled into its capacity table."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8").rstrip("\n")
    rate = results.get("ingest_events_per_s")
    if rate:
        lines = []
        for line in text.splitlines():
            if line.startswith("| One function instance"):
                line = line.replace("INGEST_EVENTS_PER_S × 60", f"{rate * 60:,.0f}")
                line = line.replace("INGEST_EVENTS_PER_S", f"{rate:,.0f}")
            lines.append(line)
        text = "\n".join(lines)
    return text


#: (key, label, unit/format, target text) rows of the README's benchmark table.
BENCH_ROWS: list[tuple[str, str, str, str]] = [
    ("entire_8640_ms", "univariate entire, 8,640 points", "{:.1f} ms", "≤ 20 ms"),
    ("reference_entire_8640_ms", "  reference (time-series-anomaly-detector)", "{:,.0f} ms", ""),
    ("entire_speedup", "  speed-up over the reference", "{:,.0f}×", "≥ 300×"),
    ("stream_us_per_point", "stream, per point", "{:.1f} µs", "≤ 50 µs"),
    ("ingest_events_per_s", "ingest handler, one core", "{:,.0f} events/s", "≥ 100,000"),
    ("json_parse_events_per_s", "  bare json.loads of the same events", "{:,.0f} events/s", ""),
    ("ingest_vs_json_ratio", "  ingest time ÷ bare parsing time", "{:.2f}×", "≤ 3×"),
    ("import_s", "`import function_app`, fresh process", "{:.2f} s", "≤ 1.0 s"),
    ("import_mb", "  peak memory", "{:.0f} MB", "≤ 150 MB"),
    ("mv_train_10k_s", "multivariate training, 10,000 × 4", "{:.3f} s", "≤ 5 s"),
    ("reference_mv_train_10k_s", "  reference training", "{:,.1f} s", ""),
    ("mv_train_speedup", "  speed-up over the reference", "{:,.0f}×", "≥ 20×"),
    ("mv_infer_rows_per_s", "multivariate inference", "{:,.0f} rows/s", "≥ 50,000"),
    ("mv_top_contributor_acc", "top-contributor accuracy", "{:.2f}", "≥ reference"),
    ("reference_mv_top_contributor_acc", "  reference accuracy", "{:.2f}", ""),
    ("mv_f1", "multivariate F1, synthetic 10,000 × 4 set", "{:.2f}", "≥ reference"),
    ("reference_mv_f1", "  reference F1 (its default settings)", "{:.2f}", ""),
    ("mv_train_100k_50_mb", "peak memory training 100,000 × 50", "{:,.0f} MB", ""),
    ("api_overhead_ms", "API overhead, 1,440-point entire", "{:.2f} ms", "≤ 2 ms"),
    ("api_rps", "API requests/s, 8 clients on loopback", "{:,.0f}", ""),
    ("api_p99_ms", "  p99 latency", "{:.0f} ms", ""),
    ("live_requests_per_reading", "live path: storage requests per reading", "{:.3f}", "≤ 2"),
    (
        "live_cpu_ms_per_reading",
        "  app CPU per reading",
        "{:.3f} ms",
        "≤ 0.2 ms",
    ),
    ("live_capacity_meter_metrics", "  meter-metrics per instance", "{:,.0f}", "≥ 50,000"),
    ("live_alert_latency_ms", "  alert latency, batch to alert", "{:.0f} ms", "≤ 1,000 ms"),
    ("live_state_kb", "  saved state of a series, daily period", "{:.1f} KB", "≤ 16 KB"),
    ("live_peak_mb", "  peak memory, 1,000-reading batch", "{:.0f} MB", "≤ 250 MB"),
]


def bench_section(results: dict[str, Any]) -> str:
    """The README's benchmark table from ``bench/results.json``."""
    if not results:
        return "Run `bench/run` to measure (writes `bench/results.json`)."
    rows = [
        f"Measured by `bench/run` on {results.get('machine', 'this machine')} "
        f"({results.get('date', '')}); every figure is also in `bench/results.json`.",
        "",
        "| figure | measured | target |",
        "|---|---:|---|",
    ]
    for key, label, fmt, target in BENCH_ROWS:
        value = results.get(key)
        if isinstance(value, int | float):
            shown = fmt.format(value)
            rows.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {shown} | {target} |")
    return "\n".join(rows)


#: Published detectors on the same tuning files (``../shared/data/README.md``), as in
#: ``bench/bench_tuning.py``: (display name, results key prefix).
NAB_PUBLISHED = (
    ("ARTime", "artime"),
    ("HTM", "htm"),
    ("RCF", "rcf"),
    ("KNN-CAD", "knn_cad"),
    ("relative entropy", "relative_entropy"),
    ("windowed Gaussian", "windowed_gaussian"),
)
SKAB_PUBLISHED = (("Conv-AE", "conv_ae"), ("MSET", "mset"), ("T²+Q", "t2_q"))


def _figure(results: dict[str, Any], key: str, fmt: str) -> str:
    value = results.get(key)
    return fmt.format(value) if isinstance(value, int | float) else "not measured"


def tuning_section(results: dict[str, Any]) -> str:
    """The README's real-telemetry table: ours beside the published detectors, same files."""
    if results.get("tuning_nab_standard") is None and results.get("tuning_skab_f1") is None:
        return "Run `bench/run --only tuning` to measure (writes `bench/results.json`)."
    files = _figure(results, "tuning_nab_files", "{:d}")
    windows = _figure(results, "tuning_nab_windows", "{:d}")
    rows = [
        f"Measured by `bench/run --only tuning` ({results.get('tuning_date', '')}), shipped "
        "defaults, scored by the team's scorers (`../shared/tools/`); the published figures "
        "are those of `../shared/data/README.md` for the same files.",
        "",
        f"**NAB tuning part** ({files} files, {windows} labelled windows; causal, "
        "`meterwatch detect --mode stream`; 100 = every window found on its first row, "
        "0 = nothing detected):",
        "",
        "| detector | standard | low FP | low FN |",
        "|---|---:|---:|---:|",
        f"| **meterwatch stream** | {_figure(results, 'tuning_nab_standard', '{:.1f}')} | "
        f"{_figure(results, 'tuning_nab_low_fp', '{:.1f}')} | "
        f"{_figure(results, 'tuning_nab_low_fn', '{:.1f}')} |",
    ]
    for name, key in NAB_PUBLISHED:
        shown = _figure(results, f"tuning_published_nab_{key}_standard", "{:.1f}")
        rows.append(f"| {name} | {shown} | | |")
    rows += [
        "",
        f"**SKAB tuning part** ({_figure(results, 'tuning_skab_files', '{:d}')} experiments of "
        "8 pump sensors; per file trained on the first 400 rows, scored point-wise on the rest):",
        "",
        "| detector | F1 | false-alarm rate | missed-alarm rate |",
        "|---|---:|---:|---:|",
        f"| **meterwatch multivariate** | {_figure(results, 'tuning_skab_f1', '{:.2f}')} | "
        f"{_figure(results, 'tuning_skab_far', '{:.1f} %')} | "
        f"{_figure(results, 'tuning_skab_mar', '{:.1f} %')} |",
    ]
    for name, key in SKAB_PUBLISHED:
        f1 = _figure(results, f"tuning_published_skab_{key}_f1", "{:.2f}")
        far = _figure(results, f"tuning_published_skab_{key}_far", "{:.1f} %")
        rows.append(f"| {name} | {f1} | {far} | |")
    rows += [
        "",
        "Targets (`bench/README.md`): NAB standard ≥ 70 with low FP ≥ 60; SKAB F1 ≥ 0.82 at a "
        "false-alarm rate ≤ 15 %. Most of each benchmark is kept back and scored separately, so "
        "these files are for tuning principles, never for per-file settings.",
        "",
        "Score any detector's output the same way with `meterwatch evaluate OUTPUT --labels "
        "LABELS` (NAB windows JSON, point labels or a label column; `--plot` draws the hits, "
        "misses and false alarms).",
    ]
    return "\n".join(rows)


def replace_section(text: str, name: str, body: str) -> str:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {name} section")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> None:
    readme = REPO / "README.md"
    results = load_results()
    text = replace_section(readme.read_text(encoding="utf-8"), "settings-table", settings_table())
    if "--demo-scores" in sys.argv:
        scores = Path(sys.argv[sys.argv.index("--demo-scores") + 1]).read_text(encoding="utf-8")
        text = replace_section(
            text,
            "demo-scores",
            "What `make demo` printed on this machine (event-wise against the labels, ±3 "
            "points; entire = each batch judged on its trailing window, stream = causal):\n\n"
            + scores.strip(),
        )
    text = replace_section(text, "deploy", deploy_section(results))
    text = replace_section(text, "bench", bench_section(results))
    text = replace_section(text, "tuning", tuning_section(results))
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
