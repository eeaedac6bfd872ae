"""Multivariate: our engine (``bench/bench_mv.py``) beside the reference, on the same data.

``bench.bench_mv`` (the multivariate engineer's) measures our side with
``run_mv_benchmarks()`` and builds the shared dataset with ``synthetic_mv_dataset(seed=0)``:
10,000 rows x 4 variables with injected events of known cause. Here the reference
``MultivariateAnomalyDetector`` is trained with its default settings (100 epochs, sliding
window 200) on the same rows, then detects on the same rows; its raw per-row outputs are scored
by :mod:`bench.scoring`, the definitions our side uses too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from bench.harness import PartReport, Results, require
from bench.reference import run_reference
from bench.scoring import events_from_dicts, score_multivariate

TOLERANCE = 3


def split_rows(module: Any, rows: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return the ``(train, detect)`` row ranges our benchmark uses, from ``bench.bench_mv``.

    ``TRAIN_ROWS`` / ``DETECT_ROWS`` (``(start, stop)`` pairs) when the module defines them,
    else training and detection both on all rows.
    """
    train = getattr(module, "TRAIN_ROWS", (0, rows))
    detect = getattr(module, "DETECT_ROWS", (0, rows))
    return (int(train[0]), int(train[1])), (int(detect[0]), int(detect[1]))


def frame_for_reference(frame: pd.DataFrame) -> tuple[list[str], list[str], list[list[float]]]:
    """Return ``(timestamps ISO, columns, rows)`` of a dataset, the timestamp as the index.

    A ``timestamp`` column becomes the index; without one (and without a datetime index) rows
    get one-minute timestamps, which the reference needs as its index.
    """
    data = frame
    if "timestamp" in data.columns:
        data = data.set_index("timestamp")
    if isinstance(data.index, pd.DatetimeIndex):
        index = data.index
    else:
        index = pd.date_range("2026-01-01", periods=len(data), freq="min")
    stamps = [stamp.strftime("%Y-%m-%dT%H:%M:%SZ") for stamp in index]
    numeric = data.astype(float)
    return stamps, [str(c) for c in numeric.columns], numeric.to_numpy().tolist()


def score_rows(
    flags: np.ndarray,
    contributions: np.ndarray,
    variables: list[str],
    events: list[dict[str, Any]],
    offset: int,
) -> dict[str, Any]:
    """Score per-row output with :mod:`bench.scoring` (as ``bench_mv.score_mv`` does ours)."""
    labelled = [e for e in events_from_dicts(events, offset=offset) if 0 <= e.start < flags.size]
    return score_multivariate(labelled, flags, contributions, variables, TOLERANCE)


def reference_mv(
    frame: pd.DataFrame,
    events: list[dict[str, Any]],
    train: tuple[int, int],
    detect: tuple[int, int],
    scorer: Callable[..., dict[str, Any]] | None = None,
) -> Results:
    """Train and run the reference on the dataset; return its timings and scores.

    Args:
        frame: The dataset (``bench_mv.synthetic_mv_dataset``).
        events: Its labelled events (frame rows, ``end`` inclusive).
        train: Rows ``[start, stop)`` to train on.
        detect: Rows ``[start, stop)`` to detect on.
        scorer: ``bench_mv.score_mv`` when it exists, so that both sides go through one
            function; else :func:`score_rows` (the same definitions).
    """
    stamps, columns, rows = frame_for_reference(frame)
    job = {
        "task": "mv",
        "mv": {
            "timestamps": stamps,
            "columns": columns,
            "values": rows,
            "train": list(train),
            "detect": list(detect),
            "params": {},  # default settings, as the issue asks
        },
    }
    result = run_reference(job, timeout_s=1800.0)["mv"]
    flags = np.asarray(result["is_anomaly"], dtype=bool)
    contributions = np.asarray(result["contributions"], dtype=float)
    variables = [str(v) for v in result["variables"]]
    score = scorer if scorer is not None else score_rows
    scores = score(flags, contributions, variables, events, detect[0])
    return {
        "reference_mv_train_10k_s": result["train_s"],
        "reference_mv_infer_rows_per_s": result["detect_rows"] / result["predict_s"],
        "reference_mv_top_contributor_acc": scores["top_contributor_acc"],
        "reference_mv_f1": scores["f1"],
        "reference_mv_precision": scores["precision"],
        "reference_mv_recall": scores["recall"],
        "reference_mv_train_peak_mb": result["train_peak_mb"],
        "reference_mv_flagged_rows": scores["flagged_rows"],
        "reference_mv_events_detected": scores["detected"],
    }


def run(report: PartReport, quick: bool = False) -> None:
    """The ``mv`` part: ``bench_mv.run_mv_benchmarks()`` and the reference on its dataset."""
    module = require("bench.bench_mv", "run_mv_benchmarks", "synthetic_mv_dataset")
    ours = report.attempt("ours (bench_mv)", module.run_mv_benchmarks)
    if ours is not None:
        report.results.update({str(k): v for k, v in dict(ours).items()})
    frame, events = module.synthetic_mv_dataset(seed=0)
    train, detect = split_rows(module, len(frame))
    scorer = getattr(module, "score_mv", None)
    ref = report.attempt("reference mv", lambda: reference_mv(frame, events, train, detect, scorer))
    if ref is not None:
        report.results.update(ref)
