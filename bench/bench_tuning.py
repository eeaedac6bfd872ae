"""Detection quality on real labelled telemetry: the tuning parts of NAB and SKAB.

Both sets live in the team folder (``../shared/data/nab-tuning``, ``../shared/data/skab-tuning``,
never copied) and are scored by the team's scorers, run as subprocesses from where they are
(``../shared/tools/nab_score.py``, ``../shared/tools/skab_score.py``, never copied). Only the
shipped defaults are scored, through the public entry points, so that every improvement of
the detectors shows up here without an edit:

* **NAB** (causal, univariate): every data file goes through ``meterwatch detect --mode stream
  FILE --output OUT/<category>/<file>.csv`` (:func:`shared.cli.main.main`, in-process: the
  command's own parsing, defaults and writing), one output row per input row
  (``timestamp``, ``severity``, ``isAnomaly``, ...); then ``nab_score.py OUT --data-dir
  nab-tuning --score-column severity --fallback-column isAnomaly``.
* **SKAB** (multivariate, its leaderboard protocol): per experiment file, the eight sensors
  aligned as the app aligns a dataset (:func:`shared.multivariate.datasets.dataset_from_frame`),
  a model trained with the app's default settings on the timestamps of the file's first 400
  rows (``MultivariateModel(MultivariateConfig(sliding_window=DEFAULT_SLIDING_WINDOW)).fit``,
  as :func:`shared.multivariate.training.train_model` builds it) and ``detect`` on the whole
  file, written as ``PRED/<group>_<n>.csv`` (``timestamp,isAnomaly``); then ``skab_score.py
  --data skab-tuning --pred PRED`` (rows 400 to the end, counts summed over files).

The published detectors' figures on the same files (``../shared/data/README.md``) are written
beside ours. ``meterwatch evaluate`` (:mod:`shared.evaluation.files`) scores the same outputs
too, and ``tuning_evaluate_max_diff`` is its largest difference from the scorers (it should
be 0 up to rounding). A missing data or tools folder fails the part: it is never skipped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import PartReport, Results

REPO = Path(__file__).resolve().parents[1]
TEAM = REPO.parent / "shared"
DATA = TEAM / "data"
TOOLS = TEAM / "tools"
NAB_DIR = DATA / "nab-tuning"
SKAB_DIR = DATA / "skab-tuning"
SKAB_GROUPS = ("valve1", "valve2", "other")
SKAB_SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
SKAB_TRAIN_ROWS = 400

#: Published figures on these tuning parts (``../shared/data/README.md``): NAB standard profile.
PUBLISHED_NAB_STANDARD: dict[str, float] = {
    "artime": 68.9,
    "htm": 65.4,
    "rcf": 55.7,
    "knn_cad": 54.5,
    "relative_entropy": 46.3,
    "windowed_gaussian": 28.2,
}
#: SKAB: (F1, false-alarm rate %).
PUBLISHED_SKAB: dict[str, tuple[float, float]] = {
    "conv_ae": (0.81, 12.7),
    "mset": (0.78, 40.9),
    "t2_q": (0.76, 29.3),
}
#: Display names of the published detectors (README table).
PUBLISHED_NAMES: dict[str, str] = {
    "artime": "ARTime",
    "htm": "HTM",
    "rcf": "RCF",
    "knn_cad": "KNN-CAD",
    "relative_entropy": "relative entropy",
    "windowed_gaussian": "windowed Gaussian",
    "conv_ae": "Conv-AE",
    "mset": "MSET",
    "t2_q": "T²+Q",
}
NAB_PROFILES = {
    "standard": "standard",
    "low_fp": "reward_low_FP_rate",
    "low_fn": "reward_low_FN_rate",
}


def require_team_folder() -> None:
    """Fail (never skip) when the tuning sets or the scorers are not beside the repository.

    Raises:
        FileNotFoundError: Naming what is missing.
    """
    needed = [
        NAB_DIR / "labels" / "combined_windows.json",
        SKAB_DIR,
        TOOLS / "nab_score.py",
        TOOLS / "skab_score.py",
    ]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise FileNotFoundError(
            "the tuning benchmark needs the team folder ../shared beside the repository; "
            f"missing: {', '.join(missing)}"
        )


def _tool(name: str, *args: str) -> str:
    """Run one of the team's scorers from its folder; return its stdout."""
    done = subprocess.run(
        [sys.executable, str(TOOLS / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} exited {done.returncode}: {done.stderr.strip()[-600:]}")
    return done.stdout


def nab_files() -> list[Path]:
    """Every data file of the NAB tuning part, in name order."""
    return sorted((NAB_DIR / "data").glob("*/*.csv"))


def nab_outputs(out: Path, files: list[Path] | None = None) -> int:
    """Run ``meterwatch detect --mode stream`` on NAB tuning files (default: all); return how
    many.

    Raises:
        RuntimeError: The command failed on a file (its message names the file).
    """
    from shared.cli.main import main

    files = nab_files() if files is None else files
    for path in files:
        target = out / path.parent.name / path.name
        messages = io.StringIO()
        with contextlib.redirect_stderr(messages):
            code = main(["detect", "--mode", "stream", str(path), "--output", str(target)])
        if code != 0:
            raise RuntimeError(f"meterwatch detect failed on {path}: {messages.getvalue()}")
    return len(files)


def skab_files() -> list[tuple[str, Path]]:
    """``(<group>_<n>, path)`` of every SKAB experiment file of the tuning part."""
    found: list[tuple[str, Path]] = []
    for group in SKAB_GROUPS:
        folder = SKAB_DIR / group
        if folder.is_dir():
            numbered = sorted(folder.glob("*.csv"), key=lambda p: int(p.stem))
            found += [(f"{group}_{p.stem}", p) for p in numbered]
    return found


def skab_predictions(pred: Path, names: list[str] | None = None) -> int:
    """Train and detect per SKAB file (default: all) with the app's defaults; write
    ``pred/<name>.csv``; return how many."""
    import numpy as np
    import pandas as pd

    from shared.engine.multivariate import MultivariateConfig, MultivariateModel
    from shared.multivariate.datasets import dataset_from_frame
    from shared.multivariate.spec import DEFAULT_SLIDING_WINDOW

    pred.mkdir(parents=True, exist_ok=True)
    files = [(n, p) for n, p in skab_files() if names is None or n in names]
    for name, path in files:
        frame = pd.read_csv(path, sep=";", parse_dates=["datetime"]).set_index("datetime")
        data = dataset_from_frame(frame[list(SKAB_SENSORS)])
        last_train = np.datetime64(frame.index[SKAB_TRAIN_ROWS - 1].to_datetime64(), "s")
        model = MultivariateModel(MultivariateConfig(sliding_window=DEFAULT_SLIDING_WINDOW))
        model.fit(data.slice(None, last_train))
        with (pred / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["timestamp", "isAnomaly"])
            for point in model.detect(data):
                writer.writerow([f"{point.timestamp}Z", int(point.is_anomaly)])
    return len(files)


def nab_figures(out: Path, work: Path, files_regex: str | None = None) -> Results:
    """Score the NAB outputs with ``nab_score.py`` (``--files``: a subset); return the
    ``tuning_nab_*`` figures."""
    report = work / "nab.json"
    subset = ["--files", files_regex] if files_regex else []
    _tool(
        "nab_score.py",
        *subset,
        str(out),
        "--data-dir",
        str(NAB_DIR),
        "--score-column",
        "severity",
        "--fallback-column",
        "isAnomaly",
        "--json",
        str(report),
    )
    scored = json.loads(report.read_text(encoding="utf-8"))
    figures: Results = {}
    for short, profile in NAB_PROFILES.items():
        entry = scored["profiles"][profile]
        figures[f"tuning_nab_{short}"] = float(entry["normalized"])
        figures[f"tuning_nab_{short}_threshold"] = entry["threshold"]
        figures[f"tuning_nab_{short}_false_positives"] = sum(
            int(f["fp_detections"]) for f in entry["files"]
        )
        figures[f"tuning_nab_{short}_windows_found"] = sum(
            int(f["detected_windows"]) for f in entry["files"]
        )
    standard = scored["profiles"]["standard"]["files"]
    figures["tuning_nab_files"] = len(standard)
    figures["tuning_nab_windows"] = sum(int(f["windows"]) for f in standard)
    return figures


def skab_figures(pred: Path, work: Path, names: list[str] | None = None) -> Results:
    """Score the SKAB predictions with ``skab_score.py`` (``names``: a subset); return the
    ``tuning_skab_*`` figures."""
    report = work / "skab.json"
    subset = ["--files", ",".join(names)] if names else []
    _tool(
        "skab_score.py",
        *subset,
        "--data",
        str(SKAB_DIR),
        "--pred",
        str(pred),
        "--json",
        str(report),
    )
    total: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))["total"]
    return {
        "tuning_skab_f1": float(total["F1"]),
        "tuning_skab_far": float(total["FAR"]),
        "tuning_skab_mar": float(total["MAR"]),
        "tuning_skab_files": int(total["files_scored"]),
        "tuning_skab_rows": int(total["rows"]),
    }


