"""The use case behind ``meterwatch evaluate``: detector output files scored against labels.

Outputs and labels are read by :mod:`shared.evaluation.inputs` (the forms are described there);
the rules are those of :mod:`shared.evaluation`. An output folder is scored as one corpus:
NAB's threshold is optimised over all its files and SKAB's counts are summed. Scores: the three
NAB profile scores on the score column (the flag column where a row has no score, or where
there is no score column), and SKAB's point-wise precision, recall, F1, false-alarm and
missed-alarm rates on the flags (the flag column, or ``score >= flag_threshold`` without one),
from row ``skip_rows`` of each file on (SKAB scores from row 400).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from shared.errors import CsvFormatError, InputError
from shared.evaluation import (
    NAB_PROFILES,
    AlarmRates,
    NabFile,
    NabProfileScore,
    alarm_rates,
    nab_scores,
)
from shared.evaluation.inputs import (
    DetectorOutput,
    Labels,
    OutputColumns,
    label_rows,
    read_detector_output,
    read_labels,
)

__all__ = [
    "CountsReport",
    "Evaluation",
    "EvaluationReport",
    "FileEvaluation",
    "FileReport",
    "NabReport",
    "OutputColumns",
    "evaluate_outputs",
    "output_files",
]

logger = logging.getLogger(__name__)

#: Short names of the NAB profiles in reports.
PROFILE_NAMES = {
    "standard": "standard",
    "reward_low_FP_rate": "low_fp",
    "reward_low_FN_rate": "low_fn",
}


class CountsReport(TypedDict):
    """Point-wise figures (SKAB's), JSON-ready: rates in percent."""

    precision: float
    recall: float
    f1: float
    false_alarm_rate: float
    missed_alarm_rate: float
    tp: int
    fp: int
    fn: int
    tn: int


class FileReport(CountsReport):
    """One file's figures (:meth:`FileEvaluation.to_dict`)."""

    file: str
    rows: int
    windows: int
    windows_with_a_flag: int


class NabReport(TypedDict):
    """One NAB profile's figures (``None``: not finite)."""

    score: float | None
    threshold: float | None
    raw: float
    windows: int
    detected_windows: int
    false_positives: int


class EvaluationReport(TypedDict):
    """The report (:meth:`Evaluation.to_dict`), as ``meterwatch evaluate --json`` writes it."""

    nab: dict[str, NabReport]
    pointwise: CountsReport
    files: list[FileReport]
    unmatched_labels: list[str]


@dataclass(frozen=True)
class FileEvaluation:
    """One output file against its labels: the rows labelled and the counts."""

    output: DetectorOutput
    truth: np.ndarray
    windows: tuple[tuple[int, int], ...]
    counts: AlarmRates
    first_scored_row: int

    def to_dict(self) -> FileReport:
        """Per-file figures, JSON-ready."""
        hit = sum(bool(self.output.flags[a : b + 1].any()) for a, b in self.windows)
        return {
            "file": self.output.name,
            "rows": int(self.truth.size),
            "windows": len(self.windows),
            "windows_with_a_flag": int(hit),
            **_counts_dict(self.counts),
        }


@dataclass(frozen=True)
class Evaluation:
    """A detector output (one file or a folder) scored against labels."""

    files: tuple[FileEvaluation, ...]
    nab: dict[str, NabProfileScore]
    counts: AlarmRates
    unmatched_labels: tuple[str, ...] = field(default=())

    def to_dict(self) -> EvaluationReport:
        """The report, JSON-ready (NaN and infinity become ``null``)."""
        nab: dict[str, NabReport] = {
            PROFILE_NAMES.get(name, name): {
                "score": _finite(s.score),
                "threshold": _finite(s.threshold),
                "raw": s.raw,
                "windows": s.windows,
                "detected_windows": s.detected_windows,
                "false_positives": s.false_positives,
            }
            for name, s in self.nab.items()
        }
        return {
            "nab": nab,
            "pointwise": _counts_dict(self.counts),
            "files": [item.to_dict() for item in self.files],
            "unmatched_labels": list(self.unmatched_labels),
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _counts_dict(counts: AlarmRates) -> CountsReport:
    return {
        "precision": counts.precision,
        "recall": counts.recall,
        "f1": counts.f1,
        "false_alarm_rate": counts.false_alarm_rate,
        "missed_alarm_rate": counts.missed_alarm_rate,
        "tp": counts.true_positives,
        "fp": counts.false_positives,
        "fn": counts.false_negatives,
        "tn": counts.true_negatives,
    }


# --------------------------------------------------------------------------- the use case


def output_files(path: Path) -> list[tuple[str, Path]]:
    """``(name, path)`` of the outputs: the file itself, or every CSV under a folder.

    Raises:
        CsvFormatError: The path does not exist, or the folder holds no CSV.
    """
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise CsvFormatError(f"{path}: no such file or folder.", "InvalidCsv")
    found = sorted(p for p in path.rglob("*.csv") if p.is_file())
    if not found:
        raise CsvFormatError(f"{path}: the folder holds no .csv file.", "InvalidCsv")
    return [(p.relative_to(path).as_posix(), p) for p in found]


def evaluate_outputs(
    output: Path,
    labels: Path,
    columns: OutputColumns | None = None,
    label_column: str | None = None,
    label_timestamp_column: str | None = None,
    skip_rows: int = 0,
    probation: bool = True,
    date_format: str = "auto",
) -> Evaluation:
    """Score a detector output file or folder against labels (module docstring).

    Args:
        output: A detector output CSV, or a folder of them.
        labels: A windows JSON, a point-label CSV, a CSV with ``label_column``, or a folder
            of label CSVs.
        columns: The output's column names (default :class:`OutputColumns`).
        label_column: The label column of label CSVs (0/1); without it a CSV lists points.
        label_timestamp_column: The timestamp column of label CSVs (default: ``timestamp``,
            ``datetime``, ... or the first column).
        skip_rows: Point-wise metrics start at this row of each file (SKAB: 400).
        probation: Leave NAB's probationary period out of the NAB scores.
        date_format: How numeric dates read.

    Raises:
        InputError: Bad labels or outputs (coded, naming the file and row), or labels that
            match no output file.
    """
    if skip_rows < 0:
        raise InputError(f"--skip-rows must be 0 or more, got {skip_rows}.", "InvalidParameter")
    columns = columns or OutputColumns()
    label_set = read_labels(labels, label_column, label_timestamp_column, date_format)
    found = output_files(output)
    single = len(found) == 1
    files: list[FileEvaluation] = []
    for name, path in found:
        item = read_detector_output(path, columns, name, date_format)
        rows = label_rows(
            item, label_set, single, label_column, label_timestamp_column, date_format
        )
        if rows is None:
            logger.warning("%s: no labels for it in %s; not scored", name, labels)
            continue
        truth, windows = rows
        first = min(skip_rows, truth.size)
        counts = alarm_rates(truth[first:], item.flags[first:])
        files.append(FileEvaluation(item, truth, windows, counts, first))
    if not files:
        raise InputError(
            f"{labels}: no label matches {'the output' if single else 'any file of ' + str(output)}"
            f" (labelled: {', '.join(_label_names(label_set)) or 'nothing'}).",
            "InvalidLabels",
        )
    nab = nab_scores(
        [NabFile(f.output.name, f.output.scores, f.windows) for f in files],
        NAB_PROFILES,
        probation,
    )
    total = AlarmRates(0, 0, 0, 0)
    for scored_file in files:
        total = total + scored_file.counts
    scored = {f.output.name for f in files}
    # a single output is scored against its own key; the others are not missing
    named = [] if single else _label_names(label_set)
    unmatched = tuple(key for key in named if key and not _matched(key, scored))
    return Evaluation(tuple(files), nab, total, unmatched)


def _label_names(labels: Labels) -> Sequence[str]:
    return list(labels.windows) if labels.windows is not None else []


def _matched(key: str, scored: set[str]) -> bool:
    return key in scored or any(Path(name).name == Path(key).name for name in scored)