def evaluate_agreement(out: Path, pred: Path, figures: Results) -> float:
    """Largest difference between ``meterwatch evaluate`` and the scorers on the same outputs.

    NAB profile scores are compared in points, SKAB's F1 in points of 100 and its rates in
    percentage points; the result is rounded to 1e-9.
    """
    from shared.evaluation.files import evaluate_outputs

    nab = evaluate_outputs(out, NAB_DIR / "labels" / "combined_windows.json").to_dict()["nab"]
    skab = evaluate_outputs(
        pred, SKAB_DIR, label_column="anomaly", skip_rows=SKAB_TRAIN_ROWS
    ).to_dict()["pointwise"]
    differences = [
        abs(_finite_or_inf(nab[short]["score"]) - float(figures[f"tuning_nab_{short}"] or 0.0))
        for short in NAB_PROFILES
    ]
    differences.append(100.0 * abs(skab["f1"] - float(figures["tuning_skab_f1"] or 0.0)))
    differences.append(abs(skab["false_alarm_rate"] - float(figures["tuning_skab_far"] or 0.0)))
    differences.append(abs(skab["missed_alarm_rate"] - float(figures["tuning_skab_mar"] or 0.0)))
    return round(max(differences), 9)  # float rounding (~1e-13) is agreement


def _finite_or_inf(score: float | None) -> float:
    """A report's NAB score; ``None`` (not finite) agrees with no published figure."""
    return float("inf") if score is None else score


def published() -> Results:
    """The published detectors' figures on the same tuning files."""
    figures: Results = {
        f"tuning_published_nab_{name}_standard": value
        for name, value in PUBLISHED_NAB_STANDARD.items()
    }
    for name, (f1, far) in PUBLISHED_SKAB.items():
        figures[f"tuning_published_skab_{name}_f1"] = f1
        figures[f"tuning_published_skab_{name}_far"] = far
    return figures


def run(report: PartReport, quick: bool = False) -> None:
    """The ``tuning`` part: NAB and SKAB tuning sets, scored by the team's scorers."""
    del quick  # one pass is already short (about half a minute)
    require_team_folder()
    with tempfile.TemporaryDirectory(prefix="meterwatch-tuning-") as scratch:
        work = Path(scratch)
        out, pred = work / "nab", work / "skab"
        figures: Results = {}
        if report.attempt("nab stream", lambda: nab_outputs(out)) is not None:
            scored = report.attempt("nab score", lambda: nab_figures(out, work))
            figures.update(scored or {})
        if report.attempt("skab multivariate", lambda: skab_predictions(pred)) is not None:
            scored = report.attempt("skab score", lambda: skab_figures(pred, work))
            figures.update(scored or {})
        if "tuning_nab_standard" in figures and "tuning_skab_f1" in figures:
            agreement = report.attempt(
                "evaluate agreement", lambda: evaluate_agreement(out, pred, figures)
            )
            figures["tuning_evaluate_max_diff"] = agreement
        figures.update(published())
        report.results.update(figures)
        report.details.extend(details(figures))


def _shown(value: object, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "n/a"


def details(figures: Results) -> list[str]:
    """Lines printed under the table: ours beside the published detectors."""
    lines = []
    if isinstance(figures.get("tuning_nab_standard"), float):
        lines.append(
            f"NAB tuning (stream): standard {_shown(figures['tuning_nab_standard'], 2)}, "
            f"low FP {_shown(figures.get('tuning_nab_low_fp'), 2)}, "
            f"low FN {_shown(figures.get('tuning_nab_low_fn'), 2)}; published standard: "
            + ", ".join(f"{PUBLISHED_NAMES[k]} {v}" for k, v in PUBLISHED_NAB_STANDARD.items())
        )
    if isinstance(figures.get("tuning_skab_f1"), float):
        lines.append(
            f"SKAB tuning (multivariate): F1 {_shown(figures['tuning_skab_f1'], 3)}, "
            f"FAR {_shown(figures.get('tuning_skab_far'), 2)} %, "
            f"MAR {_shown(figures.get('tuning_skab_mar'), 2)} %; published: "
            + ", ".join(f"{PUBLISHED_NAMES[k]} {a} / {b} %" for k, (a, b) in PUBLISHED_SKAB.items())
        )
    return lines
